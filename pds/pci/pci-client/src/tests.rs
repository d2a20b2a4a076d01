use pci_core::fake::{FakeConfig, bdf};
use pci_core::server::{Event, Server};
use pci_core::wire::MRS;
use pd_config::{Bdf, DeviceRegion, IoPorts, Irq, IrqSource, PciClient};

use super::*;

const NIC: Bdf = bdf(0, 3, 0);
const USB: Bdf = bdf(0, 4, 0);

/// The pci PD's service over a fake bus, as a driver on `channel` sees it.
struct Local<'s> {
    server: &'s mut Server<FakeConfig>,
    channel: u8,
    events: Vec<Event>,
}

impl Transport for Local<'_> {
    fn call(&mut self, label: u64, mr: [u64; MRS]) -> (u64, [u64; MRS]) {
        let (status, out, ev) = self.server.handle(self.channel, label, &mr);
        self.events.extend(ev);
        (status as u64, out)
    }
}

fn server(space: FakeConfig) -> Server<FakeConfig> {
    let drivers = [
        PciClient {
            channel: 3,
            bdf: NIC,
            bars: [None; 6],
            pd: "rtl8139",
        },
        PciClient {
            channel: 4,
            bdf: USB,
            bars: [None; 6],
            pd: "ohci",
        },
        PciClient {
            channel: 5,
            bdf: bdf(0, 9, 0),
            bars: [None; 6],
            pd: "ghost",
        },
    ];
    Server::new(space, drivers, |_| {})
}

fn nic(s: &mut Server<FakeConfig>) -> Device<Local<'_>> {
    Device::with(
        Local {
            server: s,
            channel: 3,
            events: vec![],
        },
        NIC,
    )
    .unwrap()
}

fn ioapic(pin: u8, level: bool) -> Irq {
    Irq {
        id: 1,
        source: IrqSource::Ioapic {
            ioapic: 0,
            pin,
            level,
            active_low: true,
            vector: 11,
        },
    }
}

#[test]
fn open_reads_identity_bars_and_interrupt() {
    let mut s = server(FakeConfig::qemu_pc());
    let dev = nic(&mut s);
    assert_eq!((dev.info().vendor, dev.info().device), (0x10ec, 0x8139));
    assert_eq!(
        dev.bar(0),
        Some(Bar::Io {
            port: 0xc000,
            size: 0x100
        })
    );
    assert!(matches!(
        dev.bar(1),
        Some(Bar::Mem {
            addr: 0xfebf_1000,
            size: 0x100,
            ..
        })
    ));
    assert_eq!(dev.bar(6), None);
    assert_eq!(
        dev.interrupt(),
        Interrupt {
            line: 11,
            pin: Some(1)
        }
    );
}

#[test]
fn an_absent_device_is_an_error_that_names_it() {
    let mut s = server(FakeConfig::qemu_pc());
    let r = Device::with(
        Local {
            server: &mut s,
            channel: 5,
            events: vec![],
        },
        bdf(0, 9, 0),
    );
    let e = r.err().unwrap();
    assert_eq!(e, PciError::Absent { bdf: bdf(0, 9, 0) });
    assert_eq!(e.to_string(), "no PCI device at 00:09.0");
}

#[test]
fn bus_mastering_is_enabled_and_another_function_refused() {
    let mut s = server(FakeConfig::qemu_pc());
    let mut dev = nic(&mut s);
    let cmd = dev
        .enable(Decode {
            io: false,
            memory: true,
            bus_master: true,
        })
        .unwrap();
    assert_eq!(cmd & 0b110, 0b110);
    let e = dev.read_other(USB, 0).unwrap_err();
    assert_eq!(
        e,
        PciError::Refused {
            bdf: USB,
            status: Status::NotYours
        }
    );
    let events = &dev.transport.events;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].to_string(),
        "refused rtl8139's access to 00:04.0: it owns 00:03.0 only"
    );
    let e = dev.write_config32(0x10, 0).unwrap_err();
    assert_eq!(
        e,
        PciError::Refused {
            bdf: NIC,
            status: Status::Forbidden
        }
    );
}

#[test]
fn resources_that_match_the_device_pass() {
    let mut s = server(FakeConfig::qemu_pc());
    let dev = nic(&mut s);
    let regs = DeviceRegion {
        vaddr: 0x1000_0000,
        size: 0x1000,
        paddr: 0xfebf_1000,
    };
    assert_eq!(dev.check_mmio(1, &regs), Ok(0));
    let page = DeviceRegion {
        vaddr: 0x1000_0000,
        size: 0x2000,
        paddr: 0xfebf_0000,
    };
    assert_eq!(dev.check_mmio(1, &page), Ok(0x1000));
    assert_eq!(
        dev.check_ioports(
            0,
            &IoPorts {
                id: 0,
                base: 0xc000,
                size: 0x100
            }
        ),
        Ok(())
    );
    assert_eq!(dev.check_irq(&ioapic(11, true)), Ok(()));
}

#[test]
fn mismatches_name_what_system_xml_should_say() {
    let mut s = server(FakeConfig::qemu_pc());
    let dev = nic(&mut s);
    let wrong = DeviceRegion {
        vaddr: 0x1000_0000,
        size: 0x1000,
        paddr: 0xfebf_2000,
    };
    assert_eq!(
        dev.check_mmio(1, &wrong).unwrap_err().to_string(),
        "PCI 00:03.0 BAR1 is memory at 0xfebf1000, 0x100 bytes, which the device region at paddr 0xfebf2000 (0x1000 bytes) does not cover; expected <memory_region phys_addr=\"0xfebf1000\" size=\"0x1000\" .../> mapped uncached"
    );
    assert_eq!(
        dev.check_mmio(0, &wrong).unwrap_err().to_string(),
        "PCI 00:03.0 BAR0 is I/O ports 0xc000, 0x100 ports, not memory; expected the resource for the BAR of that kind"
    );
    assert_eq!(
        dev.check_ioports(
            0,
            &IoPorts {
                id: 0,
                base: 0xc100,
                size: 0x100
            }
        )
        .unwrap_err()
        .to_string(),
        "PCI 00:03.0 BAR0 is I/O ports 0xc000, 0x100 ports, but the ioport range is 0xc100, 0x100 ports; expected <ioport addr=\"0xc000\" size=\"0x100\" .../>"
    );
    assert_eq!(
        dev.check_irq(&ioapic(10, true)).unwrap_err().to_string(),
        "PCI 00:03.0 raises interrupt line 11 (INTA), but the irq is IOAPIC pin 10, level-triggered; expected <irq pin=\"11\" trigger=\"level\" .../> (PCI INTx is level-triggered)"
    );
    assert!(
        dev.check_irq(&ioapic(11, false)).is_err(),
        "edge-triggered INTx"
    );
}

#[test]
fn garbage_from_the_pci_pd_is_an_error() {
    struct Liar;
    impl Transport for Liar {
        fn call(&mut self, label: u64, _: [u64; MRS]) -> (u64, [u64; MRS]) {
            if label == 4 {
                (0, [9, 0, 0, 0])
            } else {
                (0, [0; MRS])
            }
        }
    }
    assert!(matches!(
        Device::with(Liar, NIC).err(),
        Some(PciError::Garbage { .. })
    ));
    struct Odd;
    impl Transport for Odd {
        fn call(&mut self, _: u64, _: [u64; MRS]) -> (u64, [u64; MRS]) {
            (77, [0; MRS])
        }
    }
    assert_eq!(
        Device::with(Odd, NIC).err(),
        Some(PciError::Garbage {
            bdf: NIC,
            label: 77
        })
    );
}

mod msix {
    use hwio::Bus;
    use hwio::fake::FakeBus;

    use super::*;

    /// The fake NIC with an MSI-X capability at 0x40: three entries, the
    /// table at `table` (offset | BIR) in BAR1 (256 bytes at 0xfebf_1000).
    fn with_msix(table: u32) -> FakeConfig {
        let mut space = FakeConfig::qemu_pc();
        space.poke(NIC, 0x06, &[1 << 4]);
        space.poke(NIC, 0x34, &[0x40]);
        space.poke(NIC, 0x40, &[CAP_MSIX, 0, 2, 0]);
        space.poke(NIC, 0x44, &table.to_le_bytes());
        space
    }

    const REGS: DeviceRegion = DeviceRegion {
        vaddr: 0x1000_0000,
        size: 0x1000,
        paddr: 0xfebf_1000,
    };

    fn msi(bdf: Bdf, vector: u8) -> Irq {
        Irq {
            id: 0,
            source: IrqSource::Msi {
                bdf,
                handle: 0,
                vector,
            },
        }
    }

    #[test]
    fn the_entry_is_aimed_at_the_sel4_vector_and_msix_enabled() {
        let mut s = server(with_msix(0x80 | 1));
        let mut dev = nic(&mut s);
        let m = dev.msix().unwrap();
        assert_eq!(
            m,
            Msix {
                at: 0x40,
                entries: 3,
                bar: 1,
                offset: 0x80
            }
        );
        let table = FakeBus::new("msix", 0x1000);
        dev.enable_msix(&m, &REGS, table.clone(), 1, &msi(NIC, 42))
            .unwrap();
        let mut t = table.clone();
        // Entry 1 (at 0x90): the local APIC's window, IDT vector 0x30 + 42,
        // unmasked; entries 0 and 2 masked.
        assert_eq!(
            (
                t.read32(0x90),
                t.read32(0x94),
                t.read32(0x98),
                t.read32(0x9c)
            ),
            (0xfee0_0000, 0, 0x30 + 42, 0)
        );
        assert_eq!((t.read32(0x8c), t.read32(0xac)), (1, 1));
        // Enabled, the function no longer masked.
        assert_eq!(dev.read_config16(0x42).unwrap(), 0x8002);
    }

    #[test]
    fn an_ioapic_line_or_another_functions_msi_is_refused() {
        let mut s = server(with_msix(0x80 | 1));
        let mut dev = nic(&mut s);
        let m = dev.msix().unwrap();
        let table = FakeBus::new("msix", 0x1000);
        let line = Irq {
            id: 0,
            source: IrqSource::Ioapic {
                ioapic: 0,
                pin: 11,
                level: true,
                active_low: true,
                vector: 40,
            },
        };
        for irq in [line, msi(USB, 42)] {
            let e = dev.enable_msix(&m, &REGS, table.clone(), 0, &irq);
            assert_eq!(e, Err(MsixError::NotMsi { given: irq.source }));
        }
        // Nothing was enabled.
        assert_eq!(dev.read_config16(0x42).unwrap(), 0x0002);
    }

    #[test]
    fn a_table_past_its_bar_or_outside_the_region_is_refused() {
        let mut s = server(with_msix(0xf0 | 1));
        let mut dev = nic(&mut s);
        let m = dev.msix().unwrap();
        let table = FakeBus::new("msix", 0x1000);
        assert!(matches!(
            dev.enable_msix(&m, &REGS, table.clone(), 0, &msi(NIC, 42)),
            Err(MsixError::OutsideBar {
                bar: 1,
                offset: 0xf0,
                entries: 3,
                bar_size: 0x100
            })
        ));
        let elsewhere = DeviceRegion {
            paddr: 0xfe00_0000,
            ..REGS
        };
        assert!(matches!(
            dev.enable_msix(&m, &elsewhere, table, 0, &msi(NIC, 42)),
            Err(MsixError::Region(_))
        ));
        assert_eq!(
            dev.enable_msix(&m, &REGS, FakeBus::new("msix", 0x1000), 3, &msi(NIC, 42)),
            Err(MsixError::NoEntry {
                entry: 3,
                entries: 3
            })
        );
    }

    #[test]
    fn an_msi_is_the_functions_irq_only_if_it_has_msix() {
        let mut s = server(with_msix(0x80 | 1));
        let dev = nic(&mut s);
        assert_eq!(dev.check_irq(&msi(NIC, 42)), Ok(()));
        assert!(dev.check_irq(&msi(USB, 42)).is_err());
        // QEMU's RTL8139 has no MSI-X: an MSI would never come.
        let mut plain = server(FakeConfig::qemu_pc());
        let e = nic(&mut plain).check_irq(&msi(NIC, 42)).unwrap_err();
        assert!(
            e.to_string().contains(
                "an MSI, and the function has no MSI-X capability; expected <irq pin=\"11\""
            ),
            "{e}"
        );
    }

    #[test]
    fn a_looping_list_or_none_is_said() {
        let mut space = with_msix(0x80 | 1);
        // The capability at 0x40 is something else and points at itself.
        space.poke(NIC, 0x40, &[0x05, 0x40]);
        let mut s = server(space);
        assert_eq!(nic(&mut s).msix(), Err(MsixError::BadList { at: 0x40 }));
        let mut plain = server(FakeConfig::qemu_pc());
        assert_eq!(nic(&mut plain).msix(), Err(MsixError::Absent));
        // A capability too close to the end of the space to hold its table
        // and PBA registers.
        let mut late = with_msix(0x80 | 1);
        late.poke(NIC, 0x34, &[0xf8]);
        late.poke(NIC, 0xf8, &[CAP_MSIX, 0]);
        let mut s = server(late);
        assert_eq!(nic(&mut s).msix(), Err(MsixError::BadList { at: 0xf8 }));
    }
}
