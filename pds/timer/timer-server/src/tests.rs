use super::*;
use timer_client::port::PORT_SLOTS;
use timer_client::test_util::{Recorder, Region, pair, region};

/// A server with `C` clients on channels 10.., and the clients' ends.
struct Rig<'r, const C: usize> {
    server: Server<'r, C>,
    clients: Vec<TimerPort<'r>>,
    notified: Vec<u8>,
}

fn rig<'r, const C: usize>(regions: &'r mut [Box<Region>], rec: &'r Recorder) -> Rig<'r, C> {
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (i, r) in regions.iter_mut().enumerate() {
        let (s, c) = pair(r, 10 + i as u8, rec);
        servers.push(s);
        clients.push(c);
    }
    let ports: [TimerPort<'r>; C] = servers.try_into().ok().unwrap();
    Rig {
        server: Server::new(ports),
        clients,
        notified: Vec::new(),
    }
}

impl<const C: usize> Rig<'_, C> {
    fn send(&mut self, client: usize, msg: Msg) {
        self.clients[client].try_send(&msg, 0).unwrap();
    }

    fn poll(&mut self, now: u64) -> Option<u64> {
        let notified = &mut self.notified;
        self.server.poll(now, |ch| notified.push(ch))
    }

    /// Everything client `client` has received so far.
    fn drain(&mut self, client: usize) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.clients[client].try_recv(0).unwrap() {
            out.push(m);
        }
        out
    }
}

fn regions(n: usize) -> Vec<Box<Region>> {
    (0..n).map(|_| region()).collect()
}

/// xorshift64*: a tiny deterministic generator for the random workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn random_timeouts_fire_in_order_never_early_each_answered_once() {
    let rec = Recorder::default();
    let mut regs = regions(3);
    let mut rig = rig::<3>(&mut regs, &rec);
    let mut rng = Rng(0x5eed);
    let mut deadlines = vec![std::collections::HashMap::new(); 3];
    let mut fired: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
    let mut next_id = [0u32; 3];
    let mut now = 1_000;
    for _ in 0..400 {
        // A few requests from random clients, then time moves on to a
        // random point, possibly past several deadlines.
        for _ in 0..rng.below(3) {
            let c = rng.below(3) as usize;
            let deadline = now + rng.below(50_000);
            let id = next_id[c];
            next_id[c] += 1;
            deadlines[c].insert(id, deadline);
            rig.send(
                c,
                Msg::Request {
                    id,
                    deadline_ns: deadline,
                },
            );
        }
        let next = rig.poll(now);
        if let Some(d) = next {
            assert!(d > now, "poll left a due timeout pending");
        }
        for c in 0..3 {
            for m in rig.drain(c) {
                let Msg::Fired { id } = m else {
                    panic!("unexpected {m}")
                };
                let deadline = deadlines[c].remove(&id).expect("answered twice or unknown");
                assert!(
                    deadline <= now,
                    "fired early: deadline {deadline}, now {now}"
                );
                fired[c].push((deadline, now));
            }
        }
        now += rng.below(20_000);
    }
    while let Some(d) = rig.poll(now) {
        now = d;
    }
    for c in 0..3 {
        for m in rig.drain(c) {
            let Msg::Fired { id } = m else {
                panic!("unexpected {m}")
            };
            fired[c].push((deadlines[c].remove(&id).unwrap(), now));
        }
        assert!(
            deadlines[c].is_empty(),
            "client {c} unanswered: {:?}",
            deadlines[c]
        );
        assert!(
            fired[c].windows(2).all(|w| w[0].0 <= w[1].0),
            "client {c} out of order"
        );
    }
    assert!(fired.iter().map(Vec::len).sum::<usize>() > 300);
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
    assert!(rig.notified.iter().all(|ch| (10..13).contains(ch)));
}

#[test]
fn past_deadline_fires_at_once_and_idle_server_wants_no_interrupt() {
    let rec = Recorder::default();
    let mut regs = regions(1);
    let mut rig = rig::<1>(&mut regs, &rec);
    assert_eq!(rig.poll(500), None);
    rig.send(
        0,
        Msg::Request {
            id: 4,
            deadline_ns: 100,
        },
    );
    rig.send(
        0,
        Msg::Request {
            id: 5,
            deadline_ns: 900,
        },
    );
    assert_eq!(rig.poll(500), Some(900));
    assert_eq!(rig.drain(0), [Msg::Fired { id: 4 }]);
    assert_eq!(rig.poll(899), Some(900));
    assert!(rig.drain(0).is_empty());
    assert_eq!(rig.poll(900), None);
    assert_eq!(rig.drain(0), [Msg::Fired { id: 5 }]);
}

#[test]
fn cancel_answers_only_live_timeouts() {
    let rec = Recorder::default();
    let mut regs = regions(2);
    let mut rig = rig::<2>(&mut regs, &rec);
    rig.send(
        0,
        Msg::Request {
            id: 1,
            deadline_ns: 100,
        },
    );
    rig.send(
        0,
        Msg::Request {
            id: 2,
            deadline_ns: 200,
        },
    );
    rig.send(
        1,
        Msg::Request {
            id: 2,
            deadline_ns: 150,
        },
    );
    assert_eq!(rig.poll(0), Some(100));
    // Client 0 cancels id 2 (live) and id 1 after it fired (crossed).
    rig.send(0, Msg::Cancel { id: 2 });
    assert_eq!(rig.poll(120), Some(150));
    rig.send(0, Msg::Cancel { id: 1 });
    assert_eq!(rig.poll(130), Some(150));
    // Requests are handled before expiry within one poll.
    assert_eq!(
        rig.drain(0),
        [Msg::Cancelled { id: 2 }, Msg::Fired { id: 1 }]
    );
    // The same id of another client was untouched and fires at its time.
    assert_eq!(rig.poll(150), None);
    assert_eq!(rig.drain(1), [Msg::Fired { id: 2 }]);
    assert_eq!(rig.drain(0), []);
    let s = rig.server.stats();
    assert_eq!((s.requests, s.fired, s.cancelled, s.rejected), (3, 2, 1, 0));
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn request_past_capacity_is_rejected_until_a_slot_frees() {
    let rec = Recorder::default();
    let mut regs = regions(2);
    let mut rig = rig::<2>(&mut regs, &rec);
    // Two clients fill the queue; the rings hold 16 requests at a time.
    for id in 0..CAPACITY as u32 {
        rig.send(
            (id % 2) as usize,
            Msg::Request {
                id,
                deadline_ns: 1_000 + u64::from(id),
            },
        );
        if id % 8 == 7 {
            rig.poll(0);
        }
    }
    rig.poll(0);
    assert_eq!(rig.server.pending(), CAPACITY);
    rig.send(
        1,
        Msg::Request {
            id: 99,
            deadline_ns: 5,
        },
    );
    rig.poll(0);
    assert_eq!(
        rig.drain(1),
        [Msg::Rejected {
            id: 99,
            reason: REJECT_FULL
        }]
    );
    assert_eq!(rig.drain(0), []);
    // A cancel frees a slot; the next request is taken.
    rig.send(0, Msg::Cancel { id: 0 });
    rig.send(
        1,
        Msg::Request {
            id: 100,
            deadline_ns: 5,
        },
    );
    rig.poll(10);
    assert_eq!(rig.drain(0), [Msg::Cancelled { id: 0 }]);
    assert_eq!(rig.drain(1), [Msg::Fired { id: 100 }]);
    assert_eq!(rig.server.stats().rejected, 1);
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn slow_reader_loses_nothing_and_keeps_its_order() {
    let rec = Recorder::default();
    let mut regs = regions(2);
    let mut rig = rig::<2>(&mut regs, &rec);
    let n = 40u32;
    for id in 0..n {
        // Deadlines in reverse id order: the answers must follow deadlines.
        rig.send(
            0,
            Msg::Request {
                id,
                deadline_ns: 1_000 - u64::from(id),
            },
        );
        if id % 8 == 7 {
            rig.poll(0);
        }
    }
    rig.poll(0);
    // Everything is due; the ring takes 16, the rest waits in the outbox.
    assert_eq!(rig.poll(2_000), None);
    assert_eq!(rig.server.backlog(), (n - PORT_SLOTS) as usize);
    // The other client is served meanwhile.
    rig.send(
        1,
        Msg::Request {
            id: 7,
            deadline_ns: 0,
        },
    );
    rig.poll(2_000);
    assert_eq!(rig.drain(1), [Msg::Fired { id: 7 }]);
    // A send-ring wake-up is armed for the slow client.
    assert!(!rig.server.prepare_wait());
    let mut got = Vec::new();
    while got.len() < n as usize {
        let batch = rig.drain(0);
        assert!(!batch.is_empty(), "answers lost after {}", got.len());
        got.extend(batch);
        rig.poll(2_000);
    }
    let want: Vec<Msg> = (0..n).rev().map(|id| Msg::Fired { id }).collect();
    assert_eq!(got, want);
    assert_eq!(rig.server.backlog(), 0);
    assert!(rec.0.borrow().is_empty(), "{:?}", rec.0.borrow());
}

#[test]
fn a_client_that_never_reads_cannot_overflow_the_outbox() {
    let rec = Recorder::default();
    let mut regs = regions(1);
    let mut rig = rig::<1>(&mut regs, &rec);
    let mut id = 0;
    // Keep the request ring topped up and never read answers.
    for _ in 0..40 {
        while rig.clients[0]
            .try_send(
                &Msg::Request {
                    id,
                    deadline_ns: 1 << 40,
                },
                0,
            )
            .is_ok()
        {
            id += 1;
        }
        rig.poll(0);
    }
    assert_eq!(rig.server.pending(), CAPACITY);
    // The ring took 16 rejections; the outbox holds the slack's worth.
    assert_eq!(rig.server.backlog(), OUTBOX_SLACK);
    assert_eq!(rig.server.pending() + rig.server.backlog(), OUTBOX_CAPACITY);
    // The server stopped reading: requests stay in the ring.
    assert!(
        rig.clients[0]
            .try_send(&Msg::Request { id, deadline_ns: 0 }, 0)
            .is_err()
    );
    // Reading the answers lets it continue: all rejections, in order.
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.extend(rig.drain(0));
        rig.poll(0);
    }
    assert!(answers.len() > OUTBOX_SLACK);
    assert!(answers.iter().all(|m| matches!(
        m,
        Msg::Rejected {
            reason: REJECT_FULL,
            ..
        }
    )));
    let ids: Vec<u32> = answers
        .iter()
        .filter_map(timer_client::port::answer_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn a_restarted_clients_old_timeouts_and_answers_never_reach_its_new_instance() {
    use timer_client::port::{End, attach};
    let rec = Recorder::default();
    let mut regs = regions(2);
    let base = regs[0].0.as_mut_ptr();
    let mut rig = rig::<2>(&mut regs, &rec);
    // Client 0 has a timeout pending and one answer waiting to be read...
    rig.send(
        0,
        Msg::Request {
            id: 1,
            deadline_ns: 100,
        },
    );
    rig.send(
        0,
        Msg::Request {
            id: 2,
            deadline_ns: 5_000,
        },
    );
    rig.send(
        1,
        Msg::Request {
            id: 1,
            deadline_ns: 6_000,
        },
    );
    rig.poll(200);
    // ...then it faults and the monitor restarts it over the same region.
    // The old end is never used again.
    let _old = rig.clients.remove(0);
    let sup = dingo_rt::typed::Supervisor::log(&rec);
    // SAFETY: the region outlives the port; the old client end is gone.
    let fresh = unsafe { attach(base, 10, End::Client, sup, "client", "timer", 300) }.unwrap();
    rig.clients.insert(0, fresh);
    // The new instance reuses id 2, with another deadline.
    assert_eq!(
        rig.clients[0].try_send(
            &Msg::Request {
                id: 2,
                deadline_ns: 9_000
            },
            300
        ),
        Err(Fault::Full),
        "it waits for the server's acknowledgement"
    );
    rig.poll(400);
    assert_eq!(rig.server.stats().forgotten, 1, "the old id 2");
    rig.send(
        0,
        Msg::Request {
            id: 2,
            deadline_ns: 9_000,
        },
    );
    rig.poll(5_500);
    assert!(rig.drain(0).is_empty(), "the old id 2 (5000) does not fire");
    rig.poll(9_500);
    assert_eq!(rig.drain(0), [Msg::Fired { id: 2 }]);
    // The other client never noticed.
    assert_eq!(rig.drain(1), [Msg::Fired { id: 1 }]);
    let reports = rec.0.borrow();
    assert!(
        reports.iter().all(|r| r.contains("the peer restarted")),
        "{reports:?}"
    );
}
