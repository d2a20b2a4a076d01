//! Normal-mode transmit: four descriptors (a start address and a status
//! register each) that the device serves strictly in order, starting after
//! reset at descriptor 0. Writing a descriptor's status with the frame's
//! size starts its transmit (QEMU sends the frame inside that register
//! write); the device then sets OWN (its DMA is done) and TOK, or TABT or
//! TUN on failure.
//!
//! [`TxSlots`] hands descriptors out in the same order and takes them back
//! in that order, reading each status register once: a status that shows
//! neither success nor failure means "not yet", and nothing the device
//! writes there can make the driver complete a descriptor twice or out of
//! order.

use hwio::{Bus, Registers};

use crate::regs::{TSAD, TSD, TxStatus};

/// Transmit descriptors of the device.
pub const SLOTS: usize = 4;

/// Early transmit threshold: start sending after 256 bytes are in the FIFO
/// (in units of 32 bytes).
const EARLY_TX_THRESHOLD: u32 = 256 / 32;

/// How a transmit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEnd {
    Sent,
    /// Aborted (excess collisions), FIFO underrun, or carrier lost: the raw
    /// status, for the abort's error code.
    Failed {
        status: u32,
    },
}

/// One descriptor in use: what the caller needs back when it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight<T> {
    pub tag: T,
    /// When it was handed to the device (caller's clock, for the watchdog).
    pub since_ns: u64,
}

/// The four descriptors: which are in flight and in what order.
pub struct TxSlots<T: Copy> {
    slots: [Option<InFlight<T>>; SLOTS],
    /// Next descriptor to hand to the device.
    next: usize,
    /// Oldest descriptor in flight.
    oldest: usize,
    busy: usize,
}

impl<T: Copy> Default for TxSlots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> TxSlots<T> {
    /// All free, next descriptor 0 (the device's state after reset).
    pub const fn new() -> Self {
        TxSlots {
            slots: [None; SLOTS],
            next: 0,
            oldest: 0,
            busy: 0,
        }
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn is_full(&self) -> bool {
        self.busy == SLOTS
    }

    /// When the oldest transmit in flight started, if any.
    pub fn oldest_since(&self) -> Option<u64> {
        self.slots[self.oldest].map(|s| s.since_ns)
    }

    /// Starts a transmit of `len` bytes at physical `paddr` (below 4 GiB,
    /// checked by the caller); the caller checked that a slot is free and
    /// `len` fits the size field.
    pub fn submit<B: Bus>(&mut self, bus: &mut B, paddr: u32, len: usize, tag: T, now_ns: u64) {
        assert!(
            !self.is_full(),
            "rtl8139: transmit with every descriptor busy"
        );
        assert!(
            len > 0 && len < 1 << 13,
            "rtl8139: transmit length {len} outside the size field"
        );
        let n = self.next;
        bus.set(TSAD.at(n), paddr);
        bus.write(
            TSD.at(n),
            TxStatus::SIZE.val(len as u32) + TxStatus::ERTXTH.val(EARLY_TX_THRESHOLD),
        );
        self.slots[n] = Some(InFlight {
            tag,
            since_ns: now_ns,
        });
        self.next = (n + 1) % SLOTS;
        self.busy += 1;
    }

    /// Takes back, oldest first, every descriptor the device has finished,
    /// calling `done` for each; stops at the first one still in flight.
    pub fn reap<B: Bus>(&mut self, bus: &mut B, mut done: impl FnMut(T, TxEnd)) {
        while self.busy > 0 {
            let n = self.oldest;
            let status = bus.read(TSD.at(n));
            let end = if status.is_set(TxStatus::TABT)
                || status.is_set(TxStatus::TUN)
                || status.is_set(TxStatus::CRS) && !status.is_set(TxStatus::TOK)
            {
                TxEnd::Failed {
                    status: status.get(),
                }
            } else if status.is_set(TxStatus::TOK) {
                TxEnd::Sent
            } else {
                return;
            };
            let job = self.slots[n]
                .take()
                .expect("rtl8139: busy count and slots disagree");
            self.oldest = (n + 1) % SLOTS;
            self.busy -= 1;
            done(job.tag, end);
        }
    }

    /// Forgets every transmit in flight (after a chip reset), oldest first,
    /// and starts again at descriptor 0 as the device does.
    pub fn abandon(&mut self, mut each: impl FnMut(T)) {
        while self.busy > 0 {
            if let Some(job) = self.slots[self.oldest].take() {
                each(job.tag);
            }
            self.oldest = (self.oldest + 1) % SLOTS;
            self.busy -= 1;
        }
        *self = Self::new();
    }
}

impl<T: Copy> TxSlots<T> {
    /// The descriptor the next [`submit`](Self::submit) uses.
    pub fn next_index(&self) -> usize {
        self.next
    }
}
