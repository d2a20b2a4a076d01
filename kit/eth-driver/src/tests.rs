//! The helpers against a client end of the same port, both ends observed
//! as in the PDs.

use std::cell::RefCell;
use std::string::{String, ToString};
use std::vec::Vec;

use dingo_protocols::{ethernet_controller as eth, lifecycle as lc};
use dingo_rt::port::{Port, Side};
use dingo_rt::typed::{Protocol, Report, Reporter, Supervisor, TypedPort};

use super::*;

const SLOTS: u32 = 8;
const CH: u8 = 3;

#[repr(C, align(4096))]
struct Region([u8; 0x2000]);

#[derive(Default)]
struct Recorder(RefCell<Vec<String>>);

impl Reporter for Recorder {
    fn report(&self, report: &Report<'_>) {
        self.0.borrow_mut().push(report.to_string());
    }
    fn fatal(&self, report: &Report<'_>) {
        panic!("fatal: {report}");
    }
}

fn end(region: &mut Region, side: Side) -> Port<{ tingu_rt::SLOT }> {
    // SAFETY: each test keeps its region alive longer than the ports and
    // attaches one port per side.
    unsafe { Port::new(region.0.as_mut_ptr(), region.0.len(), SLOTS, side, CH) }.unwrap()
}

type Eth<'r> = TypedPort<'r, Protocol<eth::Observer>>;

/// The driver's end (provider) and the network stack's (client).
fn eth_pair<'r>(region: &mut Region, rec: &'r Recorder) -> (Eth<'r>, Eth<'r>) {
    let sup = Supervisor::log(rec);
    let driver = Protocol::provider(eth::Observer::new(0));
    let client = Protocol::client(eth::Observer::new(0));
    (
        TypedPort::new(end(region, Side::B), driver, sup, "nic", "eth"),
        TypedPort::new(end(region, Side::A), client, sup, "net", "eth"),
    )
}

type Lc<'r> = TypedPort<'r, Protocol<lc::Observer>>;

fn lc_pair<'r>(region: &mut Region, rec: &'r Recorder) -> (Lc<'r>, Lc<'r>) {
    let sup = Supervisor::log(rec);
    (
        TypedPort::new(
            end(region, Side::B),
            Protocol::provider(lc::Observer::new(0)),
            sup,
            "nic",
            "lc",
        ),
        TypedPort::new(
            end(region, Side::A),
            Protocol::client(lc::Observer::new(0)),
            sup,
            "monitor",
            "lc",
        ),
    )
}

fn drain<'r>(port: &mut Eth<'r>) -> Vec<eth::Msg> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = port.try_recv(0) {
        got.push(m);
    }
    got
}

#[test]
fn requests_come_in_order_and_the_answers_go_back_in_order() {
    let mut region = Box::new(Region([0; 0x2000]));
    let rec = Recorder::default();
    let (mut driver, mut client) = eth_pair(&mut region, &rec);
    assert_eq!(request(&mut driver, 0), None);
    for m in [
        eth::Msg::RxBuffer {
            buf: 0x800,
            len: 1536,
        },
        eth::Msg::Enable,
    ] {
        client.try_send(&m, 0).unwrap();
    }
    assert_eq!(
        request(&mut driver, 0),
        Some(Request::Lend {
            buf: 0x800,
            len: 1536
        })
    );
    assert_eq!(request(&mut driver, 0), Some(Request::Enable));
    assert_eq!(request(&mut driver, 0), None);

    let mut out: Outbox<16> = Outbox::new();
    out.enabled([0x52, 0x54, 0, 0x12, 0x34, 0x56], true);
    out.send(&mut driver, 0);
    assert!(out.is_empty());
    assert_eq!(
        drain(&mut client),
        [
            eth::Msg::MacAddress {
                mac: 0x5254_0012_3456
            },
            eth::Msg::EnableComplete,
            eth::Msg::LinkChange { up: true },
        ]
    );

    client
        .try_send(&eth::Msg::TxPacket { buf: 0, len: 60 }, 0)
        .unwrap();
    client.try_send(&eth::Msg::Disable, 0).unwrap();
    assert_eq!(
        request(&mut driver, 0),
        Some(Request::Transmit { buf: 0, len: 60 })
    );
    assert_eq!(request(&mut driver, 0), Some(Request::Disable));
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn a_refused_request_is_skipped_and_a_refused_answer_dropped() {
    let mut region = Box::new(Region([0; 0x2000]));
    let rec = Recorder::default();
    let (mut driver, mut raw_client) = {
        let sup = Supervisor::log(&rec);
        let driver = Protocol::provider(eth::Observer::new(0));
        // A client that sends what its protocol forbids: its own
        // observer would have stopped it, so it has a bare ring.
        (
            TypedPort::new(end(&mut region, Side::B), driver, sup, "nic", "eth"),
            end(&mut region, Side::A),
        )
    };
    raw_client.tx.publish_tag(eth::HASH);
    // txPacket before enable: the driver's observer refuses it.
    for m in [eth::Msg::TxPacket { buf: 0, len: 60 }, eth::Msg::Enable] {
        let mut slot = [0; tingu_rt::SLOT];
        tingu_rt::Message::encode(&m, &mut slot);
        let _ = raw_client.tx.push(&slot).unwrap();
    }
    assert_eq!(request(&mut driver, 0), Some(Request::Enable));
    assert_eq!(rec.0.borrow().len(), 1, "{:?}", rec.0.borrow());

    // txPacketDone with nothing outstanding is refused by the driver's own
    // observer; what follows still goes out.
    let mut out: Outbox<16> = Outbox::new();
    out.push(eth::Msg::TxPacketDone { buf: 0 });
    out.push(eth::Msg::EnableComplete);
    out.send(&mut driver, 0);
    assert!(out.is_empty());
    assert_eq!(rec.0.borrow().len(), 2, "{:?}", rec.0.borrow());
    let mut got = Vec::new();
    while let Ok(Some((slot, _))) = raw_client.rx.pop() {
        got.push(<eth::Msg as tingu_rt::Message>::decode(&slot).unwrap());
    }
    assert_eq!(got, [eth::Msg::EnableComplete]);
}

#[test]
fn a_full_port_keeps_the_rest_queued_and_room_is_kept_for_a_batch() {
    let mut region = Box::new(Region([0; 0x2000]));
    let rec = Recorder::default();
    let (mut driver, mut client) = eth_pair(&mut region, &rec);
    client.try_send(&eth::Msg::Enable, 0).unwrap();
    for i in 0..6 {
        client
            .try_send(
                &eth::Msg::RxBuffer {
                    buf: i * 0x800,
                    len: 1536,
                },
                0,
            )
            .unwrap();
    }
    while request(&mut driver, 0).is_some() {}
    let mut out: Outbox<32> = Outbox::new();
    out.enabled([2, 0, 0, 0, 0, 1], false);
    for i in 0..6 {
        out.push(eth::Msg::RxPacket {
            buf: i * 0x800,
            len: 60,
        });
    }
    out.send(&mut driver, 0);
    assert!(!out.is_empty(), "9 messages fit an {SLOTS}-slot ring");
    let first = drain(&mut client);
    assert_eq!(first.len(), SLOTS as usize);
    out.send(&mut driver, 0);
    assert!(out.is_empty());
    assert_eq!(
        drain(&mut client),
        [eth::Msg::RxPacket {
            buf: 5 * 0x800,
            len: 60
        }]
    );

    // Of 32 entries, a batch of 8 (two messages each) and a request's 8
    // keep 24 free: work is taken while fewer than 8 are queued.
    let mut full: Outbox<32> = Outbox::new();
    for _ in 0..8 {
        assert!(full.has_room(8));
        full.push(eth::Msg::LinkChange { up: true });
    }
    assert!(!full.has_room(8));
}

#[test]
fn lifecycle_answers_start_and_stop_and_quiesces_on_stop_and_unplug() {
    let mut region = Box::new(Region([0; 0x2000]));
    let rec = Recorder::default();
    let (mut driver, mut monitor) = lc_pair(&mut region, &rec);
    let mut life = Lifecycle::new();
    let mut stops = 0;
    assert_eq!(life.serve(&mut driver, true, 0, || stops += 1), None);

    monitor.try_send(&lc::Msg::Start, 0).unwrap();
    // Not looked at: nothing taken.
    assert_eq!(life.serve(&mut driver, false, 0, || stops += 1), None);
    assert_eq!(life.serve(&mut driver, true, 0, || stops += 1), Some(true));
    assert_eq!(monitor.try_recv(0), Ok(Some(lc::Msg::StartComplete)));
    assert_eq!(stops, 0);

    monitor.try_send(&lc::Msg::Stop, 0).unwrap();
    assert_eq!(life.serve(&mut driver, true, 0, || stops += 1), Some(false));
    assert_eq!(monitor.try_recv(0), Ok(Some(lc::Msg::StopComplete)));
    assert_eq!(stops, 1);

    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());

    // Stopped is final: a new session starts with a new port. Unplugged
    // quiesces like stop.
    let mut region = Box::new(Region([0; 0x2000]));
    let (mut driver, mut monitor) = lc_pair(&mut region, &rec);
    let mut life = Lifecycle::new();
    monitor.try_send(&lc::Msg::Start, 0).unwrap();
    assert_eq!(life.serve(&mut driver, true, 0, || stops += 1), Some(true));
    assert_eq!(monitor.try_recv(0), Ok(Some(lc::Msg::StartComplete)));
    monitor.try_send(&lc::Msg::Unplugged, 0).unwrap();
    assert_eq!(life.serve(&mut driver, true, 0, || stops += 1), Some(false));
    assert_eq!(monitor.try_recv(0), Ok(Some(lc::Msg::StopComplete)));
    assert_eq!(stops, 2);
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn every_event_is_a_message_of_the_driver_with_its_fields() {
    use tingu_rt::{Direction, Message};
    let events = [
        (Event::Rx { buf: 7, len: 60 }, "rxPacket(buf=7, len=60)"),
        (Event::TxDone { buf: 8 }, "txPacketDone(buf=8)"),
        (
            Event::TxAbort {
                buf: 9,
                error: eth::RESET,
            },
            "txPacketAbort(buf=9, error=3)",
        ),
        (Event::RxReturn { buf: 10 }, "rxBufferReturn(buf=10)"),
        (Event::Link { up: true }, "linkChange(up=true)"),
        (Event::StopQueue, "txStopQueue()"),
        (Event::StartQueue, "txStartQueue()"),
    ];
    for (event, shown) in events {
        let msg = eth::Msg::from(event);
        assert_eq!(msg.to_string(), shown);
        assert_eq!(msg.direction(), Direction::Out, "{msg} goes to the client");
    }
}

#[test]
fn the_backlog_refuses_frames_outside_the_area_and_beyond_its_room() {
    let mut b = TxBacklog::new();
    let area = 0x1000;
    assert_eq!(b.admit(0, 0, area, 1514), Err(Refusal::BadRequest), "empty");
    assert_eq!(
        b.admit(0, 1515, area, 1514),
        Err(Refusal::BadRequest),
        "too long"
    );
    assert_eq!(
        b.admit(0xf00, 0x101, area, 1514),
        Err(Refusal::BadRequest),
        "past the end"
    );
    assert_eq!(
        b.admit(u32::MAX, 64, area, 1514),
        Err(Refusal::BadRequest),
        "far past the end"
    );
    assert_eq!(b.admit(0xf00, 0x100, area, 1514), Ok(()), "up to the end");
    for i in 1..TX_BACKLOG {
        assert_eq!(b.admit(i as u32, 60, area, 1514), Ok(()));
    }
    assert_eq!(b.admit(0, 60, area, 1514), Err(Refusal::Full));
    assert_eq!(b.len(), TX_BACKLOG);
    assert_eq!(Refusal::BadRequest.error(), eth::BAD_REQUEST);
    assert_eq!(Refusal::Full.error(), eth::QUEUE_FULL);
    assert_eq!(
        b.pop(),
        Some(TxJob {
            buf: 0xf00,
            len: 0x100
        })
    );
    b.unpop(TxJob {
        buf: 0xf00,
        len: 0x100,
    });
    assert_eq!(
        b.pop(),
        Some(TxJob {
            buf: 0xf00,
            len: 0x100
        }),
        "put back first"
    );
    assert_eq!(b.pop(), Some(TxJob { buf: 1, len: 60 }), "then in order");
}

#[test]
fn the_backlog_stops_the_client_once_and_starts_it_once_drained() {
    let mut b = TxBacklog::new();
    let mut said = Vec::new();
    for i in 0..TX_STOP_AT {
        b.notices(&mut |e| said.push(e));
        assert!(said.is_empty(), "nothing said below the mark ({i} waiting)");
        b.admit(0, 60, 0x1000, 1514).unwrap();
    }
    b.notices(&mut |e| said.push(e));
    b.admit(0, 60, 0x1000, 1514).unwrap();
    b.notices(&mut |e| said.push(e));
    assert_eq!(said, [Event::StopQueue], "told once");
    while b.len() > TX_START_AT + 1 {
        b.pop();
        b.notices(&mut |e| said.push(e));
    }
    assert_eq!(
        said,
        [Event::StopQueue],
        "still stopped above the start mark"
    );
    b.pop();
    b.notices(&mut |e| said.push(e));
    b.notices(&mut |e| said.push(e));
    assert_eq!(said, [Event::StopQueue, Event::StartQueue]);
}

#[test]
fn aborting_the_backlog_aborts_in_order_and_starts_a_stopped_client() {
    let mut b = TxBacklog::new();
    let mut said = Vec::new();
    b.admit(0, 60, 0x1000, 1514).unwrap();
    b.admit(64, 60, 0x1000, 1514).unwrap();
    b.abort_all(eth::RESET, &mut |e| said.push(e));
    assert_eq!(
        said,
        [
            Event::TxAbort {
                buf: 0,
                error: eth::RESET
            },
            Event::TxAbort {
                buf: 64,
                error: eth::RESET
            },
        ],
        "a client that was never stopped is not told to start"
    );
    assert!(b.is_empty());
    said.clear();
    for _ in 0..TX_STOP_AT {
        b.admit(0, 60, 0x1000, 1514).unwrap();
    }
    b.notices(&mut |e| said.push(e));
    b.abort_all(eth::GONE, &mut |e| said.push(e));
    assert_eq!(said.len(), 1 + TX_STOP_AT + 1);
    assert_eq!(said.first(), Some(&Event::StopQueue));
    assert_eq!(said.last(), Some(&Event::StartQueue));
    said.clear();
    b.notices(&mut |e| said.push(e));
    assert!(said.is_empty(), "started once");
}

#[test]
fn a_lent_buffer_must_lie_in_the_area_hold_a_frame_and_stay_within_the_bound() {
    let area = 0x1000;
    assert_eq!(check_lend(0, 0x600, area, 0x5ee, 0, 4), Ok(()));
    assert_eq!(
        check_lend(0xa00, 0x600, area, 0x5ee, 3, 4),
        Ok(()),
        "up to the end"
    );
    assert_eq!(
        check_lend(0xa01, 0x600, area, 0x5ee, 0, 4),
        Err(LendError::OutOfRange)
    );
    assert_eq!(
        check_lend(u32::MAX, 0x600, area, 0x5ee, 0, 4),
        Err(LendError::OutOfRange)
    );
    assert_eq!(
        check_lend(0, 0x5ed, area, 0x5ee, 0, 4),
        Err(LendError::TooShort)
    );
    assert_eq!(
        check_lend(0, 0x600, area, 0x5ee, 4, 4),
        Err(LendError::TooMany)
    );
}
