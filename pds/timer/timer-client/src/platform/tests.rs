use core::cell::RefCell;
use core::pin::pin;
use core::time::Duration;

use dingo_protocols::timer::Msg;
use dingo_rt::executor::{Either, Executor, Platform, select};

use super::*;
use crate::test_util::{Recorder, pair, region};
use dingo_protocols::timer::REJECT_FULL;

const TIMER_CH: u8 = 3;
const MS: u64 = 1_000_000;

/// The timer PD and the rest of the world as the client's inner platform:
/// `wait` serves the requests that reached it, then lets time jump to the
/// next event (an expiry or a scripted notification on another channel).
struct World<'r> {
    now: u64,
    port: TimerPort<'r>,
    live: Vec<(u32, u64)>,
    /// Every message the timer side received, in order.
    seen: &'r RefCell<Vec<Msg>>,
    /// Behave like a timer PD whose `fired` always crossed the cancel.
    ignore_cancels: bool,
    /// Reject this many requests before accepting any.
    rejects: u32,
    /// (time, channel bits) of notifications from other PDs.
    others: Vec<(u64, u64)>,
    waits: u32,
}

impl<'r> World<'r> {
    fn new(port: TimerPort<'r>, seen: &'r RefCell<Vec<Msg>>) -> Self {
        World {
            now: 0,
            port,
            live: Vec::new(),
            seen,
            ignore_cancels: false,
            rejects: 0,
            others: Vec::new(),
            waits: 0,
        }
    }

    fn answer(&mut self, msg: Msg) {
        self.port.try_send(&msg, self.now).unwrap();
    }

    /// Takes every waiting message; true if any answer went out.
    fn serve(&mut self) -> bool {
        let mut answered = false;
        while let Some(msg) = self.port.try_recv(self.now).unwrap() {
            self.seen.borrow_mut().push(msg);
            match msg {
                Msg::Request { id, deadline_ns } if self.rejects > 0 => {
                    let _ = deadline_ns;
                    self.rejects -= 1;
                    self.answer(Msg::Rejected {
                        id,
                        reason: REJECT_FULL,
                    });
                    answered = true;
                }
                Msg::Request { id, deadline_ns } => self.live.push((id, deadline_ns)),
                Msg::Cancel { id } if !self.ignore_cancels => {
                    if let Some(at) = self.live.iter().position(|l| l.0 == id) {
                        self.live.remove(at);
                        self.answer(Msg::Cancelled { id });
                        answered = true;
                    }
                }
                _ => {}
            }
        }
        answered
    }
}

impl Platform for World<'_> {
    fn wait(&mut self) -> u64 {
        self.waits += 1;
        let timer = 1 << TIMER_CH;
        if self.serve() {
            return timer;
        }
        let fire = self
            .live
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.1)
            .map(|(i, l)| (i, l.1));
        let other = self.others.first().copied();
        match (fire, other) {
            (Some((i, at)), o) if o.is_none_or(|o| at <= o.0) => {
                self.now = self.now.max(at);
                let (id, _) = self.live.remove(i);
                self.answer(Msg::Fired { id });
                timer
            }
            (_, Some((at, bits))) => {
                self.others.remove(0);
                self.now = self.now.max(at);
                bits
            }
            _ => panic!("the client would block for ever at {} ns", self.now),
        }
    }
    fn notify(&mut self, _: u8) {}
    fn irq_ack(&mut self, _: u8) {}
    fn now_ns(&self) -> u64 {
        self.now
    }
    fn set_deadline(&mut self, _: Option<u64>) {
        panic!("the inner platform never gets the deadline");
    }
}

fn requests(seen: &[Msg]) -> Vec<(u32, u64)> {
    seen.iter()
        .filter_map(|m| match *m {
            Msg::Request { id, deadline_ns } => Some((id, deadline_ns)),
            _ => None,
        })
        .collect()
}

#[test]
fn sleeper_ignores_answers_to_replaced_requests() {
    let mut s = Sleeper::new();
    assert_eq!(s.next_message(), None);
    s.set_deadline(Some(200));
    let first = s.next_message().unwrap();
    assert_eq!(
        first,
        Msg::Request {
            id: 0,
            deadline_ns: 200
        }
    );
    s.sent(&first);
    assert_eq!(s.next_message(), None);
    // An earlier deadline replaces the request.
    s.set_deadline(Some(100));
    assert_eq!(s.next_message(), Some(Msg::Cancel { id: 0 }));
    s.sent(&Msg::Cancel { id: 0 });
    let second = s.next_message().unwrap();
    assert_eq!(
        second,
        Msg::Request {
            id: 1,
            deadline_ns: 100
        }
    );
    s.sent(&second);
    // The old request's fired crossed the cancel: stale, not due.
    assert!(!s.answer(&Msg::Fired { id: 0 }));
    assert!(!s.answer(&Msg::Cancelled { id: 0 }));
    assert!(!s.take_due());
    assert!(s.answer(&Msg::Fired { id: 1 }));
    assert!(s.take_due());
    assert!(!s.take_due());
    // Answered, so going back to no deadline sends nothing.
    s.set_deadline(None);
    assert_eq!(s.next_message(), None);
}

#[test]
fn a_later_deadline_or_none_leaves_the_standing_request() {
    let mut s = Sleeper::new();
    s.set_deadline(Some(100));
    let req = s.next_message().unwrap();
    s.sent(&req);
    // Pushed later, dropped, set again later: nothing to send.
    for want in [Some(150), None, Some(300)] {
        s.set_deadline(want);
        assert_eq!(s.next_message(), None, "{want:?}");
    }
    // The standing request fires at 100: then the wanted one is asked.
    assert!(s.answer(&Msg::Fired { id: 0 }));
    assert!(s.take_due());
    assert_eq!(
        s.next_message(),
        Some(Msg::Request {
            id: 1,
            deadline_ns: 300
        })
    );
    // Without a deadline an answered request is not replaced.
    s.set_deadline(None);
    assert_eq!(s.next_message(), None);
}

#[test]
fn sleeper_reasks_after_a_rejection() {
    let mut s = Sleeper::new();
    s.set_deadline(Some(50));
    let req = s.next_message().unwrap();
    s.sent(&req);
    assert!(s.answer(&Msg::Rejected {
        id: 0,
        reason: REJECT_FULL
    }));
    assert!(s.take_due());
    assert_eq!(
        s.next_message(),
        Some(Msg::Request {
            id: 1,
            deadline_ns: 50
        })
    );
}

#[test]
fn async_sleep_resumes_after_the_delay_through_the_timer() {
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut world = World::new(server, &seen);
    world.now = 5 * MS;
    let ex = pin!(Executor::<'_, _>::new(TimerPlatform::new(world, client)));
    let (start, end) = ex.as_ref().run(pin!(async {
        let start = ex.now_ns();
        ex.sleep(Duration::from_millis(10)).await;
        (start, ex.now_ns())
    }));
    assert_eq!(start, 5 * MS);
    assert!(end >= start + 10 * MS, "resumed at {end}");
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn stale_fired_does_not_end_a_newer_sleep() {
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut world = World::new(server, &seen);
    world.ignore_cancels = true;
    let mut p = TimerPlatform::new(world, client);
    // A later deadline: the 10 ms request stands and fires first; the
    // wait goes on to 25 ms on a new request.
    p.set_deadline(Some(10 * MS));
    p.set_deadline(Some(25 * MS));
    assert_eq!(p.wait(), 0);
    assert!(p.now_ns() >= 25 * MS, "woke at {}", p.now_ns());
    assert_eq!(
        *seen.borrow(),
        [
            Msg::Request {
                id: 0,
                deadline_ns: 10 * MS
            },
            Msg::Request {
                id: 1,
                deadline_ns: 25 * MS
            },
        ]
    );
    assert_eq!(p.inner.waits, 2);
    // An earlier one replaces the request: the timer side fires the old
    // one anyway (the cancel crossed it), at 60 ms, after the new one's
    // 40 ms; then a sleep to 80 ms must not end at that stale 60 ms.
    p.set_deadline(Some(60 * MS));
    p.set_deadline(Some(40 * MS));
    assert_eq!(p.wait(), 0);
    assert!(p.now_ns() >= 40 * MS, "woke at {}", p.now_ns());
    p.set_deadline(Some(80 * MS));
    assert_eq!(p.wait(), 0);
    assert!(p.now_ns() >= 80 * MS, "woke at {}", p.now_ns());
    assert!(seen.borrow().contains(&Msg::Cancel { id: 2 }));
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn other_channels_wake_the_executor_and_the_sleep_is_replaced() {
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut world = World::new(server, &seen);
    world.others.push((2 * MS, 1 << 5));
    let ex = pin!(Executor::<'_, _>::new(TimerPlatform::new(world, client)));
    let (first, woke, end) = ex.as_ref().run(pin!(async {
        let first = match select(ex.channel(5), ex.sleep(Duration::from_millis(30))).await {
            Either::First(()) => "channel",
            Either::Second(()) => "sleep",
        };
        let woke = ex.now_ns();
        ex.sleep(Duration::from_millis(4)).await;
        (first, woke, ex.now_ns())
    }));
    assert_eq!(first, "channel");
    assert_eq!(woke, 2 * MS);
    assert!(end >= 6 * MS, "resumed at {end}");
    // The 30 ms request was cancelled when the select dropped it.
    assert_eq!(
        *seen.borrow(),
        [
            Msg::Request {
                id: 0,
                deadline_ns: 30 * MS
            },
            Msg::Cancel { id: 0 },
            Msg::Request {
                id: 1,
                deadline_ns: 6 * MS
            },
        ]
    );
}

#[test]
fn a_full_ring_delays_requests_but_the_last_deadline_wins() {
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut p = TimerPlatform::new(World::new(server, &seen), client);
    // Each earlier deadline is a cancel and a request; the timer side
    // reads nothing until the wait, so the 16-slot ring fills up.
    for i in (1..=40).rev() {
        p.set_deadline(Some(i * MS + 100 * MS));
    }
    assert!(p.blocked);
    assert_eq!(p.wait(), 0);
    assert!(p.now_ns() >= 101 * MS);
    let reqs = requests(&seen.borrow());
    assert_eq!(reqs.last().map(|r| r.1), Some(101 * MS));
    assert!(reqs.len() < 40, "{} requests", reqs.len());
    assert!(p.inner.live.is_empty(), "{:?}", p.inner.live);
}

#[test]
fn rejected_sleep_asks_again_and_never_ends_early() {
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut world = World::new(server, &seen);
    world.rejects = 2;
    let ex = pin!(Executor::<'_, _>::new(TimerPlatform::new(world, client)));
    let end = ex.as_ref().run(pin!(async {
        ex.sleep(Duration::from_millis(7)).await;
        ex.now_ns()
    }));
    assert!(end >= 7 * MS);
    assert_eq!(requests(&seen.borrow()).len(), 3);
}

#[test]
fn embedded_hal_async_delay_is_a_timer_request() {
    use embedded_hal_async::delay::DelayNs;
    let rec = Recorder::default();
    let seen = RefCell::new(Vec::new());
    let mut reg = region();
    let (server, client) = pair(&mut reg, TIMER_CH, &rec);
    let mut world = World::new(server, &seen);
    world.now = 2 * MS;
    let ex = pin!(Executor::<'_, _>::new(TimerPlatform::new(world, client)));
    let (start, end) = ex.as_ref().run(pin!(async {
        let mut delay = crate::delay::Delay::new(&ex);
        let start = ex.now_ns();
        delay.delay_ms(7).await;
        delay.delay_us(1500).await;
        (start, ex.now_ns())
    }));
    assert!(end >= start + 8_500_000, "resumed at {end}");
    let requests: Vec<u64> = seen
        .borrow()
        .iter()
        .filter_map(|m| match *m {
            Msg::Request { deadline_ns, .. } => Some(deadline_ns),
            _ => None,
        })
        .collect();
    assert_eq!(requests.first(), Some(&(start + 7 * MS)), "{requests:?}");
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}
