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
                error: eth::RESTARTED
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
                error: eth::RESTARTED
            },
            eth::Msg::TxPacketAbort {
                buf: 0x10_0800,
                error: eth::RESTARTED
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
            error: eth::RESTARTED
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

fn blk_client() -> Client<blk::Msg, blk::Observer> {
    Client::new(blk::Observer::new(0))
}

fn read(req: u32, block: u64) -> blk::Msg {
    blk::Msg::Read {
        req,
        block,
        count: 8,
        buf: 0x1000 * req,
    }
}

fn write(req: u32, block: u64) -> blk::Msg {
    blk::Msg::Write {
        req,
        block,
        count: 8,
        buf: 0x1000 * req,
    }
}

const DISK: blk::Msg = blk::Msg::Ready {
    blocks: 32768,
    block_size: 512,
};

fn done(req: u32, status: u8) -> blk::Msg {
    blk::Msg::Done { req, status }
}

/// A client that saw the disk and has `reqs` outstanding.
fn disk_with(reqs: &[blk::Msg]) -> Client<blk::Msg, blk::Observer> {
    let mut c = blk_client();
    c.recv(DISK);
    for &m in reqs {
        assert_eq!(c.send(m), Outgoing::Wire);
    }
    c.delivered.clear();
    c
}

#[test]
fn block_resubmits_what_was_outstanding_once_the_fresh_driver_is_ready() {
    let mut c = disk_with(&[read(1, 0), write(2, 64), read(3, 8)]);
    // The old instance answered one before it died.
    c.recv(done(1, blk::OK));
    assert_eq!(c.delivered, vec![done(1, blk::OK)]);
    c.delivered.clear();
    let r = c.restart();
    assert_eq!((r.resubmitted, r.answered), (2, 0));
    assert_eq!(c.shadow.outstanding(), 2);
    // Nothing goes to the fresh driver before its `ready`; a request sent
    // meanwhile is kept with the others.
    assert!(c.replays().is_empty());
    assert_eq!(c.send(read(4, 16)), Outgoing::Answered);
    c.recv(DISK);
    assert!(c.delivered.is_empty(), "the client knew the disk: absorbed");
    let mut provider = blk::Observer::new(0);
    provider.observe(&DISK, Direction::Out, 1).unwrap();
    let again = c.replays();
    assert_eq!(again, vec![write(2, 64), read(3, 8), read(4, 16)]);
    for m in &again {
        provider.observe(m, Direction::In, 2).unwrap();
    }
    assert_eq!(provider.vars().pending, 3);
    for req in [2, 3, 4] {
        c.recv(done(req, blk::OK));
    }
    assert_eq!(
        c.delivered,
        vec![done(2, blk::OK), done(3, blk::OK), done(4, blk::OK)],
        "each answered once"
    );
    assert_eq!(c.shadow.outstanding(), 0);
    assert_eq!(c.send(read(5, 0)), Outgoing::Wire);
    let s = c.shadow.stats();
    assert_eq!((s.restarts, s.absorbed, s.replayed.resubmitted), (1, 1, 2));
}

#[test]
fn block_the_old_session_ends_with_the_disk_gone_for_its_observer() {
    let mut c = disk_with(&[read(1, 0)]);
    c.restart();
    let v = c
        .wire
        .violation(tingu_rt::ViolationKind::UnexpectedMessage, None);
    let shown: Vec<String> = v.history().map(|e| e.to_string()).collect();
    assert_eq!(
        shown.last().map(String::as_str),
        Some("!gone()"),
        "{shown:?}"
    );
    // The new session starts where a driver's does: no disk yet.
    c.recv(DISK);
    assert_eq!(c.replays(), vec![read(1, 0)]);
}

#[test]
fn block_a_fresh_driver_with_another_disk_gets_nothing_of_the_old_one() {
    let mut c = disk_with(&[read(1, 0), write(2, 64)]);
    c.restart();
    assert_eq!(c.send(read(3, 0)), Outgoing::Answered);
    let other = blk::Msg::Ready {
        blocks: 1024,
        block_size: 4096,
    };
    c.recv(other);
    assert!(
        c.replays().is_empty(),
        "nothing resubmitted to another disk"
    );
    assert_eq!(
        c.delivered,
        vec![
            done(1, blk::GONE),
            done(2, blk::GONE),
            done(3, blk::GONE),
            blk::Msg::Gone,
            other
        ]
    );
    assert_eq!(c.shadow.outstanding(), 0);
    assert_eq!(c.send(read(4, 0)), Outgoing::Wire);
}

#[test]
fn block_requests_outstanding_without_a_disk_are_answered_gone() {
    let mut c = blk_client();
    // Sent before the disk was there (the protocol allows it: answered GONE).
    c.send(read(1, 0));
    c.send(read(2, 0));
    let r = c.restart();
    assert_eq!((r.resubmitted, r.answered), (0, 2));
    assert_eq!(c.delivered, vec![done(1, blk::GONE), done(2, blk::GONE)]);
    assert!(c.replays().is_empty());
    // The fresh driver's disk is news to the client.
    c.recv(DISK);
    assert_eq!(c.delivered.last(), Some(&DISK));
    assert_eq!(c.send(read(3, 0)), Outgoing::Wire);
}

#[test]
fn block_a_second_restart_before_ready_resubmits_each_request_once() {
    let mut c = disk_with(&[read(1, 0), read(2, 8)]);
    c.restart();
    c.restart();
    c.recv(DISK);
    assert_eq!(c.replays(), vec![read(1, 0), read(2, 8)]);
    assert!(c.replays().is_empty());
    // A restart after the resubmission: sent once more, to the third.
    c.restart();
    c.recv(DISK);
    assert_eq!(c.replays(), vec![read(1, 0), read(2, 8)]);
    assert!(c.delivered.is_empty());
}

#[test]
fn block_holds_the_client_when_its_records_are_full() {
    let mut c = blk_client();
    c.recv(DISK);
    for i in 0..BLOCK_CAPACITY as u32 {
        assert_eq!(c.send(read(i, 0)), Outgoing::Wire);
    }
    assert_eq!(c.send(read(999, 0)), Outgoing::Hold);
    c.recv(done(0, blk::OK));
    assert_eq!(c.send(read(999, 0)), Outgoing::Wire);
}

#[test]
fn block_a_gone_disk_then_a_restart_answers_the_crossing_requests() {
    // The old driver said `gone`; a request that crossed it was still
    // unanswered when it died: the shadow answers it GONE.
    let mut c = disk_with(&[]);
    c.recv(blk::Msg::Gone);
    c.send(read(1, 0));
    c.delivered.clear();
    let r = c.restart();
    assert_eq!(r.answered, 1);
    assert_eq!(c.delivered, vec![done(1, blk::GONE)]);
}
