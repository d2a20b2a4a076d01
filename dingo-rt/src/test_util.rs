//! Host-test helpers: a cache-line-aligned region with a guard zone behind
//! it (to catch writes past the end), raw peer-side accessors that mimic
//! another PD scribbling over the region, a seeded PRNG so failures
//! reproduce, and [`Fake`], a scripted stand-in for the kernel under the
//! executor (with an optional peer PD simulated inside `wait()`).

use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU32, Ordering};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::executor::Platform;

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

const GUARD: usize = 256;
const GUARD_BYTE: u8 = 0xA5;

/// A zeroed, 64-byte-aligned region of `len` bytes followed by a guard zone.
/// Accessed only through raw pointers after construction, like memory that
/// another address space maps too.
pub struct Region {
    _storage: Vec<Line>,
    base: *mut u8,
    len: usize,
}

impl Region {
    pub fn new(len: usize) -> Self {
        let lines = (len + GUARD).div_ceil(64);
        let mut storage = vec![Line([0; 64]); lines];
        let base = storage.as_mut_ptr().cast::<u8>();
        for i in len..len + GUARD {
            // SAFETY: i < lines * 64, inside the allocation.
            unsafe { base.add(i).write(GUARD_BYTE) };
        }
        Region {
            _storage: storage,
            base,
            len,
        }
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing wrote into the guard zone behind the region.
    pub fn guard_intact(&self) -> bool {
        // SAFETY: the guard zone lies inside the allocation.
        (self.len..self.len + GUARD)
            .all(|i| unsafe { self.base.add(i).read_volatile() } == GUARD_BYTE)
    }

    fn check(&self, offset: usize, size: usize) {
        assert!(
            offset + size <= self.len,
            "test bug: peer access outside region"
        );
    }

    pub fn peer_write_u32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        assert_eq!(offset % 4, 0);
        // SAFETY: in bounds and 4-aligned (base is 64-aligned); the ring
        // handles access these words atomically too.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast()) }.store(value, Ordering::SeqCst);
    }

    pub fn peer_read_u32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        assert_eq!(offset % 4, 0);
        // SAFETY: as in peer_write_u32.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast()) }.load(Ordering::SeqCst)
    }

    pub fn peer_write_byte(&self, offset: usize, value: u8) {
        self.check(offset, 1);
        // SAFETY: in bounds.
        unsafe { self.base.add(offset).write_volatile(value) };
    }

    pub fn peer_read_byte(&self, offset: usize) -> u8 {
        self.check(offset, 1);
        // SAFETY: in bounds.
        unsafe { self.base.add(offset).read_volatile() }
    }
}

/// xorshift64*: small, seedable, good enough to pick interleavings.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Every platform call the executor made, in order.
#[derive(Debug, Default)]
pub struct Log {
    pub waits: usize,
    pub now_calls: Cell<usize>,
    pub notifies: Vec<u8>,
    pub acks: Vec<u8>,
    pub deadlines: Vec<Option<u64>>,
}

/// A peer PD simulated inside `wait()`: it sees the channels this PD
/// notified since the last wait and returns the bits it raises, or `None`
/// once it has nothing left to do.
pub type Peer = Box<dyn FnMut(u64) -> Option<u64>>;

/// Fake kernel: time only advances inside `wait()`, to the next scripted
/// notification or the programmed deadline, whichever is first. A wait with
/// nothing that could ever wake the PD panics, which is how a lost wake-up
/// shows up in these tests.
pub struct Fake {
    log: Rc<RefCell<Log>>,
    now: u64,
    script: VecDeque<(u64, u64)>,
    deadline: Option<u64>,
    notified: u64,
    peer: Option<Peer>,
}

impl Fake {
    pub fn new(script: &[(u64, u64)]) -> (Self, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        let fake = Fake {
            log: log.clone(),
            now: 0,
            script: script.iter().copied().collect(),
            deadline: None,
            notified: 0,
            peer: None,
        };
        (fake, log)
    }

    pub fn with_peer(peer: Peer) -> (Self, Rc<RefCell<Log>>) {
        let (mut fake, log) = Fake::new(&[]);
        fake.peer = Some(peer);
        (fake, log)
    }
}

impl Platform for Fake {
    fn wait(&mut self) -> u64 {
        self.log.borrow_mut().waits += 1;
        if let Some(peer) = &mut self.peer {
            while let Some(bits) = peer(core::mem::take(&mut self.notified)) {
                if bits != 0 {
                    return bits;
                }
            }
        }
        let next_event = self.script.front().map(|&(at, _)| at);
        let wake_at = match (next_event, self.deadline) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("fake platform: the PD would sleep forever"),
        };
        self.now = self.now.max(wake_at);
        let mut bits = 0;
        while let Some(&(at, b)) = self.script.front() {
            if at > self.now {
                break;
            }
            bits |= b;
            self.script.pop_front();
        }
        bits
    }

    fn notify(&mut self, channel: u8) {
        self.notified |= 1 << channel;
        self.log.borrow_mut().notifies.push(channel);
    }

    fn irq_ack(&mut self, channel: u8) {
        self.log.borrow_mut().acks.push(channel);
    }

    fn now_ns(&self) -> u64 {
        let log = self.log.borrow();
        log.now_calls.set(log.now_calls.get() + 1);
        self.now
    }

    fn set_deadline(&mut self, at_ns: Option<u64>) {
        self.deadline = at_ns;
        self.log.borrow_mut().deadlines.push(at_ns);
    }
}
