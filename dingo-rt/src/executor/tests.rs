use super::*;
use crate::port::{Port, Side};
use crate::test_util::{Fake, Peer, Region, Rng};
use std::cell::RefCell;
use std::rc::Rc;

const MS: u64 = 1_000_000;

#[test]
fn sleep_resumes_at_deadline_despite_early_wakeups() {
    // Spurious wake-ups (no bits, and a channel nobody waits on) before the
    // deadline must not end the sleep.
    let (fake, log) = Fake::new(&[(2 * MS, 0), (5 * MS, 1 << 7), (9 * MS, 0)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let woke_at = exec.as_ref().run(pin!(async {
        exec.sleep(Duration::from_millis(10)).await;
        exec.now_ns()
    }));
    assert_eq!(woke_at, 10 * MS);
    let log = log.borrow();
    assert_eq!(log.waits, 4, "three early wake-ups, then the deadline");
    assert_eq!(log.deadlines, [Some(10 * MS), None]);
}

#[test]
fn random_sleeps_never_end_early() {
    for seed in 0..50 {
        let mut rng = Rng::new(seed);
        let script: Vec<(u64, u64)> = (0..40)
            .map(|_| (rng.below(500 * MS), rng.next_u64() & 0xff))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let sleeps: Vec<u64> = (0..10).map(|_| rng.below(60 * MS)).collect();
        let (fake, _log) = Fake::new(&script);
        let exec = pin!(Executor::<'_, Fake>::new(fake));
        exec.as_ref().run(pin!(async {
            for &d in &sleeps {
                let start = exec.now_ns();
                exec.sleep(Duration::from_nanos(d)).await;
                let end = exec.now_ns();
                assert!(end >= start + d, "seed {seed}: slept {} < {d}", end - start);
            }
        }));
    }
}

#[test]
fn earliest_deadline_of_all_tasks_is_programmed() {
    let (fake, log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake, 2>::new(fake));
    let order = RefCell::new(Vec::new());
    let slow = pin!(async {
        exec.sleep_until(5 * MS).await;
        order.borrow_mut().push(("slow", exec.now_ns()));
    });
    let fast = pin!(async {
        exec.sleep_until(3 * MS).await;
        order.borrow_mut().push(("fast", exec.now_ns()));
    });
    exec.spawn(slow).unwrap();
    exec.spawn(fast).unwrap();
    exec.as_ref().run(pin!(exec.sleep_until(6 * MS)));
    assert_eq!(*order.borrow(), [("fast", 3 * MS), ("slow", 5 * MS)]);
    assert_eq!(
        log.borrow().deadlines,
        [Some(3 * MS), Some(5 * MS), Some(6 * MS), None]
    );
}

#[test]
fn select_returns_the_first_ready_and_drops_the_rest() {
    struct DropFlag<'f>(&'f Cell<bool>);
    impl Drop for DropFlag<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    let (fake, _log) = Fake::new(&[(MS, 1 << 2), (2 * MS, 1 << 1)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let loser_dropped = Cell::new(false);
    let (winner, dropped_on_return) = exec.as_ref().run(pin!(async {
        let flag = DropFlag(&loser_dropped);
        let loser = async {
            let _flag = flag;
            exec.channel(1).await;
        };
        let winner = select(loser, exec.channel(2)).await;
        (winner, loser_dropped.get())
    }));
    assert_eq!(winner, Either::Second(()));
    assert!(
        dropped_on_return,
        "the losing branch is dropped when select returns"
    );

    // Both ready in the same wait: the first argument wins (IF before ELIF).
    let (fake, _log) = Fake::new(&[(MS, 1 << 1 | 1 << 2)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let winner = exec
        .as_ref()
        .run(pin!(select(exec.channel(2), exec.channel(1))));
    assert_eq!(winner, Either::First(()));

    // select3 where only the deadline comes.
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let winner = exec.as_ref().run(pin!(async {
        select3(
            exec.channel(4),
            exec.channel(5),
            exec.sleep(Duration::from_millis(3)),
        )
        .await
    }));
    assert_eq!(winner, Either3::Third(()));

    let (fake, _log) = Fake::new(&[(4 * MS, 1 << 5)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let winner = exec.as_ref().run(pin!(async {
        select3(
            exec.channel(4),
            exec.channel(5),
            exec.sleep(Duration::from_millis(30)),
        )
        .await
    }));
    assert_eq!(winner, Either3::Second(()));
}

#[test]
fn channel_bits_wake_only_interested_tasks() {
    let (fake, _log) = Fake::new(&[(MS, 1 << 1), (2 * MS, 1 << 3), (3 * MS, 1 << 2)]);
    let exec = pin!(Executor::<'_, Fake, 2>::new(fake));
    let polls = [Cell::new(0), Cell::new(0)];
    let seen_by_task2_when_task1_done = Cell::new(usize::MAX);
    let counted = |i: usize, ch: u8| {
        let polls = &polls;
        let mut wait = exec.channel(ch);
        poll_fn(move |cx| {
            polls[i].set(polls[i].get() + 1);
            Pin::new(&mut wait).poll(cx)
        })
    };
    let mut t1 = pin!(async {
        counted(0, 1).await;
        seen_by_task2_when_task1_done.set(polls[1].get());
    });
    let mut t2 = pin!(counted(1, 2));
    exec.spawn(t1.as_mut()).unwrap();
    exec.spawn(t2.as_mut()).unwrap();
    exec.as_ref().run(pin!(exec.sleep_until(4 * MS)));
    assert_eq!(polls[0].get(), 2, "task 1: first poll, then its bit");
    assert_eq!(
        seen_by_task2_when_task1_done.get(),
        1,
        "task 2 was not polled for task 1's bit"
    );
    assert_eq!(polls[1].get(), 2, "task 2 not polled for bit 3 either");
}

#[test]
fn notifications_are_latched_until_awaited() {
    let (fake, _log) = Fake::new(&[(MS, 1 << 6)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let at = exec.as_ref().run(pin!(async {
        exec.sleep_until(2 * MS).await;
        // Bit 6 fired while nobody waited on it.
        exec.channel(6).await;
        exec.now_ns()
    }));
    assert_eq!(at, 2 * MS, "the latched bit completes the wait at once");
}

#[test]
fn emit_wakes_waiter_without_platform_calls() {
    let (fake, log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake, 1>::new(fake));
    let request = exec.event::<u32, 2>();
    let reply = exec.event::<u32, 1>();
    let mut server = pin!(async {
        loop {
            let n = request.wait().await;
            if n == 0 {
                break;
            }
            reply.emit(n * 10).unwrap();
        }
    });
    exec.spawn(server.as_mut()).unwrap();
    let calls_before = log.borrow().now_calls.get();
    let replies = exec.as_ref().run(pin!(async {
        let mut got = Vec::new();
        for n in 1..=3 {
            request.emit(n).unwrap();
            got.push(reply.wait().await);
        }
        request.emit(0).unwrap();
        got
    }));
    assert_eq!(replies, [10, 20, 30]);
    let log = log.borrow();
    assert_eq!(log.waits, 0, "EMIT needs no kernel wait");
    assert!(log.notifies.is_empty() && log.acks.is_empty() && log.deadlines.is_empty());
    assert_eq!(
        log.now_calls.get() - calls_before,
        1,
        "only run's initial clock read"
    );
}

#[test]
fn event_queue_is_bounded_and_fifo() {
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let ev = exec.event::<&str, 2>();
    assert_eq!(ev.emit("a"), Ok(()));
    assert_eq!(ev.emit("b"), Ok(()));
    assert_eq!(ev.emit("c"), Err("c"));
    assert_eq!(ev.len(), 2);
    assert_eq!(ev.try_take(), Some("a"));
    assert_eq!(ev.emit("d"), Ok(()));
    let got = exec
        .as_ref()
        .run(pin!(async { [ev.wait().await, ev.wait().await] }));
    assert_eq!(got, ["b", "d"]);
    assert!(ev.is_empty());
}

#[test]
fn irq_acks_and_notifies_are_sent_when_the_task_yields_merged() {
    let (fake, log) = Fake::new(&[(MS, 1 << 9)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    exec.as_ref().run(pin!(async {
        exec.channel(9).await;
        exec.irq_ack(9);
        exec.notify(3);
        exec.notify(3);
        exec.notify(1);
        exec.sleep(Duration::from_millis(1)).await;
    }));
    let log = log.borrow();
    assert_eq!(log.acks, [9]);
    assert_eq!(log.notifies, [1, 3], "one notify per channel per poll");
}

#[test]
fn spawn_fails_when_slots_are_full() {
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake, 1>::new(fake));
    let done = exec.event::<(), 1>();
    let mut a = pin!(async { done.emit(()).unwrap() });
    let mut b = pin!(async {});
    let mut c = pin!(async {});
    assert_eq!(exec.spawn(a.as_mut()), Ok(()));
    assert_eq!(exec.spawn(b.as_mut()), Err(SpawnError));
    exec.as_ref().run(pin!(done.wait()));
    // The finished task freed its slot.
    assert_eq!(exec.spawn(c.as_mut()), Ok(()));
}

#[test]
fn join_waits_for_both() {
    let (fake, _log) = Fake::new(&[(MS, 1 << 1), (3 * MS, 1 << 2)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let (a, b) = exec.as_ref().run(pin!(join(
        async {
            exec.channel(2).await;
            exec.now_ns()
        },
        async {
            exec.channel(1).await;
            exec.now_ns()
        },
    )));
    assert_eq!((a, b), (3 * MS, MS));
}

fn numbered(n: u64) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m
}

fn number(m: &[u8; 64]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

const PORT_CH: u8 = 4;

/// The peer PD pushes messages in random bursts and notifies only when the
/// ring says so; the fake panics if the executor ever waits with nothing
/// that could wake it, so a lost wake-up fails the test.
#[test]
fn recv_from_port_loses_no_wakeup() {
    for seed in 0..40 {
        const TOTAL: u64 = 300;
        let region = Region::new(4096);
        // SAFETY: the region is declared before, so outlives, both ports;
        // one port per side.
        let (mut a, mut b) = unsafe {
            (
                Port::<64>::new(region.base(), region.len(), 4, Side::A, PORT_CH).unwrap(),
                Port::<64>::new(region.base(), region.len(), 4, Side::B, PORT_CH).unwrap(),
            )
        };
        let mut rng = Rng::new(seed);
        let mut sent = 0;
        let peer: Peer = Box::new(move |_notified| {
            let mut bits = 0;
            for _ in 0..rng.below(4) {
                if sent == TOTAL {
                    break;
                }
                match b.tx.push(&numbered(sent)) {
                    Ok(notify) => {
                        sent += 1;
                        if notify == NotifyPeer::Yes {
                            bits |= 1 << PORT_CH;
                        }
                    }
                    Err(RingError::Full) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // Done, or blocked on a full ring, with nothing to signal: the
            // peer would sleep too.
            let blocked = sent == TOTAL || b.tx.len().is_ok_and(|n| n == b.tx.capacity());
            (bits != 0 || !blocked).then_some(bits)
        });
        let (fake, log) = Fake::with_peer(peer);
        let exec = pin!(Executor::<'_, Fake>::new(fake));
        let received = exec.as_ref().run(pin!(async {
            let mut n = 0;
            while n < TOTAL {
                let m = exec.recv(&mut a.rx, a.channel).await.unwrap();
                assert_eq!(number(&m), n, "seed {seed}");
                n += 1;
            }
            n
        }));
        assert_eq!(received, TOTAL);
        assert!(
            log.borrow().waits < TOTAL as usize,
            "seed {seed}: suppression should batch wake-ups"
        );
    }
}

/// Back-pressure: the executor sends into a 2-slot ring faster than the
/// peer drains it, sleeping for space and being woken by the peer's pops.
#[test]
fn send_to_port_waits_for_space() {
    for seed in 0..40 {
        const TOTAL: u64 = 200;
        let region = Region::new(2048);
        // SAFETY: the region is declared before, so outlives, both ports;
        // one port per side.
        let (mut a, b) = unsafe {
            (
                Port::<64>::new(region.base(), region.len(), 2, Side::A, PORT_CH).unwrap(),
                Port::<64>::new(region.base(), region.len(), 2, Side::B, PORT_CH).unwrap(),
            )
        };
        let b = Rc::new(RefCell::new(b));
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut rng = Rng::new(seed);
        let (peer_b, sink) = (b.clone(), got.clone());
        let peer: Peer = Box::new(move |_notified| {
            let rx = &mut peer_b.borrow_mut().rx;
            let mut bits = 0;
            let mut progressed = false;
            for _ in 0..rng.below(3) {
                match rx.pop().unwrap() {
                    Some((m, notify)) => {
                        progressed = true;
                        sink.borrow_mut().push(number(&m));
                        if notify == NotifyPeer::Yes {
                            bits |= 1 << PORT_CH;
                        }
                    }
                    None => break,
                }
            }
            // An idle peer facing an empty ring has nothing left to do.
            (progressed || !rx.is_empty().unwrap()).then_some(bits)
        });
        let (fake, log) = Fake::with_peer(peer);
        let exec = pin!(Executor::<'_, Fake>::new(fake));
        exec.as_ref().run(pin!(async {
            for n in 0..TOTAL {
                exec.send(&mut a.tx, a.channel, numbered(n)).await.unwrap();
            }
        }));
        // Drain what is still in flight after the last send returned.
        while let Some((m, _)) = b.borrow_mut().rx.pop().unwrap() {
            got.borrow_mut().push(number(&m));
        }
        assert_eq!(*got.borrow(), (0..TOTAL).collect::<Vec<_>>(), "seed {seed}");
        assert!(
            log.borrow().waits > 0,
            "seed {seed}: a 2-slot ring must fill up"
        );
    }
}

#[test]
fn recv_reports_a_corrupting_peer() {
    let region = Region::new(4096);
    // SAFETY: the region outlives the port.
    let mut a =
        unsafe { Port::<64>::new(region.base(), region.len(), 4, Side::A, PORT_CH) }.unwrap();
    let layout = a.layout;
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let result = exec.as_ref().run(pin!(async {
        let first = select(exec.recv(&mut a.rx, a.channel), exec.sleep_until(MS / 2)).await;
        assert_eq!(first, Either::Second(()), "nothing to receive yet");
        // The peer pushes its producer index far past the ring's capacity.
        region.peer_write_u32(layout.rings[1], 1000);
        exec.recv(&mut a.rx, a.channel).await
    }));
    assert_eq!(
        result,
        Err(RingError::Corrupt {
            producer: 1000,
            consumer: 0
        })
    );
}

#[test]
fn duration_literals() {
    use super::Millis;
    assert_eq!(10.ms(), Duration::from_millis(10));
    assert_eq!(250.us(), Duration::from_micros(250));
    assert_eq!(1500.us().as_nanos(), 1_500_000);
}

/// A one-shot channel written the way other crates write futures: the
/// receiver stores the waker of whoever polls it, the sender wakes it. It
/// knows nothing of this executor.
#[derive(Default)]
struct Oneshot {
    value: Cell<Option<u32>>,
    waker: RefCell<Option<Waker>>,
    polls: Cell<u32>,
}

impl Oneshot {
    fn send(&self, v: u32) {
        self.value.set(Some(v));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn recv(&self) -> impl Future<Output = u32> + '_ {
        poll_fn(move |cx| {
            self.polls.set(self.polls.get() + 1);
            match self.value.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

fn live_wakers<P: Platform, const N: usize>(exec: &Executor<'_, P, N>) -> usize {
    exec.wake.live.load(Ordering::Relaxed)
}

#[test]
fn a_foreign_future_resumes_when_another_task_wakes_it() {
    // Nothing but the foreign waker can resume main: it waits on no channel
    // and no deadline of this executor.
    let (fake, log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake, 1>::new(fake));
    let chan = Oneshot::default();
    let sender = pin!(async {
        exec.sleep_until(3 * MS).await;
        chan.send(42);
    });
    exec.spawn(sender).unwrap();
    let (got, at) = exec
        .as_ref()
        .run(pin!(async { (chan.recv().await, exec.now_ns()) }));
    assert_eq!((got, at), (42, 3 * MS));
    assert_eq!(chan.polls.get(), 2, "polled once to wait, once when woken");
    assert_eq!(log.borrow().waits, 1, "one wait, for the sender's deadline");
    assert_eq!(
        live_wakers(&exec),
        0,
        "the sender consumed the stored waker"
    );
}

#[test]
fn a_future_that_wakes_itself_is_polled_again_before_the_executor_blocks() {
    let (fake, log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let mut yields = 0;
    exec.as_ref().run(pin!(poll_fn(|cx| {
        if yields == 3 {
            return Poll::Ready(());
        }
        yields += 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })));
    assert_eq!(yields, 3);
    assert_eq!(log.borrow().waits, 0, "a yield is not a reason to block");
}

#[test]
fn a_wake_reaches_only_the_task_whose_waker_it_is() {
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake, 2>::new(fake));
    let (a, b) = (Oneshot::default(), Oneshot::default());
    let got = RefCell::new(Vec::new());
    let task_a = pin!(async {
        let v = a.recv().await;
        got.borrow_mut().push(("a", v));
    });
    let task_b = pin!(async {
        let v = b.recv().await;
        got.borrow_mut().push(("b", v));
    });
    exec.spawn(task_a).unwrap();
    exec.spawn(task_b).unwrap();
    exec.as_ref().run(pin!(async {
        exec.sleep_until(MS).await;
        b.send(2);
        exec.sleep_until(2 * MS).await;
        assert_eq!(a.polls.get(), 1, "b's wake polled a");
        a.send(1);
        exec.sleep_until(3 * MS).await;
    }));
    assert_eq!(*got.borrow(), [("b", 2), ("a", 1)]);
    assert_eq!((a.polls.get(), b.polls.get()), (2, 2));
}

#[test]
fn waker_clones_are_counted_and_wake_the_same_task() {
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let kept = RefCell::new(Vec::new());
    let mut polls = 0;
    exec.as_ref().run(pin!(poll_fn(|cx| {
        polls += 1;
        if polls == 1 {
            let w = cx.waker().clone();
            assert!(w.will_wake(cx.waker()));
            kept.borrow_mut().push(w.clone());
            kept.borrow_mut().push(w);
            assert_eq!(live_wakers(&exec), 2);
            // Waking through a clone, and dropping it, from inside the poll.
            kept.borrow_mut().pop().unwrap().wake();
            return Poll::Pending;
        }
        Poll::Ready(())
    })));
    assert_eq!(polls, 2);
    assert_eq!(live_wakers(&exec), 1);
    kept.borrow_mut().clear();
    assert_eq!(live_wakers(&exec), 0);
}

#[test]
fn a_wake_from_another_thread_is_recorded() {
    let (fake, log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let mut polls = 0;
    exec.as_ref().run(pin!(poll_fn(|cx| {
        polls += 1;
        if polls == 1 {
            let w = cx.waker().clone();
            std::thread::spawn(move || w.wake()).join().unwrap();
            return Poll::Pending;
        }
        Poll::Ready(())
    })));
    assert_eq!((polls, log.borrow().waits), (2, 0));
    assert_eq!(live_wakers(&exec), 0);
}

/// Runs in a child process (see the next test): an executor dropped while
/// a waker it made is kept outside it.
#[test]
fn child_waker_outlives_its_executor() {
    if std::env::var_os("DINGO_RT_CHILD").is_none() {
        return;
    }
    let kept: RefCell<Option<Waker>> = RefCell::new(None);
    let (fake, _log) = Fake::new(&[]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    exec.as_ref().run(pin!(poll_fn(|cx| {
        *kept.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    })));
    // `exec` goes first (declared last); `kept` still holds its waker.
}

#[test]
fn dropping_an_executor_while_its_waker_lives_aborts() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "executor::tests::child_waker_outlives_its_executor",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env("DINGO_RT_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child finished normally: {stderr}"
    );
    assert!(
        stderr.contains("executor dropped while 1 of its waker(s) still exist"),
        "{stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "not an abort: {:?}",
            out.status
        );
    }
}

#[test]
fn any_channel_returns_every_fired_channel_of_its_mask_at_once() {
    let (fake, log) = Fake::new(&[(MS, 1 << 9), (2 * MS, 1 << 3 | 1 << 40 | 1 << 5)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let mask = 1 << 3 | 1 << 40;
    let got = exec.as_ref().run(pin!(async {
        let first = exec.any_channel(mask).await;
        // Channel 5 fired too but is not in the mask: still latched.
        let later = exec.channel(5).await;
        (first, later, exec.now_ns())
    }));
    assert_eq!(got, (mask, (), 2 * MS));
    assert_eq!(
        log.borrow().waits,
        2,
        "channel 9 alone did not end the wait"
    );
}

#[test]
fn any_channel_until_ends_at_a_channel_or_the_deadline_whichever_comes_first() {
    let (fake, log) = Fake::new(&[(MS, 1 << 4), (5 * MS, 1 << 2)]);
    let exec = pin!(Executor::<'_, Fake>::new(fake));
    let got = exec.as_ref().run(pin!(async {
        let channel = (
            exec.any_channel_until(1 << 4, Some(3 * MS)).await,
            exec.now_ns(),
        );
        let deadline = (
            exec.any_channel_until(1 << 2, Some(3 * MS)).await,
            exec.now_ns(),
        );
        let none = (exec.any_channel_until(1 << 2, None).await, exec.now_ns());
        (channel, deadline, none)
    }));
    assert_eq!(got, ((1 << 4, MS), (0, 3 * MS), (1 << 2, 5 * MS)));
    assert_eq!(
        log.borrow().deadlines,
        [Some(3 * MS), None],
        "the wait without a deadline programmed none"
    );
}
