//! The shadows against the protocols' observers: what they replay must be
//! legal for a fresh provider, what they end the old session with must be
//! legal for the old one, and the client must never see a reply twice.

use super::*;
use tingu_rt::{Direction, Observer};

/// A client end as the port drives it: the shadow and an observer of the
/// wire (mirror side), and what reached the client.
struct Client<M: Shadowed, O> {
    shadow: M::Shadow,
    wire: O,
    delivered: Vec<M>,
    now: u64,
}

impl<M: Shadowed, O: Observer<Msg = M>> Client<M, O> {
    fn new(wire: O) -> Self {
        Client {
            shadow: M::Shadow::default(),
            wire,
            delivered: Vec::new(),
            now: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1000;
        self.now
    }

    /// The client sends `msg`; returns what the shadow decided.
    fn send(&mut self, msg: M) -> Outgoing {
        let verdict = self.shadow.outgoing(&msg);
        if verdict == Outgoing::Wire {
            let now = self.tick();
            self.wire
                .observe(&msg, Direction::In, now)
                .unwrap_or_else(|v| panic!("client sent an illegal {msg}: {v}"));
            self.shadow.sent(&msg);
        }
        verdict
    }

    /// `msg` arrives from the provider.
    fn recv(&mut self, msg: M) {
        let now = self.tick();
        self.wire
            .observe(&msg, Direction::Out, now)
            .unwrap_or_else(|v| panic!("provider sent an illegal {msg}: {v}"));
        if self.shadow.received(&msg) == Incoming::Deliver {
            self.delivered.push(msg);
        }
        self.drain_local();
    }

    fn drain_local(&mut self) {
        while let Some(m) = self.shadow.local() {
            self.delivered.push(m);
        }
    }

    /// The provider restarted: the old session ends, the observer starts
    /// a new one. Returns the replay plan.
    fn restart(&mut self) -> Replay {
        let now = self.tick();
        let wire = &mut self.wire;
        let r = self.shadow.peer_restarted(&mut |m, flow| {
            let dir = flow.direction(true);
            wire.observe(m, dir, now)
                .unwrap_or_else(|v| panic!("farewell {m} illegal in the old session: {v}"));
        });
        self.wire.restart(now);
        self.drain_local();
        r
    }

    /// Everything the shadow replays now, observed on the new session.
    fn replays(&mut self) -> Vec<M> {
        let mut out = Vec::new();
        while let Some(m) = self.shadow.replay() {
            let now = self.tick();
            self.wire
                .observe(&m, Direction::In, now)
                .unwrap_or_else(|v| panic!("replayed {m} illegal in the new session: {v}"));
            self.shadow.replayed();
            out.push(m);
        }
        out
    }
}

fn eth_client() -> Client<eth::Msg, eth::Observer> {
    Client::new(eth::Observer::new(0))
}

/// An enabled client with `rx` buffers lent (at 0x800 * i) and `tx`
/// transmits outstanding (at 0x10_0000 + 0x800 * i).
fn enabled(rx: u32, tx: u32) -> Client<eth::Msg, eth::Observer> {
    let mut c = eth_client();
    assert_eq!(c.send(eth::Msg::Enable), Outgoing::Wire);
    c.recv(eth::Msg::MacAddress {
        mac: 0x5254_0012_3456,
    });
    c.recv(eth::Msg::EnableComplete);
    c.recv(eth::Msg::LinkChange { up: true });
    for i in 0..rx {
        c.send(eth::Msg::RxBuffer {
            buf: 0x800 * i,
            len: 2048,
        });
    }
    for i in 0..tx {
        c.send(eth::Msg::TxPacket {
            buf: 0x10_0000 + 0x800 * i,
            len: 60 + i as u16,
        });
    }
    c.delivered.clear();
    c
}

#[test]
fn ethernet_replays_enable_then_buffers_then_resubmits_after_enable_complete() {
    let mut c = enabled(3, 2);
    let r = c.restart();
    assert_eq!(
        r,
        Replay {
            state: 4,
            resubmitted: 2,
            answered: 0
        }
    );
    // The client is held back until the replay is done.
    assert_eq!(
        c.send(eth::Msg::TxPacket {
            buf: 0x20_0000,
            len: 70
        }),
        Outgoing::Hold
    );
    assert_eq!(
        c.replays(),
        vec![
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
    // Transmits wait for the fresh driver's enableComplete.
    c.recv(eth::Msg::MacAddress {
        mac: 0x5254_0012_3456,
    });
    c.recv(eth::Msg::EnableComplete);
    c.recv(eth::Msg::LinkChange { up: true });
    assert!(
        c.delivered.is_empty(),
        "replies the client had: {:?}",
        c.delivered
    );
    assert_eq!(
        c.replays(),
        vec![
            eth::Msg::TxPacket {
                buf: 0x10_0000,
                len: 60
            },
            eth::Msg::TxPacket {
                buf: 0x10_0800,
                len: 61
            },
        ]
    );
    assert_eq!(
        c.send(eth::Msg::TxPacket {
            buf: 0x20_0000,
            len: 70
        }),
        Outgoing::Wire
    );
    assert_eq!(c.shadow.outstanding(), 3);
    // Answers from the fresh driver reach the client.
    c.recv(eth::Msg::TxPacketDone { buf: 0x10_0000 });
    c.recv(eth::Msg::RxPacket {
        buf: 0x800,
        len: 60,
    });
    c.recv(eth::Msg::LinkChange { up: false });
    assert_eq!(
        c.delivered,
        vec![
            eth::Msg::TxPacketDone { buf: 0x10_0000 },
            eth::Msg::RxPacket {
                buf: 0x800,
                len: 60
            },
            eth::Msg::LinkChange { up: false },
        ]
    );
    let s = c.shadow.stats();
    assert_eq!((s.restarts, s.absorbed), (1, 3));
}

#[test]
fn ethernet_answers_arriving_during_resubmission_leave_nothing_twice() {
    let mut c = enabled(0, 4);
    c.restart();
    assert_eq!(c.replays(), vec![eth::Msg::Enable]);
    c.recv(eth::Msg::EnableComplete);
    // Two resubmitted; the fresh driver answers them out of order before
    // the rest go out.
    for _ in 0..2 {
        let m = c.shadow.replay().unwrap();
        let now = c.tick();
        c.wire.observe(&m, Direction::In, now).unwrap();
        c.shadow.replayed();
    }
    c.recv(eth::Msg::TxPacketAbort {
        buf: 0x10_0800,
        error: 3,
    });
    c.recv(eth::Msg::TxPacketDone { buf: 0x10_0000 });
    assert_eq!(
        c.replays(),
        vec![
            eth::Msg::TxPacket {
                buf: 0x10_1000,
                len: 62
            },
            eth::Msg::TxPacket {
                buf: 0x10_1800,
                len: 63
            },
        ]
    );
    assert_eq!(c.shadow.outstanding(), 2);
    assert_eq!(c.delivered.len(), 2);
}

#[test]
fn ethernet_a_restart_while_enabling_delivers_the_fresh_replies() {
    let mut c = eth_client();
    c.send(eth::Msg::RxBuffer { buf: 0, len: 2048 });
    c.send(eth::Msg::Enable);
    c.restart();
    assert_eq!(
        c.replays(),
        vec![eth::Msg::Enable, eth::Msg::RxBuffer { buf: 0, len: 2048 }]
    );
    c.recv(eth::Msg::MacAddress { mac: 7 });
    c.recv(eth::Msg::EnableComplete);
    c.recv(eth::Msg::LinkChange { up: true });
    assert_eq!(
        c.delivered,
        vec![
            eth::Msg::MacAddress { mac: 7 },
            eth::Msg::EnableComplete,
            eth::Msg::LinkChange { up: true },
        ]
    );
    assert_eq!(
        c.send(eth::Msg::TxPacket {
            buf: 0x800,
            len: 60
        }),
        Outgoing::Wire
    );
}

#[test]
fn ethernet_a_restart_while_disabling_is_answered_by_the_shadow() {
    let mut c = enabled(2, 1);
    c.send(eth::Msg::Disable);
    let r = c.restart();
    assert_eq!(r.answered, 3);
    assert!(c.replays().is_empty());
    assert_eq!(
        c.delivered,
        vec![
            eth::Msg::TxPacketAbort {
                buf: 0x10_0000,
                error: ABORT_RESTARTED
            },
            eth::Msg::RxBufferReturn { buf: 0 },
            eth::Msg::RxBufferReturn { buf: 0x800 },
            eth::Msg::DisableComplete,
        ]
    );
    // The client may enable the fresh driver again.
    assert_eq!(c.send(eth::Msg::Enable), Outgoing::Wire);
}

#[test]
fn ethernet_a_fresh_driver_that_cannot_enable_gets_transmits_aborted_and_the_link_down() {
    let mut c = enabled(1, 2);
    c.restart();
    c.replays();
    c.recv(eth::Msg::EnableFailed { error: 9 });
    assert_eq!(
        c.delivered,
        vec![
            eth::Msg::LinkChange { up: false },
            eth::Msg::TxPacketAbort {
                buf: 0x10_0000,
                error: ABORT_RESTARTED
            },
            eth::Msg::TxPacketAbort {
                buf: 0x10_0800,
                error: ABORT_RESTARTED
            },
        ]
    );
    c.delivered.clear();
    // Later transmits are answered at once; nothing reaches the wire.
    assert_eq!(
        c.send(eth::Msg::TxPacket {
            buf: 0x30_0000,
            len: 80
        }),
        Outgoing::Answered
    );
    c.drain_local();
    assert_eq!(
        c.delivered,
        vec![eth::Msg::TxPacketAbort {
            buf: 0x30_0000,
            error: ABORT_RESTARTED
        }]
    );
    // The next instance is tried again, with the buffer still lent.
    c.restart();
    assert_eq!(
        c.replays(),
        vec![eth::Msg::Enable, eth::Msg::RxBuffer { buf: 0, len: 2048 }]
    );
}

#[test]
fn ethernet_a_stopped_queue_is_started_again_after_the_restart() {
    let mut c = enabled(0, 1);
    c.recv(eth::Msg::TxStopQueue);
    c.delivered.clear();
    c.restart();
    c.replays();
    c.recv(eth::Msg::EnableComplete);
    assert_eq!(c.delivered, vec![eth::Msg::TxStartQueue]);
}

#[test]
fn ethernet_holds_the_client_when_its_records_are_full() {
    let mut c = enabled(0, 0);
    for i in 0..CAPACITY as u32 {
        assert_eq!(
            c.send(eth::Msg::TxPacket {
                buf: 0x800 * i,
                len: 60
            }),
            Outgoing::Wire
        );
    }
    assert_eq!(
        c.send(eth::Msg::TxPacket { buf: 0, len: 60 }),
        Outgoing::Hold
    );
    c.recv(eth::Msg::TxPacketDone { buf: 0 });
    assert_eq!(
        c.send(eth::Msg::TxPacket { buf: 0, len: 60 }),
        Outgoing::Wire
    );
}

#[test]
fn ethernet_the_fresh_drivers_replies_pass_a_provider_observer() {
    // The provider's view of the new session: every replayed message and
    // every reply the fresh driver gives is legal there.
    let mut c = enabled(2, 2);
    let mut provider = eth::Observer::new(0);
    c.restart();
    for m in c.replays() {
        provider.observe(&m, Direction::In, 1).unwrap();
    }
    for m in [eth::Msg::MacAddress { mac: 1 }, eth::Msg::EnableComplete] {
        provider.observe(&m, Direction::Out, 2).unwrap();
        c.recv(m);
    }
    for m in c.replays() {
        provider.observe(&m, Direction::In, 3).unwrap();
    }
    assert_eq!(provider.vars().tx_pending, 2);
    assert_eq!(provider.vars().rx_lent, 2);
}

fn lc_client() -> Client<lc::Msg, lc::Observer> {
    Client::new(lc::Observer::new(0))
}

#[test]
fn lifecycle_a_running_driver_is_unplugged_then_started_again() {
    let mut c = lc_client();
    c.send(lc::Msg::Start);
    c.recv(lc::Msg::StartComplete);
    c.delivered.clear();
    let r = c.restart();
    assert_eq!(r.state, 1);
    assert_eq!(c.send(lc::Msg::Stop), Outgoing::Hold);
    assert_eq!(c.replays(), vec![lc::Msg::Start]);
    c.recv(lc::Msg::StartComplete);
    assert!(c.delivered.is_empty());
    assert_eq!(c.send(lc::Msg::Stop), Outgoing::Wire);
    // The observer's history tells the restart in the protocol's terms.
    let v = c
        .wire
        .violation(tingu_rt::ViolationKind::UnexpectedMessage, None);
    let shown: Vec<String> = v.history().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "?start()",
            "!startComplete()",
            "?unplugged()",
            "!stopComplete()",
            "?start()",
            "!startComplete()",
            "?stop()"
        ]
    );
}

#[test]
fn lifecycle_a_start_in_flight_is_resubmitted_and_its_reply_delivered() {
    let mut c = lc_client();
    c.send(lc::Msg::Start);
    assert_eq!(c.restart().resubmitted, 1);
    assert_eq!(c.replays(), vec![lc::Msg::Start]);
    c.recv(lc::Msg::StartComplete);
    assert_eq!(c.delivered, vec![lc::Msg::StartComplete]);
}

#[test]
fn lifecycle_a_stop_in_flight_is_answered_by_the_shadow() {
    let mut c = lc_client();
    c.send(lc::Msg::Start);
    c.recv(lc::Msg::StartComplete);
    c.send(lc::Msg::Stop);
    c.delivered.clear();
    assert_eq!(c.restart().answered, 1);
    assert!(c.replays().is_empty());
    assert_eq!(c.delivered, vec![lc::Msg::StopComplete]);
    assert_eq!(c.shadow.outstanding(), 0);
}

#[test]
fn lifecycle_nothing_happens_for_a_driver_never_started() {
    let mut c = lc_client();
    assert_eq!(c.restart(), Replay::default());
    assert!(c.replays().is_empty());
    assert_eq!(c.send(lc::Msg::Start), Outgoing::Wire);
}
