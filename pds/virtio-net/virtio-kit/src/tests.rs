//! The crate's PCI transport over pci-client and pci-core's fake bus, the
//! HAL's windows, and the used-ring guard against garbage.

use core::cell::{Cell, RefCell};

use dma::AddressWidth;
use dma::host::HostDma;
use pci_client::Device;
use pci_core::fake::{FakeConfig, FakeFn, bdf};
use pci_core::server::Server;
use pci_core::wire::MRS;
use pd_config::{Bdf, DeviceRegion, Irq, IrqSource, PciClient};
use virtio_drivers::transport::{DeviceType, Transport};

use crate::hal::{HalSlot, HalState, Window};
use crate::pci::{self, CapError, DeviceError};
use crate::used::{Fault, Guard, Recorder};

/// A HAL slot of its own for a test: a slot's windows are installed once.
macro_rules! hal_slot {
    ($name:ident) => {
        struct $name;
        impl HalSlot for $name {
            fn state() -> &'static HalState {
                static S: HalState = HalState::new();
                &S
            }
        }
    };
}

const NET: Bdf = bdf(0, 4, 0);
/// BAR4 of QEMU's virtio-net-pci on the pc machine: 16 KiB, prefetchable,
/// the four structures a page each.
const BAR4: u64 = 0xfe00_0000;

struct Local<'s> {
    server: &'s mut Server<FakeConfig>,
}

impl pci_client::Transport for Local<'_> {
    fn call(&mut self, label: u64, mr: [u64; MRS]) -> (u64, [u64; MRS]) {
        let (status, out, _) = self.server.handle(7, label, &mr);
        (status as u64, out)
    }
}

/// A virtio-net function as QEMU 7.2 lays it out: legacy I/O BAR0, MSI-X
/// BAR1, BAR4 with common (0x0), ISR (0x1000), device (0x2000) and notify
/// (0x3000, multiplier 4) structures; vendor capabilities from 0x90.
fn virtio_net() -> FakeConfig {
    let mut c = FakeConfig::new();
    let none = (0, 0);
    c.add(
        NET,
        FakeFn {
            vendor: 0x1af4,
            device: 0x1000,
            class: [2, 0, 0],
            revision: 0,
            bars: [
                (0xc181, 0xffff_ffe1),
                (0xfebd_2000, 0xffff_f000),
                none,
                none,
                // QEMU's is 64-bit; pci-core's fake keeps flag bits in a
                // BAR's upper half, so it is 32-bit here.
                ((BAR4 as u32) | 0b1000, 0xffff_c008),
                none,
            ],
            pin: 1,
            line: 11,
            caps: vec![
                (0xa8, 0x11, 0x90),
                (0x90, 0x09, 0x7c),
                (0x7c, 0x09, 0x68),
                (0x68, 0x09, 0x50),
                (0x50, 0x09, 0x40),
                (0x40, 0x09, 0),
            ],
        },
    );
    let cap = |c: &mut FakeConfig, at: usize, len: u8, ty: u8, bar: u8, off: u32, size: u32| {
        c.poke(NET, at + 2, &[len, ty, bar]);
        c.poke(NET, at + 8, &off.to_le_bytes());
        c.poke(NET, at + 12, &size.to_le_bytes());
    };
    cap(&mut c, 0x90, 0x10, 1, 4, 0x0, 0x1000);
    cap(&mut c, 0x7c, 0x10, 3, 4, 0x1000, 0x1000);
    cap(&mut c, 0x68, 0x10, 4, 4, 0x2000, 0x1000);
    cap(&mut c, 0x50, 0x14, 2, 4, 0x3000, 0x1000);
    c.poke(NET, 0x50 + 16, &4u32.to_le_bytes());
    // A PCI config access capability (cfg_type 5): skipped.
    cap(&mut c, 0x40, 0x14, 5, 0, 0, 0);
    c
}

fn server(space: FakeConfig) -> Server<FakeConfig> {
    let drivers = [PciClient {
        channel: 7,
        bdf: NET,
        bars: [None; 6],
        pd: "virtio-net",
    }];
    Server::new(space, drivers, |_| {})
}

fn region(paddr: u64, size: usize) -> DeviceRegion {
    DeviceRegion {
        vaddr: 0x400_0000,
        paddr,
        size,
    }
}

#[test]
fn capabilities_are_found_and_checked_against_the_region() {
    let mut s = server(virtio_net());
    let mut dev = Device::with(Local { server: &mut s }, NET).unwrap();
    let found = pci::check_capabilities(&mut dev, &region(BAR4, 0x4000)).unwrap();
    let kinds: Vec<_> = found.iter().map(|s| (s.cfg_type, s.offset)).collect();
    assert_eq!(kinds, [(1, 0), (3, 0x1000), (4, 0x2000), (2, 0x3000)]);

    let e = pci::check_capabilities(&mut dev, &region(BAR4, 0x2000)).unwrap_err();
    assert!(matches!(e, CapError::OutsideRegion { bar: 4, .. }));
    assert!(
        e.to_string()
            .contains("expected <memory_region phys_addr=\"0xfe000000\" size=\"0x4000\""),
        "{e}"
    );
}

#[test]
fn a_structure_whose_offset_and_length_wrap_is_refused() {
    // offset + length wraps in 32 bits: the crate's own check would pass.
    let mut c = virtio_net();
    c.poke(NET, 0x90 + 8, &0xffff_f000u32.to_le_bytes());
    c.poke(NET, 0x90 + 12, &0x2000u32.to_le_bytes());
    let mut s = server(c);
    let mut dev = Device::with(Local { server: &mut s }, NET).unwrap();
    let e = pci::check_capabilities(&mut dev, &region(BAR4, 0x4000)).unwrap_err();
    assert!(matches!(e, CapError::OutsideBar { .. }), "{e:?}");
}

#[test]
fn a_looping_capability_list_is_refused() {
    let mut c = virtio_net();
    // 0x40 points back at 0xa8: the walk must end.
    c.poke(NET, 0x41, &[0xa8]);
    let mut s = server(c);
    let mut dev = Device::with(Local { server: &mut s }, NET).unwrap();
    let e = pci::check_capabilities(&mut dev, &region(BAR4, 0x4000)).unwrap_err();
    assert!(matches!(e, CapError::BadList { .. }), "{e:?}");
}

#[test]
fn a_legacy_only_device_is_named() {
    let mut c = virtio_net();
    // The list starts at the MSI-X capability, which ends it.
    c.poke(NET, 0x34, &[0xa8]);
    c.poke(NET, 0xa9, &[0]);
    let mut s = server(c);
    let mut dev = Device::with(Local { server: &mut s }, NET).unwrap();
    let e = pci::check_capabilities(&mut dev, &region(BAR4, 0x4000)).unwrap_err();
    assert_eq!(e, CapError::Missing { cfg_type: 1 });
}

fn ioapic(pin: u8) -> Irq {
    Irq {
        id: 1,
        source: IrqSource::Ioapic {
            ioapic: 0,
            pin,
            level: true,
            active_low: true,
            vector: 11,
        },
    }
}

#[test]
fn a_function_is_taken_only_as_the_virtio_type_its_ids_say() {
    let mut s = server(virtio_net());
    let dev = Device::with(Local { server: &mut s }, NET).unwrap();
    assert_eq!(
        pci::check_device(&dev, DeviceType::Network, &ioapic(11)),
        Ok(()),
        "transitional virtio-net (1af4:1000)"
    );
    let e = pci::check_device(&dev, DeviceType::Block, &ioapic(11)).unwrap_err();
    assert!(matches!(e, DeviceError::NotA { bdf: NET, .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("00:04.0 is ") && text.ends_with(", not a virtio-blk device"),
        "{text}"
    );
    let e = pci::check_device(&dev, DeviceType::Network, &ioapic(10)).unwrap_err();
    assert!(
        matches!(e, DeviceError::Irq(_)),
        "another IOAPIC pin: {e:?}"
    );

    // Modern ids are 0x1040 plus the type; another vendor's are nothing.
    for (vendor, device, block) in [
        (0x1af4u16, 0x1042u16, true),
        (0x1af4, 0x1041, false),
        (0x10ec, 0x1001, false),
    ] {
        let mut c = virtio_net();
        c.poke(NET, 0, &vendor.to_le_bytes());
        c.poke(NET, 2, &device.to_le_bytes());
        let mut s = server(c);
        let dev = Device::with(Local { server: &mut s }, NET).unwrap();
        let taken = pci::check_device(&dev, DeviceType::Block, &ioapic(11)).is_ok();
        assert_eq!(taken, block, "{vendor:04x}:{device:04x} as virtio-blk");
    }
}

hal_slot!(Slot1);

/// Leaked host memory standing in for BAR4 (the transport only maps it).
fn fake_bar() -> usize {
    let page = Box::leak(Box::new([0u32; 0x1000]));
    page.as_mut_ptr() as usize
}

#[test]
fn the_crates_transport_opens_through_pci_client_without_writing_a_bar() {
    let bar = fake_bar();
    let pool = HostDma::new(0x4000, 0x1234_0000);
    let mut r = pool.region("pool", AddressWidth::BITS64).unwrap();
    let pool = Window::of(&r.alloc("rings", 0x4000, 0x1000).unwrap());
    Slot1::state()
        .install(
            pool,
            &[],
            Window {
                name: "regs",
                vaddr: bar,
                paddr: BAR4,
                len: 0x4000,
            },
        )
        .unwrap();
    let mut s = server(virtio_net());
    {
        let dev = RefCell::new(Device::with(Local { server: &mut s }, NET).unwrap());
        let refused = Cell::new(0);
        let (t, common) =
            pci::transport::<Slot1, _>(&dev, &region(BAR4, 0x4000), &refused).unwrap();
        assert_eq!((common.bar, common.offset), (4, 0));
        assert_eq!(t.device_type(), DeviceType::Network);
        // The crate sized BAR4 (all ones written, the mask read, the value
        // restored) and found every structure inside its 16 KiB; a BAR
        // write reaching the pci PD would have been refused and counted.
        assert_eq!(
            refused.get(),
            0,
            "an access reached the pci PD and was refused"
        );
        // Dropping the transport (at the end of this block) resets the
        // device: status 0 written to the common structure, which reads
        // back 0 from the fake page.
    }
    assert_eq!(s.clients()[0].refused, 0);
}

#[test]
fn windows_translate_both_ways_and_refuse_what_straddles() {
    let w = Window {
        name: "frames",
        vaddr: 0x420_0000,
        paddr: 0x7_0000_0000,
        len: 0x4_0000,
    };
    assert_eq!(w.paddr_of(0x420_1000, 0x800), Some(0x7_0000_1000));
    assert_eq!(w.paddr_of(0x423_f800, 0x801), None);
    assert_eq!(w.paddr_of(0x41f_ffff, 2), None);
    // The last bytes exactly; past the end; lengths that would wrap.
    assert_eq!(w.paddr_of(0x423_f800, 0x800), Some(0x7_0003_f800));
    assert_eq!(w.paddr_of(0x424_0000, 1), None);
    assert_eq!(w.paddr_of(usize::MAX, 1), None);
    assert_eq!(w.paddr_of(0x420_1000, usize::MAX), None);
    assert_eq!(w.vaddr_of(0x7_0003_f000, 0x1000), Some(0x423_f000));
    assert_eq!(w.vaddr_of(u64::MAX, 2), None);
}

hal_slot!(Slot2);

#[test]
fn the_pool_hands_out_zeroed_pages_once_and_then_refuses() {
    use virtio_drivers::{BufferDirection, Hal};
    type H = crate::hal::KitHal<Slot2>;
    let host = HostDma::new(0x2000, 0x9000_0000);
    let mut r = host.region("pool", AddressWidth::BITS64).unwrap();
    let mut buf = r.alloc("rings", 0x2000, 0x1000).unwrap();
    buf.write(0, 0xdead_beefu32);
    let pool = Window::of(&buf);
    Slot2::state().install(pool, &[], pool).unwrap();
    assert!(Slot2::state().install(pool, &[], pool).is_err());
    let (p1, v1) = H::dma_alloc(1, BufferDirection::Both);
    assert_eq!(p1, 0x9000_0000);
    // SAFETY: the page was just handed out, inside the host block.
    assert_eq!(unsafe { v1.as_ptr().cast::<u32>().read() }, 0);
    let (p2, _) = H::dma_alloc(1, BufferDirection::Both);
    assert_eq!(p2, 0x9000_1000);
    let (p3, _) = H::dma_alloc(1, BufferDirection::Both);
    assert_eq!(p3, 0, "exhausted: the crate turns 0 into Error::DmaError");
}

/// A used ring of 8 entries in host memory, the driver area beside it.
struct Rings {
    host: HostDma,
    rec: Recorder<Nothing>,
}

hal_slot!(Slot3);

hal_slot!(Slot4);

fn rings<S: HalSlot>() -> (Rings, Guard) {
    let host = HostDma::new(0x2000, 0x5000_0000);
    let mut r = host.region("rings", AddressWidth::BITS64).unwrap();
    let w = Window::of(&r.alloc("rings", 0x2000, 0x1000).unwrap());
    S::state().install(w, &[], w).unwrap();
    let mut rec = Recorder::new(Nothing);
    rec.queue_set(0, 8, 0x5000_0000, 0x5000_0800, 0x5000_1000);
    let g = Guard::new(&rec, 0, S::state()).unwrap();
    (Rings { host, rec }, g)
}

impl Rings {
    fn used(&self, idx: u16, entries: &[(u32, u32)], at: u16) {
        for (i, (id, len)) in entries.iter().enumerate() {
            let slot = (usize::from(at) + i) % 8;
            let p = 0x5000_1000 + 4 + 8 * slot as u64;
            self.host.device_write_u32(p, *id).unwrap();
            self.host.device_write_u32(p + 4, *len).unwrap();
        }
        self.host
            .device_write(0x5000_1002, &idx.to_le_bytes())
            .unwrap();
    }
}

#[test]
fn the_guard_takes_entries_of_chains_in_flight_only() {
    let (r, mut g) = rings::<Slot3>();
    let cap = |id: u16| (id == 2 || id == 4).then_some(1536);
    assert_eq!(g.next(2, cap), Ok(None));
    r.used(1, &[(2, 100)], 0);
    let u = g.next(2, cap).unwrap().unwrap();
    assert_eq!((u.id, u.len, u.overlong), (2, 100, false));
    g.taken();
    // Truncated to 16 bits, 0x10004 would pass for 4.
    r.used(2, &[(0x1_0004, 60)], 1);
    assert_eq!(g.next(1, cap), Err(Fault::BadId { id: 0x1_0004 }));
    r.used(2, &[(6, 60)], 1);
    assert_eq!(g.next(1, cap), Err(Fault::NotInFlight { id: 6 }));
    r.used(2, &[(4, 9000)], 1);
    let u = g.next(1, cap).unwrap().unwrap();
    assert_eq!((u.id, u.len, u.overlong), (4, 1536, true));
    // The index jumps far ahead of the one chain in flight.
    r.used(500, &[], 1);
    assert_eq!(
        g.next(1, cap),
        Err(Fault::RanAhead {
            pending: 499,
            in_flight: 1
        })
    );
    let _ = &r.rec;
}

#[test]
fn need_notify_is_vring_need_event_across_the_wrap() {
    let (r, g) = rings::<Slot4>();
    let event = |e: u16| {
        r.host
            .device_write(0x5000_1000 + 4 + 8 * 8, &e.to_le_bytes())
            .unwrap()
    };
    event(65534);
    // A batch from 65534 to 2 crosses the device's event: notify. The
    // crate's `2 >= 65535` says no.
    assert!(g.need_notify(true, 65534, 2));
    event(10);
    assert!(!g.need_notify(true, 20, 25), "the device has not caught up");
    assert!(g.need_notify(true, 10, 11));
    assert!(!g.need_notify(true, 7, 7));
    // Without EVENT_IDX: the NO_NOTIFY flag.
    r.host
        .device_write(0x5000_1000, &1u16.to_le_bytes())
        .unwrap();
    assert!(!g.need_notify(false, 1, 2));
    r.host
        .device_write(0x5000_1000, &0u16.to_le_bytes())
        .unwrap();
    assert!(g.need_notify(false, 1, 2));
}

/// A transport that is no device, for the recorder alone.
struct Nothing;

impl Transport for Nothing {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        0
    }
    fn write_driver_features(&mut self, _: u64) {}
    fn max_queue_size(&mut self, _: u16) -> u32 {
        8
    }
    fn notify(&mut self, _: u16) {}
    fn get_status(&self) -> virtio_drivers::transport::DeviceStatus {
        virtio_drivers::transport::DeviceStatus::empty()
    }
    fn set_status(&mut self, _: virtio_drivers::transport::DeviceStatus) {}
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _: u16, _: u32, _: u64, _: u64, _: u64) {}
    fn queue_unset(&mut self, _: u16) {}
    fn queue_used(&mut self, _: u16) -> bool {
        false
    }
    fn ack_interrupt(&mut self) -> virtio_drivers::transport::InterruptStatus {
        virtio_drivers::transport::InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<V: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        _: usize,
    ) -> virtio_drivers::Result<V> {
        Err(virtio_drivers::Error::ConfigSpaceMissing)
    }
    fn write_config_space<V: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        _: usize,
        _: V,
    ) -> virtio_drivers::Result<()> {
        Err(virtio_drivers::Error::ConfigSpaceMissing)
    }
}

hal_slot!(Slot5);

#[test]
fn set_up_installs_the_windows_opens_the_transport_and_then_enables_the_device() {
    let bar = fake_bar();
    let host = HostDma::new(0x8000, 0x2000_0000);
    let frames = HostDma::new(0x4000, 0x3000_0000);
    let dma = host.region("dma", AddressWidth::BITS64).unwrap();
    let data = frames.region("frames", AddressWidth::BITS64).unwrap();
    let regs = DeviceRegion {
        vaddr: bar,
        paddr: BAR4,
        size: 0x4000,
    };
    let line = ioapic(11);
    let intx = pci::Resources {
        regs: &regs,
        irq: &line,
        msix: None,
    };
    let mut s = server(virtio_net());
    {
        let dev = RefCell::new(Device::with(Local { server: &mut s }, NET).unwrap());
        let refused = Cell::new(0);
        let parts =
            pci::set_up::<Slot5, _>(&dev, dma, 0x4000, 0x100, data, intx, &refused).unwrap();
        assert!(!parts.transport.is_msix());
        assert_eq!(parts.transport.device_type(), DeviceType::Network);
        // The headers follow the rings; the data area is all of its region.
        assert_eq!(parts.hdrs.paddr(), 0x2000_4000);
        assert_eq!(
            (parts.data.paddr(), parts.data.len()),
            (0x3000_0000, 0x4000)
        );
        let hal = Slot5::state();
        assert_eq!(
            hal.paddr_of(parts.data.vaddr() + 0x3ff8, 8),
            Some(0x3000_3ff8)
        );
        assert_eq!(hal.paddr_of(parts.hdrs.vaddr(), 0x100), Some(0x2000_4000));
        // Memory decoding and bus mastering are on (bits 1 and 2).
        let command = dev.borrow_mut().enable(Default::default()).unwrap();
        assert_eq!(command & 0b110, 0b110);
        assert_eq!(refused.get(), 0);
    }

    // A pool the DMA region cannot hold is refused before the device is
    // touched.
    let small = HostDma::new(0x2000, 0x2000_0000);
    let dma = small.region("dma", AddressWidth::BITS64).unwrap();
    let frames = HostDma::new(0x1000, 0x3000_0000);
    let data = frames.region("frames", AddressWidth::BITS64).unwrap();
    let mut s = server(virtio_net());
    let dev = RefCell::new(Device::with(Local { server: &mut s }, NET).unwrap());
    let refused = Cell::new(0);
    let e = pci::set_up::<Slot5, _>(&dev, dma, 0x4000, 0x100, data, intx, &refused)
        .err()
        .unwrap();
    assert!(matches!(e, pci::SetUpError::Dma(_)), "{e}");
    let command = dev.borrow_mut().enable(Default::default()).unwrap();
    assert_eq!(command & 0b110, 0, "the device was enabled");
}

hal_slot!(Slot6);

hal_slot!(Slot7);

/// [`pci::set_up`] with fresh DMA memory (leaked, as the fake BARs are).
fn msi_set_up<S: HalSlot>(
    dev: &RefCell<Device<Local<'_>>>,
    res: pci::Resources<'_>,
    refused: &Cell<u32>,
) -> Result<pci::Parts, pci::SetUpError> {
    let host = Box::leak(Box::new(HostDma::new(0x8000, 0x2000_0000)));
    let frames = Box::leak(Box::new(HostDma::new(0x4000, 0x3000_0000)));
    pci::set_up::<S, _>(
        dev,
        host.region("dma", AddressWidth::BITS64).unwrap(),
        0x4000,
        0x100,
        frames.region("frames", AddressWidth::BITS64).unwrap(),
        res,
        refused,
    )
}

#[test]
fn set_up_on_an_msi_aims_the_table_and_puts_every_queue_on_its_vector() {
    use virtio_drivers::transport::InterruptStatus;

    let (bar, table) = (fake_bar(), fake_bar());
    let mut config = virtio_net();
    // QEMU's MSI-X capability at 0xa8: three entries, the table at BAR1's
    // start.
    config.poke(NET, 0xaa, &[2, 0]);
    config.poke(NET, 0xac, &1u32.to_le_bytes());
    let regs = DeviceRegion {
        vaddr: bar,
        paddr: BAR4,
        size: 0x4000,
    };
    let msix = DeviceRegion {
        vaddr: table,
        paddr: 0xfebd_2000,
        size: 0x1000,
    };
    let msi = Irq {
        id: 1,
        source: IrqSource::Msi {
            bdf: NET,
            handle: 0,
            vector: 42,
        },
    };
    let mut s = server(config);
    let dev = RefCell::new(Device::with(Local { server: &mut s }, NET).unwrap());
    let refused = Cell::new(0);
    let on_msi = |msix| pci::Resources {
        regs: &regs,
        irq: &msi,
        msix,
    };

    // An MSI with no region over the table is said, naming the BAR.
    let e = msi_set_up::<Slot7>(&dev, on_msi(None), &refused)
        .err()
        .unwrap();
    assert!(matches!(e, pci::SetUpError::NoTable { bar: 1 }), "{e}");

    let mut parts = msi_set_up::<Slot6>(&dev, on_msi(Some(&msix)), &refused).unwrap();
    assert!(parts.transport.is_msix());
    let word = |base: usize, at: usize| {
        // SAFETY: inside a leaked fake page of 16 KiB.
        unsafe { core::ptr::read_volatile((base + at) as *const u32) }
    };
    // Entry 0 aimed at IDT vector 0x30 + 42, unmasked; 1 and 2 masked.
    assert_eq!(
        (
            word(table, 0),
            word(table, 4),
            word(table, 8),
            word(table, 12)
        ),
        (0xfee0_0000, 0, 0x30 + 42, 0)
    );
    assert_eq!((word(table, 0x1c), word(table, 0x2c)), (1, 1));
    assert_eq!(dev.borrow_mut().read_config16(0xaa).unwrap(), 0x8002);

    // Each queue set up names entry 0, and so does the configuration
    // change; the fake page reads back what was written.
    // SAFETY: the fake common structure, as above.
    unsafe { core::ptr::write_volatile((bar + 0x1a) as *mut u16, 0xffff) };
    parts.transport.queue_set(1, 256, 0x1000, 0x2000, 0x3000);
    let half = |at: usize| word(bar, at & !3) >> (8 * (at & 3)) & 0xffff;
    assert_eq!((half(0x10), half(0x16), half(0x1a)), (0, 1, 0));
    assert_eq!(parts.transport.vectors_refused(), 0);
    // An interrupt is the queues' even with the ISR's queue bit clear.
    assert!(parts.transport.ack_interrupt() == InterruptStatus::QUEUE_INTERRUPT);
    assert_eq!(refused.get(), 0);
}
