//! The normal-mode receive ring: one contiguous ring in DMA memory into
//! which the device writes each frame as a 4-byte header (status, length),
//! the frame, and its 4-byte CRC, every record starting 4-byte aligned.
//!
//! Everything here reads device-written memory exactly once per value and
//! trusts none of it. [`RxRing::next`] decodes the record at the driver's
//! read offset against the device's write offset (CBR, read once per batch
//! by the caller) and says what to do with it:
//!
//! - [`Rx::Frame`]: a frame that passed every check, to copy out with
//!   [`RxRing::copy_frame`] and then [`RxRing::advance`] past;
//! - [`Rx::Drop`]: a record whose length is consistent with the ring but
//!   whose status or length makes it unusable; skip it with `advance`;
//! - [`Rx::Doubt`]: the ring state cannot be right (a write offset outside
//!   the ring, a length running past what the device wrote): the receiver
//!   must be reset, as Linux's `rtl8139_rx_err` does;
//! - [`Rx::Empty`]: nothing unread.
//!
//! The driver clears each record's header once it is done with it, and
//! the whole ring when it resets the receiver: a device whose write offset
//! runs ahead of what it wrote then shows the driver a zero header (an
//! impossible length, so a reset) instead of an old frame to forward
//! again.
//!
//! # Why the allocation is larger than the ring
//!
//! The driver leaves RxConfig.WRAP clear, so the device wraps a record at
//! the ring's end instead of writing past it. QEMU's model checks room only
//! when the ring is not empty; into an empty ring it writes a frame of any
//! size it was handed (up to 69,632 bytes from a netdev), and a frame
//! longer than the ring then runs past the ring's end by up to the frame's
//! length before wrapping. [`SLACK`] bytes after the ring absorb that, so
//! the device never writes outside the driver's DMA buffer; the driver
//! never reads there (every read is checked against the ring length).

use dma::{DmaBuf, DmaError};

use crate::regs::rx_status;

/// The largest frame the driver forwards, without CRC: 1514 bytes plus a
/// VLAN tag.
pub const MAX_FRAME: usize = 1518;
/// The shortest frame on Ethernet, without CRC; QEMU pads shorter ones.
pub const MIN_FRAME: usize = 60;
/// Bytes of the CRC the device appends to every frame.
pub const CRC_LEN: usize = 4;
/// Bytes of the record header.
pub const HEADER_LEN: usize = 4;
/// The largest single device write into an empty ring, rounded up to a
/// page: QEMU's netdev buffer (4096 + 65536 bytes) plus header and CRC.
pub const SLACK: usize = 0x12000;

/// Ring lengths the device supports: 8 KiB << n.
pub const RING_LENGTHS: [usize; 4] = [8 << 10, 16 << 10, 32 << 10, 64 << 10];

/// Why a record was skipped (the ring stays consistent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Status without ROK, or with an error bit (CRC, alignment, symbol,
    /// runt or long flagged by the device).
    BadStatus { status: u16 },
    /// Shorter than 60 bytes without CRC.
    Runt { len: usize },
    /// Longer than [`MAX_FRAME`].
    TooLong { len: usize },
}

/// Why the ring state is in doubt; the receiver must be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoubtReason {
    /// The device's write offset is outside the ring or not 4-aligned.
    BadWriteOffset { cbr: u16 },
    /// The record's length (with CRC) runs past the bytes the device says
    /// it wrote, or leaves no room for the CRC.
    BadLength { len: u16, unread: usize },
    /// The device says it wrote the record, yet its length still reads as
    /// the early-receive marker.
    EarlyRx,
    /// C+: the device gave back a descriptor after the next one while the
    /// next one is still its own.
    RanAhead,
}

/// A frame that passed every check: `len` bytes (without CRC) starting at
/// ring offset `start`, possibly wrapping at the ring's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub start: usize,
    pub len: usize,
    /// Bytes of the whole record, header to aligned end: what `advance`
    /// takes.
    pub record: usize,
}

/// What the record at the read offset is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    Empty,
    Frame(Frame),
    Drop { reason: DropReason, record: usize },
    Doubt(DoubtReason),
}

/// A ring of `len` bytes (one of [`RING_LENGTHS`]) inside a DMA buffer of
/// at least `len + SLACK` bytes, and the driver's read offset.
pub struct RxRing {
    buf: DmaBuf,
    len: usize,
    offset: usize,
}

/// The ring does not fit its buffer or the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Not one of the lengths the device supports.
    BadLength { len: usize },
    /// The buffer is shorter than the ring plus [`SLACK`].
    BufferTooSmall { have: usize, need: usize },
    /// The device cannot address the buffer.
    Dma(DmaError),
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::BadLength { len } => write!(
                f,
                "receive ring of {len:#x} bytes: the device takes 8, 16, 32 or 64 KiB"
            ),
            RingError::BufferTooSmall { have, need } => write!(
                f,
                "receive ring buffer of {have:#x} bytes is too small: ring plus slack need {need:#x}"
            ),
            RingError::Dma(e) => write!(f, "receive ring: {e}"),
        }
    }
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl RxRing {
    /// The ring over `buf`, `len` bytes long, read offset 0.
    pub fn new(buf: DmaBuf, len: usize) -> Result<Self, RingError> {
        if !RING_LENGTHS.contains(&len) {
            return Err(RingError::BadLength { len });
        }
        let need = len + SLACK;
        if buf.len() < need {
            return Err(RingError::BufferTooSmall {
                have: buf.len(),
                need,
            });
        }
        buf.paddr32().map_err(RingError::Dma)?;
        Ok(RxRing {
            buf,
            len,
            offset: 0,
        })
    }

    /// The ring's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// RxConfig.RBLEN for this ring.
    pub fn rblen(&self) -> u32 {
        RING_LENGTHS
            .iter()
            .position(|&l| l == self.len)
            .unwrap_or(0) as u32
    }

    /// The ring's physical address for RBSTART (checked below 4 GiB when
    /// the ring was made).
    pub fn paddr32(&self) -> u32 {
        self.buf.paddr() as u32
    }

    /// The driver's read offset.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The value for CAPR: the read offset minus 16 (the device adds 16).
    pub fn capr(&self) -> u16 {
        (self.offset as u16).wrapping_sub(16)
    }

    /// Back to offset 0, as the device is after a receiver reset. The
    /// ring is cleared, so that records left from before cannot pass for
    /// new ones should the device's write offset ever lie.
    pub fn reset(&mut self) {
        self.offset = 0;
        const CHUNK: [u8; 256] = [0; 256];
        for at in (0..self.len).step_by(CHUNK.len()) {
            self.buf.copy_in(at, &CHUNK);
        }
    }

    /// Decodes the record at the read offset, given the device's write
    /// offset `cbr`.
    pub fn next(&self, cbr: u16) -> Rx {
        let write = usize::from(cbr);
        if write >= self.len || !write.is_multiple_of(4) {
            return Rx::Doubt(DoubtReason::BadWriteOffset { cbr });
        }
        let unread = (write + self.len - self.offset) % self.len;
        if unread == 0 {
            return Rx::Empty;
        }
        // The offset is 4-aligned and below the ring's length, which is a
        // multiple of 4: the header never wraps.
        let header: u32 = self.read_u32(self.offset);
        let status = header as u16;
        let len = (header >> 16) as u16;
        if len == rx_status::EARLY_RX_LEN {
            return Rx::Doubt(DoubtReason::EarlyRx);
        }
        let record = align4(HEADER_LEN + usize::from(len));
        if usize::from(len) < CRC_LEN || record > unread {
            return Rx::Doubt(DoubtReason::BadLength { len, unread });
        }
        let frame_len = usize::from(len) - CRC_LEN;
        let reason = if status & rx_status::ROK == 0 || status & rx_status::ERRORS != 0 {
            Some(DropReason::BadStatus { status })
        } else if frame_len < MIN_FRAME {
            Some(DropReason::Runt { len: frame_len })
        } else if frame_len > MAX_FRAME {
            Some(DropReason::TooLong { len: frame_len })
        } else {
            None
        };
        match reason {
            Some(reason) => Rx::Drop { reason, record },
            None => Rx::Frame(Frame {
                start: (self.offset + HEADER_LEN) % self.len,
                len: frame_len,
                record,
            }),
        }
    }

    /// Copies a frame [`next`](Self::next) returned into `dst` at `at`
    /// (exactly `frame.len` bytes), in two pieces if it wraps.
    pub fn copy_frame(&self, frame: &Frame, dst: &mut DmaBuf, at: usize) {
        assert!(
            frame.start < self.len && frame.len <= self.len,
            "rtl8139: frame {frame:?} does not fit ring of {:#x} bytes",
            self.len,
        );
        let first = frame.len.min(self.len - frame.start);
        self.read(frame.start, dst, at, first);
        self.read(0, dst, at + first, frame.len - first);
    }

    /// Moves the read offset past a record of `record` bytes. Its header
    /// is cleared first: a stale record reads as length 0, which is never
    /// valid, should the device's write offset ever point past what it
    /// really wrote.
    pub fn advance(&mut self, record: usize) {
        self.buf.write::<u32>(self.offset, 0);
        self.offset = (self.offset + record) % self.len;
    }

    /// Every copy out of the ring goes through here: inside `[0, len)`,
    /// never into the slack.
    fn read(&self, at: usize, dst: &mut DmaBuf, dst_at: usize, n: usize) {
        assert!(
            at.checked_add(n).is_some_and(|end| end <= self.len),
            "rtl8139: ring read of {n:#x} bytes at {at:#x} outside ring of {:#x}",
            self.len
        );
        self.buf.copy_to(at, dst, dst_at, n);
    }

    fn read_u32(&self, at: usize) -> u32 {
        assert!(
            at + 4 <= self.len,
            "rtl8139: header read at {at:#x} outside ring of {:#x}",
            self.len
        );
        u32::from_le(self.buf.read::<u32>(at))
    }
}

#[cfg(test)]
mod tests;
