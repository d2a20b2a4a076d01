//! The driver's state machine over one RTL8139 in normal mode: reset and
//! bring-up, the receive ring drained into buffers the client lent, the
//! four transmit descriptors fed from the client's buffers, interrupt
//! status, link changes, and the transmit watchdog.
//!
//! The core speaks in [`Event`]s, which the PD turns into
//! EthernetController messages; it never blocks and never allocates after
//! [`Nic::new`].
//!
//! # Bounded work
//!
//! [`Nic::service`] and [`Nic::poll_rx`] handle at most `budget` receive
//! records per call, and a frame is taken from the device ring only into a
//! buffer the client lent. With none lent, frames stay in the ring; once
//! the ring is full QEMU holds further frames back (RxOverflow is left
//! masked for that reason: the model drops frames only while RxOverflow
//! is unmasked). The client, at a lower priority, must run to lend buffers
//! again, so a flood cannot keep the driver busy for more than the buffers
//! it was given.
//!
//! # Transmit completion
//!
//! QEMU transmits inside the status register write, so the driver reaps
//! completed descriptors right after each submit and when it services an
//! interrupt; TOK is left masked, which saves an interrupt per frame. A
//! descriptor that stays in flight (a real chip, or a stuck one) is found
//! by [`Nic::check_watchdog`], which the PD calls from a Timer timeout
//! armed while transmits are outstanding.

use dma::{DmaBuf, DmaError, DmaRegion};
use heapless::Deque;
use hwio::{Bus, Registers};

use crate::regs::{
    BMSR, BasicModeStatus, CAPR, CBR, CR, Command, IDR, IMR, ISR, Interrupt, MPC, RBSTART, RCR,
    RxConfig, TCR, TxConfig,
};
use crate::rx::{self, DoubtReason, DropReason, MAX_FRAME, MIN_FRAME, Rx, RxRing};
use crate::tx::{SLOTS, TxEnd, TxSlots};

/// Receive buffers the client may have lent at once.
pub const MAX_LENT: usize = 256;
/// Transmit requests waiting for a descriptor.
pub const TX_QUEUE: usize = 64;
/// Ask the client to stop sending at this many waiting requests...
const TX_STOP_AT: usize = TX_QUEUE - 16;
/// ...and to resume at this many.
const TX_START_AT: usize = TX_QUEUE / 4;
/// A transmit the device has not finished after this long gets the chip
/// re-initialised.
pub const TX_TIMEOUT_NS: u64 = 2_000_000_000;
/// Reads of the command register while waiting for a reset to finish.
const RESET_POLLS: u32 = 100_000;
/// An interrupt status of all ones: the device no longer answers.
const GONE: u16 = 0xffff;

/// `txPacketAbort` error codes.
pub mod tx_error {
    /// The request names bytes outside the data area, or a bad length.
    pub const BAD_REQUEST: u32 = 1;
    /// The device reported a failed transmit.
    pub const DEVICE: u32 = 2;
    /// The chip was re-initialised (watchdog, device error) or disabled.
    pub const RESET: u32 = 3;
    /// More requests than the queue holds (the client ignored txStopQueue).
    pub const QUEUE_FULL: u32 = 4;
    /// The device is gone.
    pub const GONE: u32 = 5;
}

/// What the driver tells its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Rx { buf: u32, len: u16 },
    TxDone { buf: u32 },
    TxAbort { buf: u32, error: u32 },
    RxReturn { buf: u32 },
    Link { up: bool },
    StopQueue,
    StartQueue,
}

/// Per-reason counters, for the status page and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub interrupts: u64,
    /// Interrupts with a status of 0.
    pub spurious: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames copied into a bounce buffer (shorter than 60 bytes, or a
    /// misaligned buffer).
    pub tx_bounced: u64,
    /// Dropped: the device flagged an error or no ROK.
    pub rx_bad_status: u64,
    pub rx_runt: u64,
    pub rx_too_long: u64,
    /// Dropped: longer than the buffer the client lent.
    pub rx_buffer_too_small: u64,
    /// Receiver resets because the ring state was in doubt.
    pub rx_ring_resets: u64,
    /// Frames the device itself dropped (missed packet counter).
    pub rx_missed: u64,
    /// RxOverflow / FIFO overflow interrupts.
    pub rx_overflows: u64,
    /// Lent buffers refused (outside the data area, too short, too many).
    pub rx_bad_lend: u64,
    pub tx_bad_request: u64,
    pub tx_failed: u64,
    pub tx_queue_full: u64,
    /// Chip re-initialisations by the watchdog or a PCI error.
    pub chip_resets: u64,
    pub pci_errors: u64,
}

/// Bring-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    Dma(DmaError),
    Ring(rx::RingError),
    /// The reset bit did not clear.
    ResetStuck,
    /// The interrupt status reads all ones: no device answers.
    Gone,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Dma(e) => write!(f, "{e}"),
            InitError::Ring(e) => write!(f, "{e}"),
            InitError::ResetStuck => write!(
                f,
                "the chip did not finish its reset after {RESET_POLLS} polls"
            ),
            InitError::Gone => write!(f, "the device does not answer (status reads 0xffff)"),
        }
    }
}

/// A lent buffer refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LendError {
    /// Outside the data area.
    OutOfRange,
    /// Shorter than the longest frame forwarded.
    TooShort,
    /// More than [`MAX_LENT`] buffers lent.
    TooMany,
}

/// What a service call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// Receive records remain (budget used up); call
    /// [`poll_rx`](Nic::poll_rx) again before sleeping.
    pub more: bool,
    /// Frames wait in the ring for a lent buffer.
    pub starved: bool,
    /// The device is gone; nothing will work again.
    pub gone: bool,
}

#[derive(Clone, Copy)]
struct Lent {
    buf: u32,
    len: u16,
}

#[derive(Clone, Copy)]
struct TxJob {
    buf: u32,
    len: u16,
}

/// Interrupts the driver takes: receive, receive error, link change, FIFO
/// overflow, PCI error. Not RxOverflow (see the module doc), not TOK
/// (completions are reaped inline), not TER (reaped with the next frame).
fn interrupt_mask() -> hwio::FieldValue<u16, Interrupt::Register> {
    Interrupt::ROK::SET
        + Interrupt::RER::SET
        + Interrupt::PUN_LINKCHG::SET
        + Interrupt::FOVW::SET
        + Interrupt::SERR::SET
}

/// Every status bit the driver knows; only these are acknowledged.
const KNOWN: u16 = 0b1110_0000_1111_1111;

/// One RTL8139 in normal mode.
pub struct Nic<B: Bus> {
    bus: B,
    ring: RxRing,
    slots: TxSlots<TxJob>,
    bounce: [DmaBuf; SLOTS],
    frames: DmaBuf,
    mac: [u8; 6],
    link_up: bool,
    enabled: bool,
    gone: bool,
    stopped: bool,
    lent: Deque<Lent, MAX_LENT>,
    queue: Deque<TxJob, TX_QUEUE>,
    counters: Counters,
    staging: [u8; MAX_FRAME],
}

impl<B: Bus> Nic<B> {
    /// Takes the device: allocates the receive ring (`ring_len` bytes plus
    /// slack) and four transmit bounce buffers from `dma`, resets the chip
    /// and reads its MAC address. `frames` is the client's data area, in
    /// which every buffer a message names lies. Receive and transmit stay
    /// off until [`enable`](Self::enable).
    pub fn new(
        mut bus: B,
        dma: &mut DmaRegion,
        frames: DmaBuf,
        ring_len: usize,
    ) -> Result<Self, InitError> {
        frames.paddr32().map_err(InitError::Dma)?;
        let ring_buf = dma
            .alloc("rx ring", ring_len + rx::SLACK, 16)
            .map_err(InitError::Dma)?;
        let ring = RxRing::new(ring_buf, ring_len).map_err(InitError::Ring)?;
        let mut bounce_buf = || -> Result<DmaBuf, InitError> {
            let b = dma.alloc("tx bounce", 2048, 16).map_err(InitError::Dma)?;
            b.paddr32().map_err(InitError::Dma)?;
            Ok(b)
        };
        let bounce = [bounce_buf()?, bounce_buf()?, bounce_buf()?, bounce_buf()?];
        if bus.get(ISR) == GONE {
            return Err(InitError::Gone);
        }
        reset_chip(&mut bus)?;
        let mut mac = [0; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = bus.get(IDR.at(i));
        }
        let link_up = bus.is_set(BMSR, BasicModeStatus::LINK);
        Ok(Nic {
            bus,
            ring,
            slots: TxSlots::new(),
            bounce,
            frames,
            mac,
            link_up,
            enabled: false,
            gone: false,
            stopped: false,
            lent: Deque::new(),
            queue: Deque::new(),
            counters: Counters::default(),
            staging: [0; MAX_FRAME],
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn link_up(&self) -> bool {
        self.link_up
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Transmits in flight or queued.
    pub fn tx_outstanding(&self) -> usize {
        self.slots.busy() + self.queue.len()
    }

    /// Buffers the client has lent and the driver still holds.
    pub fn lent(&self) -> usize {
        self.lent.len()
    }

    /// The bus, for the tests' fake device.
    #[cfg(test)]
    pub(crate) fn bus(&mut self) -> &mut B {
        &mut self.bus
    }

    /// Starts receive and transmit.
    pub fn enable(&mut self) {
        self.start_chip();
        self.enabled = true;
    }

    /// The bring-up order QEMU needs: the ring address, then RE and TE,
    /// then the configurations (TxConfig writes are ignored while TE is
    /// clear; every RxConfig write resets the ring pointers), CAPR, then
    /// the interrupt mask. CAPR gets the empty ring's value, its reset
    /// value: QEMU's device holds frames back while its ring is full and
    /// takes them again only on a CAPR write, and a chip reset does not
    /// release them, so a driver restarted after its ring filled would
    /// otherwise never receive again.
    fn start_chip(&mut self) {
        let bus = &mut self.bus;
        bus.set(RBSTART, self.ring.paddr32());
        bus.write(CR, Command::RE::SET + Command::TE::SET);
        bus.write(TCR, TxConfig::IFG::Standard + TxConfig::MXDMA::Burst1024);
        self.write_rx_config();
        self.ring.reset();
        self.bus.set(CAPR, self.ring.capr());
        self.bus.set(MPC, 0);
        self.bus.set(ISR, KNOWN);
        self.bus.write(IMR, interrupt_mask());
    }

    fn write_rx_config(&mut self) {
        self.bus.write(
            RCR,
            RxConfig::APM::SET
                + RxConfig::AB::SET
                + RxConfig::AM::SET
                + RxConfig::MXDMA::Unlimited
                + RxConfig::RXFTH::None
                + RxConfig::RBLEN.val(self.ring.rblen()),
        );
    }

    /// Stops the chip and hands everything back: transmits in flight and
    /// queued are aborted, lent buffers returned.
    pub fn disable(&mut self, emit: &mut impl FnMut(Event)) {
        if !self.gone {
            self.bus.set(IMR, 0);
            self.bus.set(CR, 0);
            self.bus.set(ISR, KNOWN);
        }
        self.abort_all(tx_error::RESET, emit);
        while let Some(l) = self.lent.pop_front() {
            emit(Event::RxReturn { buf: l.buf });
        }
        self.enabled = false;
    }

    /// Takes a receive buffer the client lends: `len` bytes at `buf` in
    /// the data area.
    pub fn lend(&mut self, buf: u32, len: u16) -> Result<(), LendError> {
        let fits = (buf as usize)
            .checked_add(usize::from(len))
            .is_some_and(|end| end <= self.frames.len());
        let refused = if !fits {
            Some(LendError::OutOfRange)
        } else if usize::from(len) < MAX_FRAME {
            Some(LendError::TooShort)
        } else {
            self.lent
                .push_back(Lent { buf, len })
                .err()
                .map(|_| LendError::TooMany)
        };
        match refused {
            Some(e) => {
                self.counters.rx_bad_lend += 1;
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Sends `len` bytes at `buf` in the data area, now or when a
    /// descriptor frees up; its completion comes as an event.
    pub fn transmit(&mut self, buf: u32, len: u16, now_ns: u64, emit: &mut impl FnMut(Event)) {
        if self.gone || !self.enabled {
            let error = if self.gone {
                tx_error::GONE
            } else {
                tx_error::RESET
            };
            emit(Event::TxAbort { buf, error });
            return;
        }
        let fits = (buf as usize)
            .checked_add(usize::from(len))
            .is_some_and(|end| end <= self.frames.len());
        if len == 0 || usize::from(len) > MAX_FRAME || !fits {
            self.counters.tx_bad_request += 1;
            emit(Event::TxAbort {
                buf,
                error: tx_error::BAD_REQUEST,
            });
            return;
        }
        if self.queue.push_back(TxJob { buf, len }).is_err() {
            self.counters.tx_queue_full += 1;
            emit(Event::TxAbort {
                buf,
                error: tx_error::QUEUE_FULL,
            });
            return;
        }
        self.pump_tx(now_ns, emit);
    }

    /// Reaps finished descriptors and feeds queued requests to free ones,
    /// until neither makes progress.
    fn pump_tx(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) {
        loop {
            self.reap(emit);
            if self.slots.is_full() {
                break;
            }
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.start_tx(job, now_ns);
        }
        if !self.stopped && self.queue.len() >= TX_STOP_AT {
            self.stopped = true;
            emit(Event::StopQueue);
        } else if self.stopped && self.queue.len() <= TX_START_AT {
            self.stopped = false;
            emit(Event::StartQueue);
        }
    }

    fn reap(&mut self, emit: &mut impl FnMut(Event)) {
        let counters = &mut self.counters;
        self.slots.reap(&mut self.bus, |job, end| match end {
            TxEnd::Sent => {
                counters.tx_frames += 1;
                counters.tx_bytes += u64::from(job.len);
                emit(Event::TxDone { buf: job.buf });
            }
            TxEnd::Failed { .. } => {
                counters.tx_failed += 1;
                emit(Event::TxAbort {
                    buf: job.buf,
                    error: tx_error::DEVICE,
                });
            }
        });
    }

    fn start_tx(&mut self, job: TxJob, now_ns: u64) {
        let len = usize::from(job.len);
        let at = job.buf as usize;
        // The data area was checked below 4 GiB at start-up.
        let direct = self.frames.paddr_at(at);
        let paddr = if len < MIN_FRAME || !direct.is_multiple_of(4) {
            // The device pads nothing and real chips want 4-byte aligned
            // buffers: copy into this descriptor's bounce buffer.
            let slot = self.slots.next_index();
            let frame = &mut self.staging[..len];
            self.frames.copy_out(at, frame);
            let bounce = &mut self.bounce[slot];
            bounce.copy_in(0, frame);
            if len < MIN_FRAME {
                bounce.copy_in(len, &[0; MIN_FRAME][..MIN_FRAME - len]);
            }
            self.counters.tx_bounced += 1;
            bounce.paddr()
        } else {
            direct
        };
        let wire_len = len.max(MIN_FRAME);
        self.slots
            .submit(&mut self.bus, paddr as u32, wire_len, job, now_ns);
    }

    /// Handles an interrupt: reads the status once, acknowledges what it
    /// saw, and acts on it. The PD acknowledges the IRQ with the kernel
    /// afterwards, when the device's status is clear.
    pub fn service(
        &mut self,
        budget: usize,
        now_ns: u64,
        emit: &mut impl FnMut(Event),
    ) -> Serviced {
        if self.gone {
            return Serviced {
                gone: true,
                ..Serviced::default()
            };
        }
        self.counters.interrupts += 1;
        let status = self.bus.get(ISR);
        if status == GONE {
            self.device_gone(emit);
            return Serviced {
                gone: true,
                ..Serviced::default()
            };
        }
        if status & KNOWN == 0 {
            self.counters.spurious += 1;
        }
        self.bus.set(ISR, status & KNOWN);
        let status = hwio::LocalRegisterCopy::<u16, Interrupt::Register>::new(status);
        if status.is_set(Interrupt::PUN_LINKCHG) {
            let up = self.bus.is_set(BMSR, BasicModeStatus::LINK);
            if up != self.link_up {
                self.link_up = up;
                emit(Event::Link { up });
            }
        }
        if status.is_set(Interrupt::RXOVW) || status.is_set(Interrupt::FOVW) {
            self.counters.rx_overflows += 1;
            let missed = self.bus.get(MPC) & 0x00ff_ffff;
            self.counters.rx_missed += u64::from(missed);
            self.bus.set(MPC, 0);
        }
        if status.is_set(Interrupt::SERR) {
            self.counters.pci_errors += 1;
            self.reinit(emit);
        }
        if self.enabled {
            self.pump_tx(now_ns, emit);
        }
        self.poll_rx(budget, emit)
    }

    /// Drains up to `budget` receive records into lent buffers (after an
    /// interrupt, after more buffers were lent, or after a `more`).
    pub fn poll_rx(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        let mut done = Serviced::default();
        if self.gone || !self.enabled {
            done.gone = self.gone;
            return done;
        }
        // One read of the write offset per batch: everything before it is
        // written completely (QEMU updates it after the record).
        let cbr = self.bus.get(CBR);
        let start = self.ring.offset();
        let mut handled = 0;
        loop {
            if handled == budget {
                done.more = !matches!(self.ring.next(cbr), Rx::Empty | Rx::Doubt(_));
                break;
            }
            match self.ring.next(cbr) {
                Rx::Empty => break,
                Rx::Frame(frame) => {
                    let Some(lent) = self.lent.front().copied() else {
                        done.starved = true;
                        break;
                    };
                    if frame.len > usize::from(lent.len) {
                        self.counters.rx_buffer_too_small += 1;
                    } else {
                        self.lent.pop_front();
                        let staged = &mut self.staging[..frame.len];
                        self.ring.copy_frame(&frame, staged);
                        self.frames.copy_in(lent.buf as usize, staged);
                        self.counters.rx_frames += 1;
                        self.counters.rx_bytes += frame.len as u64;
                        emit(Event::Rx {
                            buf: lent.buf,
                            len: frame.len as u16,
                        });
                    }
                    self.ring.advance(frame.record);
                }
                Rx::Drop { reason, record } => {
                    match reason {
                        DropReason::BadStatus { .. } => self.counters.rx_bad_status += 1,
                        DropReason::Runt { .. } => self.counters.rx_runt += 1,
                        DropReason::TooLong { .. } => self.counters.rx_too_long += 1,
                    }
                    self.ring.advance(record);
                }
                Rx::Doubt(reason) => {
                    self.reset_receiver(reason);
                    return done;
                }
            }
            handled += 1;
        }
        if self.ring.offset() != start {
            self.bus.set(CAPR, self.ring.capr());
        }
        done
    }

    /// The ring state is in doubt: restart the receiver with an empty
    /// ring, as Linux's rtl8139_rx_err does. Frames in the ring are lost.
    fn reset_receiver(&mut self, _reason: DoubtReason) {
        self.counters.rx_ring_resets += 1;
        self.bus.write(CR, Command::TE::SET);
        self.bus.set(RBSTART, self.ring.paddr32());
        self.bus.write(CR, Command::RE::SET + Command::TE::SET);
        self.write_rx_config();
        self.ring.reset();
    }

    /// A transmit outstanding for longer than [`TX_TIMEOUT_NS`] means the
    /// chip is stuck: abort everything in flight and bring it up again.
    /// Returns whether it did.
    pub fn check_watchdog(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) -> bool {
        if self.gone || !self.enabled {
            return false;
        }
        self.pump_tx(now_ns, emit);
        match self.slots.oldest_since() {
            Some(since) if now_ns.saturating_sub(since) >= TX_TIMEOUT_NS => {
                self.reinit(emit);
                self.pump_tx(now_ns, emit);
                true
            }
            _ => false,
        }
    }

    /// Resets the chip and brings it up again; transmits in flight are
    /// aborted (the queue and the lent buffers are kept).
    fn reinit(&mut self, emit: &mut impl FnMut(Event)) {
        self.counters.chip_resets += 1;
        let counters = &mut self.counters;
        self.slots.abandon(|job| {
            counters.tx_failed += 1;
            emit(Event::TxAbort {
                buf: job.buf,
                error: tx_error::RESET,
            })
        });
        if reset_chip(&mut self.bus).is_err() {
            self.device_gone(emit);
            return;
        }
        if self.enabled {
            self.start_chip();
        }
    }

    fn device_gone(&mut self, emit: &mut impl FnMut(Event)) {
        self.gone = true;
        self.abort_all(tx_error::GONE, emit);
        if self.link_up {
            self.link_up = false;
            emit(Event::Link { up: false });
        }
    }

    fn abort_all(&mut self, error: u32, emit: &mut impl FnMut(Event)) {
        self.slots.abandon(|job| {
            emit(Event::TxAbort {
                buf: job.buf,
                error,
            })
        });
        while let Some(job) = self.queue.pop_front() {
            emit(Event::TxAbort {
                buf: job.buf,
                error,
            });
        }
        if self.stopped {
            self.stopped = false;
            emit(Event::StartQueue);
        }
    }
}

/// Software reset: RST reads 1 until the chip is done.
fn reset_chip<B: Bus>(bus: &mut B) -> Result<(), InitError> {
    bus.write(CR, Command::RST::SET);
    for _ in 0..RESET_POLLS {
        if !bus.is_set(CR, Command::RST) {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(InitError::ResetStuck)
}

#[cfg(test)]
mod tests;
