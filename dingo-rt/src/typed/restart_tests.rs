//! Restarts: a PD's port end replaced by a fresh one over the same region
//! (as the monitor restarts a PD with its shared regions kept), and the
//! surviving end taking it up: the session handshake, the shadow's replay,
//! what the old instance left in the rings.

use super::*;
use crate::port::Side;
use crate::test_util::Region;
use dingo_protocols::{ethernet_controller as eth, lifecycle as lc, timer};
use std::cell::RefCell;

const MS: u64 = 1_000_000;

/// The PD holding `end` faults: the end is never used again (the monitor
/// replaces the PD; its memory goes, the port region stays).
fn crash<T>(end: T) {
    let _ = end;
}
const CH: u8 = 3;

#[derive(Default)]
struct Recorder {
    reports: RefCell<Vec<String>>,
}

impl Reporter for Recorder {
    fn report(&self, report: &Report<'_>) {
        self.reports.borrow_mut().push(report.to_string());
    }
    fn fatal(&self, report: &Report<'_>) {
        panic!("fatal (a restartable driver would fault here): {report}");
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        core::mem::take(&mut *self.reports.borrow_mut())
    }
    fn violations(&self) -> Vec<String> {
        self.reports
            .borrow()
            .iter()
            .filter(|r| !r.contains("the peer restarted"))
            .cloned()
            .collect()
    }
}

fn region(slots: u32) -> Region {
    let rings = crate::port::PortLayout::new::<SLOT>(0x10000, slots)
        .unwrap()
        .data_offset;
    Region::new(rings + 4096)
}

fn port(r: &Region, slots: u32, side: Side) -> Port<SLOT> {
    // SAFETY: the region outlives the ports; each test has at most one
    // live port per side (a "crashed" one is never used again).
    unsafe { Port::new(r.base(), r.len(), slots, side, CH) }.unwrap()
}

type Eth<'r> = TypedPort<'r, Protocol<eth::Observer>>;

/// The network stack's end (client, side A), which logs violations.
fn net<'r>(r: &Region, slots: u32, log: &'r Recorder) -> Eth<'r> {
    let obs = Protocol::client(eth::Observer::new(0));
    TypedPort::new(
        port(r, slots, Side::A),
        obs,
        Supervisor::log(log),
        "Net",
        "eth",
    )
}

/// The driver's end (provider, side B), under the fatal policy as a
/// restartable driver runs: any violation it sees or makes panics.
fn nic<'r>(r: &Region, slots: u32, log: &'r Recorder) -> Eth<'r> {
    let obs = Protocol::provider(eth::Observer::new(0));
    TypedPort::new(
        port(r, slots, Side::B),
        obs,
        Supervisor::fatal(log),
        "Rtl8139",
        "eth",
    )
}

fn recv_all<O: PortObserver>(p: &mut TypedPort<'_, O>, now: u64) -> Vec<O::Msg> {
    let mut out = Vec::new();
    while let Some(m) = p.try_recv(now).unwrap() {
        out.push(m);
    }
    out
}

/// Brings both ends to: enabled, `rx` buffers lent, `tx` transmits taken
/// by the driver and not answered.
fn running<'r>(
    r: &Region,
    log_a: &'r Recorder,
    log_b: &'r Recorder,
    rx: u32,
    tx: u32,
) -> (Eth<'r>, Eth<'r>) {
    let (mut a, mut b) = (net(r, 256, log_a), nic(r, 256, log_b));
    a.try_send(&eth::Msg::Enable, MS).unwrap();
    for i in 0..rx {
        a.try_send(
            &eth::Msg::RxBuffer {
                buf: 0x800 * i,
                len: 2048,
            },
            MS,
        )
        .unwrap();
    }
    recv_all(&mut b, 2 * MS);
    for m in [
        eth::Msg::MacAddress {
            mac: 0x5254_0012_3456,
        },
        eth::Msg::EnableComplete,
        eth::Msg::LinkChange { up: true },
    ] {
        b.try_send(&m, 2 * MS).unwrap();
    }
    assert_eq!(recv_all(&mut a, 3 * MS).len(), 3);
    for i in 0..tx {
        let m = eth::Msg::TxPacket {
            buf: 0x10_0000 + 0x800 * i,
            len: 100,
        };
        a.try_send(&m, 4 * MS).unwrap();
    }
    assert_eq!(recv_all(&mut b, 5 * MS).len(), tx as usize);
    (a, b)
}

#[test]
fn a_restarted_driver_is_given_the_clients_state_and_its_transmits_again() {
    let r = region(256);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let (mut a, b) = running(&r, &la, &lb, 3, 2);
    crash(b); // the driver faults; the monitor restarts it
    let lb2 = Recorder::default();
    let mut b2 = nic(&r, 256, &lb2);
    assert_eq!(b2.session().mine, 2);
    assert!(!b2.session().ready);
    // It waits for the client: nothing in, nothing out.
    assert_eq!(b2.try_recv(10 * MS), Ok(None));
    assert_eq!(
        b2.try_send(&eth::Msg::LinkChange { up: true }, 10 * MS),
        Err(Fault::Full)
    );
    assert_eq!(
        b2.take_notify(),
        NotifyPeer::Yes,
        "the fresh end wakes the client"
    );

    // The client notices on its next operation and starts the new session.
    assert_eq!(a.try_recv(11 * MS), Ok(None));
    assert_eq!(a.counters().restarts, 1);
    assert_eq!(a.take_notify(), NotifyPeer::Yes);
    let reports = la.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("the peer restarted (incarnation 2)")
            && reports[0].contains(
                "2 requests outstanding, replaying 4 for the state, resubmitting 2, answering 0"
            ),
        "{}",
        reports[0]
    );
    // Held back until the replay is through.
    let new_tx = eth::Msg::TxPacket {
        buf: 0x20_0000,
        len: 60,
    };
    assert_eq!(a.try_send(&new_tx, 12 * MS), Err(Fault::Full));

    assert_eq!(
        recv_all(&mut b2, 13 * MS),
        [
            eth::Msg::Enable,
            eth::Msg::RxBuffer { buf: 0, len: 2048 },
            eth::Msg::RxBuffer {
                buf: 0x800,
                len: 2048
            },
            eth::Msg::RxBuffer {
                buf: 0x1000,
                len: 2048
            },
        ]
    );
    for m in [
        eth::Msg::MacAddress {
            mac: 0x5254_0012_3456,
        },
        eth::Msg::EnableComplete,
        eth::Msg::LinkChange { up: true },
    ] {
        b2.try_send(&m, 14 * MS).unwrap();
    }
    // The client sees none of the fresh driver's repeats.
    assert_eq!(recv_all(&mut a, 15 * MS), []);
    assert_eq!(
        recv_all(&mut b2, 16 * MS),
        [
            eth::Msg::TxPacket {
                buf: 0x10_0000,
                len: 100
            },
            eth::Msg::TxPacket {
                buf: 0x10_0800,
                len: 100
            },
        ]
    );
    a.try_send(&new_tx, 17 * MS).unwrap();
    assert_eq!(recv_all(&mut b2, 18 * MS), [new_tx]);
    b2.try_send(&eth::Msg::TxPacketDone { buf: 0x10_0000 }, 19 * MS)
        .unwrap();
    assert_eq!(
        recv_all(&mut a, 20 * MS),
        [eth::Msg::TxPacketDone { buf: 0x10_0000 }]
    );
    assert_eq!(a.outstanding(), 2);
    assert_eq!(a.counters().replayed, 6);
    assert!(la.violations().is_empty() && lb2.violations().is_empty());
    // Both observers follow the new session.
    assert_eq!(a.observer().inner().state(), eth::State::TxqRunning);
    assert_eq!(b2.observer().inner().vars().tx_pending, 2);
}

#[test]
fn what_the_dead_instance_sent_is_delivered_and_what_it_never_took_is_not_replayed_raw() {
    let r = region(256);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let (mut a, mut b) = running(&r, &la, &lb, 0, 2);
    // Its last words: one transmit answered, not yet read by the client.
    b.try_send(&eth::Msg::TxPacketDone { buf: 0x10_0000 }, 6 * MS)
        .unwrap();
    // A transmit the dead driver never took out of the ring.
    let stale = eth::Msg::TxPacket {
        buf: 0x10_1000,
        len: 99,
    };
    a.try_send(&stale, 6 * MS).unwrap();
    crash(b);
    let lb2 = Recorder::default();
    let mut b2 = nic(&r, 256, &lb2);
    assert_eq!(b2.try_recv(7 * MS), Ok(None));
    // The answer from the old instance reaches the client first.
    assert_eq!(
        recv_all(&mut a, 8 * MS),
        [eth::Msg::TxPacketDone { buf: 0x10_0000 }]
    );
    assert!(la.take()[0].contains("1 of ours and 0 of its messages discarded"));
    // The fresh driver starts with the replay, not with the stale transmit
    // (which its fatal observer would refuse in `disabled`).
    assert_eq!(recv_all(&mut b2, 9 * MS), [eth::Msg::Enable]);
    b2.try_send(&eth::Msg::EnableComplete, 10 * MS).unwrap();
    assert_eq!(recv_all(&mut a, 11 * MS), []);
    assert_eq!(
        recv_all(&mut b2, 12 * MS),
        [
            eth::Msg::TxPacket {
                buf: 0x10_0800,
                len: 100
            },
            stale
        ],
        "both unanswered transmits resubmitted, in order"
    );
}

#[test]
fn a_ring_the_dead_instance_corrupted_is_reset_for_the_new_session() {
    let r = region(256);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let (mut a, b) = running(&r, &la, &lb, 1, 0);
    crash(b);
    // A wild write into the driver's transmit ring's producer index (ring 1
    // belongs to side B).
    let layout = crate::port::PortLayout::new::<SLOT>(r.len(), 256).unwrap();
    r.peer_write_u32(layout.rings[1], 0xdead_beef);
    assert!(matches!(a.try_recv(20 * MS), Err(Fault::Ring(_))));
    let lb2 = Recorder::default();
    let mut b2 = nic(&r, 256, &lb2);
    assert_eq!(recv_all(&mut a, 21 * MS), []);
    assert_eq!(
        recv_all(&mut b2, 22 * MS),
        [eth::Msg::Enable, eth::Msg::RxBuffer { buf: 0, len: 2048 }]
    );
    b2.try_send(&eth::Msg::EnableComplete, 23 * MS).unwrap();
    b2.try_send(&eth::Msg::RxPacket { buf: 0, len: 64 }, 23 * MS)
        .unwrap();
    assert_eq!(
        recv_all(&mut a, 24 * MS),
        [eth::Msg::RxPacket { buf: 0, len: 64 }]
    );
}

#[test]
fn a_driver_restarted_again_before_the_handshake_ends_gets_a_session_of_its_own() {
    let r = region(256);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let (mut a, b) = running(&r, &la, &lb, 2, 1);
    crash(b);
    let lb2 = Recorder::default();
    let b2 = nic(&r, 256, &lb2);
    crash(b2); // faults during its start-up, before the client looked
    let lb3 = Recorder::default();
    let mut b3 = nic(&r, 256, &lb3);
    assert_eq!(b3.session().mine, 3);
    assert_eq!(recv_all(&mut a, 30 * MS), []);
    assert_eq!(a.counters().restarts, 1, "one new session, with the newest");
    assert_eq!(recv_all(&mut b3, 31 * MS)[0], eth::Msg::Enable);
    // And a restart in the middle of the replay: the client starts over.
    crash(b3);
    let lb4 = Recorder::default();
    let mut b4 = nic(&r, 256, &lb4);
    assert_eq!(recv_all(&mut a, 32 * MS), []);
    assert_eq!(
        recv_all(&mut b4, 33 * MS),
        [
            eth::Msg::Enable,
            eth::Msg::RxBuffer { buf: 0, len: 2048 },
            eth::Msg::RxBuffer {
                buf: 0x800,
                len: 2048
            },
        ]
    );
    b4.try_send(&eth::Msg::EnableComplete, 34 * MS).unwrap();
    assert_eq!(recv_all(&mut a, 35 * MS), []);
    assert_eq!(
        recv_all(&mut b4, 36 * MS),
        [eth::Msg::TxPacket {
            buf: 0x10_0000,
            len: 100
        }]
    );
    assert!(lb4.violations().is_empty());
}

type Lc<'r> = TypedPort<'r, Protocol<lc::Observer>>;

#[test]
fn lifecycle_restart_ends_the_old_session_as_the_protocol_says_and_starts_the_new_one() {
    let r = region(16);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let os = |log| -> Lc<'_> {
        TypedPort::new(
            port(&r, 16, Side::B),
            Protocol::client(lc::Observer::new(0)),
            Supervisor::fatal(log),
            "Net",
            "lc",
        )
    };
    let drv = |log| -> Lc<'_> {
        TypedPort::new(
            port(&r, 16, Side::A),
            Protocol::provider(lc::Observer::new(0)),
            Supervisor::fatal(log),
            "Rtl8139",
            "lc",
        )
    };
    // The client sends start before the driver even attached.
    let mut a = os(&la);
    a.try_send(&lc::Msg::Start, 0).unwrap();
    let mut b = drv(&lb);
    assert_eq!(b.try_recv(MS), Ok(Some(lc::Msg::Start)));
    b.try_send(&lc::Msg::StartComplete, MS).unwrap();
    assert_eq!(a.try_recv(2 * MS), Ok(Some(lc::Msg::StartComplete)));
    crash(b);
    let lb2 = Recorder::default();
    let mut b2 = drv(&lb2);
    assert_eq!(a.try_recv(3 * MS), Ok(None));
    assert_eq!(b2.try_recv(4 * MS), Ok(Some(lc::Msg::Start)));
    b2.try_send(&lc::Msg::StartComplete, 4 * MS).unwrap();
    assert_eq!(
        a.try_recv(5 * MS),
        Ok(None),
        "the client had its startComplete"
    );
    assert_eq!(a.observer().inner().state(), lc::State::Running);
    let v = a
        .observer()
        .inner()
        .violation(ViolationKind::UnexpectedMessage, None);
    let history: Vec<String> = v.history().map(|e| e.to_string()).collect();
    assert_eq!(
        history,
        [
            "?start()",
            "!startComplete()",
            "?unplugged()",
            "!stopComplete()",
            "?start()",
            "!startComplete()"
        ]
    );
    a.try_send(&lc::Msg::Stop, 6 * MS).unwrap();
    assert_eq!(b2.try_recv(7 * MS), Ok(Some(lc::Msg::Stop)));
}

type Timer<'r> = TypedPort<'r, Protocol<timer::Observer>>;

#[test]
fn an_end_without_a_shadow_is_told_once_and_the_dead_clients_requests_are_gone() {
    let r = region(16);
    let (ls, lc1) = (Recorder::default(), Recorder::default());
    let server = |log| -> Timer<'_> {
        TypedPort::new(
            port(&r, 16, Side::A),
            Protocol::provider(timer::Observer::new(0)),
            Supervisor::log(log),
            "Timer",
            "clients",
        )
    };
    let client = |log| -> Timer<'_> {
        TypedPort::new(
            port(&r, 16, Side::B),
            Protocol::client(timer::Observer::new(0)),
            Supervisor::fatal(log),
            "Rtl8139",
            "timer",
        )
    };
    let mut s = server(&ls);
    let mut c = client(&lc1);
    c.try_send(
        &timer::Msg::Request {
            id: 1,
            deadline_ns: 5 * MS,
        },
        0,
    )
    .unwrap();
    assert!(matches!(s.try_recv(MS), Ok(Some(_))));
    // A second request the server has not read when the client dies.
    c.try_send(
        &timer::Msg::Request {
            id: 2,
            deadline_ns: 6 * MS,
        },
        MS,
    )
    .unwrap();
    crash(c);
    let lc2 = Recorder::default();
    let mut c2 = client(&lc2);
    assert_eq!(
        c2.try_send(
            &timer::Msg::Request {
                id: 1,
                deadline_ns: 9 * MS
            },
            2 * MS
        ),
        Err(Fault::Full),
        "waits for the server"
    );
    assert_eq!(
        s.try_recv(3 * MS),
        Err(Fault::PeerRestarted { incarnation: 2 })
    );
    assert!(ls.take()[0].contains("0 of ours and 1 of its messages discarded; no shadow"));
    assert_eq!(s.try_recv(3 * MS), Ok(None));
    // A late answer to the dead client: the new session's observer refuses
    // it, and it never reaches the fresh client.
    assert!(s.try_send(&timer::Msg::Fired { id: 1 }, 4 * MS).is_err());
    c2.try_send(
        &timer::Msg::Request {
            id: 1,
            deadline_ns: 9 * MS,
        },
        5 * MS,
    )
    .unwrap();
    assert_eq!(
        s.try_recv(6 * MS),
        Ok(Some(timer::Msg::Request {
            id: 1,
            deadline_ns: 9 * MS
        }))
    );
    s.try_send(&timer::Msg::Fired { id: 1 }, 9 * MS).unwrap();
    assert_eq!(c2.try_recv(10 * MS), Ok(Some(timer::Msg::Fired { id: 1 })));
    assert!(lc2.violations().is_empty());
}

#[test]
fn a_restarted_client_whose_peer_stayed_resumes_without_the_peer_resetting_again() {
    // The server end restarts twice; the client end (with no shadow for
    // Timer) learns of each once. And a first instance of the server that
    // attaches late is no restart at all.
    let r = region(16);
    let (ls, lc1) = (Recorder::default(), Recorder::default());
    let mut c = TypedPort::new(
        port(&r, 16, Side::B),
        Protocol::client(timer::Observer::new(0)),
        Supervisor::log(&lc1),
        "Client",
        "timer",
    );
    c.try_send(
        &timer::Msg::Request {
            id: 7,
            deadline_ns: 0,
        },
        0,
    )
    .unwrap();
    let mut s = TypedPort::new(
        port(&r, 16, Side::A),
        Protocol::provider(timer::Observer::new(0)),
        Supervisor::log(&ls),
        "Timer",
        "clients",
    );
    assert_eq!(s.session().mine, 1);
    assert!(matches!(
        s.try_recv(MS),
        Ok(Some(timer::Msg::Request { id: 7, .. }))
    ));
    s.try_send(&timer::Msg::Fired { id: 7 }, MS).unwrap();
    assert_eq!(c.try_recv(2 * MS), Ok(Some(timer::Msg::Fired { id: 7 })));
    assert_eq!(c.counters().restarts, 0);
    for incarnation in [2, 3] {
        crash(s);
        s = TypedPort::new(
            port(&r, 16, Side::A),
            Protocol::provider(timer::Observer::new(0)),
            Supervisor::log(&ls),
            "Timer",
            "clients",
        );
        assert_eq!(
            c.try_recv(3 * MS),
            Err(Fault::PeerRestarted { incarnation })
        );
        assert_eq!(c.try_recv(3 * MS), Ok(None));
        c.try_send(
            &timer::Msg::Request {
                id: incarnation,
                deadline_ns: 0,
            },
            4 * MS,
        )
        .unwrap();
        assert!(matches!(
            s.try_recv(5 * MS),
            Ok(Some(timer::Msg::Request { .. }))
        ));
    }
    assert_eq!(c.counters().restarts, 2);
}

#[test]
fn sleeping_ends_are_woken_through_the_handshake() {
    let r = region(256);
    let (la, lb) = (Recorder::default(), Recorder::default());
    let (mut a, b) = running(&r, &la, &lb, 1, 0);
    assert_eq!(a.prepare_recv_sleep(), Ok(Arm::Sleep));
    crash(b);
    let lb2 = Recorder::default();
    let mut b2 = nic(&r, 256, &lb2);
    // The fresh end sleeps until acknowledged; the survivor must not sleep
    // through the restart.
    assert_eq!(b2.prepare_recv_sleep(), Ok(Arm::Sleep));
    assert_eq!(a.prepare_recv_sleep(), Ok(Arm::Retry));
    assert_eq!(recv_all(&mut a, MS), []);
    assert_eq!(b2.prepare_recv_sleep(), Ok(Arm::Retry));
    assert_eq!(recv_all(&mut b2, MS).len(), 2);
}
