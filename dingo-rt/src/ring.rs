//! Single-producer single-consumer ring of fixed-size message slots in memory
//! shared by two protection domains.
//!
//! One PD holds the [`Producer`], the other the [`Consumer`]; each handle is
//! created over its own mapping of the same region. The peer is not trusted:
//! it may be buggy or malicious and may scribble over any byte of the region
//! at any time. The handles therefore keep a private copy of their own index,
//! validate the peer's index on every operation, copy a slot out of shared
//! memory before the caller sees it, and only ever compute slot addresses
//! from their private index masked by the capacity. A peer that breaks the
//! index invariants gets the handle poisoned ([`RingError::Corrupt`]); it
//! cannot make it panic, loop, or touch memory outside the region.
//!
//! # Memory layout
//!
//! ```text
//!  offset  size            written by             meaning
//!  ------  --------------  ---------------------  ----------------------------------
//!       0  u32 (line 0)    producer               producer index (free-running)
//!      64  u32 (line 1)    consumer               consumer index (free-running)
//!     128  u32 (line 2)    consumer set, producer clear   consumer wants a notify
//!     132  u32 (line 2)    producer set, consumer clear   producer wants a notify
//!     136  u64 (line 2)    producer               producer's tag (0: none yet)
//!     144  u32 (line 2)    producer               producer's incarnation (0: none yet)
//!     148  u32 (line 2)    producer               the peer's incarnation it acknowledged
//!     192  SLOT * cap      producer               slot i = message (index & (cap-1))
//! ```
//!
//! The incarnation words carry a port's session handshake (see
//! [`crate::port::Session`]): which instance of each PD the ring's
//! contents belong to, so that a PD the monitor restarted and its peer
//! agree on a fresh start. Like the tag, the ring itself only stores them.
//!
//! The tag is what the producing side says it speaks (a typed port puts
//! its protocol hash there, see [`crate::typed`]), published before its
//! first message: a consumer that has popped a message also sees the tag
//! the producer wrote before it. The ring itself never reads it; like any
//! other word of the region it is only compared, never used as an index.
//!
//! The indices never wrap at the capacity, only at 2^32, so `producer -
//! consumer` (wrapping) is the number of messages in flight and a full ring
//! is told apart from an empty one without wasting a slot. The capacity is a
//! power of two (so it divides 2^32) and is derived from the region length:
//! the largest that fits, see [`region_bytes`]. Each index sits on its own
//! 64-byte cache line so the two sides do not false-share on the fast path.
//! An all-zero header is an empty ring; Microkit zero-fills memory regions,
//! and [`init`] re-establishes that state for a reused region.
//!
//! # Signal suppression (sDDF style)
//!
//! Every message could cost a notification; instead a side only notifies
//! when the other has said it is about to sleep:
//!
//! 1. The consumer pops until [`Consumer::pop`] returns `Ok(None)`.
//! 2. It calls [`Consumer::prepare_sleep`], which sets the "consumer wants a
//!    notify" flag, issues a full fence and re-reads the producer index.
//! 3. If a message slipped in meanwhile, the flag is withdrawn and the call
//!    returns [`Arm::Retry`]: go back to step 1. Otherwise it returns
//!    [`Arm::Sleep`] and the consumer may block on its notification.
//! 4. The producer's [`Producer::push`] stores the slot, publishes the index
//!    (release), issues a full fence and reads the flag; if it is set, push
//!    clears it and returns [`NotifyPeer::Yes`], and the caller notifies.
//! 5. The fences in steps 2 and 4 order "write flag, read index" against
//!    "write index, read flag": at least one side sees the other's write, so
//!    either the consumer retries or the producer notifies. No wake-up is
//!    lost, and a burst of pushes costs one notification.
//! 6. The same protocol runs in the other direction for a producer waiting
//!    on a full ring: [`Producer::prepare_sleep`] sets "producer wants a
//!    notify", and [`Consumer::pop`] reports it with its [`NotifyPeer`].

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Bytes before the first slot: three cache lines.
pub const HEADER_BYTES: usize = 192;
/// Required alignment of a ring region (one cache line).
pub const REGION_ALIGN: usize = 64;

/// Words of a slot's first `len` bytes, as they are copied. A volatile
/// access to a byte array is split into one access per byte; whole words
/// make a 64-byte slot 8 loads or stores. Slots whose size is not a
/// multiple of 8 (so not 8-aligned) go byte by byte (0 words). Slots keep
/// these copies rather than `shared_copy`'s string moves: a typed message
/// is two words or so, which unrolled cost less than the moves' setup.
const fn slot_words<const SLOT: usize>(len: usize) -> usize {
    if SLOT.is_multiple_of(8) {
        let words = len.div_ceil(8);
        if words < SLOT / 8 { words } else { SLOT / 8 }
    } else {
        0
    }
}

/// Volatile copy of a slot's first `len` bytes (rounded up to whole words)
/// out of shared memory; the rest of the copy is zero.
///
/// # Safety
/// `src` points to `SLOT` readable bytes, 8-aligned when `SLOT % 8 == 0`.
#[inline(always)]
unsafe fn read_slot<const SLOT: usize>(src: *const [u8; SLOT], len: usize) -> [u8; SLOT] {
    let src = src.cast::<u8>();
    let mut out = [0u8; SLOT];
    let words = slot_words::<SLOT>(len);
    for w in 0..words {
        // SAFETY: in bounds and aligned per the contract.
        let v = unsafe { src.add(w * 8).cast::<u64>().read_volatile() };
        out[w * 8..w * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    if words == 0 {
        for (b, byte) in out.iter_mut().enumerate().take(len) {
            // SAFETY: b < SLOT.
            *byte = unsafe { src.add(b).read_volatile() };
        }
    }
    out
}

/// Volatile copy of `msg`'s first `len` bytes (rounded up to whole words)
/// into a slot of shared memory.
///
/// # Safety
/// `dst` points to `SLOT` writable bytes, 8-aligned when `SLOT % 8 == 0`.
#[inline(always)]
unsafe fn write_slot<const SLOT: usize>(dst: *mut [u8; SLOT], msg: &[u8; SLOT], len: usize) {
    let dst = dst.cast::<u8>();
    let words = slot_words::<SLOT>(len);
    for w in 0..words {
        let v = u64::from_ne_bytes(msg[w * 8..w * 8 + 8].try_into().unwrap());
        // SAFETY: in bounds and aligned per the contract.
        unsafe { dst.add(w * 8).cast::<u64>().write_volatile(v) };
    }
    if words == 0 {
        for (b, &byte) in msg.iter().enumerate().take(len) {
            // SAFETY: b < SLOT.
            unsafe { dst.add(b).write_volatile(byte) };
        }
    }
}
/// Largest capacity: the free-running u32 indices must tell `cap` in flight
/// apart from 0 in flight.
pub const MAX_CAPACITY: u32 = 1 << 31;

const PRODUCER_INDEX: usize = 0;
const CONSUMER_INDEX: usize = 64;
const CONSUMER_WANTS_NOTIFY: usize = 128;
const PRODUCER_WANTS_NOTIFY: usize = 132;
const PRODUCER_TAG: usize = 136;
const PRODUCER_INCARNATION: usize = 144;
const PRODUCER_ACK: usize = 148;

/// What went wrong with a ring region or a ring operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The region does not start on a [`REGION_ALIGN`] boundary.
    Misaligned { addr: usize, align: usize },
    /// The region cannot hold the header and one slot.
    TooSmall { len: usize, need: usize },
    /// [`Producer::push`]: every slot is in flight. Not a fault: wait for
    /// space with [`Producer::prepare_sleep`].
    Full,
    /// The peer broke the ring invariants. `producer` and `consumer` are the
    /// index values read from shared memory when the fault was detected.
    /// The handle stays poisoned: every later operation returns this error.
    Corrupt { producer: u32, consumer: u32 },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::Misaligned { addr, align } => {
                write!(f, "ring region at {addr:#x} is not {align}-byte aligned")
            }
            RingError::TooSmall { len, need } => {
                write!(
                    f,
                    "ring region of {len} bytes is too small (need at least {need})"
                )
            }
            RingError::Full => f.write_str("ring is full"),
            RingError::Corrupt { producer, consumer } => write!(
                f,
                "ring corrupted by peer (producer index {producer}, consumer index {consumer})"
            ),
        }
    }
}

impl core::error::Error for RingError {}

/// Whether the caller must notify the peer's channel after an operation.
#[must_use = "the peer may be asleep waiting for this notification"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyPeer {
    Yes,
    No,
}

/// Outcome of arming the "wake me" flag before sleeping.
#[must_use = "sleeping after Arm::Retry loses a message"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// The flag is set and the ring state is unchanged: block until notified.
    Sleep,
    /// The peer made progress meanwhile; the flag was withdrawn. Try again.
    Retry,
}

/// The windows of the sleep protocol where the peer's concurrent steps
/// decide whether a wake-up can be lost. Test builds let the model checker
/// run the peer inside them; other builds compile the hook to nothing.
#[cfg_attr(test, derive(Clone, Copy, Debug, PartialEq, Eq))]
enum Race {
    /// Consumer saw an empty ring and has not set its flag yet.
    ConsumerArming,
    /// Producer published its index and has not read the flag yet.
    ProducerPublished,
    /// Producer saw a full ring and has not set its flag yet.
    ProducerArming,
    /// Consumer published its index and has not read the flag yet.
    ConsumerPublished,
}

#[cfg(test)]
use tests::race_point;

#[cfg(not(test))]
#[inline(always)]
fn race_point(_: Race) {}

/// Bytes needed for a ring of `capacity` slots of `SLOT` bytes, or `None`
/// on overflow.
pub const fn region_bytes<const SLOT: usize>(capacity: u32) -> Option<usize> {
    match SLOT.checked_mul(capacity as usize) {
        Some(slots) => HEADER_BYTES.checked_add(slots),
        None => None,
    }
}

/// Empties the ring in place: zeroes both indices, both flags and the
/// session words. Slots are left as they are.
///
/// # Safety
/// Same contract as [`Producer::new`], and no handle over this region may be
/// in use (by either PD) while or after this runs; create fresh handles.
pub unsafe fn init<const SLOT: usize>(base: *mut u8, len: usize) -> Result<(), RingError> {
    // SAFETY: forwarded from this function's contract.
    let shared = unsafe { Shared::<SLOT>::new(base, len) }?;
    for word in [
        PRODUCER_INDEX,
        CONSUMER_INDEX,
        CONSUMER_WANTS_NOTIFY,
        PRODUCER_WANTS_NOTIFY,
        PRODUCER_INCARNATION,
        PRODUCER_ACK,
    ] {
        shared.word(word).store(0, Ordering::Relaxed);
    }
    shared.tag().store(0, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    Ok(())
}

/// The validated region: base pointer plus capacity mask. Every address it
/// hands out is computed from a masked index, so it stays in bounds no
/// matter what the peer writes.
struct Shared<const SLOT: usize> {
    base: *mut u8,
    capacity: u32,
}

impl<const SLOT: usize> Shared<SLOT> {
    /// # Safety
    /// See [`Producer::new`].
    unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RingError> {
        const { assert!(SLOT > 0, "ring slots must not be empty") };
        let addr = base as usize;
        if !addr.is_multiple_of(REGION_ALIGN) {
            return Err(RingError::Misaligned {
                addr,
                align: REGION_ALIGN,
            });
        }
        let need = HEADER_BYTES + SLOT;
        if len < need {
            return Err(RingError::TooSmall { len, need });
        }
        let fits = (len - HEADER_BYTES) / SLOT;
        let floor_pow2 = 1usize << (usize::BITS - 1 - fits.leading_zeros());
        let capacity = floor_pow2.min(MAX_CAPACITY as usize) as u32;
        Ok(Shared { base, capacity })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset < HEADER_BYTES && offset.is_multiple_of(4));
        // SAFETY: offset is one of the header constants, inside the region
        // (len >= HEADER_BYTES was checked) and 4-aligned because the base is
        // 64-aligned. The region stays mapped for the handle's lifetime and
        // this side only accesses the header atomically (new's contract).
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast::<u32>()) }
    }

    /// The (producer, consumer) indices found in the region, for a side
    /// taking them over ([`Producer::reattach`], [`Consumer::reattach`]):
    /// the peer's word, `peer`, is read with acquire, so what the peer
    /// published before it is seen; [`RingError::Corrupt`] if the indices
    /// are further apart than the ring holds.
    fn found_indices(&self, peer: usize) -> Result<(u32, u32), RingError> {
        let load = |word| {
            let order = if word == peer {
                Ordering::Acquire
            } else {
                Ordering::Relaxed
            };
            self.word(word).load(order)
        };
        let (producer, consumer) = (load(PRODUCER_INDEX), load(CONSUMER_INDEX));
        if producer.wrapping_sub(consumer) > self.capacity {
            return Err(RingError::Corrupt { producer, consumer });
        }
        Ok((producer, consumer))
    }

    fn tag(&self) -> &AtomicU64 {
        // SAFETY: as in word(): inside the header, 8-aligned because the
        // base is 64-aligned, accessed only atomically by this side.
        unsafe { AtomicU64::from_ptr(self.base.add(PRODUCER_TAG).cast::<u64>()) }
    }

    fn slot(&self, index: u32) -> *mut [u8; SLOT] {
        let i = (index & (self.capacity - 1)) as usize;
        // SAFETY: i < capacity and HEADER_BYTES + capacity * SLOT <= len, so
        // the slot lies entirely inside the region.
        unsafe { self.base.add(HEADER_BYTES + i * SLOT).cast::<[u8; SLOT]>() }
    }

    /// Reads a "wants a notify" flag and clears it if set. Any non-zero value
    /// counts as set: a peer writing garbage only earns itself a notify.
    fn take_flag(&self, offset: usize) -> NotifyPeer {
        let flag = self.word(offset);
        if flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::AcqRel) != 0 {
            NotifyPeer::Yes
        } else {
            NotifyPeer::No
        }
    }
}

/// The producing end of a ring.
pub struct Producer<const SLOT: usize = 64> {
    ring: Shared<SLOT>,
    /// Our own index; the copy in shared memory is only published, never
    /// trusted.
    producer: u32,
    /// Last consumer index we accepted as valid.
    consumer: u32,
    poisoned: Option<RingError>,
}

// SAFETY: the handle is the unique owner of the producing side of its region;
// moving it to another thread moves that ownership. It holds no thread-local
// state and never hands out references into the region.
unsafe impl<const SLOT: usize> Send for Producer<SLOT> {}

impl<const SLOT: usize> Producer<SLOT> {
    /// Attaches to the producing end of the ring in `base[..len]`, taking
    /// over the indices found there (zero for a fresh region).
    ///
    /// # Safety
    /// - `base[..len]` stays mapped readable and writable for the lifetime
    ///   of the handle;
    /// - this is the only `Producer` for the region, in any address space;
    /// - this PD accesses the region only through ring handles (the peer PD
    ///   may do anything to it).
    ///
    /// Alignment and size are checked and reported as errors.
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from this function's contract.
        let p = unsafe { Self::attach(base, len) }?;
        match p.poisoned {
            Some(err) => Err(err),
            None => Ok(p),
        }
    }

    /// As [`new`](Self::new), but inconsistent indices leave the handle
    /// poisoned instead of failing: every operation then reports the
    /// corruption, until [`reattach`](Self::reattach) finds them fixed.
    /// For a PD that was restarted over what its predecessor left.
    ///
    /// # Safety
    /// As [`new`](Self::new).
    pub unsafe fn attach(base: *mut u8, len: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from this function's contract.
        let ring = unsafe { Shared::new(base, len) }?;
        let producer = ring.word(PRODUCER_INDEX).load(Ordering::Relaxed);
        let consumer = ring.word(CONSUMER_INDEX).load(Ordering::Acquire);
        let poisoned = (producer.wrapping_sub(consumer) > ring.capacity)
            .then_some(RingError::Corrupt { producer, consumer });
        Ok(Producer {
            ring,
            producer,
            consumer,
            poisoned,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.ring.capacity
    }

    /// Whether a corruption was detected; the handle is then unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Reads the consumer index and checks that it only moved forward, and
    /// not past what we produced, and that the peer left our index alone.
    fn refresh(&mut self) -> Result<(), RingError> {
        if let Some(err) = self.poisoned {
            return Err(err);
        }
        let shared_producer = self.ring.word(PRODUCER_INDEX).load(Ordering::Relaxed);
        let consumer = self.ring.word(CONSUMER_INDEX).load(Ordering::Acquire);
        let advanced = consumer.wrapping_sub(self.consumer);
        let in_flight = self.producer.wrapping_sub(self.consumer);
        if shared_producer != self.producer || advanced > in_flight {
            let err = RingError::Corrupt {
                producer: shared_producer,
                consumer,
            };
            self.poisoned = Some(err);
            return Err(err);
        }
        self.consumer = consumer;
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.producer.wrapping_sub(self.consumer) == self.ring.capacity
    }

    /// Number of messages in flight (pushed, not yet popped).
    pub fn len(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.producer.wrapping_sub(self.consumer))
    }

    /// Whether the consumer has taken every message.
    pub fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Publishes this side's tag (see the module documentation); call it
    /// before the first push.
    pub fn publish_tag(&mut self, tag: u64) {
        self.ring.tag().store(tag, Ordering::Release);
    }

    /// The incarnation this side last published (its predecessor's, for a
    /// side that was restarted and has not published its own yet).
    pub fn incarnation(&self) -> u32 {
        self.ring.word(PRODUCER_INCARNATION).load(Ordering::Relaxed)
    }

    /// Publishes this side's incarnation.
    pub fn publish_incarnation(&mut self, incarnation: u32) {
        self.ring
            .word(PRODUCER_INCARNATION)
            .store(incarnation, Ordering::Release);
    }

    /// The peer incarnation this side last acknowledged.
    pub fn acked(&self) -> u32 {
        self.ring.word(PRODUCER_ACK).load(Ordering::Relaxed)
    }

    /// Acknowledges the peer's `incarnation`, after everything this side
    /// wrote to the region before (a full fence: the peer reads the rings
    /// once it sees the acknowledgement).
    pub fn publish_ack(&mut self, incarnation: u32) {
        fence(Ordering::SeqCst);
        self.ring
            .word(PRODUCER_ACK)
            .store(incarnation, Ordering::Release);
    }

    /// Takes over the indices found in the region again, as [`new`](Self::new)
    /// does: for a side whose peer rewrote them while this side was not
    /// using the ring (the session handshake). Clears the poison.
    pub fn reattach(&mut self) -> Result<(), RingError> {
        let found = self.ring.found_indices(CONSUMER_INDEX);
        self.poisoned = found.err();
        (self.producer, self.consumer) = found?;
        Ok(())
    }

    /// Discards whatever the consumer has not taken, by moving the
    /// consumer's index up to ours, and clears both flags and the poison.
    /// Returns how many messages were discarded (0 if the consumer's index
    /// was unusable).
    ///
    /// # Safety
    /// The consumer does not use the ring until it re-attaches
    /// ([`Consumer::reattach`]): this writes the consumer's word.
    pub unsafe fn discard_unconsumed(&mut self) -> u32 {
        let consumer = self.ring.word(CONSUMER_INDEX).load(Ordering::Acquire);
        let waiting = self.producer.wrapping_sub(consumer);
        let discarded = if waiting <= self.ring.capacity {
            waiting
        } else {
            0
        };
        self.ring
            .word(PRODUCER_INDEX)
            .store(self.producer, Ordering::Relaxed);
        self.ring
            .word(CONSUMER_INDEX)
            .store(self.producer, Ordering::Relaxed);
        self.ring
            .word(CONSUMER_WANTS_NOTIFY)
            .store(0, Ordering::Relaxed);
        self.ring
            .word(PRODUCER_WANTS_NOTIFY)
            .store(0, Ordering::Relaxed);
        self.consumer = self.producer;
        self.poisoned = None;
        discarded
    }

    /// Copies `msg` into the next slot and publishes it. Returns whether the
    /// consumer asked to be notified (step 4 of the protocol).
    pub fn push(&mut self, msg: &[u8; SLOT]) -> Result<NotifyPeer, RingError> {
        Ok(self.reserve()?.push(msg))
    }

    /// Checks for a free slot once, for a caller that must decide whether
    /// to send (a typed port runs its observer) between finding room and
    /// pushing: the reserved slot cannot be taken away, since the consumer
    /// only ever frees slots.
    #[inline]
    pub fn reserve(&mut self) -> Result<Reserved<'_, SLOT>, RingError> {
        self.refresh()?;
        if self.is_full() {
            return Err(RingError::Full);
        }
        Ok(Reserved { producer: self })
    }

    /// Arms "producer wants a notify" before blocking on a full ring (step 6).
    /// Returns [`Arm::Retry`] if space appeared meanwhile.
    pub fn prepare_sleep(&mut self) -> Result<Arm, RingError> {
        self.refresh()?;
        if !self.is_full() {
            return Ok(Arm::Retry);
        }
        race_point(Race::ProducerArming);
        self.ring
            .word(PRODUCER_WANTS_NOTIFY)
            .store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh()?;
        if self.is_full() {
            Ok(Arm::Sleep)
        } else {
            self.ring
                .word(PRODUCER_WANTS_NOTIFY)
                .store(0, Ordering::Relaxed);
            Ok(Arm::Retry)
        }
    }
}

/// A free slot found by [`Producer::reserve`].
#[must_use = "a reservation does nothing unless pushed"]
pub struct Reserved<'p, const SLOT: usize> {
    producer: &'p mut Producer<SLOT>,
}

impl<const SLOT: usize> Reserved<'_, SLOT> {
    /// Copies `msg` into the reserved slot and publishes it; whether the
    /// consumer asked to be notified.
    #[inline]
    pub fn push(self, msg: &[u8; SLOT]) -> NotifyPeer {
        self.push_prefix(msg, SLOT)
    }

    /// [`push`](Self::push) of a message whose bytes past `len` carry
    /// nothing (a typed message's encoding is at most its protocol's
    /// longest): only the first `len` bytes, rounded up to whole words, are
    /// copied; what the slot held beyond them stays.
    #[inline]
    pub fn push_prefix(self, msg: &[u8; SLOT], len: usize) -> NotifyPeer {
        let p = self.producer;
        // SAFETY: slot() is in bounds; volatile because the peer maps the
        // same bytes and the compiler must not elide or merge the store.
        unsafe { write_slot(p.ring.slot(p.producer), msg, len) };
        p.producer = p.producer.wrapping_add(1);
        p.ring
            .word(PRODUCER_INDEX)
            .store(p.producer, Ordering::Release);
        fence(Ordering::SeqCst);
        race_point(Race::ProducerPublished);
        p.ring.take_flag(CONSUMER_WANTS_NOTIFY)
    }
}

/// The consuming end of a ring.
pub struct Consumer<const SLOT: usize = 64> {
    ring: Shared<SLOT>,
    /// Our own index; the copy in shared memory is only published.
    consumer: u32,
    /// Last producer index we accepted as valid.
    producer: u32,
    poisoned: Option<RingError>,
}

// SAFETY: as for Producer: unique owner of the consuming side.
unsafe impl<const SLOT: usize> Send for Consumer<SLOT> {}

impl<const SLOT: usize> Consumer<SLOT> {
    /// Attaches to the consuming end of the ring in `base[..len]`, taking
    /// over the indices found there (zero for a fresh region).
    ///
    /// # Safety
    /// As [`Producer::new`], with "the only `Consumer`".
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from this function's contract.
        let c = unsafe { Self::attach(base, len) }?;
        match c.poisoned {
            Some(err) => Err(err),
            None => Ok(c),
        }
    }

    /// As [`new`](Self::new), leaving the handle poisoned on inconsistent
    /// indices (see [`Producer::attach`]).
    ///
    /// # Safety
    /// As [`new`](Self::new).
    pub unsafe fn attach(base: *mut u8, len: usize) -> Result<Self, RingError> {
        // SAFETY: forwarded from this function's contract.
        let ring = unsafe { Shared::new(base, len) }?;
        let consumer = ring.word(CONSUMER_INDEX).load(Ordering::Relaxed);
        let producer = ring.word(PRODUCER_INDEX).load(Ordering::Acquire);
        let poisoned = (producer.wrapping_sub(consumer) > ring.capacity)
            .then_some(RingError::Corrupt { producer, consumer });
        Ok(Consumer {
            ring,
            consumer,
            producer,
            poisoned,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> u32 {
        self.ring.capacity
    }

    /// Whether a corruption was detected; the handle is then unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The tag the producer published (0 until it does). Only a value to
    /// compare: the producer may write anything there.
    pub fn peer_tag(&self) -> u64 {
        self.ring.tag().load(Ordering::Acquire)
    }

    /// The producer's incarnation (0 until it publishes one). Only a value
    /// to compare, like the tag.
    #[inline]
    pub fn peer_incarnation(&self) -> u32 {
        self.ring.word(PRODUCER_INCARNATION).load(Ordering::Acquire)
    }

    /// The incarnation of ours that the producer acknowledged.
    pub fn peer_ack(&self) -> u32 {
        self.ring.word(PRODUCER_ACK).load(Ordering::Acquire)
    }

    /// Takes over the indices found in the region again (see
    /// [`Producer::reattach`]). Clears the poison.
    pub fn reattach(&mut self) -> Result<(), RingError> {
        let found = self.ring.found_indices(PRODUCER_INDEX);
        self.poisoned = found.err();
        (self.producer, self.consumer) = found?;
        Ok(())
    }

    /// Makes the ring usable again after the producer was replaced:
    /// whatever it left unread is discarded (our index moves up to the
    /// producer's), or, when the indices are inconsistent (the old producer
    /// corrupted them), the producer's index is set to ours, so the ring
    /// reads as empty. Both flags and the poison are cleared. Returns how
    /// many messages were discarded.
    ///
    /// # Safety
    /// The producer does not use the ring until it re-attaches
    /// ([`Producer::reattach`]): this may write the producer's word.
    pub unsafe fn resync(&mut self) -> u32 {
        let producer = self.ring.word(PRODUCER_INDEX).load(Ordering::Acquire);
        let waiting = producer.wrapping_sub(self.consumer);
        let discarded = if waiting <= self.ring.capacity {
            self.consumer = producer;
            waiting
        } else {
            self.ring
                .word(PRODUCER_INDEX)
                .store(self.consumer, Ordering::Relaxed);
            0
        };
        self.ring
            .word(CONSUMER_INDEX)
            .store(self.consumer, Ordering::Relaxed);
        self.ring
            .word(CONSUMER_WANTS_NOTIFY)
            .store(0, Ordering::Relaxed);
        self.ring
            .word(PRODUCER_WANTS_NOTIFY)
            .store(0, Ordering::Relaxed);
        self.producer = self.consumer;
        self.poisoned = None;
        discarded
    }

    /// Reads the producer index and checks that it only moved forward, by at
    /// most the free space, and that the peer left our index alone.
    fn refresh(&mut self) -> Result<(), RingError> {
        if let Some(err) = self.poisoned {
            return Err(err);
        }
        let shared_consumer = self.ring.word(CONSUMER_INDEX).load(Ordering::Relaxed);
        let producer = self.ring.word(PRODUCER_INDEX).load(Ordering::Acquire);
        let advanced = producer.wrapping_sub(self.producer);
        let room = self
            .consumer
            .wrapping_add(self.ring.capacity)
            .wrapping_sub(self.producer);
        if shared_consumer != self.consumer || advanced > room {
            let err = RingError::Corrupt {
                producer,
                consumer: shared_consumer,
            };
            self.poisoned = Some(err);
            return Err(err);
        }
        self.producer = producer;
        Ok(())
    }

    /// Number of messages waiting.
    pub fn len(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.producer.wrapping_sub(self.consumer))
    }

    /// Whether no message is waiting.
    pub fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Takes the oldest message, copied out of shared memory, and whether
    /// the producer asked to be notified of the freed slot. `Ok(None)` when
    /// the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Result<Option<([u8; SLOT], NotifyPeer)>, RingError> {
        self.pop_with(|slot| *slot)
    }

    /// Takes the oldest message like [`pop`](Self::pop), handing `read` the
    /// private copy of the slot and returning what it makes of it (a
    /// decoded message), so the copy stays in one place.
    #[inline]
    pub fn pop_with<R>(
        &mut self,
        read: impl FnOnce(&[u8; SLOT]) -> R,
    ) -> Result<Option<(R, NotifyPeer)>, RingError> {
        self.pop_prefix_with(SLOT, read)
    }

    /// [`pop_with`](Self::pop_with) of a slot whose bytes past `len` carry
    /// nothing the reader looks at: only the first `len` bytes, rounded up
    /// to whole words, are copied, and the rest of the private copy is zero.
    #[inline]
    pub fn pop_prefix_with<R>(
        &mut self,
        len: usize,
        read: impl FnOnce(&[u8; SLOT]) -> R,
    ) -> Result<Option<(R, NotifyPeer)>, RingError> {
        self.refresh()?;
        if self.producer == self.consumer {
            return Ok(None);
        }
        // SAFETY: as in pop.
        let msg = unsafe { read_slot(self.ring.slot(self.consumer), len) };
        self.consumer = self.consumer.wrapping_add(1);
        self.ring
            .word(CONSUMER_INDEX)
            .store(self.consumer, Ordering::Release);
        fence(Ordering::SeqCst);
        race_point(Race::ConsumerPublished);
        let flag = self.ring.take_flag(PRODUCER_WANTS_NOTIFY);
        Ok(Some((read(&msg), flag)))
    }

    /// Arms "consumer wants a notify" before blocking on an empty ring
    /// (steps 2 and 3). Returns [`Arm::Retry`] if a message is waiting.
    pub fn prepare_sleep(&mut self) -> Result<Arm, RingError> {
        self.refresh()?;
        if self.producer != self.consumer {
            return Ok(Arm::Retry);
        }
        race_point(Race::ConsumerArming);
        self.ring
            .word(CONSUMER_WANTS_NOTIFY)
            .store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.refresh()?;
        if self.producer == self.consumer {
            Ok(Arm::Sleep)
        } else {
            self.ring
                .word(CONSUMER_WANTS_NOTIFY)
                .store(0, Ordering::Relaxed);
            Ok(Arm::Retry)
        }
    }

    /// Withdraws "consumer wants a notify" while awake: a producer that
    /// runs meanwhile (one of higher priority, woken by this side) then
    /// pushes without notifying, and its messages are found when
    /// [`prepare_sleep`](Self::prepare_sleep) looks again before sleeping.
    pub fn withdraw_sleep(&mut self) {
        self.ring
            .word(CONSUMER_WANTS_NOTIFY)
            .store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
