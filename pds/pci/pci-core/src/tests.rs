use hwio::fake::FakeBus;
use pd_config::{Bdf, PciClient};

use crate::config::{ConfigSpace, Function, Mechanism1};
use crate::fake::{FakeConfig, bdf};
use crate::probe::{self, BadCapabilities, Bar, Capability};
use crate::server::{Event, Server};
use crate::wire::{Call, Request, Status};

const NIC: Bdf = bdf(0, 3, 0);
const USB: Bdf = bdf(0, 4, 0);
const ISA: Bdf = bdf(0, 1, 0);

fn client(channel: u8, at: Bdf, pd: &'static str) -> PciClient {
    PciClient {
        channel,
        bdf: at,
        bars: [None; 6],
        pd,
    }
}

fn server(space: FakeConfig) -> (Server<FakeConfig>, Vec<Event>) {
    let mut events = Vec::new();
    let s = Server::new(
        space,
        [
            client(0, NIC, "rtl8139"),
            client(1, USB, "ohci"),
            client(2, bdf(0, 7, 0), "ghost"),
        ],
        |e| events.push(e),
    );
    (s, events)
}

fn call(
    s: &mut Server<FakeConfig>,
    channel: u8,
    at: Bdf,
    request: Request,
) -> (Status, [u64; 4], Option<Event>) {
    let (label, mr) = Call { bdf: at, request }.encode();
    s.handle(channel, label, &mr)
}

#[test]
fn mechanism1_addresses_the_function_and_register() {
    let ports = FakeBus::new("pci", 8);
    let mut cs = Mechanism1::new(ports.clone());
    cs.read8(bdf(0, 3, 0), 0x3d);
    let log = ports.take_log();
    assert_eq!(log[0].offset, 0);
    assert_eq!(
        log[0].value, 0x8000_183c,
        "enable | dev 3 << 11 | register 0x3c"
    );
    assert_eq!(log[1].offset, 4 + 1, "the byte at 0x3d is data port 0xcfd");
}

#[test]
fn bars_are_decoded_and_sized_with_decoding_off() {
    let mut cs = FakeConfig::qemu_pc();
    let mut f = Function::new(&mut cs, NIC);
    let mut bad = Vec::new();
    let bars = probe::bars(&mut f, &mut |b| bad.push(b));
    assert_eq!(
        bars[0],
        Some(Bar::Io {
            port: 0xc000,
            size: 0x100
        })
    );
    assert_eq!(
        bars[1],
        Some(Bar::Mem {
            addr: 0xfebf_1000,
            size: 0x100,
            prefetchable: false,
            is64: false
        })
    );
    assert_eq!(bars[2..], [None; 4]);
    assert!(bad.is_empty());
    // Every BAR is back as it was.
    let bar1 = cs.read32(NIC, 0x14);
    assert_eq!(bar1, 0xfebf_1000);
}

#[test]
fn a_bar_no_decoder_could_have_is_reported_not_used() {
    let mut cs = FakeConfig::qemu_pc();
    // Size mask with a hole: not a power of two.
    cs.set_bar_mask(NIC, 1, 0xfff0_ff00);
    let mut f = Function::new(&mut cs, NIC);
    let mut bad = Vec::new();
    let bars = probe::bars(&mut f, &mut |b| bad.push(b));
    assert_eq!(bars[1], None);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].index, 1);
}

#[test]
fn capabilities_are_followed_and_loops_cut() {
    let mut cs = FakeConfig::qemu_pc();
    let (caps, bad) = probe::capabilities(&mut Function::new(&mut cs, USB));
    assert_eq!(
        caps.as_slice(),
        [
            Capability {
                id: 1,
                offset: 0x40
            },
            Capability {
                id: 5,
                offset: 0x50
            }
        ]
    );
    assert_eq!(bad, None);
    cs.poke(USB, 0x51, &[0x40]); // 0x50 points back to 0x40
    let (caps, bad) = probe::capabilities(&mut Function::new(&mut cs, USB));
    assert_eq!(caps.len(), probe::MAX_CAPABILITIES);
    assert_eq!(bad, Some(BadCapabilities::Loop));
    cs.poke(USB, 0x41, &[0x10]); // into the header
    let (_, bad) = probe::capabilities(&mut Function::new(&mut cs, USB));
    assert_eq!(bad, Some(BadCapabilities::Pointer { at: 0x41, to: 0x10 }));
}

#[test]
fn each_driver_is_served_its_own_function() {
    let (mut s, events) = server(FakeConfig::qemu_pc());
    assert!(matches!(events[0], Event::Found { pd: "rtl8139", .. }));
    assert_eq!(
        events[2],
        Event::Absent {
            pd: "ghost",
            bdf: bdf(0, 7, 0)
        }
    );
    assert_eq!(
        events[2].to_string(),
        "00:07.0: no device there (for ghost)"
    );
    let (st, mr, _) = call(&mut s, 0, NIC, Request::Info);
    assert_eq!(st, Status::Ok);
    let info = crate::wire::decode_info(&mr);
    assert_eq!(
        (info.vendor, info.device, info.revision),
        (0x10ec, 0x8139, 0x20)
    );
    let (st, mr, _) = call(&mut s, 1, USB, Request::Bar { index: 0 });
    assert_eq!(st, Status::Ok);
    assert!(matches!(
        crate::wire::decode_bar(&mr),
        Ok(Some(Bar::Mem {
            addr: 0xfebf_2000,
            ..
        }))
    ));
    let (st, mr, _) = call(&mut s, 0, NIC, Request::Interrupt);
    assert_eq!((st, mr[0]), (Status::Ok, 11 | 1 << 8));
}

#[test]
fn another_drivers_function_is_refused_and_reported() {
    let (mut s, _) = server(FakeConfig::qemu_pc());
    let (st, _, ev) = call(
        &mut s,
        0,
        USB,
        Request::Read {
            offset: 0,
            width: 4,
        },
    );
    assert_eq!(st, Status::NotYours);
    let ev = ev.unwrap();
    assert_eq!(
        ev.to_string(),
        "refused rtl8139's access to 00:04.0: it owns 00:03.0 only"
    );
    // Nor a function nobody owns.
    let (st, _, _) = call(&mut s, 0, ISA, Request::Command { set: 4, clear: 0 });
    assert_eq!(st, Status::NotYours);
    assert_eq!(s.clients()[0].refused, 2);
    assert_eq!(s.clients()[1].refused, 0);
}

#[test]
fn a_driver_with_two_functions_reaches_both_on_its_channel() {
    let mut events = Vec::new();
    let mut s = Server::new(
        FakeConfig::qemu_pc(),
        [client(0, NIC, "both"), client(0, USB, "both")],
        |e| events.push(e),
    );
    assert_eq!(call(&mut s, 0, NIC, Request::Info).0, Status::Ok);
    assert_eq!(call(&mut s, 0, USB, Request::Info).0, Status::Ok);
    let (st, _, ev) = call(&mut s, 0, ISA, Request::Info);
    assert_eq!(st, Status::NotYours);
    assert_eq!(
        ev.unwrap().to_string(),
        "refused both's access to 00:01.0: it owns 00:03.0 and 1 other function(s)"
    );
}

#[test]
fn drivers_change_decoding_and_bus_mastering_and_nothing_else() {
    let (mut s, _) = server(FakeConfig::qemu_pc());
    let (st, mr, _) = call(
        &mut s,
        0,
        NIC,
        Request::Command {
            set: 0b111,
            clear: 0,
        },
    );
    assert_eq!((st, mr[0] & 0b111), (Status::Ok, 0b111));
    // SERR (bit 8) is not a driver's to set.
    let (st, _, ev) = call(
        &mut s,
        0,
        NIC,
        Request::Command {
            set: 1 << 8,
            clear: 0,
        },
    );
    assert_eq!(st, Status::Forbidden);
    assert!(matches!(ev, Some(Event::Forbidden { offset: 4, .. })));
    // A raw command write keeps the bits drivers do not own.
    let (st, _, _) = call(
        &mut s,
        0,
        NIC,
        Request::Write {
            offset: 4,
            width: 2,
            value: 0xffff,
        },
    );
    assert_eq!(st, Status::Ok);
    let (_, mr, _) = call(
        &mut s,
        0,
        NIC,
        Request::Read {
            offset: 4,
            width: 2,
        },
    );
    assert_eq!(mr[0] as u16 & !crate::regs::DRIVER_COMMAND_BITS, 0);
    // BARs, the ROM BAR and the header are off limits.
    for (offset, width) in [(0x10, 4), (0x14, 4), (0x30, 4), (0x00, 2), (0x3c, 1)] {
        let (st, _, ev) = call(
            &mut s,
            0,
            NIC,
            Request::Write {
                offset,
                width,
                value: 0,
            },
        );
        assert_eq!(st, Status::Forbidden, "write at {offset:#x}");
        assert!(
            ev.unwrap()
                .to_string()
                .contains("drivers may not change that register")
        );
    }
    // The device-specific area is the driver's.
    let (st, _, _) = call(
        &mut s,
        1,
        USB,
        Request::Write {
            offset: 0x60,
            width: 4,
            value: 7,
        },
    );
    assert_eq!(st, Status::Ok);
}

#[test]
fn garbage_calls_and_callers_are_refused() {
    let (mut s, _) = server(FakeConfig::qemu_pc());
    let (st, _, ev) = s.handle(0, 99, &[u64::from(NIC.packed()), 0, 0, 0]);
    assert_eq!(st, Status::BadRequest);
    assert!(matches!(
        ev,
        Some(Event::BadRequest {
            pd: "rtl8139",
            label: 99
        })
    ));
    let (st, _, ev) = s.handle(9, 1, &[0; 4]);
    assert_eq!(st, Status::BadRequest);
    assert_eq!(ev, Some(Event::UnknownCaller { channel: 9 }));
    let (st, _, _) = call(&mut s, 2, bdf(0, 7, 0), Request::Info);
    assert_eq!(st, Status::Absent);
}

#[test]
fn memory_bars_are_placed_where_the_system_puts_the_drivers_regions() {
    let mut events = Vec::new();
    let mut nic = client(0, NIC, "rtl8139");
    nic.bars[1] = Some(pd_config::BarPlacement {
        paddr: 0xfebd_1000,
        size: 0x1000,
    });
    // The ISA bridge has no BAR 0; an I/O BAR cannot be placed in memory.
    let mut bad = client(1, USB, "ohci");
    bad.bars[1] = Some(pd_config::BarPlacement {
        paddr: 0xfebd_2000,
        size: 0x1000,
    });
    let mut s = Server::new(FakeConfig::qemu_pc(), [nic, bad], |e| events.push(e));
    assert!(events.iter().any(|e| e.to_string()
        == "00:03.0 BAR1 placed at 0xfebd1000 for rtl8139, where system.xml puts its registers (the firmware had 0xfebf1000)"));
    assert!(events.iter().any(|e| e.to_string()
        == "00:04.0 BAR1 for ohci cannot go at 0xfebd2000 (0x1000 bytes): it is not implemented"));
    let (st, mr, _) = call(&mut s, 0, NIC, Request::Bar { index: 1 });
    assert_eq!(st, Status::Ok);
    assert!(matches!(
        crate::wire::decode_bar(&mr),
        Ok(Some(Bar::Mem {
            addr: 0xfebd_1000,
            ..
        }))
    ));
    // Decoding is as the firmware left it.
    let (_, mr, _) = call(
        &mut s,
        0,
        NIC,
        Request::Read {
            offset: 4,
            width: 2,
        },
    );
    assert_eq!(mr[0] & 2, 0);
}

#[test]
fn the_monitor_quiesces_a_drivers_functions_and_nothing_else() {
    let (mut s, _) = server(FakeConfig::qemu_pc());
    for (channel, at) in [(0, NIC), (1, USB)] {
        let (st, _, _) = call(
            &mut s,
            channel,
            at,
            Request::Command {
                set: 0b110,
                clear: 0,
            },
        );
        assert_eq!(st, Status::Ok);
    }
    let mut events = Vec::new();
    assert_eq!(s.quiesce(0, |e| events.push(e)), 1);
    assert_eq!(
        events,
        [Event::Quiesced {
            pd: "rtl8139",
            bdf: NIC,
            was_on: true
        }]
    );
    let command = |s: &mut Server<FakeConfig>, channel, at| {
        call(
            s,
            channel,
            at,
            Request::Read {
                offset: 4,
                width: 2,
            },
        )
        .1[0]
    };
    assert_eq!(
        command(&mut s, 0, NIC) & 0b110,
        0b010,
        "memory decoding stays"
    );
    assert_eq!(
        command(&mut s, 1, USB) & 0b110,
        0b110,
        "the other driver's untouched"
    );
    // The absent function of 'ghost' and a channel with no driver: nothing.
    assert_eq!(s.quiesce(2, |_| panic!("nothing to report")), 0);
    assert_eq!(s.quiesce(9, |_| panic!("nothing to report")), 0);
    // The fresh driver turns it on again.
    let (st, _, _) = call(
        &mut s,
        0,
        NIC,
        Request::Command {
            set: 0b100,
            clear: 0,
        },
    );
    assert_eq!(st, Status::Ok);
    assert_eq!(command(&mut s, 0, NIC) & 0b110, 0b110);
}

#[test]
fn a_bar_is_not_placed_over_another_functions() {
    // The OHCI's BAR0 (256 bytes at 0xfebf2000) stays where the firmware
    // put it: the NIC's BAR1 may not go there.
    let mut events = Vec::new();
    let mut nic = client(0, NIC, "rtl8139");
    nic.bars[1] = Some(pd_config::BarPlacement {
        paddr: 0xfebf_2000,
        size: 0x1000,
    });
    let mut s = Server::new(FakeConfig::qemu_pc(), [nic], |e| events.push(e));
    assert!(
        events.iter().any(|e| e.to_string()
            == "00:03.0 BAR1 for rtl8139 cannot go at 0xfebf2000 (0x1000 bytes): 00:04.0 BAR0 decodes 0xfebf2000 there; expected a memory_region phys_addr clear of the other devices' BARs"),
        "{events:?}"
    );
    let (_, mr, _) = call(&mut s, 0, NIC, Request::Bar { index: 1 });
    assert!(matches!(
        crate::wire::decode_bar(&mr),
        Ok(Some(Bar::Mem {
            addr: 0xfebf_1000,
            ..
        }))
    ));

    // A BAR that is itself moved away leaves its place free.
    let mut events = Vec::new();
    let mut usb = client(1, USB, "ohci");
    usb.bars[0] = Some(pd_config::BarPlacement {
        paddr: 0xfebd_2000,
        size: 0x1000,
    });
    Server::new(FakeConfig::qemu_pc(), [nic, usb], |e| events.push(e));
    assert!(
        events.iter().any(|e| e.to_string()
            == "00:03.0 BAR1 placed at 0xfebf2000 for rtl8139, where system.xml puts its registers (the firmware had 0xfebf1000)"),
        "{events:?}"
    );
}
