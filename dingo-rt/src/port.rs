//! Layout of a Dingo port's shared region, and checked access to its bulk
//! data area.
//!
//! A port joins two PDs through one Microkit channel and one shared memory
//! region. The region holds a ring per direction and a data area for bulk
//! buffers (packets, USB transfers); messages never carry pointers, only
//! `(offset, len)` pairs into the data area, which the receiver validates
//! with [`DataArea::check`] before touching the bytes.
//!
//! # Memory layout
//!
//! ```text
//!  0                      ring_bytes (64-aligned)   data_offset (64-aligned)     len
//!  | ring 0: A -> B        | ring 1: B -> A          | data area (bulk buffers)   |
//!  | header | slots...     | header | slots...       | offsets are relative here  |
//! ```
//!
//! Both sides compute the same [`PortLayout`] from the region length and
//! the slot count (part of the system description, never read from shared
//! memory). Side A transmits on ring 0 and receives on ring 1; side B the
//! other way round. The data area may be empty when bulk buffers live in a
//! separate region: wrap that one with [`DataArea::new`] directly.
//!
//! # Sending and receiving
//!
//! 1. The sender copies bulk data into the data area and a message naming
//!    `(offset, len)` into a slot with [`Producer::push`](crate::ring::Producer::push).
//! 2. If push says [`NotifyPeer::Yes`](crate::ring::NotifyPeer), the sender
//!    notifies the port's channel (the executor does this for you).
//! 3. The receiver pops the message (a private copy), decodes it, and checks
//!    `(offset, len)` with [`DataArea::check`]; out-of-range or overflowing
//!    pairs are rejected with a [`DataError`].
//! 4. Only then does it copy the bulk bytes out with [`DataArea::read`] or
//!    hand the address to a device with [`DataArea::ptr`]. Which buffers are
//!    owned by whom is the protocol's business; the peer may still write to
//!    any of them, so copy what must not change under you.

use core::fmt;
use core::ops::Range;

use crate::ring::{self, Consumer, Producer, RingError};

/// Highest Microkit channel id.
pub const MAX_CHANNEL: u8 = 61;

const LINE: usize = 64;

/// Which end of the port this PD is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Transmits on ring 0, receives on ring 1.
    A,
    /// Transmits on ring 1, receives on ring 0.
    B,
}

/// Why a port region or a bulk reference was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// The slot count is zero, not a power of two, or above the maximum.
    BadSlotCount { slots: u32 },
    /// Two rings of `slots` slots do not fit in the region.
    TooSmall { len: usize, need: usize },
    /// The channel id is above [`MAX_CHANNEL`].
    BadChannel { channel: u8 },
    /// A ring could not be attached (alignment, or a corrupt header).
    Ring(RingError),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PortError::BadSlotCount { slots } => write!(
                f,
                "port slot count {slots} is not a power of two in 1..={}",
                ring::MAX_CAPACITY
            ),
            PortError::TooSmall { len, need } => {
                write!(
                    f,
                    "port region of {len} bytes is too small (rings need {need})"
                )
            }
            PortError::BadChannel { channel } => {
                write!(f, "port channel {channel} is above {MAX_CHANNEL}")
            }
            PortError::Ring(e) => write!(f, "port ring: {e}"),
        }
    }
}

impl core::error::Error for PortError {}

impl From<RingError> for PortError {
    fn from(e: RingError) -> Self {
        PortError::Ring(e)
    }
}

/// Offsets of the two rings and the data area inside a port region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortLayout {
    /// Slots per ring.
    pub slots: u32,
    /// Bytes each ring occupies (header plus slots, not padded).
    pub ring_bytes: usize,
    /// Offsets of ring 0 (A to B) and ring 1 (B to A).
    pub rings: [usize; 2],
    /// Offset of the data area; 64-aligned.
    pub data_offset: usize,
    /// Length of the data area (may be zero).
    pub data_len: usize,
}

impl PortLayout {
    /// Computes the layout of a `len`-byte region with `slots` slots of
    /// `SLOT` bytes per ring.
    pub fn new<const SLOT: usize>(len: usize, slots: u32) -> Result<Self, PortError> {
        if !slots.is_power_of_two() || slots > ring::MAX_CAPACITY {
            return Err(PortError::BadSlotCount { slots });
        }
        let too_big = PortError::TooSmall {
            len,
            need: usize::MAX,
        };
        let ring_bytes = ring::region_bytes::<SLOT>(slots).ok_or(too_big)?;
        let stride = ring_bytes.checked_next_multiple_of(LINE).ok_or(too_big)?;
        let data_offset = stride.checked_mul(2).ok_or(too_big)?;
        if data_offset > len {
            return Err(PortError::TooSmall {
                len,
                need: data_offset,
            });
        }
        Ok(PortLayout {
            slots,
            ring_bytes,
            rings: [0, stride],
            data_offset,
            data_len: len - data_offset,
        })
    }
}

/// A bulk reference from a message that passed [`DataArea::check`]: the
/// range lies inside the data area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bulk(Range<usize>);

impl Bulk {
    pub fn offset(&self) -> usize {
        self.0.start
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a bulk `(offset, len)` from a peer was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// `offset + len` does not fit in 64 bits.
    Overflow { offset: u64, len: u64 },
    /// The range ends past the data area.
    OutOfRange { offset: u64, len: u64, area: usize },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DataError::Overflow { offset, len } => {
                write!(
                    f,
                    "bulk reference offset {offset:#x} + len {len:#x} overflows"
                )
            }
            DataError::OutOfRange { offset, len, area } => write!(
                f,
                "bulk reference [{offset:#x}, +{len:#x}) is outside the {area:#x}-byte data area"
            ),
        }
    }
}

impl core::error::Error for DataError {}

/// The bulk data area of a port (or a separate shared data region).
pub struct DataArea {
    base: *mut u8,
    len: usize,
}

// SAFETY: a DataArea is a bounds-checked view of memory whose mapping outlives
// it (new's contract); it has no thread-local state.
unsafe impl Send for DataArea {}

impl DataArea {
    /// Wraps `base[..len]`.
    ///
    /// # Safety
    /// `base[..len]` stays mapped readable and writable for the lifetime of
    /// the value, and this PD accesses it only through this value (the peer
    /// may do anything to it).
    pub unsafe fn new(base: *mut u8, len: usize) -> Self {
        DataArea { base, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Validates a peer-supplied `(offset, len)`; no arithmetic on the raw
    /// values can wrap.
    pub fn check(&self, offset: u64, len: u64) -> Result<Bulk, DataError> {
        let end = offset
            .checked_add(len)
            .ok_or(DataError::Overflow { offset, len })?;
        let out_of_range = DataError::OutOfRange {
            offset,
            len,
            area: self.len,
        };
        let end = usize::try_from(end).map_err(|_| out_of_range)?;
        if end > self.len {
            return Err(out_of_range);
        }
        // offset <= end <= self.len, so it fits in usize.
        Ok(Bulk(offset as usize..end))
    }

    /// Copies the bulk bytes at `offset` into `dst` (all of it).
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), DataError> {
        let range = self.check(offset, dst.len() as u64)?;
        // SAFETY: the range is inside the area (checked), which no Rust
        // reference covers, so it cannot overlap `dst`; shared_copy because
        // the peer maps the same bytes.
        unsafe { shared_copy::copy(dst.as_mut_ptr(), self.base.add(range.offset()), dst.len()) };
        Ok(())
    }

    /// Copies `src` into the data area at `offset`.
    pub fn write(&self, offset: u64, src: &[u8]) -> Result<(), DataError> {
        let range = self.check(offset, src.len() as u64)?;
        // SAFETY: as in read.
        unsafe { shared_copy::copy(self.base.add(range.offset()), src.as_ptr(), src.len()) };
        Ok(())
    }

    /// Address of a checked bulk range, for zero-copy hand-off (e.g. a DMA
    /// descriptor). Dereferencing it is the caller's `unsafe`, and the peer
    /// can change the bytes underneath.
    pub fn ptr(&self, bulk: &Bulk) -> *mut u8 {
        // wrapping_add: a Bulk from another, larger area must not be UB here;
        // it is only a bad address, like any other the caller could compute.
        self.base.wrapping_add(bulk.offset())
    }
}

/// One end of a Dingo port: a transmit ring, a receive ring, the data area,
/// and the channel both PDs notify.
pub struct Port<const SLOT: usize = 64> {
    pub tx: Producer<SLOT>,
    pub rx: Consumer<SLOT>,
    pub data: DataArea,
    pub channel: u8,
    pub layout: PortLayout,
}

impl<const SLOT: usize> Port<SLOT> {
    /// Attaches to side `side` of the port region `base[..len]` whose rings
    /// have `slots` slots, signalled through Microkit channel `channel`.
    /// Indices found inconsistent (a restarted PD's predecessor corrupted
    /// them) leave that ring poisoned: its operations report it, until the
    /// session handshake has the peer reset them (see [`Session`]).
    ///
    /// # Safety
    /// - `base[..len]` stays mapped readable and writable for the lifetime
    ///   of the port;
    /// - only one `Port` per side exists for the region, in any address
    ///   space;
    /// - this PD accesses the region only through the returned value.
    pub unsafe fn new(
        base: *mut u8,
        len: usize,
        slots: u32,
        side: Side,
        channel: u8,
    ) -> Result<Self, PortError> {
        if channel > MAX_CHANNEL {
            return Err(PortError::BadChannel { channel });
        }
        let layout = PortLayout::new::<SLOT>(len, slots)?;
        let (tx, rx) = match side {
            Side::A => (layout.rings[0], layout.rings[1]),
            Side::B => (layout.rings[1], layout.rings[0]),
        };
        // SAFETY: the layout keeps both rings and the data area inside
        // base[..len] and disjoint; the rest is this function's contract.
        // wrapping_add keeps an unmapped base from being UB before the
        // alignment check inside the ring constructors.
        unsafe {
            Ok(Port {
                tx: Producer::attach(base.wrapping_add(tx), layout.ring_bytes)?,
                rx: Consumer::attach(base.wrapping_add(rx), layout.ring_bytes)?,
                data: DataArea::new(base.wrapping_add(layout.data_offset), layout.data_len),
                channel,
                layout,
            })
        }
    }
}

/// This end's part in the port's session handshake, which lets a PD that
/// the monitor restarted take up its ports again without trusting what its
/// predecessor left in them.
///
/// Each end publishes its *incarnation* in the header of the ring it
/// transmits on: one more than the number found there, so 1 for a PD's
/// first instance and one more per restart (the region outlives the PD).
/// A first instance uses the rings at once: both ends start from a zeroed
/// region. A later one takes no message from the rings and puts none in
/// until the peer has acknowledged its incarnation (the `ack` word of the
/// peer's ring): the peer first takes what the dead instance sent, then
/// resets the rings ([`Port::accept_peer`]: what the dead instance never
/// took is discarded, indices it corrupted are reset), then acknowledges.
/// Only then does the new instance take over the indices and start; each
/// end writes the other's words only while the other waits for its
/// acknowledgement, so the rings never have two writers at once.
///
/// A port end checks the peer's incarnation on every operation (one load,
/// [`Port::session_event`]); a change means the peer restarted. An end
/// inherits what its predecessor acknowledged, so a restarted end whose
/// peer did not restart meanwhile waits for the peer without resetting
/// anything itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// This end's incarnation.
    pub mine: u32,
    /// The peer incarnation this end's view of the rings belongs to (0:
    /// none seen yet).
    pub peer: u32,
    /// Whether this end may use the rings.
    pub ready: bool,
}

/// What [`Port::session_event`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The peer acknowledged this end's incarnation: the rings are this
    /// end's to use (taken over as the peer left them).
    Ready,
    /// The peer is a new instance. Take what the old one sent (or not),
    /// then call [`Port::accept_peer`].
    PeerRestarted { incarnation: u32 },
}

impl<const SLOT: usize> Port<SLOT> {
    /// Begins this end's incarnation (see [`Session`]).
    pub fn begin_session(&mut self) -> Session {
        let mine = match self.tx.incarnation() {
            0 => 1,
            // 0 means "none" and 1 "a first instance": a wrapped count
            // is neither.
            u32::MAX => 2,
            n => n + 1,
        };
        self.tx.publish_incarnation(mine);
        Session {
            mine,
            peer: self.tx.acked(),
            ready: mine == 1,
        }
    }

    /// Looks at the peer's incarnation and acknowledgement: `None` when
    /// nothing changed (the common case: one load and a compare).
    #[inline]
    pub fn session_event(&mut self, s: &mut Session) -> Option<SessionEvent> {
        let peer = self.rx.peer_incarnation();
        if s.ready && peer == s.peer {
            return None;
        }
        self.session_changed(s, peer)
    }

    #[cold]
    #[inline(never)]
    fn session_changed(&mut self, s: &mut Session, peer: u32) -> Option<SessionEvent> {
        if peer != s.peer && peer != 0 {
            if s.peer == 0 && peer == 1 {
                // The peer's first instance attached: both started from a
                // zeroed region, nothing to reset.
                s.peer = 1;
                self.tx.publish_ack(1);
            } else {
                return Some(SessionEvent::PeerRestarted { incarnation: peer });
            }
        }
        if !s.ready && self.rx.peer_ack() == s.mine {
            // The peer reset the rings for us; inconsistent indices would
            // poison the handles, and the operations report that.
            let _ = self.tx.reattach();
            let _ = self.rx.reattach();
            s.ready = true;
            return Some(SessionEvent::Ready);
        }
        None
    }

    /// Accepts the peer's new `incarnation`: discards what its dead
    /// predecessor did not take from this end and what this end did not
    /// read from it, resets indices it corrupted, and acknowledges, after
    /// which the peer uses the rings. Returns the messages discarded (this
    /// end's, the peer's).
    pub fn accept_peer(&mut self, s: &mut Session, incarnation: u32) -> (u32, u32) {
        // SAFETY: the peer's new instance does not touch the rings until it
        // sees the acknowledgement published below, and the old instance
        // is gone (the monitor replaced it).
        let discarded = unsafe { (self.tx.discard_unconsumed(), self.rx.resync()) };
        s.peer = incarnation;
        self.tx.publish_ack(incarnation);
        discarded
    }

    /// Whether the peer is a new instance this end has not accepted yet.
    pub fn peer_changed(&self, s: &Session) -> bool {
        self.rx.peer_incarnation() != s.peer
    }

    /// Whether the peer acknowledged this end (for an end still waiting).
    pub fn acknowledged(&self, s: &Session) -> bool {
        self.rx.peer_ack() == s.mine
    }
}

#[cfg(test)]
mod tests;
