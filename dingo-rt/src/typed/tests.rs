use super::*;
use crate::executor::{Either, select};
use crate::port::Side;
use crate::test_util::{Fake, Peer, Region};
use core::time::Duration;
use dingo_protocols::{ethernet_controller as eth, ethernet_driver, lifecycle as lc};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

const MS: u64 = 1_000_000;
const CH: u8 = 5;
const NET: &str = "Net";

/// Keeps every report and every fatal hook call as text.
#[derive(Default)]
struct Recorder {
    reports: RefCell<Vec<String>>,
    fatal: RefCell<Vec<String>>,
}

impl Reporter for Recorder {
    fn report(&self, report: &Report<'_>) {
        self.reports.borrow_mut().push(report.to_string());
    }

    fn fatal(&self, report: &Report<'_>) {
        self.fatal.borrow_mut().push(report.to_string());
    }
}

impl Recorder {
    fn reports(&self) -> Vec<String> {
        self.reports.borrow().clone()
    }
}

/// A port region with `slots` slots per ring and a 4 KiB data area.
fn region(slots: u32) -> Region {
    let rings = crate::port::PortLayout::new::<SLOT>(0x10000, slots)
        .unwrap()
        .data_offset;
    Region::new(rings + 4096)
}

fn untyped(region: &Region, slots: u32, side: Side) -> Port<SLOT> {
    // SAFETY: every test keeps the region alive longer than its ports and
    // creates one port per side.
    unsafe { Port::new(region.base(), region.len(), slots, side, CH) }.unwrap()
}

/// A peer that writes the ring directly, bypassing its own observer: a
/// build of the same EthernetController (it publishes the genuine hash)
/// that is buggy or hostile.
fn raw(region: &Region, slots: u32, side: Side) -> Port<SLOT> {
    let mut port = untyped(region, slots, side);
    port.tx.publish_tag(eth::HASH);
    port
}

type Bare = Protocol<eth::Observer>;

/// The network stack's end: the EthernetController client (side A).
fn os<'r>(region: &Region, slots: u32, sup: Supervisor<'r>) -> TypedPort<'r, Bare> {
    let obs = Protocol::client(eth::Observer::new(0));
    TypedPort::new(untyped(region, slots, Side::A), obs, sup, NET, "eth")
}

/// The driver's end with a bare protocol observer (side B).
fn driver<'r>(region: &Region, slots: u32, sup: Supervisor<'r>) -> TypedPort<'r, Bare> {
    let obs = Protocol::provider(eth::Observer::new(0));
    TypedPort::new(untyped(region, slots, Side::B), obs, sup, "Rtl8139", "eth")
}

fn slot_of(msg: &eth::Msg) -> [u8; SLOT] {
    let mut slot = [0; SLOT];
    msg.encode(&mut slot);
    slot
}

#[test]
fn a_silent_peer_that_published_its_tag_leaves_the_port_steady() {
    let r = region(4);
    let log = Recorder::default();
    let mut b = driver(&r, 4, Supervisor::log(&log));
    // No peer yet: nothing to check its version against.
    assert_eq!(b.try_recv(MS), Ok(None));
    assert!(!b.is_steady());
    // The client attaches and publishes its tag, but sends nothing (a
    // server's client that asks nothing, a timer's that sets no timer).
    let _a = os(&r, 4, Supervisor::log(&log));
    assert_eq!(b.try_recv(2 * MS), Ok(None));
    assert!(b.is_steady(), "the port stays on the general paths");
    assert!(log.reports().is_empty());
}

#[test]
fn legal_exchange_passes_both_observers() {
    let r = region(4);
    let (a_log, b_log) = (Recorder::default(), Recorder::default());
    let mut a = os(&r, 4, Supervisor::log(&a_log));
    let mut b = driver(&r, 4, Supervisor::log(&b_log));

    a.try_send(&eth::Msg::Enable, MS).unwrap();
    a.try_send(&eth::Msg::RxBuffer { buf: 0, len: 1536 }, MS)
        .unwrap();
    assert_eq!(b.try_recv(2 * MS), Ok(Some(eth::Msg::Enable)));
    assert_eq!(
        b.try_recv(2 * MS),
        Ok(Some(eth::Msg::RxBuffer { buf: 0, len: 1536 }))
    );
    assert_eq!(b.try_recv(2 * MS), Ok(None));
    b.try_send(&eth::Msg::EnableComplete, 3 * MS).unwrap();
    assert_eq!(a.try_recv(4 * MS), Ok(Some(eth::Msg::EnableComplete)));

    // A packet travels through the data area by offset.
    let frame = *b"\xff\xff\xff\xff\xff\xffhello";
    a.data().write(2048, &frame).unwrap();
    let tx = eth::Msg::TxPacket {
        buf: 2048,
        len: frame.len() as u16,
    };
    a.try_send(&tx, 5 * MS).unwrap();
    let Some(eth::Msg::TxPacket { buf, len }) = b.try_recv(6 * MS).unwrap() else {
        panic!("expected txPacket");
    };
    let mut got = [0; 11];
    b.data()
        .read(u64::from(buf), &mut got[..usize::from(len)])
        .unwrap();
    assert_eq!(got, frame);
    b.try_send(&eth::Msg::TxPacketDone { buf }, 7 * MS).unwrap();
    b.try_send(&eth::Msg::RxPacket { buf: 0, len: 60 }, 7 * MS)
        .unwrap();
    assert_eq!(a.try_recv(8 * MS), Ok(Some(eth::Msg::TxPacketDone { buf })));
    assert_eq!(
        a.try_recv(8 * MS),
        Ok(Some(eth::Msg::RxPacket { buf: 0, len: 60 }))
    );

    for p in [a.observer().inner(), b.observer().inner()] {
        assert_eq!(p.state(), eth::State::TxqRunning);
        assert_eq!(p.vars().tx_pending, 0);
        assert_eq!(p.vars().rx_lent, 0);
    }
    let expect = |sent, received| Counters {
        sent,
        received,
        malformed: 0,
        violations: 0,
        ..Counters::default()
    };
    assert_eq!(a.counters(), expect(3, 3));
    assert_eq!(b.counters(), expect(3, 3));
    assert!(a_log.reports().is_empty() && b_log.reports().is_empty());
}

#[test]
fn illegal_send_is_refused_at_the_sender_with_a_full_report() {
    let r = region(4);
    let (a_log, b_log) = (Recorder::default(), Recorder::default());
    let mut a = os(&r, 4, Supervisor::log(&a_log));
    let mut b = driver(&r, 4, Supervisor::log(&b_log));
    a.try_send(&eth::Msg::Enable, 0).unwrap();
    b.try_recv(0).unwrap();
    b.try_send(&eth::Msg::EnableComplete, 0).unwrap();
    a.try_recv(0).unwrap();
    a.try_send(&eth::Msg::Disable, 0).unwrap();

    let refused = a.try_send(&eth::Msg::TxPacket { buf: 64, len: 42 }, 0);
    assert_eq!(
        refused,
        Err(Fault::Violation(ViolationKind::UnexpectedMessage))
    );
    let reports = a_log.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let line = &reports[0];
    for part in [
        "component Net port eth",
        "EthernetController in state disabling",
        "unexpected message ?txPacket(buf=64, len=42)",
        "last messages: ?enable(), !enableComplete(), ?disable()",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    assert_eq!(a.counters().sent, 2);
    assert_eq!(a.counters().violations, 1);
    assert!(
        a_log.fatal.borrow().is_empty(),
        "Log policy never calls the hook"
    );
    // The refused message never reached the ring: the driver sees only disable.
    assert_eq!(b.try_recv(0), Ok(Some(eth::Msg::Disable)));
    assert_eq!(b.try_recv(0), Ok(None));
    assert!(b_log.reports().is_empty());
}

#[test]
fn a_queue_is_sent_in_order_up_to_a_full_ring_and_a_refused_message_is_dropped() {
    let r = region(4);
    let (a_log, b_log) = (Recorder::default(), Recorder::default());
    let mut a = os(&r, 4, Supervisor::log(&a_log));
    let mut b = driver(&r, 4, Supervisor::log(&b_log));
    let lend = |buf| eth::Msg::RxBuffer { buf, len: 1536 };
    // The second enable is illegal while the first is outstanding.
    let mut queue = VecDeque::from([
        eth::Msg::Enable,
        eth::Msg::Enable,
        lend(0),
        lend(2048),
        lend(4096),
        lend(6144),
    ]);
    let take = VecDeque::pop_front;
    let unget = VecDeque::push_front;

    let first = a.send_queued(MS, &mut queue, take, unget);
    assert_eq!(
        first,
        Sent {
            sent: 4,
            full: true
        }
    );
    assert_eq!(queue, [lend(6144)], "the one without a slot is put back");
    assert_eq!(a.counters().violations, 1);
    assert_eq!(a_log.reports().len(), 1);

    let mut got = Vec::new();
    while let Some(m) = b.try_recv(2 * MS).unwrap() {
        got.push(m);
    }
    assert_eq!(got, [eth::Msg::Enable, lend(0), lend(2048), lend(4096)]);
    let second = a.send_queued(3 * MS, &mut queue, take, unget);
    assert_eq!(
        second,
        Sent {
            sent: 1,
            full: false
        }
    );
    assert!(queue.is_empty());
    assert_eq!(b.try_recv(4 * MS), Ok(Some(lend(6144))));
    assert!(b_log.reports().is_empty());
}

#[test]
fn garbage_slots_from_the_peer_are_counted_and_never_delivered() {
    let r = region(8);
    let log = Recorder::default();
    let mut a = os(&r, 8, Supervisor::log(&log));
    // The driver is a raw port: it writes whatever it likes into the ring.
    let mut peer = raw(&r, 8, Side::B);
    a.try_send(&eth::Msg::Enable, 0).unwrap();
    assert_eq!(
        peer.rx.pop().unwrap().unwrap().0,
        slot_of(&eth::Msg::Enable)
    );

    let mut unknown = [0xEE; SLOT];
    unknown[..2].copy_from_slice(&0xBEEFu16.to_le_bytes());
    let mut bad_bool = slot_of(&eth::Msg::LinkChange { up: true });
    bad_bool[2] = 7;
    for slot in [unknown, bad_bool, slot_of(&eth::Msg::EnableComplete)] {
        let _ = peer.tx.push(&slot).unwrap();
    }

    assert_eq!(a.try_recv(0), Ok(Some(eth::Msg::EnableComplete)));
    assert_eq!(a.try_recv(0), Ok(None));
    let c = a.counters();
    assert_eq!((c.malformed, c.received, c.violations), (2, 1, 0));
    let reports = log.reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports[0].starts_with("component Net port eth: EthernetController: malformed slot")
            && reports[0].contains("unknown message id 48879")
            && reports[0].contains("slot bytes ef be ee ee"),
        "{}",
        reports[0]
    );
    assert!(
        reports[1].contains("bool field at byte 2 holds 7"),
        "{}",
        reports[1]
    );
    assert_eq!(a.observer().inner().state(), eth::State::TxqRunning);
}

#[test]
fn fatal_policy_invokes_the_hook_on_send_and_receive() {
    let r = region(4);
    let log = Recorder::default();
    let mut b = driver(&r, 4, Supervisor::fatal(&log));
    let mut peer = raw(&r, 4, Side::A);

    // The driver may not announce a link before it is enabled.
    let refused = b.try_send(&eth::Msg::LinkChange { up: true }, 0);
    assert_eq!(
        refused,
        Err(Fault::Violation(ViolationKind::UnexpectedMessage))
    );
    assert_eq!(peer.rx.pop(), Ok(None), "a refused message is not sent");
    assert_eq!(log.fatal.borrow().len(), 1);

    // A peer that bypasses its own observer: txPacket while disabled, then
    // a legal enable behind it.
    for msg in [eth::Msg::TxPacket { buf: 0, len: 60 }, eth::Msg::Enable] {
        let _ = peer.tx.push(&slot_of(&msg)).unwrap();
    }
    assert_eq!(
        b.try_recv(0),
        Err(Fault::Violation(ViolationKind::UnexpectedMessage))
    );
    let fatal = log.fatal.borrow().clone();
    assert_eq!(fatal.len(), 2);
    assert!(
        fatal[1].contains("component Rtl8139 port eth: EthernetController in state disabled: unexpected message ?txPacket(buf=0, len=60)"),
        "{}",
        fatal[1]
    );
    assert_eq!(log.reports(), fatal, "each fatal report is logged first");
    // Fatal stops at the first bad message: the enable is still queued.
    assert_eq!(b.try_recv(0), Ok(Some(eth::Msg::Enable)));
    assert_eq!(b.counters().violations, 2);
}

#[test]
fn component_port_enforces_dependencies_between_protocols() {
    let r = region(4);
    let log = Recorder::default();
    let component = RefCell::new(ethernet_driver::Observer::new(0));
    let eth_port = ComponentPort::new(&component, ethernet_driver::ports::Eth);
    let mut b = TypedPort::new(
        untyped(&r, 4, Side::B),
        eth_port,
        Supervisor::log(&log),
        ethernet_driver::NAME,
        "eth",
    );
    let mut peer = raw(&r, 4, Side::A);

    // The dependency judges the driver's answer: an enable may arrive
    // before start, but the driver may not confirm it.
    let _ = peer.tx.push(&slot_of(&eth::Msg::Enable)).unwrap();
    assert_eq!(b.try_recv(0), Ok(Some(eth::Msg::Enable)));
    assert!(b.try_send(&eth::Msg::EnableComplete, 0).is_err());
    let reports = log.reports();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains("component EthernetDriver port eth: EthernetController in state enabling: message !enableComplete() blocked by dependency: port lc is in state init"),
        "{}",
        reports[0]
    );

    // Once Lifecycle runs (seen through the same component observer),
    // the confirmation is legal.
    {
        let mut c = component.borrow_mut();
        c.observe_lc(&lc::Msg::Start, Flow::Received, MS).unwrap();
        c.observe_lc(&lc::Msg::StartComplete, Flow::Sent, MS)
            .unwrap();
    }
    b.try_send(&eth::Msg::EnableComplete, 2 * MS).unwrap();
    assert_eq!(component.borrow().eth.state(), eth::State::TxqRunning);
    assert_eq!(b.counters().violations, 1);
    assert_eq!(b.counters().sent, 1);
    assert_eq!(
        peer.rx.len().unwrap(),
        1,
        "only the legal confirmation is on the ring"
    );
}

#[test]
fn corrupt_ring_is_reported_once_and_disables_the_port() {
    let r = region(4);
    let log = Recorder::default();
    let mut a = os(&r, 4, Supervisor::log(&log));
    let layout = crate::port::PortLayout::new::<SLOT>(r.len(), 4).unwrap();
    // The peer moves its producer index far past the capacity.
    r.peer_write_u32(layout.rings[1], 1000);
    let corrupt = Fault::Ring(RingError::Corrupt {
        producer: 1000,
        consumer: 0,
    });
    assert_eq!(a.try_recv(0), Err(corrupt));
    assert_eq!(a.try_recv(0), Err(corrupt));
    let reports = log.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("ring corrupted by peer"),
        "{}",
        reports[0]
    );
    assert!(r.guard_intact());
}

#[test]
fn late_legal_reply_reports_the_overrun_and_is_still_delivered() {
    let r = region(4);
    let (log, driver_log) = (Recorder::default(), Recorder::default());
    let mut a = os(&r, 4, Supervisor::log(&log));
    let mut b = driver(&r, 4, Supervisor::log(&driver_log));
    a.try_send(&eth::Msg::Enable, 0).unwrap();
    b.try_recv(0).unwrap();
    b.try_send(&eth::Msg::EnableComplete, 0).unwrap();
    // The reply is read only after enabling's 1000 ms limit.
    assert_eq!(a.try_recv(1500 * MS), Ok(Some(eth::Msg::EnableComplete)));
    let reports = log.reports();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains(
            "in state enabling: timeout state overrun: limit 1000 ms, 1500.000000 ms elapsed"
        ),
        "{}",
        reports[0]
    );
    assert_eq!(a.observer().inner().state(), eth::State::TxqRunning);
    assert_eq!(a.counters().violations, 1);
    assert!(driver_log.reports().is_empty());
}

/// The network stack as a peer PD simulated inside the fake kernel: it
/// sends `script` in order, answers enableComplete with three packets and
/// records what it receives. Like a real PD it sleeps when it has nothing
/// to do and wakes only when notified, so a notification the driver owes
/// but does not send leaves both PDs asleep, which the fake reports by
/// panicking.
fn os_peer(
    mut port: TypedPort<'static, Bare>,
    mut script: VecDeque<eth::Msg>,
    got: Rc<RefCell<Vec<eth::Msg>>>,
) -> Peer {
    let mut asleep = false;
    Box::new(move |notified| {
        if asleep && notified & 1 << CH == 0 {
            return None;
        }
        asleep = false;
        while let Some(msg) = port.try_recv(0).unwrap() {
            got.borrow_mut().push(msg);
            if msg == eth::Msg::EnableComplete {
                script.extend((0..3).map(|i| eth::Msg::TxPacket {
                    buf: i * 2048,
                    len: 100 + i as u16,
                }));
            }
        }
        while let Some(msg) = script.front() {
            match port.try_send(msg, 0) {
                Ok(()) => {
                    script.pop_front();
                }
                // Armed for a freed slot, unless one was freed meanwhile.
                Err(Fault::Full) => match port.prepare_send_sleep().unwrap() {
                    Arm::Retry => {}
                    Arm::Sleep => break,
                },
                Err(e) => panic!("peer: {e}"),
            }
        }
        let bits = match port.take_notify() {
            NotifyPeer::Yes => 1 << CH,
            NotifyPeer::No => 0,
        };
        // Nothing left to do: sleep until notified.
        if port.prepare_recv_sleep().unwrap() == Arm::Sleep {
            asleep = true;
            if bits == 0 {
                return None;
            }
        }
        Some(bits)
    })
}

#[test]
fn async_driver_loop_receives_messages_in_sequence() {
    // Two slots: the peer's three packets do not fit at once, so both
    // sides go through the sleep protocol.
    let r = region(2);
    let peer_log: &'static Recorder = Box::leak(Box::default());
    let got = Rc::new(RefCell::new(Vec::new()));
    let script = [
        eth::Msg::RxBuffer {
            buf: 8192,
            len: 1536,
        },
        eth::Msg::Enable,
    ];
    let peer = os_peer(
        os(&r, 2, Supervisor::log(peer_log)),
        script.into(),
        got.clone(),
    );
    let (fake, platform) = Fake::with_peer(peer);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let log = Recorder::default();
    let mut b = driver(&r, 2, Supervisor::log(&log));

    let handled = exec
        .as_ref()
        .run(pin!(async {
            let mut handled = Vec::new();
            // Sequential driver code: each await is one expected message.
            let first = b.recv(&exec).await?;
            assert!(matches!(first, eth::Msg::RxBuffer { .. }));
            handled.push(first);
            let enable = b.recv(&exec).await?;
            assert_eq!(enable, eth::Msg::Enable);
            handled.push(enable);
            b.send(&exec, eth::Msg::EnableComplete).await?;
            for _ in 0..3 {
                let msg = b.recv(&exec).await?;
                let eth::Msg::TxPacket { buf, .. } = msg else {
                    panic!("expected txPacket, got {msg}");
                };
                handled.push(msg);
                b.send(&exec, eth::Msg::TxPacketDone { buf }).await?;
            }
            Ok::<_, Fault>(handled)
        }))
        .unwrap();

    let packets: Vec<_> = (0..3u32)
        .map(|i| eth::Msg::TxPacket {
            buf: i * 2048,
            len: 100 + i as u16,
        })
        .collect();
    assert_eq!(handled[..2], script);
    assert_eq!(handled[2..], packets);
    assert_eq!(b.counters().received, 5);
    assert_eq!(b.counters().sent, 4);
    assert!(log.reports().is_empty(), "{:?}", log.reports());
    assert!(peer_log.reports().is_empty(), "{:?}", peer_log.reports());
    assert_eq!(b.observer().inner().vars().tx_pending, 0);
    let platform = platform.borrow();
    assert!(platform.waits > 0, "the driver must have slept");
    assert!(
        platform.notifies.iter().all(|&c| c == CH),
        "{:?}",
        platform.notifies
    );
    let replies = [
        eth::Msg::EnableComplete,
        eth::Msg::TxPacketDone { buf: 0 },
        eth::Msg::TxPacketDone { buf: 2048 },
        eth::Msg::TxPacketDone { buf: 4096 },
    ];
    let got = got.borrow();
    assert!(
        !got.is_empty() && got[..] == replies[..got.len()],
        "{got:?}"
    );
}

#[test]
fn a_waiting_recv_reports_the_overrun_at_the_deadline_without_polling() {
    let r = region(4);
    let log = Recorder::default();
    let mut a = os(&r, 4, Supervisor::log(&log));
    let _silent_driver = raw(&r, 4, Side::B);
    let (fake, platform) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));

    let woke = exec.as_ref().run(pin!(async {
        a.send(&exec, eth::Msg::Enable).await.unwrap();
        assert_eq!(a.deadline_ns(), Some(1000 * MS), "enabling allows 1000 ms");
        select(a.recv(&exec), exec.sleep(Duration::from_millis(1500))).await
    }));

    assert!(matches!(woke, Either::Second(())), "the driver is silent");
    let reports = log.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].starts_with("component Net port eth: EthernetController in state enabling: timeout state overrun: limit 1000 ms, 1000.000001 ms elapsed; last messages: ?enable()"),
        "{}",
        reports[0]
    );
    assert_eq!(a.counters().violations, 1);
    // Woken once for the overrun (just past the deadline) and once for the
    // end of the select: no periodic wake-ups.
    assert_eq!(platform.borrow().waits, 2);
    // The clock restarted at the overrun.
    assert_eq!(a.deadline_ns(), Some(2000 * MS + 1));
}

#[test]
fn under_fatal_policy_the_overrun_ends_the_wait() {
    let r = region(4);
    let log = Recorder::default();
    let mut a = os(&r, 4, Supervisor::fatal(&log));
    let _silent_driver = raw(&r, 4, Side::B);
    let (fake, _platform) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));

    let (got, at) = exec.as_ref().run(pin!(async {
        a.send(&exec, eth::Msg::Enable).await.unwrap();
        (a.recv(&exec).await, exec.now_ns())
    }));

    assert!(
        matches!(
            got,
            Err(Fault::Violation(ViolationKind::TimeoutOverrun {
                limit_ms: 1000,
                ..
            }))
        ),
        "{got:?}"
    );
    assert_eq!(at, 1000 * MS + 1);
    assert_eq!(log.fatal.borrow().len(), 1);
}

#[test]
fn dropping_bad_slots_still_wakes_a_producer_waiting_for_space() {
    let r = region(2);
    let log = Recorder::default();
    let mut b = driver(&r, 2, Supervisor::log(&log));
    let mut peer = raw(&r, 2, Side::A);
    // The peer fills the ring with garbage and sleeps waiting for space.
    for _ in 0..2 {
        let _ = peer.tx.push(&[0xFF; SLOT]).unwrap();
    }
    assert_eq!(peer.tx.prepare_sleep(), Ok(Arm::Sleep));
    let (fake, platform) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));

    let woke = exec.as_ref().run(pin!(async {
        select(b.recv(&exec), exec.sleep(Duration::from_millis(1))).await
    }));

    assert!(matches!(woke, Either::Second(())), "nothing legal arrived");
    assert_eq!(b.counters().malformed, 2);
    assert_eq!(
        platform.borrow().notifies,
        [CH],
        "the freed slots must be announced even though nothing was delivered"
    );
}

#[test]
fn peers_of_the_same_protocol_version_talk_whatever_the_attach_order() {
    for driver_first in [false, true] {
        let r = region(4);
        let log = Recorder::default();
        let (mut a, mut b) = if driver_first {
            let b = driver(&r, 4, Supervisor::log(&log));
            (os(&r, 4, Supervisor::log(&log)), b)
        } else {
            let a = os(&r, 4, Supervisor::log(&log));
            // The driver has not attached: sending is fine meanwhile.
            let mut a = a;
            a.try_send(&eth::Msg::Enable, 0).unwrap();
            (a, driver(&r, 4, Supervisor::log(&log)))
        };
        if driver_first {
            a.try_send(&eth::Msg::Enable, 0).unwrap();
        }
        assert_eq!(b.try_recv(0), Ok(Some(eth::Msg::Enable)));
        b.try_send(&eth::Msg::EnableComplete, 0).unwrap();
        assert_eq!(a.try_recv(0), Ok(Some(eth::Msg::EnableComplete)));
        assert!(log.reports().is_empty(), "{:?}", log.reports());
    }
}

#[test]
fn peers_built_from_different_protocol_versions_refuse_to_talk() {
    const OLD: u64 = 0x0123_4567_89ab_cdef;
    let expected = format!(
        "component Rtl8139 port eth: built from different versions of protocol EthernetController: this side has hash {:#018x}, the peer 0x0123456789abcdef; port disabled",
        eth::HASH
    );
    // The old peer attaches first or second; it sends, or it only listens.
    for (peer_first, peer_sends) in [(true, true), (false, true), (true, false), (false, false)] {
        let r = region(4);
        let log = Recorder::default();
        let attach_peer = || {
            let mut p = untyped(&r, 4, Side::A);
            p.tx.publish_tag(OLD);
            p
        };
        let (mut peer, mut b) = if peer_first {
            let peer = attach_peer();
            (peer, driver(&r, 4, Supervisor::log(&log)))
        } else {
            let b = driver(&r, 4, Supervisor::log(&log));
            (attach_peer(), b)
        };
        if peer_sends {
            let _ = peer.tx.push(&slot_of(&eth::Msg::Enable)).unwrap();
            let got = b.try_recv(0);
            assert_eq!(
                got,
                Err(Fault::Version {
                    ours: eth::HASH,
                    theirs: OLD
                })
            );
        } else {
            let got = b.try_send(&eth::Msg::LinkChange { up: true }, 0);
            assert_eq!(
                got,
                Err(Fault::Version {
                    ours: eth::HASH,
                    theirs: OLD
                })
            );
            assert_eq!(peer.rx.pop(), Ok(None), "nothing reaches the other version");
        }
        // Reported once; the port stays refused.
        assert_eq!(
            b.try_send(&eth::Msg::LinkChange { up: true }, 0),
            Err(Fault::Version {
                ours: eth::HASH,
                theirs: OLD
            })
        );
        assert_eq!(log.reports(), std::slice::from_ref(&expected));
        assert_eq!(b.counters().received, 0);
    }
}

#[test]
fn a_message_from_a_peer_that_published_no_hash_is_refused() {
    let r = region(4);
    let log = Recorder::default();
    let mut b = driver(&r, 4, Supervisor::fatal(&log));
    let mut peer = untyped(&r, 4, Side::A);
    let _ = peer.tx.push(&slot_of(&eth::Msg::Enable)).unwrap();

    assert_eq!(
        b.try_recv(0),
        Err(Fault::Version {
            ours: eth::HASH,
            theirs: 0
        })
    );
    let fatal = log.fatal.borrow();
    assert_eq!(fatal.len(), 1);
    assert!(
        fatal[0].contains("the peer sent messages without publishing its protocol hash (this side speaks protocol EthernetController"),
        "{}",
        fatal[0]
    );
}

#[test]
fn each_protocol_has_its_own_hash_and_ports_publish_it() {
    use dingo_protocols::{lifecycle, timer};
    let hashes = [eth::HASH, lifecycle::HASH, timer::HASH];
    assert!(hashes.iter().all(|&h| h != 0));
    assert!(hashes[0] != hashes[1] && hashes[1] != hashes[2] && hashes[0] != hashes[2]);
    let r = region(4);
    let log = Recorder::default();
    let _a = os(&r, 4, Supervisor::log(&log));
    let b = untyped(&r, 4, Side::B);
    assert_eq!(b.rx.peer_tag(), eth::HASH);
}
