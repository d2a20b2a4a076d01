//! The legacy (8-byte) buffer descriptors and the two rings of them, each
//! hardened against a device that writes anything into a descriptor it
//! hands back.
//!
//! A descriptor is a length, a status and a buffer's physical address.
//! The driver fills in the address and length, then (after a barrier) the
//! status with the ownership bit (E for receive, R for transmit); the
//! device clears that bit when it is done and writes the length and status
//! bits. The device walks a ring in order, from the start register to the
//! descriptor whose W bit is set, then back to the start.
//!
//! What the driver never trusts: the address a descriptor holds when it
//! comes back (each ring keeps its own record of the buffer at every
//! index), the W bit (rewritten on every re-arm), and the length (checked
//! against the buffer and the frame limits). It looks only at descriptors
//! it handed to the device, oldest first, so a device that clears the
//! ownership bit of another descriptor changes nothing; one that skips a
//! descriptor is found ([`RxRing::skipped`]) and the ring restarted.

use dma::{DmaBuf, DmaError, DmaRegion, barrier};
use hwio::LocalRegisterCopy;

use crate::regs::{RxStatus, TxStatus};

/// Bytes per descriptor: length (u16), status (u16), buffer address (u32).
pub const DESC_BYTES: usize = 8;
const LEN_AT: usize = 0;
const STATUS_AT: usize = 2;
const ADDR_AT: usize = 4;

/// Descriptors in the receive ring.
pub const RX_SLOTS: usize = 64;
/// Descriptors in the transmit ring.
pub const TX_SLOTS: usize = 32;
/// The receive buffer size the device is told (MRBR, a multiple of 16):
/// the longest frame with its CRC fits, so a frame takes one descriptor.
pub const RX_BUF_BYTES: usize = 1536;
/// The ENET's DMA wants buffers on 16-byte boundaries (Linux's fec aligns
/// both directions so on ARM).
pub const BUF_ALIGN: usize = 16;
/// The CRC at the end of every received frame (RCR.CRCFWD clear).
pub const CRC_BYTES: usize = 4;
/// The shortest frame forwarded: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// The longest frame forwarded, without CRC (1514 plus a VLAN tag).
pub const MAX_FRAME: usize = 1518;

/// A receive buffer lent by the client: `len` bytes at offset `buf` of the
/// data area, at physical address `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lent {
    pub buf: u32,
    pub len: u16,
    pub paddr: u32,
}

/// Why a received descriptor was not a frame for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// LG or TR, longer than [`MAX_FRAME`], or spread over descriptors
    /// (MRBR holds the longest frame, so only a too-long frame spreads).
    TooLong,
    /// CRC error, FIFO overrun or a fraction of an octet.
    BadStatus { status: u16 },
    /// Shorter than an Ethernet header.
    Runt { len: usize },
    /// The device claims more bytes than the buffer holds, or none.
    BadLength { len: usize },
}

/// What the oldest armed receive descriptor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// The device still owns it.
    Empty,
    /// A frame of `len` bytes (CRC removed) in the client's buffer.
    Frame { lent: Lent, len: usize },
    /// Not a frame for the client; the buffer is free to be armed again.
    /// `first` is set on the first descriptor of a dropped frame (a frame
    /// spread over several counts once).
    Drop {
        lent: Lent,
        reason: DropReason,
        first: bool,
    },
}

/// A descriptor ring's memory.
struct Ring {
    mem: DmaBuf,
    slots: usize,
}

impl Ring {
    fn new(dma: &mut DmaRegion, name: &'static str, slots: usize) -> Result<Self, DmaError> {
        // 64-byte alignment: the start registers want 8, a cache line is 32.
        let mut mem = dma.alloc(name, slots * DESC_BYTES, 64)?;
        mem.paddr32()?;
        mem.zero();
        Ok(Ring { mem, slots })
    }

    fn paddr32(&self) -> u32 {
        // Checked below 4 GiB in `new`.
        self.mem.paddr() as u32
    }

    fn status(&self, i: usize) -> u16 {
        self.mem.read::<u16>(i * DESC_BYTES + STATUS_AT)
    }

    fn len(&self, i: usize) -> u16 {
        self.mem.read::<u16>(i * DESC_BYTES + LEN_AT)
    }

    /// Hands descriptor `i` to the device: address and length first, the
    /// status (with the ownership bit) last.
    fn give(&mut self, i: usize, paddr: u32, len: u16, status: u16) {
        self.mem.write::<u32>(i * DESC_BYTES + ADDR_AT, paddr);
        self.mem.write::<u16>(i * DESC_BYTES + LEN_AT, len);
        barrier::publish();
        self.mem.write::<u16>(i * DESC_BYTES + STATUS_AT, status);
    }

    /// Takes descriptor `i` back (the device is stopped or never had it).
    fn clear(&mut self, i: usize) {
        self.mem.write::<u16>(i * DESC_BYTES + STATUS_AT, 0);
    }

    fn last(&self, i: usize) -> bool {
        i == self.slots - 1
    }
}

/// The receive ring: up to [`RX_SLOTS`] of the client's buffers armed, in
/// the order the device fills them.
pub struct RxRing {
    ring: Ring,
    lent: [Option<Lent>; RX_SLOTS],
    /// The oldest armed descriptor: the next the device fills.
    head: usize,
    /// The next descriptor to arm.
    tail: usize,
    armed: usize,
    /// Inside a frame spread over descriptors (dropping it).
    spread: bool,
}

impl RxRing {
    /// An empty ring in `dma`.
    pub fn new(dma: &mut DmaRegion) -> Result<Self, DmaError> {
        Ok(RxRing {
            ring: Ring::new(dma, "rx ring", RX_SLOTS)?,
            lent: [None; RX_SLOTS],
            head: 0,
            tail: 0,
            armed: 0,
            spread: false,
        })
    }

    /// The ring's physical address, for RDSR.
    pub fn paddr32(&self) -> u32 {
        self.ring.paddr32()
    }

    pub fn armed(&self) -> usize {
        self.armed
    }

    pub fn is_full(&self) -> bool {
        self.armed == RX_SLOTS
    }

    /// Arms the next descriptor with `lent`; the caller checked that the
    /// ring is not full and the buffer holds [`RX_BUF_BYTES`].
    pub fn arm(&mut self, lent: Lent) {
        assert!(!self.is_full(), "imx-enet: arming a full receive ring");
        let i = self.tail;
        let wrap = if self.ring.last(i) {
            RxStatus::W::SET.value
        } else {
            0
        };
        self.ring
            .give(i, lent.paddr, 0, RxStatus::E::SET.value | wrap);
        self.lent[i] = Some(lent);
        self.tail = (i + 1) % RX_SLOTS;
        self.armed += 1;
    }

    /// Whether the device is done with the oldest armed descriptor.
    pub fn ready(&self) -> bool {
        self.armed > 0
            && !LocalRegisterCopy::<u16, RxStatus::Register>::new(self.ring.status(self.head))
                .is_set(RxStatus::E)
    }

    /// Takes the oldest armed descriptor if the device is done with it,
    /// judging what it wrote there.
    pub fn take(&mut self) -> Rx {
        if self.armed == 0 {
            return Rx::Empty;
        }
        let i = self.head;
        let status = LocalRegisterCopy::<u16, RxStatus::Register>::new(self.ring.status(i));
        if status.is_set(RxStatus::E) {
            return Rx::Empty;
        }
        // Ownership seen: the rest of what the device wrote may be read.
        barrier::acquire();
        let len = usize::from(self.ring.len(i));
        let lent = self.lent[i]
            .take()
            .expect("imx-enet: an armed descriptor without its buffer");
        self.ring.clear(i);
        self.head = (i + 1) % RX_SLOTS;
        self.armed -= 1;

        let first = !self.spread;
        if !status.is_set(RxStatus::L) {
            self.spread = true;
            return Rx::Drop {
                lent,
                reason: DropReason::TooLong,
                first,
            };
        }
        self.spread = false;
        let reason = if !first || status.is_set(RxStatus::LG) || status.is_set(RxStatus::TR) {
            Some(DropReason::TooLong)
        } else if status.is_set(RxStatus::CR)
            || status.is_set(RxStatus::OV)
            || status.is_set(RxStatus::NO)
        {
            Some(DropReason::BadStatus {
                status: status.get(),
            })
        } else if len == 0 || len > RX_BUF_BYTES {
            Some(DropReason::BadLength { len })
        } else if len < MIN_FRAME + CRC_BYTES {
            Some(DropReason::Runt { len })
        } else if len - CRC_BYTES > MAX_FRAME {
            Some(DropReason::TooLong)
        } else {
            None
        };
        match reason {
            Some(reason) => Rx::Drop {
                lent,
                reason,
                first,
            },
            None => Rx::Frame {
                lent,
                len: len - CRC_BYTES,
            },
        }
    }

    /// Whether the device handed back an armed descriptor other than the
    /// oldest while the oldest is still its own: it skipped one, and the
    /// ring's order no longer holds. Only worth asking when the device
    /// said it received a frame and the oldest descriptor showed none.
    ///
    /// The device keeps receiving while this runs: it may fill the oldest
    /// and the next between a look at the oldest and a look at the next,
    /// which is no skip. It fills descriptors in order, so the oldest is
    /// looked at again after a later one was seen filled: still empty
    /// then, it was skipped.
    pub fn skipped(&self) -> bool {
        let later = (1..self.armed).any(|k| {
            let i = (self.head + k) % RX_SLOTS;
            !LocalRegisterCopy::<u16, RxStatus::Register>::new(self.ring.status(i))
                .is_set(RxStatus::E)
        });
        if !later {
            return false;
        }
        barrier::acquire();
        !self.ready()
    }

    /// Takes every armed buffer back, oldest first (the device is
    /// stopped), and starts again at descriptor 0, where the device's
    /// pointer returns when it is re-enabled.
    pub fn reset(&mut self, mut each: impl FnMut(Lent)) {
        while self.armed > 0 {
            if let Some(l) = self.lent[self.head].take() {
                each(l);
            }
            self.ring.clear(self.head);
            self.head = (self.head + 1) % RX_SLOTS;
            self.armed -= 1;
        }
        self.head = 0;
        self.tail = 0;
        self.spread = false;
    }
}

/// One transmit the device holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight<T> {
    pub tag: T,
    /// When it was handed to the device (for the watchdog).
    pub since_ns: u64,
}

/// The transmit ring: frames handed out and taken back in order.
pub struct TxRing<T: Copy> {
    ring: Ring,
    slots: [Option<InFlight<T>>; TX_SLOTS],
    head: usize,
    tail: usize,
    busy: usize,
}

impl<T: Copy> TxRing<T> {
    pub fn new(dma: &mut DmaRegion) -> Result<Self, DmaError> {
        Ok(TxRing {
            ring: Ring::new(dma, "tx ring", TX_SLOTS)?,
            slots: [None; TX_SLOTS],
            head: 0,
            tail: 0,
            busy: 0,
        })
    }

    /// The ring's physical address, for TDSR.
    pub fn paddr32(&self) -> u32 {
        self.ring.paddr32()
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn is_full(&self) -> bool {
        self.busy == TX_SLOTS
    }

    /// The descriptor the next [`submit`](Self::submit) uses.
    pub fn next_index(&self) -> usize {
        self.tail
    }

    /// When the oldest transmit in flight started, if any.
    pub fn oldest_since(&self) -> Option<u64> {
        self.slots[self.head].map(|s| s.since_ns)
    }

    /// Hands the device a frame of `len` bytes at `paddr` (the caller
    /// checked that a descriptor is free, and the length and alignment);
    /// the device sends it after the next TDAR write.
    pub fn submit(&mut self, paddr: u32, len: u16, tag: T, now_ns: u64) {
        assert!(
            !self.is_full(),
            "imx-enet: transmit with every descriptor busy"
        );
        let i = self.tail;
        let mut status = TxStatus::R::SET + TxStatus::L::SET + TxStatus::TC::SET;
        if self.ring.last(i) {
            status += TxStatus::W::SET;
        }
        self.ring.give(i, paddr, len, status.value);
        self.slots[i] = Some(InFlight {
            tag,
            since_ns: now_ns,
        });
        self.tail = (i + 1) % TX_SLOTS;
        self.busy += 1;
    }

    /// Takes back, oldest first, every descriptor the device released
    /// (R clear), calling `done` for each; stops at the first it holds.
    /// Legacy descriptors carry no transmit status: errors show in EIR.
    pub fn reap(&mut self, mut done: impl FnMut(T)) {
        while self.busy > 0 {
            let i = self.head;
            let status = LocalRegisterCopy::<u16, TxStatus::Register>::new(self.ring.status(i));
            if status.is_set(TxStatus::R) {
                return;
            }
            let job = self.slots[i]
                .take()
                .expect("imx-enet: a busy descriptor without its frame");
            self.head = (i + 1) % TX_SLOTS;
            self.busy -= 1;
            done(job.tag);
        }
    }

    /// Forgets every transmit in flight, oldest first (the device is
    /// stopped), and starts again at descriptor 0.
    pub fn reset(&mut self, mut each: impl FnMut(T)) {
        while self.busy > 0 {
            if let Some(job) = self.slots[self.head].take() {
                each(job.tag);
            }
            self.ring.clear(self.head);
            self.head = (self.head + 1) % TX_SLOTS;
            self.busy -= 1;
        }
        self.head = 0;
        self.tail = 0;
    }
}

#[cfg(test)]
mod tests;
