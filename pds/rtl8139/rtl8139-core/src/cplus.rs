//! C+ mode's descriptor rings: 16-byte descriptors in DMA memory, each
//! naming one buffer by its 64-bit physical address, handed to the device
//! with an ownership bit and taken back when the device clears it.
//!
//! Receive ([`RxDescs`]): every descriptor holds one buffer the client
//! lent, and the device writes one whole frame (and its CRC) straight
//! into it: nothing is copied. Transmit ([`TxDescs`]): a descriptor names
//! the client's buffer itself; a write to TxPoll makes the device send
//! every descriptor it owns, in order.
//!
//! # What QEMU's model does (hw/net/rtl8139.c, v7.2.0)
//!
//! - It walks each ring from descriptor 0 (after reset, and whenever
//!   Command.RE or Command.TE is written set) to the one marked end of
//!   ring, then wraps; a transmit ring without that mark wraps after 64.
//! - Receive: a descriptor the driver does not own drops the frame
//!   (RxOverflow, RxMissed counts it): C+ mode has no flow control, unlike
//!   normal mode, which holds frames back while its ring is full. A frame
//!   whose length plus CRC exceeds the descriptor's buffer size is dropped
//!   the same way. Otherwise it writes the frame (padded to 60 bytes) and
//!   its CRC at the buffer's address, then the first word (OWN clear,
//!   first and last segment set, the length with CRC) and the second.
//! - Transmit happens inside the TxPoll write: at most 64 descriptors,
//!   each one's first word written back with OWN clear. Frames are not
//!   padded.
//!
//! # Trusting nothing
//!
//! The driver reads each descriptor's first word once. It looks only at
//! descriptors it handed over, in the order it handed them over, so a
//! device cannot make it complete one twice or out of order; a length
//! beyond the buffer the driver gave, a frame split over descriptors, or
//! an error bit drops the frame (counted by the caller) and the buffer
//! goes back to be lent again. Should the device ever run ahead of the
//! driver (a later descriptor done while the next one is not), the ring
//! is in doubt and the caller resets the receiver.

use dma::{DmaBuf, DmaError, barrier};
use hwio::{LocalRegisterCopy, register_bitfields};

use crate::rx::{CRC_LEN, MAX_FRAME, MIN_FRAME};

register_bitfields![u32,
    /// A receive descriptor's first word: written by the driver when it
    /// hands the descriptor over (OWN, EOR, SIZE), by the device when it
    /// gives it back (OWN clear, status, SIZE the frame's length).
    pub RxWord0 [
        /// Buffer size (driver) or received length with CRC (device).
        SIZE OFFSET(0) NUMBITS(13) [],
        /// Checksum failures, only with receive checksum offload (off).
        TCPF OFFSET(13) NUMBITS(1) [],
        UDPF OFFSET(14) NUMBITS(1) [],
        IPF OFFSET(15) NUMBITS(1) [],
        /// CRC error.
        CRC OFFSET(18) NUMBITS(1) [],
        /// Shorter than 64 bytes.
        RUNT OFFSET(19) NUMBITS(1) [],
        /// Receive error summary.
        RES OFFSET(20) NUMBITS(1) [],
        /// Longer than 4096 bytes.
        LONG OFFSET(21) NUMBITS(1) [],
        /// FIFO overflow: the frame is bad.
        FOVF OFFSET(22) NUMBITS(1) [],
        /// Broadcast, physical-match and multicast frame.
        BAR OFFSET(24) NUMBITS(1) [],
        PAM OFFSET(25) NUMBITS(1) [],
        MAR OFFSET(26) NUMBITS(1) [],
        /// Frame alignment error.
        FAE OFFSET(27) NUMBITS(1) [],
        /// Last and first segment of a frame.
        LS OFFSET(28) NUMBITS(1) [],
        FS OFFSET(29) NUMBITS(1) [],
        /// End of ring: the device wraps to descriptor 0 after this one.
        EOR OFFSET(30) NUMBITS(1) [],
        /// The device owns the descriptor.
        OWN OFFSET(31) NUMBITS(1) [],
    ],
    /// A transmit descriptor's first word.
    pub TxWord0 [
        /// Bytes in the buffer.
        SIZE OFFSET(0) NUMBITS(16) [],
        /// Excessive collisions, link failure, out-of-window collision,
        /// error summary, FIFO underrun (set by the device).
        EXC OFFSET(20) NUMBITS(1) [],
        LNKF OFFSET(21) NUMBITS(1) [],
        OWC OFFSET(22) NUMBITS(1) [],
        TES OFFSET(23) NUMBITS(1) [],
        UNF OFFSET(25) NUMBITS(1) [],
        /// Large send (segmentation offload; never set here).
        LGSEN OFFSET(27) NUMBITS(1) [],
        LS OFFSET(28) NUMBITS(1) [],
        FS OFFSET(29) NUMBITS(1) [],
        EOR OFFSET(30) NUMBITS(1) [],
        OWN OFFSET(31) NUMBITS(1) [],
    ],
];

/// Bytes per descriptor: two words, then the buffer's 64-bit address.
pub const DESC_BYTES: usize = 16;
/// The alignment the chip wants for a descriptor ring.
pub const RING_ALIGN: usize = 256;
/// Receive descriptors: as many as the client may lend buffers
/// (`nic::MAX_LENT`), so that every lent buffer is the device's at once.
pub const RX_DESCS: usize = 256;
/// Transmit descriptors: QEMU serves at most 64 per TxPoll and wraps
/// after 64 without an end-of-ring mark.
pub const TX_DESCS: usize = 64;
/// The largest buffer size a receive descriptor can name.
const MAX_RX_SIZE: u16 = (1 << 13) - 8;
/// Bounce buffer per transmit descriptor, for frames under 60 bytes.
const BOUNCE: usize = 64;

/// Receive status bits that make a frame bad.
fn rx_errors() -> hwio::FieldValue<u32, RxWord0::Register> {
    RxWord0::CRC::SET
        + RxWord0::RUNT::SET
        + RxWord0::RES::SET
        + RxWord0::LONG::SET
        + RxWord0::FOVF::SET
        + RxWord0::FAE::SET
}

/// Transmit status bits that say a frame did not go out.
fn tx_errors() -> hwio::FieldValue<u32, TxWord0::Register> {
    TxWord0::EXC::SET
        + TxWord0::LNKF::SET
        + TxWord0::OWC::SET
        + TxWord0::TES::SET
        + TxWord0::UNF::SET
}

/// The rings do not fit the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// A ring buffer of the wrong size or alignment.
    BadRing {
        name: &'static str,
        len: usize,
    },
    Dma(DmaError),
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::BadRing { name, len } => write!(
                f,
                "C+ {name} ring of {len:#x} bytes: expected {} descriptors of {DESC_BYTES} bytes, {RING_ALIGN}-byte aligned",
                if *name == "receive" {
                    RX_DESCS
                } else {
                    TX_DESCS
                }
            ),
            RingError::Dma(e) => write!(f, "C+ ring: {e}"),
        }
    }
}

fn check_ring(buf: &DmaBuf, name: &'static str, descs: usize) -> Result<(), RingError> {
    if buf.len() < descs * DESC_BYTES || !buf.paddr().is_multiple_of(RING_ALIGN as u64) {
        return Err(RingError::BadRing {
            name,
            len: buf.len(),
        });
    }
    buf.paddr32().map(|_| ()).map_err(RingError::Dma)
}

/// A buffer in the client's data area: its offset there (what messages
/// carry), its physical address (what the device gets) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buf {
    pub offset: u32,
    pub paddr: u64,
    pub len: u16,
}

/// What the descriptor at the head of the receive ring holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDesc {
    /// None handed over, or the device still owns the next one.
    Empty,
    /// A frame of `len` bytes (without CRC) in `buf`.
    Frame { buf: Buf, len: u16 },
    /// The device gave the buffer back with nothing usable in it.
    Drop { buf: Buf, reason: RxDropReason },
}

/// Why a receive descriptor's frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDropReason {
    /// An error bit, or a frame not in exactly one descriptor.
    BadStatus { word: u32 },
    /// Shorter than 60 bytes without CRC.
    Runt { len: usize },
    /// Longer than [`MAX_FRAME`].
    TooLong { len: usize },
    /// Longer than the buffer the driver gave the device.
    BeyondBuffer { len: usize, size: u16 },
}

/// The receive ring: which lent buffer sits in which descriptor, the next
/// descriptor the device fills (`head`) and how many from there on it
/// owns (`armed`).
pub struct RxDescs {
    ring: DmaBuf,
    slots: [Option<Buf>; RX_DESCS],
    head: usize,
    armed: usize,
}

impl RxDescs {
    /// The ring over `ring` (at least [`RX_DESCS`] descriptors, aligned
    /// to [`RING_ALIGN`], below 4 GiB), every descriptor the driver's.
    pub fn new(mut ring: DmaBuf) -> Result<Self, RingError> {
        check_ring(&ring, "receive", RX_DESCS)?;
        ring.zero();
        Ok(RxDescs {
            ring,
            slots: [None; RX_DESCS],
            head: 0,
            armed: 0,
        })
    }

    /// The ring's physical address, for RDSAR.
    pub fn paddr(&self) -> u64 {
        self.ring.paddr()
    }

    /// Descriptors the device owns.
    pub fn armed(&self) -> usize {
        self.armed
    }

    pub fn is_full(&self) -> bool {
        self.armed == RX_DESCS
    }

    /// Hands `buf` to the device in the descriptor after the last one
    /// armed. The caller checked that the ring is not full and that the
    /// buffer holds a whole frame and its CRC.
    pub fn arm(&mut self, buf: Buf) {
        assert!(!self.is_full(), "rtl8139: C+ receive ring overfilled");
        let i = (self.head + self.armed) % RX_DESCS;
        let at = i * DESC_BYTES;
        let size = buf.len.min(MAX_RX_SIZE) & !7;
        self.ring.write::<u32>(at + 4, 0);
        self.ring.write::<u32>(at + 8, buf.paddr as u32);
        self.ring.write::<u32>(at + 12, (buf.paddr >> 32) as u32);
        barrier::publish();
        let eor = if i == RX_DESCS - 1 {
            RxWord0::EOR::SET
        } else {
            RxWord0::EOR::CLEAR
        };
        let word = RxWord0::OWN::SET + eor + RxWord0::SIZE.val(u32::from(size));
        self.ring.write::<u32>(at, word.value);
        self.slots[i] = Some(buf);
        self.armed += 1;
    }

    /// Takes the head descriptor back if the device is done with it.
    pub fn take_head(&mut self) -> RxDesc {
        if self.armed == 0 {
            return RxDesc::Empty;
        }
        let at = self.head * DESC_BYTES;
        let word = LocalRegisterCopy::<u32, RxWord0::Register>::new(self.ring.read::<u32>(at));
        if word.is_set(RxWord0::OWN) {
            return RxDesc::Empty;
        }
        barrier::acquire();
        let buf = self.slots[self.head]
            .take()
            .expect("rtl8139: armed C+ descriptor without a buffer");
        self.head = (self.head + 1) % RX_DESCS;
        self.armed -= 1;
        let len = word.read(RxWord0::SIZE) as usize;
        let size = buf.len.min(MAX_RX_SIZE) & !7;
        let reason = if word.get() & rx_errors().mask() != 0
            || !word.is_set(RxWord0::FS)
            || !word.is_set(RxWord0::LS)
            || len < CRC_LEN
        {
            Some(RxDropReason::BadStatus { word: word.get() })
        } else if len > usize::from(size) {
            Some(RxDropReason::BeyondBuffer { len, size })
        } else if len - CRC_LEN < MIN_FRAME {
            Some(RxDropReason::Runt { len: len - CRC_LEN })
        } else if len - CRC_LEN > MAX_FRAME {
            Some(RxDropReason::TooLong { len: len - CRC_LEN })
        } else {
            None
        };
        match reason {
            Some(reason) => RxDesc::Drop { buf, reason },
            None => RxDesc::Frame {
                buf,
                len: (len - CRC_LEN) as u16,
            },
        }
    }

    /// Whether the head descriptor is done (the next [`take_head`](Self::take_head)
    /// takes something back).
    pub fn head_done(&self) -> bool {
        self.armed > 0 && !self.owned(self.head)
    }

    fn owned(&self, i: usize) -> bool {
        LocalRegisterCopy::<u32, RxWord0::Register>::new(self.ring.read::<u32>(i * DESC_BYTES))
            .is_set(RxWord0::OWN)
    }

    /// Whether the device has given back an armed descriptor after the
    /// head while the head is still its own: it skipped one, and the ring
    /// is in doubt. Reads every armed descriptor's first word, so it is
    /// for when an interrupt said "received" and nothing was. The head is
    /// read last: the device gives descriptors back in order, so a frame
    /// landing meanwhile shows in the head too and is no doubt.
    pub fn ran_ahead(&self) -> bool {
        let later_done = (1..self.armed).any(|k| !self.owned((self.head + k) % RX_DESCS));
        later_done && self.owned(self.head)
    }

    /// Takes every buffer back (the receiver was stopped or is being
    /// reset), in the order they were handed over, and starts again at
    /// descriptor 0 as the device does.
    pub fn drain(&mut self, mut each: impl FnMut(Buf)) {
        while self.armed > 0 {
            let at = self.head * DESC_BYTES;
            self.ring.write::<u32>(at, 0);
            if let Some(buf) = self.slots[self.head].take() {
                each(buf);
            }
            self.head = (self.head + 1) % RX_DESCS;
            self.armed -= 1;
        }
        self.head = 0;
    }
}

/// How a transmit descriptor ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEnd {
    Sent,
    Failed { word: u32 },
}

#[derive(Clone, Copy)]
struct InFlight<T> {
    tag: T,
    since_ns: u64,
}

/// The transmit ring: descriptors in flight from `oldest`, `busy` of them;
/// `unpolled` were handed over since the last TxPoll.
pub struct TxDescs<T: Copy> {
    ring: DmaBuf,
    bounce: DmaBuf,
    slots: [Option<InFlight<T>>; TX_DESCS],
    oldest: usize,
    busy: usize,
    unpolled: usize,
}

impl<T: Copy> TxDescs<T> {
    /// The ring over `ring` (at least [`TX_DESCS`] descriptors, aligned,
    /// below 4 GiB) with a bounce buffer per descriptor in `bounce`.
    pub fn new(mut ring: DmaBuf, bounce: DmaBuf) -> Result<Self, RingError> {
        check_ring(&ring, "transmit", TX_DESCS)?;
        if bounce.len() < TX_DESCS * BOUNCE {
            return Err(RingError::BadRing {
                name: "transmit bounce",
                len: bounce.len(),
            });
        }
        bounce.paddr32().map_err(RingError::Dma)?;
        ring.zero();
        Ok(TxDescs {
            ring,
            bounce,
            slots: [None; TX_DESCS],
            oldest: 0,
            busy: 0,
            unpolled: 0,
        })
    }

    pub fn paddr(&self) -> u64 {
        self.ring.paddr()
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn is_full(&self) -> bool {
        self.busy == TX_DESCS
    }

    /// When the oldest transmit in flight was handed over, if any.
    pub fn oldest_since(&self) -> Option<u64> {
        self.slots[self.oldest].map(|s| s.since_ns)
    }

    /// Hands a frame to the device: `frame` is the client's buffer (its
    /// bytes read through `read` if it is too short to go out as it is,
    /// since the device pads nothing). It goes out at the next
    /// [`poll_needed`](Self::poll_needed) TxPoll.
    pub fn submit(
        &mut self,
        frame: Buf,
        read: impl FnOnce(&mut [u8]),
        tag: T,
        now_ns: u64,
    ) -> bool {
        assert!(!self.is_full(), "rtl8139: C+ transmit ring overfilled");
        let i = (self.oldest + self.busy) % TX_DESCS;
        let len = usize::from(frame.len);
        let bounced = len < MIN_FRAME;
        let paddr = if bounced {
            let mut bytes = [0u8; MIN_FRAME];
            read(&mut bytes[..len]);
            self.bounce.copy_in(i * BOUNCE, &bytes);
            self.bounce.paddr_at(i * BOUNCE)
        } else {
            frame.paddr
        };
        let at = i * DESC_BYTES;
        self.ring.write::<u32>(at + 4, 0);
        self.ring.write::<u32>(at + 8, paddr as u32);
        self.ring.write::<u32>(at + 12, (paddr >> 32) as u32);
        barrier::publish();
        let eor = if i == TX_DESCS - 1 {
            TxWord0::EOR::SET
        } else {
            TxWord0::EOR::CLEAR
        };
        let word = TxWord0::OWN::SET
            + TxWord0::FS::SET
            + TxWord0::LS::SET
            + eor
            + TxWord0::SIZE.val(len.max(MIN_FRAME) as u32);
        self.ring.write::<u32>(at, word.value);
        self.slots[i] = Some(InFlight {
            tag,
            since_ns: now_ns,
        });
        self.busy += 1;
        self.unpolled += 1;
        bounced
    }

    /// Whether descriptors were handed over since the last TxPoll; clears
    /// it (the caller writes TxPoll).
    pub fn poll_needed(&mut self) -> bool {
        core::mem::replace(&mut self.unpolled, 0) > 0
    }

    /// Takes back, oldest first, every descriptor the device is done with;
    /// stops at the first it still owns.
    pub fn reap(&mut self, mut done: impl FnMut(T, TxEnd)) {
        while self.busy > 0 {
            let at = self.oldest * DESC_BYTES;
            let word = LocalRegisterCopy::<u32, TxWord0::Register>::new(self.ring.read::<u32>(at));
            if word.is_set(TxWord0::OWN) {
                return;
            }
            let end = if word.get() & tx_errors().mask() != 0 {
                TxEnd::Failed { word: word.get() }
            } else {
                TxEnd::Sent
            };
            let job = self.slots[self.oldest]
                .take()
                .expect("rtl8139: busy C+ descriptor without a job");
            self.oldest = (self.oldest + 1) % TX_DESCS;
            self.busy -= 1;
            done(job.tag, end);
        }
    }

    /// Forgets every transmit in flight (the chip is being reset), oldest
    /// first, and starts again at descriptor 0 as the device does.
    pub fn abandon(&mut self, mut each: impl FnMut(T)) {
        while self.busy > 0 {
            self.ring.write::<u32>(self.oldest * DESC_BYTES, 0);
            if let Some(job) = self.slots[self.oldest].take() {
                each(job.tag);
            }
            self.oldest = (self.oldest + 1) % TX_DESCS;
            self.busy -= 1;
        }
        self.oldest = 0;
        self.unpolled = 0;
    }
}

#[cfg(test)]
mod tests;
