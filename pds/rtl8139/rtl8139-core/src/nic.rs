//! The driver's state machine over one RTL8139, in either of the chip's
//! modes ([`Mode`]): reset and bring-up; receive, either the normal-mode
//! ring copied out into buffers the client lent or C+ descriptors that
//! hold the lent buffers themselves; transmit from the client's buffers,
//! through the four normal-mode descriptors or the C+ ring; interrupt
//! status, link changes, and the transmit watchdog.
//!
//! The core speaks in [`Event`]s, which the PD turns into
//! EthernetController messages; it never blocks and never allocates after
//! [`Nic::new`].
//!
//! # Bounded work
//!
//! [`Nic::service`] and [`Nic::poll_rx`] handle at most `budget` receive
//! records per call, and a frame is taken only into a buffer the client
//! lent. In normal mode, with none lent, frames stay in the ring; once the
//! ring is full QEMU holds further frames back (RxOverflow is left masked
//! for that reason: the model drops frames only while RxOverflow is
//! unmasked). In C+ mode the device drops a frame for which no descriptor
//! holds a buffer (counted as missed). Either way the client, at a lower
//! priority, must run to lend buffers again, so a flood cannot keep the
//! driver busy for more than the buffers it was given.
//!
//! # Transmit completion
//!
//! QEMU transmits inside the register write that starts it (a normal-mode
//! status register, C+ mode's TxPoll). TOK is left masked, which saves an
//! interrupt per frame: the driver reaps completed descriptors before each
//! start, whenever the descriptors are full, when it services an interrupt,
//! and right after a start only once more than [`REAP_LATER`] transmits
//! are in flight. Up to that many completions thus wait for the driver's
//! next interrupt or transmit (at the latest the watchdog's timeout),
//! where they go to the client together with that work: reported right
//! after the start, they reach the client while it is still sending, and
//! cost it another round of its loop for every echo of a ping-pong. A
//! client with more than `REAP_LATER` transmit buffers never waits for
//! them. In C+ mode [`Nic::transmit`] only hands descriptors over, and
//! one TxPoll in `flush_tx` sends all of them. A descriptor that stays in
//! flight (a real chip, or a stuck one) is found by
//! [`Nic::check_watchdog`], which the PD calls from a Timer timeout armed
//! while transmits are outstanding.

use dingo_protocols::ethernet_controller as eth;
use dma::{DmaBuf, DmaError, DmaRegion};
use eth_driver::{Event, LendError, Refusal, TxBacklog, TxJob, check_lend};
use heapless::Deque;
use hwio::{Bus, Registers};

use crate::cplus::{self, Buf, RX_DESCS, RxDesc, RxDescs, RxDropReason, TX_DESCS, TxDescs};
use crate::regs::{
    BMSR, BasicModeStatus, CAPR, CBR, CPCR, CR, Command, CpCommand, IDR, IMR, ISR, Interrupt, MPC,
    RBSTART, RCR, RDSAR_HI, RDSAR_LO, RxConfig, TCR, TPPOLL, TSAD, TxConfig, TxPoll,
};
use crate::rx::{self, CRC_LEN, DoubtReason, DropReason, MAX_FRAME, MIN_FRAME, Rx, RxRing};
use crate::tx::{SLOTS, TxEnd, TxSlots};

/// Receive buffers the client may have lent at once.
pub const MAX_LENT: usize = RX_DESCS;
/// Transmits in flight whose completion may wait for the driver's next
/// interrupt or transmit (see the module doc).
pub const REAP_LATER: usize = 2;
/// A transmit the device has not finished after this long gets the chip
/// re-initialised.
pub const TX_TIMEOUT_NS: u64 = 2_000_000_000;
/// Reads of the command register while waiting for a reset to finish.
const RESET_POLLS: u32 = 100_000;
/// An interrupt status of all ones: the device no longer answers.
const GONE: u16 = 0xffff;

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
    /// Dropped: longer than the buffer the client lent (normal mode), or
    /// than the descriptor's buffer says the device could write (C+).
    pub rx_buffer_too_small: u64,
    /// Receiver resets because the ring state was in doubt (each counted
    /// again by its reason below).
    pub rx_ring_resets: u64,
    /// ...because the write offset (CBR) was outside the ring or misaligned.
    pub rx_reset_bad_cbr: u64,
    /// ...because a record's length did not fit what the device wrote.
    pub rx_reset_bad_length: u64,
    /// ...because a record still carried the early-receive marker, or (C+)
    /// the device ran ahead of a descriptor.
    pub rx_reset_other: u64,
    /// Interrupt status reads with bits the chip never sets: not acted on
    /// nor acknowledged; the true status raises the interrupt again.
    pub isr_impossible: u64,
    /// Interrupt status reads of all ones: the device is gone.
    pub device_gone: u64,
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
    Descriptors(cplus::RingError),
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
            InitError::Descriptors(e) => write!(f, "{e}"),
            InitError::ResetStuck => write!(
                f,
                "the chip did not finish its reset after {RESET_POLLS} polls"
            ),
            InitError::Gone => write!(f, "the device does not answer (status reads 0xffff)"),
        }
    }
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
    /// Receive records (frames and drops) handled.
    pub handled: usize,
}

#[derive(Clone, Copy)]
struct Lent {
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

/// Which of the chip's modes the driver runs it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One contiguous receive ring of `ring_len` bytes (one of
    /// [`rx::RING_LENGTHS`]) copied out into lent buffers; four transmit
    /// descriptors used in order.
    Normal { ring_len: usize },
    /// Descriptor rings: receive straight into lent buffers, transmit
    /// straight from the client's.
    CPlus,
}

/// The mode's rings. One per PD, for its life, and there is no heap: the
/// larger variant is not boxed.
#[allow(clippy::large_enum_variant)]
enum Engine {
    Normal {
        ring: RxRing,
        slots: TxSlots<TxJob>,
        bounce: [DmaBuf; SLOTS],
    },
    CPlus {
        rx: RxDescs,
        tx: TxDescs<TxJob>,
    },
}

/// One RTL8139.
pub struct Nic<B: Bus> {
    bus: B,
    engine: Engine,
    frames: DmaBuf,
    mac: [u8; 6],
    link_up: bool,
    enabled: bool,
    gone: bool,
    /// Lent buffers not (yet) in a C+ descriptor; every lent buffer in
    /// normal mode.
    lent: Deque<Lent, MAX_LENT>,
    backlog: TxBacklog,
    counters: Counters,
}

impl<B: Bus> Nic<B> {
    /// Takes the device: allocates the mode's rings from `dma` (normal
    /// mode: the receive ring with its slack and four transmit bounce
    /// buffers; C+: two descriptor rings and small bounce buffers), resets
    /// the chip and reads its MAC address. `frames` is the client's data
    /// area, in which every buffer a message names lies. Receive and
    /// transmit stay off until [`enable`](Self::enable).
    pub fn new(
        mut bus: B,
        dma: &mut DmaRegion,
        frames: DmaBuf,
        mode: Mode,
    ) -> Result<Self, InitError> {
        frames.paddr32().map_err(InitError::Dma)?;
        let engine = match mode {
            Mode::Normal { ring_len } => {
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
                Engine::Normal {
                    ring,
                    slots: TxSlots::new(),
                    bounce,
                }
            }
            Mode::CPlus => {
                let mut ring = |name, descs: usize| {
                    dma.alloc(name, descs * cplus::DESC_BYTES, cplus::RING_ALIGN)
                        .map_err(InitError::Dma)
                };
                let rx_ring = ring("C+ rx ring", RX_DESCS)?;
                let tx_ring = ring("C+ tx ring", TX_DESCS)?;
                let bounce = dma
                    .alloc("C+ tx bounce", TX_DESCS * 64, 64)
                    .map_err(InitError::Dma)?;
                Engine::CPlus {
                    rx: RxDescs::new(rx_ring).map_err(InitError::Descriptors)?,
                    tx: TxDescs::new(tx_ring, bounce).map_err(InitError::Descriptors)?,
                }
            }
        };
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
            engine,
            frames,
            mac,
            link_up,
            enabled: false,
            gone: false,
            lent: Deque::new(),
            backlog: TxBacklog::new(),
            counters: Counters::default(),
        })
    }

    /// The mode the chip runs in.
    pub fn mode(&self) -> Mode {
        match &self.engine {
            Engine::Normal { ring, .. } => Mode::Normal {
                ring_len: ring.len(),
            },
            Engine::CPlus { .. } => Mode::CPlus,
        }
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
        let busy = match &self.engine {
            Engine::Normal { slots, .. } => slots.busy(),
            Engine::CPlus { tx, .. } => tx.busy(),
        };
        busy + self.backlog.len()
    }

    /// Buffers the client has lent and the driver still holds.
    pub fn lent(&self) -> usize {
        let armed = match &self.engine {
            Engine::Normal { .. } => 0,
            Engine::CPlus { rx, .. } => rx.armed(),
        };
        armed + self.lent.len()
    }

    /// The bus, for the tests' fake device.
    #[cfg(test)]
    pub(crate) fn bus(&mut self) -> &mut B {
        &mut self.bus
    }

    /// The normal-mode ring, for the tests.
    #[cfg(test)]
    pub(crate) fn ring(&self) -> &RxRing {
        match &self.engine {
            Engine::Normal { ring, .. } => ring,
            Engine::CPlus { .. } => panic!("rtl8139: no normal-mode ring in C+ mode"),
        }
    }

    /// Starts receive and transmit.
    pub fn enable(&mut self) {
        self.start_chip();
        self.enabled = true;
    }

    /// The bring-up order QEMU needs. Normal mode: the ring address, then
    /// RE and TE, then the configurations (TxConfig writes are ignored
    /// while TE is clear; every RxConfig write resets the ring pointers),
    /// CAPR at the empty ring's value (its reset value: QEMU's device holds
    /// frames back while its ring is full and takes them again only on a
    /// CAPR write, and a chip reset does not release them, so a driver
    /// restarted after its ring filled would otherwise never receive
    /// again), then the interrupt mask. C+ mode: C+ receive and transmit on (the
    /// first CpCmd write enters C+ mode) and the ring addresses first, so
    /// that no frame can reach the normal-mode ring, then RE and TE (which
    /// put the device at descriptor 0), the configurations, lent buffers
    /// into descriptors, the interrupt mask.
    fn start_chip(&mut self) {
        match &mut self.engine {
            Engine::Normal { ring, .. } => {
                self.bus.set(RBSTART, ring.paddr32());
            }
            Engine::CPlus { rx, tx } => {
                self.bus
                    .write(CPCR, CpCommand::CPRX::SET + CpCommand::CPTX::SET);
                let (rxp, txp) = (rx.paddr(), tx.paddr());
                self.bus.set(RDSAR_LO, rxp as u32);
                self.bus.set(RDSAR_HI, (rxp >> 32) as u32);
                self.bus.set(TSAD.at(0), txp as u32);
                self.bus.set(TSAD.at(1), (txp >> 32) as u32);
            }
        }
        self.bus.write(CR, Command::RE::SET + Command::TE::SET);
        self.bus
            .write(TCR, TxConfig::IFG::Standard + TxConfig::MXDMA::Burst1024);
        self.write_rx_config();
        if let Engine::Normal { ring, .. } = &mut self.engine {
            ring.reset();
            self.bus.set(CAPR, ring.capr());
        }
        self.refill();
        self.bus.set(MPC, 0);
        self.bus.set(ISR, KNOWN);
        self.bus.write(IMR, interrupt_mask());
    }

    fn write_rx_config(&mut self) {
        let rblen = match &self.engine {
            Engine::Normal { ring, .. } => ring.rblen(),
            Engine::CPlus { .. } => 0,
        };
        self.bus.write(
            RCR,
            RxConfig::APM::SET
                + RxConfig::AB::SET
                + RxConfig::AM::SET
                + RxConfig::MXDMA::Unlimited
                + RxConfig::RXFTH::None
                + RxConfig::RBLEN.val(rblen),
        );
    }

    /// Lent buffers into free C+ descriptors, oldest first.
    fn refill(&mut self) {
        if let Engine::CPlus { rx, .. } = &mut self.engine {
            while !rx.is_full() {
                let Some(l) = self.lent.pop_front() else {
                    break;
                };
                rx.arm(Buf {
                    offset: l.buf,
                    paddr: self.frames.paddr_at(l.buf as usize),
                    len: l.len,
                });
            }
        }
    }

    /// C+: every buffer in a descriptor back to the front of the lent
    /// queue, in order (the receiver stopped and starts again at
    /// descriptor 0).
    fn unarm(&mut self) {
        if let Engine::CPlus { rx, .. } = &mut self.engine {
            let mut taken: heapless::Vec<Lent, MAX_LENT> = heapless::Vec::new();
            rx.drain(|b| {
                let _ = taken.push(Lent {
                    buf: b.offset,
                    len: b.len,
                });
            });
            for l in taken.iter().rev() {
                // Armed and queued together never exceed MAX_LENT.
                let _ = self.lent.push_front(*l);
            }
        }
    }

    /// Stops the chip and hands everything back: transmits in flight and
    /// queued are aborted, lent buffers returned.
    pub fn disable(&mut self, emit: &mut impl FnMut(Event)) {
        if !self.gone {
            self.bus.set(IMR, 0);
            self.bus.set(CR, 0);
            self.bus.set(ISR, KNOWN);
        }
        self.abort_all(eth::RESET, emit);
        self.unarm();
        while let Some(l) = self.lent.pop_front() {
            emit(Event::RxReturn { buf: l.buf });
        }
        self.enabled = false;
    }

    /// Takes a receive buffer the client lends: `len` bytes at `buf` in
    /// the data area. In C+ mode it goes into a descriptor at once.
    pub fn lend(&mut self, buf: u32, len: u16) -> Result<(), LendError> {
        // C+: the device writes the CRC after the frame.
        let need = match self.engine {
            Engine::Normal { .. } => MAX_FRAME,
            Engine::CPlus { .. } => MAX_FRAME + CRC_LEN,
        };
        let held = self.lent();
        if let Err(e) = check_lend(buf, len, self.frames.len(), need, held, MAX_LENT) {
            self.counters.rx_bad_lend += 1;
            return Err(e);
        }
        // Room was checked: lent() counts this queue.
        let _ = self.lent.push_back(Lent { buf, len });
        if self.enabled && !self.gone {
            self.refill();
        }
        Ok(())
    }

    /// Sends `len` bytes at `buf` in the data area, now or when a
    /// descriptor frees up; its completion comes as an event. In C+ mode
    /// the frame goes out at the next [`flush_tx`](Self::flush_tx).
    pub fn transmit(&mut self, buf: u32, len: u16, now_ns: u64, emit: &mut impl FnMut(Event)) {
        if self.gone || !self.enabled {
            let error = if self.gone { eth::GONE } else { eth::RESET };
            emit(Event::TxAbort { buf, error });
            return;
        }
        if let Err(r) = self.backlog.admit(buf, len, self.frames.len(), MAX_FRAME) {
            match r {
                Refusal::BadRequest => self.counters.tx_bad_request += 1,
                Refusal::Full => self.counters.tx_queue_full += 1,
            }
            emit(Event::TxAbort {
                buf,
                error: r.error(),
            });
            return;
        }
        self.pump_tx(now_ns, emit);
    }

    /// Starts what [`transmit`](Self::transmit) handed over (C+: one
    /// TxPoll for all of it) and reaps what the device finished, until
    /// neither makes progress. The PD calls it once after taking its
    /// messages.
    pub fn flush_tx(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) {
        if self.gone || !self.enabled {
            return;
        }
        loop {
            let poll = match &mut self.engine {
                Engine::CPlus { tx, .. } => tx.poll_needed(),
                Engine::Normal { .. } => false,
            };
            if !poll {
                break;
            }
            self.bus.write(TPPOLL, TxPoll::NPQ::SET);
            if !self.backlog.is_empty() || self.tx_in_flight() > REAP_LATER {
                self.pump_tx(now_ns, emit);
            }
        }
        self.backlog.notices(emit);
    }

    fn tx_in_flight(&self) -> usize {
        match &self.engine {
            Engine::Normal { slots, .. } => slots.busy(),
            Engine::CPlus { tx, .. } => tx.busy(),
        }
    }

    fn tx_full(&self) -> bool {
        match &self.engine {
            Engine::Normal { slots, .. } => slots.is_full(),
            Engine::CPlus { tx, .. } => tx.is_full(),
        }
    }

    /// Reaps finished descriptors and feeds queued requests to free ones,
    /// until neither makes progress; what finished right after its start
    /// is reaped only beyond [`REAP_LATER`] in flight.
    fn pump_tx(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) {
        self.reap(emit);
        while !self.backlog.is_empty() {
            if self.tx_full() {
                self.reap(emit);
                if self.tx_full() {
                    break;
                }
            }
            let Some(job) = self.backlog.pop() else {
                break;
            };
            self.start_tx(job, now_ns);
        }
        if self.tx_in_flight() > REAP_LATER {
            self.reap(emit);
        }
        self.backlog.notices(emit);
    }

    fn reap(&mut self, emit: &mut impl FnMut(Event)) {
        let counters = &mut self.counters;
        let mut done = |job: TxJob, sent: bool| {
            if sent {
                counters.tx_frames += 1;
                counters.tx_bytes += u64::from(job.len);
                emit(Event::TxDone { buf: job.buf });
            } else {
                counters.tx_failed += 1;
                emit(Event::TxAbort {
                    buf: job.buf,
                    error: eth::DEVICE,
                });
            }
        };
        match &mut self.engine {
            Engine::Normal { slots, .. } => {
                slots.reap(&mut self.bus, |job, end| done(job, end == TxEnd::Sent))
            }
            Engine::CPlus { tx, .. } => tx.reap(|job, end| done(job, end == cplus::TxEnd::Sent)),
        }
    }

    fn start_tx(&mut self, job: TxJob, now_ns: u64) {
        let len = usize::from(job.len);
        let at = job.buf as usize;
        // The data area was checked below 4 GiB at start-up.
        let direct = self.frames.paddr_at(at);
        match &mut self.engine {
            Engine::Normal { slots, bounce, .. } => {
                let paddr = if len < MIN_FRAME || !direct.is_multiple_of(4) {
                    // The device pads nothing and real chips want 4-byte
                    // aligned buffers: copy into this descriptor's bounce
                    // buffer.
                    let bounce = &mut bounce[slots.next_index()];
                    self.frames.copy_to(at, bounce, 0, len);
                    if len < MIN_FRAME {
                        bounce.copy_in(len, &[0; MIN_FRAME][..MIN_FRAME - len]);
                    }
                    self.counters.tx_bounced += 1;
                    bounce.paddr()
                } else {
                    direct
                };
                let wire_len = len.max(MIN_FRAME);
                slots.submit(&mut self.bus, paddr as u32, wire_len, job, now_ns);
            }
            Engine::CPlus { tx, .. } => {
                let frames = &self.frames;
                let frame = Buf {
                    offset: job.buf,
                    paddr: direct,
                    len: job.len,
                };
                if tx.submit(frame, |dst| frames.copy_out(at, dst), job, now_ns) {
                    self.counters.tx_bounced += 1;
                }
            }
        }
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
            self.counters.device_gone += 1;
            self.device_gone(emit);
            return Serviced {
                gone: true,
                ..Serviced::default()
            };
        }
        if status & !KNOWN != 0 {
            // Garbage: acting on it could ack events never seen or take a
            // wrong branch. The status register holds until acknowledged,
            // so a true event raises the level-triggered IRQ again.
            self.counters.isr_impossible += 1;
            return Serviced::default();
        }
        if status == 0 {
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
            self.flush_tx(now_ns, emit);
        }
        let done = self.poll_rx(budget, emit);
        // C+: "received", yet the next descriptor is still the device's
        // while a later one is not: the device skipped one.
        if status.is_set(Interrupt::ROK)
            && done.handled == 0
            && self.enabled
            && let Engine::CPlus { rx, .. } = &self.engine
            && rx.ran_ahead()
        {
            self.reset_receiver(DoubtReason::RanAhead);
        }
        done
    }

    /// Drains up to `budget` received frames into lent buffers (after an
    /// interrupt, after more buffers were lent, or after a `more`).
    pub fn poll_rx(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        let mut done = Serviced::default();
        if self.gone || !self.enabled {
            done.gone = self.gone;
            return done;
        }
        match self.engine {
            Engine::Normal { .. } => self.poll_ring(budget, emit),
            Engine::CPlus { .. } => self.poll_descriptors(budget, emit),
        }
    }

    fn poll_ring(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        let mut done = Serviced::default();
        let Engine::Normal { ring, .. } = &mut self.engine else {
            return done;
        };
        // One read of the write offset per batch: everything before it is
        // written completely (QEMU updates it after the record).
        let cbr = self.bus.get(CBR);
        let start = ring.offset();
        let mut handled = 0;
        loop {
            if handled == budget {
                done.more = !matches!(ring.next(cbr), Rx::Empty | Rx::Doubt(_));
                break;
            }
            match ring.next(cbr) {
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
                        ring.copy_frame(&frame, &mut self.frames, lent.buf as usize);
                        self.counters.rx_frames += 1;
                        self.counters.rx_bytes += frame.len as u64;
                        emit(Event::Rx {
                            buf: lent.buf,
                            len: frame.len as u16,
                        });
                    }
                    ring.advance(frame.record);
                }
                Rx::Drop { reason, record } => {
                    match reason {
                        DropReason::BadStatus { .. } => self.counters.rx_bad_status += 1,
                        DropReason::Runt { .. } => self.counters.rx_runt += 1,
                        DropReason::TooLong { .. } => self.counters.rx_too_long += 1,
                    }
                    ring.advance(record);
                }
                Rx::Doubt(reason) => {
                    self.reset_receiver(reason);
                    done.handled = handled;
                    return done;
                }
            }
            handled += 1;
        }
        done.handled = handled;
        if ring.offset() != start {
            self.bus.set(CAPR, ring.capr());
        }
        done
    }

    fn poll_descriptors(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        let mut done = Serviced::default();
        let mut handled = 0;
        loop {
            let Engine::CPlus { rx, .. } = &mut self.engine else {
                return done;
            };
            if handled == budget {
                done.more = rx.head_done();
                break;
            }
            match rx.take_head() {
                RxDesc::Empty => break,
                RxDesc::Frame { buf, len } => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += u64::from(len);
                    emit(Event::Rx {
                        buf: buf.offset,
                        len,
                    });
                }
                RxDesc::Drop { buf, reason } => {
                    match reason {
                        RxDropReason::BadStatus { .. } => self.counters.rx_bad_status += 1,
                        RxDropReason::Runt { .. } => self.counters.rx_runt += 1,
                        RxDropReason::TooLong { .. } => self.counters.rx_too_long += 1,
                        RxDropReason::BeyondBuffer { .. } => self.counters.rx_buffer_too_small += 1,
                    }
                    // Nothing went to the client: the buffer is lent
                    // again, after those waiting.
                    let _ = self.lent.push_back(Lent {
                        buf: buf.offset,
                        len: buf.len,
                    });
                }
            }
            handled += 1;
        }
        done.handled = handled;
        self.refill();
        if let Engine::CPlus { rx, .. } = &self.engine {
            done.starved = rx.armed() == 0;
        }
        done
    }

    /// The ring state is in doubt: restart the receiver with an empty
    /// ring, as Linux's rtl8139_rx_err does. Frames in the ring (normal
    /// mode) are lost; lent buffers (C+) are kept and handed over again.
    fn reset_receiver(&mut self, reason: DoubtReason) {
        self.counters.rx_ring_resets += 1;
        match reason {
            DoubtReason::BadWriteOffset { .. } => self.counters.rx_reset_bad_cbr += 1,
            DoubtReason::BadLength { .. } => self.counters.rx_reset_bad_length += 1,
            DoubtReason::EarlyRx | DoubtReason::RanAhead => self.counters.rx_reset_other += 1,
        }
        self.bus.write(CR, Command::TE::SET);
        self.unarm();
        if let Engine::Normal { ring, .. } = &mut self.engine {
            self.bus.set(RBSTART, ring.paddr32());
        }
        self.bus.write(CR, Command::RE::SET + Command::TE::SET);
        self.write_rx_config();
        if let Engine::Normal { ring, .. } = &mut self.engine {
            ring.reset();
        }
        self.refill();
    }

    /// A transmit outstanding for longer than [`TX_TIMEOUT_NS`] means the
    /// chip is stuck: abort everything in flight and bring it up again.
    /// Returns whether it did.
    pub fn check_watchdog(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) -> bool {
        if self.gone || !self.enabled {
            return false;
        }
        self.pump_tx(now_ns, emit);
        let oldest = match &self.engine {
            Engine::Normal { slots, .. } => slots.oldest_since(),
            Engine::CPlus { tx, .. } => tx.oldest_since(),
        };
        match oldest {
            Some(since) if now_ns.saturating_sub(since) >= TX_TIMEOUT_NS => {
                self.reinit(emit);
                self.pump_tx(now_ns, emit);
                self.flush_tx(now_ns, emit);
                true
            }
            _ => false,
        }
    }

    /// Resets the chip and brings it up again; transmits in flight are
    /// aborted (the queue and the lent buffers are kept).
    fn reinit(&mut self, emit: &mut impl FnMut(Event)) {
        self.counters.chip_resets += 1;
        let mut failed = 0;
        self.abandon_tx(|job| {
            failed += 1;
            emit(Event::TxAbort {
                buf: job.buf,
                error: eth::RESET,
            })
        });
        self.counters.tx_failed += failed;
        self.unarm();
        if reset_chip(&mut self.bus).is_err() {
            self.device_gone(emit);
            return;
        }
        if self.enabled {
            self.start_chip();
        }
    }

    fn abandon_tx(&mut self, each: impl FnMut(TxJob)) {
        match &mut self.engine {
            Engine::Normal { slots, .. } => slots.abandon(each),
            Engine::CPlus { tx, .. } => tx.abandon(each),
        }
    }

    fn device_gone(&mut self, emit: &mut impl FnMut(Event)) {
        self.gone = true;
        self.abort_all(eth::GONE, emit);
        if self.link_up {
            self.link_up = false;
            emit(Event::Link { up: false });
        }
    }

    fn abort_all(&mut self, error: u32, emit: &mut impl FnMut(Event)) {
        self.abandon_tx(|job| {
            emit(Event::TxAbort {
                buf: job.buf,
                error,
            })
        });
        self.backlog.abort_all(error, emit);
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
