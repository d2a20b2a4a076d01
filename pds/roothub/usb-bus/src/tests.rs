use super::*;
use dingo_protocols::{root_hub, usb_storage};

fn all() -> std::vec::Vec<Wire> {
    let mut v = std::vec::Vec::new();
    for id in 1..=usb_bus::Msg::COUNT {
        for seed in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            v.push(Wire::Bus(usb_bus::Msg::sample(id, seed).unwrap()));
        }
    }
    for id in 1..=usb_pipe::Msg::COUNT {
        for seed in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let msg = usb_pipe::Msg::sample(id, seed).unwrap();
            v.push(Wire::Pipe {
                pipe: seed as u32 ^ 0x5a5a,
                msg,
            });
        }
    }
    v
}

#[test]
fn every_message_fits_and_round_trips() {
    for w in all() {
        let mut inner = [0u8; SLOT];
        match w {
            Wire::Bus(m) => m.encode(&mut inner),
            Wire::Pipe { msg, .. } => msg.encode(&mut inner),
        }
        assert!(
            inner[SLOT - HEADER..].iter().all(|b| *b == 0),
            "{w} needs more than {} bytes",
            SLOT - HEADER
        );
        let mut slot = [0u8; SLOT];
        w.encode(&mut slot);
        assert_eq!(Wire::decode(&slot), Ok(w));
    }
}

#[test]
fn foreign_slots_are_refused() {
    let mut slot = [0u8; SLOT];
    Wire::Bus(usb_bus::Msg::Detached).encode(&mut slot);
    slot[0] = 7;
    assert!(Wire::decode(&slot).is_err());
    slot[0] = TAG_BUS;
    slot[4] = 1; // a bus message with a pipe key
    assert!(Wire::decode(&slot).is_err());
    assert!(Wire::decode(&slot[..4]).is_err());
    assert_eq!(Wire::decode(&[0u8; SLOT]), Err(WireError::UnknownId(0)));
}

fn storage() -> BusParts<usb_storage::Observer> {
    BusParts {
        bus: usb_storage::Observer::observe_usb,
        pipes: usb_storage::Observer::observe_pipes,
        timeouts: usb_storage::Observer::check_timeouts,
        deadline: usb_storage::Observer::deadline_ns,
    }
}

#[test]
fn pipe_messages_go_to_their_subport() {
    let c = RefCell::new(usb_storage::Observer::new(0));
    let mut o = BusObserver::new(&c, storage());
    let no_show = |_: &Violation<'_>| {};
    for w in [
        Wire::Bus(usb_bus::Msg::Attached { port: 0, speed: 1 }),
        Wire::Bus(usb_bus::Msg::Addressed {
            addr: 1,
            vendor: 0x46f4,
            product: 1,
            class: 8,
            subclass: 6,
            protocol: 0x50,
        }),
    ] {
        o.observe(&w, Flow::Received, 0, no_show).unwrap();
    }
    let open = Wire::Bus(usb_bus::Msg::OpenPipe {
        pipe: 3,
        endpoint: 0,
        kind: 0,
        max_packet: 8,
        interval: 0,
    });
    o.observe(&open, Flow::Sent, 0, no_show).unwrap();
    assert_eq!(c.borrow().pipes_open(), 1);
    let opened = Wire::Pipe {
        pipe: 3,
        msg: usb_pipe::Msg::Opened,
    };
    o.observe(&opened, Flow::Received, 0, no_show).unwrap();
    // A pipe nobody opened.
    let stray = Wire::Pipe {
        pipe: 4,
        msg: usb_pipe::Msg::Opened,
    };
    let mut shown = None;
    let e = o
        .observe(&stray, Flow::Received, 0, |v| shown = Some(v.to_string()))
        .unwrap_err();
    assert_eq!(e, ViolationKind::UnknownSubport { key: 4 });
    assert!(shown.unwrap().contains("pipes[4]"));
    // Subport timeouts reach the port: a pipe opening for too long.
    let open5 = Wire::Bus(usb_bus::Msg::OpenPipe {
        pipe: 5,
        endpoint: 0,
        kind: 0,
        max_packet: 8,
        interval: 0,
    });
    o.observe(&open5, Flow::Sent, 0, no_show).unwrap();
    assert_eq!(o.deadline_ns(), Some(1_000_000_000));
    assert!(o.check_timeouts(2_000_000_000, no_show).is_err());
}

#[test]
fn the_hub_side_checks_each_class_driver_port_apart() {
    let c = RefCell::new(root_hub::Observer::new(0));
    let parts = BusParts {
        bus: root_hub::Observer::observe_bus2,
        pipes: root_hub::Observer::observe_pipes2,
        timeouts: root_hub::Observer::check_timeouts,
        deadline: root_hub::Observer::deadline_ns,
    };
    let mut o = BusObserver::new(&c, parts);
    let attached = Wire::Bus(usb_bus::Msg::Attached { port: 1, speed: 0 });
    o.observe(&attached, Flow::Sent, 0, |_| {}).unwrap();
    assert_eq!(c.borrow().bus2.state(), usb_bus::State::Enumerating);
    assert_eq!(c.borrow().bus0.state(), usb_bus::State::Empty);
}
