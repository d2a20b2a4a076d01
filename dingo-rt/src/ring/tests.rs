use super::*;
use crate::test_util::{Region, Rng};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const SLOT: usize = 16;

fn msg(n: u64) -> [u8; SLOT] {
    let mut m = [0u8; SLOT];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m[8..].copy_from_slice(&(!n).to_le_bytes());
    m
}

fn pair(region: &Region) -> (Producer<SLOT>, Consumer<SLOT>) {
    // SAFETY: the region outlives both handles in every test, there is one
    // handle per side, and tests touch it otherwise only as "the peer".
    unsafe {
        (
            Producer::new(region.base(), region.len()).unwrap(),
            Consumer::new(region.base(), region.len()).unwrap(),
        )
    }
}

fn ring_region(capacity: u32) -> Region {
    Region::new(region_bytes::<SLOT>(capacity).unwrap())
}

#[test]
fn rejects_misaligned_and_small_regions() {
    let region = Region::new(4096);
    // SAFETY: the handles are never used; construction only validates.
    let misaligned = unsafe { Producer::<SLOT>::new(region.base().add(4), 1024) };
    assert!(matches!(
        misaligned,
        Err(RingError::Misaligned { align: 64, addr }) if addr == region.base() as usize + 4
    ));
    // SAFETY: as above.
    let small = unsafe { Consumer::<SLOT>::new(region.base(), HEADER_BYTES + SLOT - 1) };
    assert_eq!(
        small.err(),
        Some(RingError::TooSmall {
            len: HEADER_BYTES + SLOT - 1,
            need: HEADER_BYTES + SLOT
        })
    );
}

#[test]
fn capacity_is_largest_power_of_two_that_fits() {
    let region = Region::new(4096);
    for (slots_room, expected) in [(1, 1), (2, 2), (3, 2), (5, 4), (8, 8), (15, 8)] {
        let len = HEADER_BYTES + slots_room * SLOT;
        // SAFETY: construction only; handle dropped at once.
        let p = unsafe { Producer::<SLOT>::new(region.base(), len) }.unwrap();
        assert_eq!(p.capacity(), expected, "room for {slots_room} slots");
    }
    assert_eq!(region_bytes::<SLOT>(4), Some(HEADER_BYTES + 4 * SLOT));
    assert_eq!(region_bytes::<{ usize::MAX / 2 }>(4), None);
}

#[test]
fn fifo_full_and_empty() {
    let region = ring_region(4);
    let (mut p, mut c) = pair(&region);
    assert_eq!(c.pop(), Ok(None));
    for n in 0..4 {
        assert_eq!(p.push(&msg(n)), Ok(NotifyPeer::No));
    }
    assert_eq!(p.push(&msg(99)), Err(RingError::Full));
    assert_eq!(p.len(), Ok(4));
    assert!(!p.is_poisoned(), "Full is back-pressure, not a fault");
    for n in 0..4 {
        assert_eq!(c.pop(), Ok(Some((msg(n), NotifyPeer::No))));
    }
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(c.is_empty(), Ok(true));
    assert_eq!(p.is_empty(), Ok(true));
    assert!(region.guard_intact());
}

#[test]
fn indices_wrap_at_u32_max() {
    let region = ring_region(4);
    let start = u32::MAX - 2;
    region.peer_write_u32(PRODUCER_INDEX, start);
    region.peer_write_u32(CONSUMER_INDEX, start);
    let (mut p, mut c) = pair(&region);
    let mut expected = VecDeque::new();
    for n in 0..40u64 {
        assert_eq!(p.push(&msg(n)), Ok(NotifyPeer::No));
        expected.push_back(n);
        if n % 3 == 2 {
            while let Some((m, _)) = c.pop().unwrap() {
                assert_eq!(m, msg(expected.pop_front().unwrap()));
            }
        }
    }
    assert_eq!(c.len(), Ok(expected.len() as u32));
    assert_eq!(
        region.peer_read_u32(PRODUCER_INDEX),
        start.wrapping_add(40),
        "published index wraps instead of saturating"
    );
}

#[test]
fn zero_header_after_init() {
    let region = ring_region(4);
    region.peer_write_u32(PRODUCER_INDEX, 77);
    region.peer_write_u32(CONSUMER_INDEX, 3);
    // SAFETY: no handle exists over the region yet.
    assert!(matches!(
        unsafe { Consumer::<SLOT>::new(region.base(), region.len()) },
        Err(RingError::Corrupt {
            producer: 77,
            consumer: 3
        })
    ));
    // SAFETY: no handle exists over the region.
    unsafe { init::<SLOT>(region.base(), region.len()) }.unwrap();
    let (mut p, mut c) = pair(&region);
    assert_eq!(p.push(&msg(5)), Ok(NotifyPeer::No));
    assert_eq!(c.pop().unwrap().unwrap().0, msg(5));
}

#[test]
fn random_interleavings_preserve_fifo() {
    for seed in 0..64 {
        let mut rng = Rng::new(seed);
        let capacity = 1 << rng.below(5);
        let region = ring_region(capacity);
        let (mut p, mut c) = pair(&region);
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for _ in 0..3000 {
            if rng.chance(50) {
                match p.push(&msg(next)) {
                    Ok(_) => {
                        model.push_back(next);
                        next += 1;
                    }
                    Err(RingError::Full) => assert_eq!(model.len(), capacity as usize),
                    Err(e) => panic!("seed {seed}: push failed: {e}"),
                }
            } else {
                match c.pop().unwrap() {
                    Some((m, _)) => assert_eq!(m, msg(model.pop_front().unwrap()), "seed {seed}"),
                    None => assert!(model.is_empty(), "seed {seed}: lost a message"),
                }
            }
            assert_eq!(c.len(), Ok(model.len() as u32));
        }
        while let Some((m, _)) = c.pop().unwrap() {
            assert_eq!(m, msg(model.pop_front().unwrap()));
        }
        assert!(
            model.is_empty(),
            "seed {seed}: {} messages never arrived",
            model.len()
        );
        assert!(region.guard_intact());
    }
}

#[test]
fn consumer_rejects_producer_index_too_far_ahead() {
    let region = ring_region(4);
    let (mut p, mut c) = pair(&region);
    assert_eq!(p.push(&msg(1)), Ok(NotifyPeer::No));
    region.peer_write_u32(PRODUCER_INDEX, 5);
    let err = RingError::Corrupt {
        producer: 5,
        consumer: 0,
    };
    assert_eq!(c.pop(), Err(err));
    assert!(c.is_poisoned());
    region.peer_write_u32(PRODUCER_INDEX, 1);
    assert_eq!(
        c.pop(),
        Err(err),
        "poison is sticky even after the peer repairs the index"
    );
    assert_eq!(c.prepare_sleep(), Err(err));
}

#[test]
fn consumer_rejects_producer_index_moving_backwards() {
    let region = ring_region(4);
    let (mut p, mut c) = pair(&region);
    for n in 0..3 {
        assert_eq!(p.push(&msg(n)), Ok(NotifyPeer::No));
    }
    assert_eq!(c.len(), Ok(3));
    region.peer_write_u32(PRODUCER_INDEX, 2);
    assert_eq!(
        c.pop(),
        Err(RingError::Corrupt {
            producer: 2,
            consumer: 0
        })
    );
}

#[test]
fn consumer_rejects_peer_writing_its_index() {
    let region = ring_region(4);
    let (mut p, mut c) = pair(&region);
    assert_eq!(p.push(&msg(1)), Ok(NotifyPeer::No));
    region.peer_write_u32(CONSUMER_INDEX, 1);
    assert_eq!(
        c.pop(),
        Err(RingError::Corrupt {
            producer: 1,
            consumer: 1
        })
    );
}

#[test]
fn producer_rejects_bad_consumer_index() {
    // Past what was produced.
    let region = ring_region(4);
    let (mut p, _c) = pair(&region);
    assert_eq!(p.push(&msg(1)), Ok(NotifyPeer::No));
    region.peer_write_u32(CONSUMER_INDEX, 2);
    assert_eq!(
        p.push(&msg(2)),
        Err(RingError::Corrupt {
            producer: 1,
            consumer: 2
        })
    );
    assert!(p.is_poisoned());
    assert_eq!(p.len().err(), p.push(&msg(3)).err());

    // Backwards.
    let region = ring_region(4);
    let (mut p, mut c) = pair(&region);
    for n in 0..3 {
        assert_eq!(p.push(&msg(n)), Ok(NotifyPeer::No));
    }
    c.pop().unwrap();
    c.pop().unwrap();
    assert_eq!(p.len(), Ok(1));
    region.peer_write_u32(CONSUMER_INDEX, 1);
    assert_eq!(
        p.prepare_sleep(),
        Err(RingError::Corrupt {
            producer: 3,
            consumer: 1
        })
    );

    // The producer's own index rewritten by the peer.
    let region = ring_region(4);
    let (mut p, _c) = pair(&region);
    region.peer_write_u32(PRODUCER_INDEX, 3);
    assert_eq!(
        p.push(&msg(0)),
        Err(RingError::Corrupt {
            producer: 3,
            consumer: 0
        })
    );
}

#[test]
fn popped_message_is_a_copy() {
    let region = ring_region(2);
    let (mut p, mut c) = pair(&region);
    assert_eq!(p.push(&msg(7)), Ok(NotifyPeer::No));
    let (m, _) = c.pop().unwrap().unwrap();
    for i in 0..SLOT {
        region.peer_write_byte(HEADER_BYTES + i, 0xEE);
    }
    assert_eq!(
        m,
        msg(7),
        "later peer writes must not reach a popped message"
    );
}

/// A misbehaving peer scribbles over indices, flags, slots and anything
/// else in the region between operations. Every operation must return (no
/// panic, no hang), errors must be sticky, nothing may be written outside
/// the region, and as long as the indices are intact the messages that
/// were not scribbled over must arrive in order.
#[test]
fn misbehaving_peer_yields_errors_never_ub() {
    let mut detected = 0;
    for seed in 0..400 {
        let mut rng = Rng::new(seed);
        let capacity = 1 << rng.below(4);
        let region = ring_region(capacity);
        let (mut p, mut c) = pair(&region);
        // (message number, still intact?) for messages in flight.
        let mut model: VecDeque<(u64, bool)> = VecDeque::new();
        let mut indices_intact = true;
        let mut next = 0u64;
        let mut p_err = None;
        let mut c_err = None;
        for _ in 0..300 {
            match rng.below(10) {
                0..=2 => match p.push(&msg(next)) {
                    Ok(_) => {
                        model.push_back((next, true));
                        next += 1;
                    }
                    Err(RingError::Full) => {}
                    Err(e) => {
                        assert!(matches!(e, RingError::Corrupt { .. }));
                        assert!(p_err.is_none() || p_err == Some(e), "error changed");
                        p_err = Some(e);
                    }
                },
                3..=5 => match c.pop() {
                    Ok(Some((m, _))) => {
                        if indices_intact {
                            let (n, intact) = model.pop_front().expect("popped from empty ring");
                            if intact {
                                assert_eq!(m, msg(n), "seed {seed}");
                            }
                        }
                    }
                    Ok(None) => {
                        if indices_intact {
                            assert!(model.is_empty(), "seed {seed}: message lost");
                        }
                    }
                    Err(e) => {
                        assert!(matches!(e, RingError::Corrupt { .. }));
                        assert!(c_err.is_none() || c_err == Some(e), "error changed");
                        c_err = Some(e);
                    }
                },
                6 => {
                    let _ = c.prepare_sleep();
                    let _ = p.prepare_sleep();
                }
                7 => {
                    // Corrupt an index or a flag: small step, big jump, or noise.
                    let word = [
                        PRODUCER_INDEX,
                        CONSUMER_INDEX,
                        CONSUMER_WANTS_NOTIFY,
                        PRODUCER_WANTS_NOTIFY,
                    ][rng.below(4) as usize];
                    let old = region.peer_read_u32(word);
                    let new = match rng.below(3) {
                        0 => old.wrapping_add(rng.below(5) as u32).wrapping_sub(2),
                        1 => old.wrapping_add(capacity + rng.below(3) as u32),
                        _ => rng.next_u64() as u32,
                    };
                    region.peer_write_u32(word, new);
                    if new != old && (word == PRODUCER_INDEX || word == CONSUMER_INDEX) {
                        indices_intact = false;
                    }
                }
                8 => {
                    // Scribble inside a slot.
                    let slot = rng.below(u64::from(capacity)) as u32;
                    let offset =
                        HEADER_BYTES + slot as usize * SLOT + rng.below(SLOT as u64) as usize;
                    let old = region.peer_read_byte(offset);
                    region.peer_write_byte(offset, old ^ (1 + rng.below(255) as u8));
                    // The in-flight message in that slot is the one whose
                    // number modulo capacity matches, counted from the
                    // consumer index.
                    let consumer = region.peer_read_u32(CONSUMER_INDEX);
                    for (k, entry) in model.iter_mut().enumerate() {
                        if consumer.wrapping_add(k as u32) & (capacity - 1) == slot {
                            entry.1 = false;
                        }
                    }
                }
                _ => {
                    // Scribble anywhere in the header's padding.
                    let offset = rng.below(HEADER_BYTES as u64) as usize;
                    if ![
                        PRODUCER_INDEX,
                        CONSUMER_INDEX,
                        CONSUMER_WANTS_NOTIFY,
                        PRODUCER_WANTS_NOTIFY,
                    ]
                    .iter()
                    .any(|w| (*w..*w + 4).contains(&offset))
                    {
                        region.peer_write_byte(offset, rng.next_u64() as u8);
                    }
                }
            }
            if let Ok(n) = c.len() {
                assert!(
                    n <= capacity,
                    "consumer believes {n} messages are in a {capacity}-slot ring"
                );
            }
        }
        if p_err.is_some() || c_err.is_some() {
            detected += 1;
        }
        assert!(region.guard_intact(), "seed {seed}: write past the region");
    }
    assert!(
        detected > 100,
        "corruption was detected in only {detected} of 400 runs"
    );
}

#[test]
fn consumer_notified_once_per_sleep() {
    let region = ring_region(8);
    let (mut p, mut c) = pair(&region);
    assert_eq!(
        p.push(&msg(0)),
        Ok(NotifyPeer::No),
        "consumer is not asleep"
    );
    assert_eq!(c.prepare_sleep(), Ok(Arm::Retry), "a message is waiting");
    assert_eq!(
        p.push(&msg(1)),
        Ok(NotifyPeer::No),
        "retry withdrew the flag"
    );
    while c.pop().unwrap().is_some() {}
    assert_eq!(c.prepare_sleep(), Ok(Arm::Sleep));
    assert_eq!(p.push(&msg(2)), Ok(NotifyPeer::Yes));
    assert_eq!(p.push(&msg(3)), Ok(NotifyPeer::No), "one notify per sleep");
    assert_eq!(p.push(&msg(4)), Ok(NotifyPeer::No));
}

#[test]
fn producer_notified_when_space_frees() {
    let region = ring_region(2);
    let (mut p, mut c) = pair(&region);
    assert_eq!(p.prepare_sleep(), Ok(Arm::Retry), "ring is not full");
    assert_eq!(p.push(&msg(0)), Ok(NotifyPeer::No));
    assert_eq!(p.push(&msg(1)), Ok(NotifyPeer::No));
    assert_eq!(p.prepare_sleep(), Ok(Arm::Sleep));
    assert_eq!(c.pop(), Ok(Some((msg(0), NotifyPeer::Yes))));
    assert_eq!(c.pop(), Ok(Some((msg(1), NotifyPeer::No))));
}

type RaceHook = Box<dyn FnMut(Race)>;

thread_local! {
    static RACE_HOOK: RefCell<Option<RaceHook>> = const { RefCell::new(None) };
}

/// Runs the installed hook, if any. The hook is taken out while it runs, so
/// a peer step inside it does not recurse into another peer step.
pub(super) fn race_point(at: Race) {
    if let Some(mut hook) = RACE_HOOK.with(|h| h.borrow_mut().take()) {
        hook(at);
        RACE_HOOK.with(|h| *h.borrow_mut() = Some(hook));
    }
}

/// Both sides of a ring plus what the kernel would hold for them: whether
/// each is blocked, and its latched notification.
struct World {
    p: RefCell<Producer<SLOT>>,
    c: RefCell<Consumer<SLOT>>,
    total: u64,
    sent: Cell<u64>,
    received: Cell<u64>,
    p_asleep: Cell<bool>,
    c_asleep: Cell<bool>,
    p_latch: Cell<bool>,
    c_latch: Cell<bool>,
}

impl World {
    fn producer_can_run(&self) -> bool {
        self.sent.get() < self.total && (!self.p_asleep.get() || self.p_latch.get())
    }

    fn consumer_can_run(&self) -> bool {
        !self.c_asleep.get() || self.c_latch.get()
    }

    /// One producer step; a side only sleeps after `prepare_sleep` said so
    /// and only notifies when an operation returned `NotifyPeer::Yes`.
    fn producer_step(&self) {
        if !self.producer_can_run() {
            return;
        }
        if self.p_asleep.replace(false) {
            self.p_latch.set(false);
        }
        let mut p = self.p.borrow_mut();
        match p.push(&msg(self.sent.get())) {
            Ok(notify) => {
                self.sent.set(self.sent.get() + 1);
                if notify == NotifyPeer::Yes {
                    self.c_latch.set(true);
                }
            }
            Err(RingError::Full) => {
                if p.prepare_sleep().unwrap() == Arm::Sleep {
                    self.p_asleep.set(true);
                }
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn consumer_step(&self) {
        if !self.consumer_can_run() {
            return;
        }
        if self.c_asleep.replace(false) {
            self.c_latch.set(false);
        }
        let mut c = self.c.borrow_mut();
        match c.pop().unwrap() {
            Some((m, notify)) => {
                assert_eq!(m, msg(self.received.get()), "out of order");
                self.received.set(self.received.get() + 1);
                if notify == NotifyPeer::Yes {
                    self.p_latch.set(true);
                }
            }
            None => {
                if c.prepare_sleep().unwrap() == Arm::Sleep {
                    self.c_asleep.set(true);
                }
            }
        }
    }
}

/// Model check of the sleep protocol: two actors at random, notifications
/// latched like seL4 notification words, and the peer also scheduled
/// inside the racy windows of each operation (see `Race`). The run must
/// never reach a state where nobody can run while messages are undelivered.
#[test]
fn sleep_protocol_never_loses_a_wakeup() {
    let mut races_hit = 0;
    for seed in 0..300 {
        let rng = Rc::new(RefCell::new(Rng::new(seed)));
        let capacity = 1 << rng.borrow_mut().below(3);
        let region = ring_region(capacity);
        let (p, c) = pair(&region);
        let world = Rc::new(World {
            p: RefCell::new(p),
            c: RefCell::new(c),
            total: 200,
            sent: Cell::new(0),
            received: Cell::new(0),
            p_asleep: Cell::new(false),
            c_asleep: Cell::new(false),
            p_latch: Cell::new(false),
            c_latch: Cell::new(false),
        });
        let hits = Rc::new(Cell::new(0));
        let (hook_world, hook_rng, hook_hits) = (world.clone(), rng.clone(), hits.clone());
        RACE_HOOK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |at| {
                if !hook_rng.borrow_mut().chance(40) {
                    return;
                }
                hook_hits.set(hook_hits.get() + 1);
                match at {
                    Race::ConsumerArming | Race::ConsumerPublished => hook_world.producer_step(),
                    Race::ProducerArming | Race::ProducerPublished => hook_world.consumer_step(),
                }
            }))
        });
        let mut steps = 0;
        while world.received.get() < world.total {
            steps += 1;
            assert!(steps < 100_000, "seed {seed}: no progress");
            let (pr, cr) = (world.producer_can_run(), world.consumer_can_run());
            assert!(
                pr || cr,
                "seed {seed}: lost wake-up (sent {}, received {})",
                world.sent.get(),
                world.received.get()
            );
            if pr && (!cr || rng.borrow_mut().chance(50)) {
                world.producer_step();
            } else {
                world.consumer_step();
            }
        }
        RACE_HOOK.with(|h| h.borrow_mut().take());
        races_hit += hits.get();
    }
    assert!(
        races_hit > 1000,
        "the racy windows were exercised only {races_hit} times"
    );
}

/// The same protocol under real concurrency: two threads, one per side,
/// spinning on latches that stand in for seL4 notifications. A lost
/// wake-up shows up as a sleeper that times out with work pending.
#[test]
fn sleep_protocol_under_real_threads() {
    const TOTAL: u64 = 100_000;
    let region = ring_region(8);
    let (mut p, mut c) = pair(&region);
    let wake_consumer = AtomicBool::new(false);
    let wake_producer = AtomicBool::new(false);
    let sleep_on = |latch: &AtomicBool, who: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !latch.swap(false, Ordering::AcqRel) {
            assert!(Instant::now() < deadline, "{who} never woken: lost wake-up");
            std::thread::yield_now();
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while n < TOTAL {
                match p.push(&msg(n)) {
                    Ok(notify) => {
                        n += 1;
                        if notify == NotifyPeer::Yes {
                            wake_consumer.store(true, Ordering::Release);
                        }
                    }
                    Err(RingError::Full) => {
                        if p.prepare_sleep().unwrap() == Arm::Sleep {
                            sleep_on(&wake_producer, "producer");
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        s.spawn(|| {
            let mut n = 0;
            while n < TOTAL {
                match c.pop().unwrap() {
                    Some((m, notify)) => {
                        assert_eq!(m, msg(n));
                        n += 1;
                        if notify == NotifyPeer::Yes {
                            wake_producer.store(true, Ordering::Release);
                        }
                    }
                    None => {
                        if c.prepare_sleep().unwrap() == Arm::Sleep {
                            sleep_on(&wake_consumer, "consumer");
                        }
                    }
                }
            }
        });
    });
}

#[test]
fn prefix_copies_move_only_the_words_asked_for() {
    let region = ring_region(1);
    let (mut p, mut c) = pair(&region);
    // A full slot first, then a 3-byte prefix of another over it: the
    // prefix's word is new, the second word keeps the first message's.
    assert_eq!(p.push(&msg(7)).unwrap(), NotifyPeer::No);
    assert_eq!(c.pop().unwrap().map(|(m, _)| m), Some(msg(7)));
    assert_eq!(p.reserve().unwrap().push_prefix(&msg(9), 3), NotifyPeer::No);
    let mut raw = [0u8; SLOT];
    // SAFETY: the one slot lies right after the header, inside the region.
    unsafe {
        std::ptr::copy_nonoverlapping(region.base().add(HEADER_BYTES), raw.as_mut_ptr(), SLOT)
    };
    assert_eq!(raw[..8], msg(9)[..8]);
    assert_eq!(raw[8..], msg(7)[8..]);
    // A prefix read sees the first word and zeros after it; a longer
    // length than the slot is the whole slot.
    let seen = c.pop_prefix_with(5, |slot| *slot).unwrap().map(|(m, _)| m);
    let mut expected = [0u8; SLOT];
    expected[..8].copy_from_slice(&msg(9)[..8]);
    assert_eq!(seen, Some(expected));
    assert_eq!(
        p.reserve().unwrap().push_prefix(&msg(11), 1000),
        NotifyPeer::No
    );
    assert_eq!(
        c.pop_prefix_with(1000, |slot| *slot)
            .unwrap()
            .map(|(m, _)| m),
        Some(msg(11))
    );
}
