//! The driver's state machine over one ENET: reset and bring-up, the
//! PHY, the receive ring filled with the client's lent buffers (the
//! device writes frames straight into them), the transmit ring fed from
//! the client's buffers, interrupt events, link changes and the transmit
//! watchdog.
//!
//! The core speaks in [`Event`]s, which the PD turns into
//! EthernetController messages; it never blocks (but for bounded MDIO and
//! reset polls) and never allocates after [`Nic::new`].
//!
//! # Bounded work
//!
//! [`Nic::service`] and [`Nic::poll_rx`] take at most `budget` receive
//! descriptors per call, and the device fills only descriptors armed with
//! a buffer the client lent. With none armed it stops (QEMU holds frames
//! back until RDAR is written again; the real controller drops them and
//! counts them in IEEE_R_MACERR), so a flood keeps the driver busy for
//! at most the buffers it was given.
//!
//! # Transmit completion
//!
//! QEMU sends every ready descriptor inside the TDAR write, so the driver
//! reaps right after each submit. Only while transmits remain in flight
//! afterwards (a real controller, or a stuck one) is the TXF interrupt
//! unmasked: no interrupt per frame where none is needed, and no frame
//! waiting for the watchdog where one is. A descriptor that stays in
//! flight is found by [`Nic::check_watchdog`], which the PD calls from a
//! Timer timeout.
//!
//! # Restart
//!
//! The controller has no separate receiver reset: clearing ECR.ETHEREN
//! stops it and puts its descriptor pointers back at the rings' starts.
//! A restart (a DMA bus error, a receive ring out of order, a stuck
//! transmit, a new link speed or duplex) does that, aborts the transmits
//! in flight, takes the armed buffers back (still lent) and brings the
//! controller up again.

use dingo_protocols::ethernet_controller as eth;
use dma::{DmaBuf, DmaError, DmaRegion};
use eth_driver::{Event, LendError, Refusal, TxBacklog, TxJob, check_lend};
use heapless::{Deque, Vec};
use hwio::{Bus, FieldValue, Registers};

use crate::desc::{
    BUF_ALIGN, CRC_BYTES, DropReason, Lent, MAX_FRAME, RX_BUF_BYTES, RX_SLOTS, Rx, RxRing,
    TX_SLOTS, TxRing,
};
use crate::phy::{LinkMode, MdioTimeout, Phy, PhyError, Speed};
use crate::regs::{
    AddressUpper, Control, DescriptorActive, ECR, EIMR, EIR, GALR, GAUR, IALR, IAUR, IEEE_R_MACERR,
    Interrupt, MIBC, MRBR, MSCR, MiiSpeed, PALR, PAUR, RCR, RCR_RESET, RDAR, RDSR, RxControl, TCR,
    TDAR, TDSR, TFWR, TxControl, TxWatermark,
};

/// Receive buffers the client may have lent at once (armed, waiting for a
/// descriptor, or refused and kept to hand back).
pub const MAX_LENT: usize = 256;
/// A transmit the device has not released after this long gets the
/// controller restarted.
pub const TX_TIMEOUT_NS: u64 = 2_000_000_000;
/// Reads of ECR while waiting for a reset to finish.
const RESET_POLLS: u32 = 100_000;
/// The shortest frame on the wire without its CRC: shorter ones are
/// padded (QEMU's model sends what it is given).
const MIN_WIRE_FRAME: usize = 60;
/// Bytes per transmit bounce buffer (a multiple of [`BUF_ALIGN`]).
const BOUNCE_BYTES: usize = 1536;
/// RCR.MAX_FL: the longest frame with its CRC, plus a VLAN tag.
const MAX_FL: u32 = (MAX_FRAME + CRC_BYTES) as u32;
/// MSCR.MII_SPEED for a 2.5 MHz MDC from the i.MX6's 66 MHz bus clock:
/// 66 MHz / ((12 + 1) * 2) = 2.54 MHz is just above the limit, 13 is
/// below (Linux computes the same).
const MII_SPEED: u32 = 13;

/// Per-reason counters, for the status page and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub interrupts: u64,
    /// Interrupts with no event the driver handles.
    pub spurious: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames copied into a bounce buffer (shorter than 60 bytes, or not
    /// on a 16-byte boundary).
    pub tx_bounced: u64,
    /// Dropped: the device flagged a CRC error, an overrun or a fraction
    /// of an octet.
    pub rx_bad_status: u64,
    /// Dropped: shorter than an Ethernet header.
    pub rx_runt: u64,
    /// Dropped: longer than the longest frame (LG, TR, or spread over
    /// descriptors), once per frame.
    pub rx_too_long: u64,
    /// Dropped: a length the device wrote that cannot be true (none, or
    /// more than the buffer holds).
    pub rx_bad_length: u64,
    /// Restarts because the device handed back descriptors out of order.
    pub rx_ring_resets: u64,
    /// Frames the controller dropped for want of a descriptor (its
    /// IEEE_R_MACERR counter).
    pub rx_missed: u64,
    /// Babbling receive events (a frame over RCR.MAX_FL).
    pub rx_babbling: u64,
    /// Lent buffers refused (outside the data area, too short, not on a
    /// 16-byte boundary, too many).
    pub rx_bad_lend: u64,
    pub tx_bad_request: u64,
    /// Transmit errors the controller raised (underrun, late collision,
    /// retry limit); legacy descriptors do not say which frame.
    pub tx_errors: u64,
    pub tx_queue_full: u64,
    /// Transmits aborted by a restart.
    pub tx_failed: u64,
    /// Controller restarts (watchdog, bus error, ring order, link mode).
    pub chip_resets: u64,
    /// DMA bus errors (EIR.EBERR).
    pub bus_errors: u64,
    /// MDIO accesses that did not finish.
    pub mdio_errors: u64,
}

/// Bring-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    Dma(DmaError),
    /// The reset bit did not clear.
    ResetStuck,
    /// RCR does not read its reset value after a reset.
    NotEnet {
        rcr: u32,
    },
    /// Neither the configuration nor the controller has a usable address.
    NoMac {
        mac: [u8; 6],
    },
    Phy(PhyError),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Dma(e) => write!(f, "{e}"),
            InitError::ResetStuck => write!(
                f,
                "the controller did not finish its reset after {RESET_POLLS} polls"
            ),
            InitError::NotEnet { rcr } => write!(
                f,
                "not an ENET: RCR reads {rcr:#010x} after a reset, expected {RCR_RESET:#010x}"
            ),
            InitError::NoMac { mac } => write!(
                f,
                "no usable MAC address: the controller holds {mac:02x?} (zero, multicast or \
                 broadcast) and the `mac` parameter is 0"
            ),
            InitError::Phy(e) => write!(f, "{e}"),
        }
    }
}

impl From<DmaError> for InitError {
    fn from(e: DmaError) -> Self {
        InitError::Dma(e)
    }
}

/// What a service call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// Descriptors remain (budget used up); call [`Nic::poll_rx`] again
    /// before sleeping.
    pub more: bool,
    /// No buffer is armed: the device receives nothing until the client
    /// lends one.
    pub starved: bool,
}

/// Every event the driver acknowledges; MII belongs to the MDIO code.
fn handled() -> FieldValue<u32, Interrupt::Register> {
    Interrupt::UN::SET
        + Interrupt::RL::SET
        + Interrupt::LC::SET
        + Interrupt::EBERR::SET
        + Interrupt::RXB::SET
        + Interrupt::RXF::SET
        + Interrupt::TXB::SET
        + Interrupt::TXF::SET
        + Interrupt::GRA::SET
        + Interrupt::BABT::SET
        + Interrupt::BABR::SET
        + Interrupt::HBERR::SET
}

/// Whether a MAC address can be this station's.
fn usable(mac: &[u8; 6]) -> bool {
    *mac != [0; 6] && *mac != [0xff; 6] && mac[0] & 1 == 0
}

/// One ENET with legacy descriptors.
pub struct Nic<B: Bus> {
    bus: B,
    rx: RxRing,
    tx: TxRing<TxJob>,
    bounce: DmaBuf,
    frames: DmaBuf,
    phy: Phy,
    mac: [u8; 6],
    /// What the MAC is configured for.
    mode: LinkMode,
    link_up: bool,
    enabled: bool,
    /// TXF is unmasked (transmits in flight).
    txf: bool,
    /// Buffers waiting for a descriptor.
    lent: Deque<Lent, MAX_LENT>,
    /// Buffers refused, handed back when the client disables the NIC.
    refused: Deque<u32, MAX_LENT>,
    backlog: TxBacklog,
    counters: Counters,
    /// IEEE_R_MACERR when last read.
    macerr: u32,
}

impl<B: Bus> Nic<B> {
    /// Takes the controller: resets it, checks that it is an ENET, sets
    /// its MAC address (`mac`, or the one the bootloader or QEMU left in
    /// it), allocates the rings and transmit bounce buffers from `dma`,
    /// finds the PHY and starts auto-negotiation. `frames` is the
    /// client's data area, in which every buffer a message names lies.
    /// Receive and transmit stay off until [`enable`](Self::enable).
    pub fn new(
        mut bus: B,
        dma: &mut DmaRegion,
        frames: DmaBuf,
        mac: Option<[u8; 6]>,
    ) -> Result<Self, InitError> {
        frames.paddr32()?;
        // The address survives in PALR/PAUR until a reset, which may
        // clear it on real silicon: read it first.
        let mac = match mac {
            Some(m) => m,
            None => {
                let lo = bus.get(PALR).to_be_bytes();
                let hi = bus.read(PAUR).read(AddressUpper::PADDR2).to_be_bytes();
                [lo[0], lo[1], lo[2], lo[3], hi[2], hi[3]]
            }
        };
        reset(&mut bus)?;
        let rcr = bus.get(RCR);
        if rcr != RCR_RESET {
            return Err(InitError::NotEnet { rcr });
        }
        if !usable(&mac) {
            return Err(InitError::NoMac { mac });
        }
        let rx = RxRing::new(dma)?;
        let tx = TxRing::new(dma)?;
        let bounce = dma.alloc("tx bounce", TX_SLOTS * BOUNCE_BYTES, BUF_ALIGN)?;
        bounce.paddr32()?;
        bus.write(MSCR, MiiSpeed::MII_SPEED.val(MII_SPEED));
        let phy = Phy::probe(&mut bus).map_err(InitError::Phy)?;
        phy.start_autoneg(&mut bus)
            .map_err(|e| InitError::Phy(e.into()))?;
        let mut nic = Nic {
            bus,
            rx,
            tx,
            bounce,
            frames,
            phy,
            mac,
            mode: LinkMode::DEFAULT,
            link_up: false,
            enabled: false,
            txf: false,
            lent: Deque::new(),
            refused: Deque::new(),
            backlog: TxBacklog::new(),
            counters: Counters::default(),
            macerr: 0,
        };
        nic.program_mac();
        if let Ok(up) = nic.phy.link_up(&mut nic.bus) {
            nic.link_up = up;
            if up && let Ok(mode) = nic.phy.mode(&mut nic.bus) {
                nic.mode = mode;
            }
        }
        Ok(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn phy(&self) -> Phy {
        self.phy
    }

    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// The link mode the MAC is configured for.
    pub fn mode(&self) -> LinkMode {
        self.mode
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Transmits in flight or queued.
    pub fn tx_outstanding(&self) -> usize {
        self.tx.busy() + self.backlog.len()
    }

    /// Buffers the client has lent and the driver still holds.
    pub fn lent(&self) -> usize {
        self.held()
    }

    fn held(&self) -> usize {
        self.lent.len() + self.rx.armed() + self.refused.len()
    }

    /// The bus, for the tests' fake device.
    #[cfg(test)]
    pub(crate) fn bus(&mut self) -> &mut B {
        &mut self.bus
    }

    fn program_mac(&mut self) {
        let m = self.mac;
        self.bus
            .set(PALR, u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
        self.bus.write(
            PAUR,
            AddressUpper::PADDR2.val(u32::from(u16::from_be_bytes([m[4], m[5]])))
                + AddressUpper::TYPE::Pause,
        );
    }

    /// Starts receive and transmit.
    pub fn enable(&mut self) {
        self.enabled = true;
        self.start_controller();
    }

    /// Programs the stopped controller for the current link mode and the
    /// rings (both at descriptor 0), starts it and arms the waiting
    /// buffers.
    fn start_controller(&mut self) {
        let mode = self.mode;
        let bus = &mut self.bus;
        bus.write(ECR, Control::DBSWP::SET);
        bus.set(EIMR, 0);
        bus.set(EIR, u32::MAX);
        bus.write(MSCR, MiiSpeed::MII_SPEED.val(MII_SPEED));
        let mut rcr =
            RxControl::MAX_FL.val(MAX_FL) + RxControl::MII_MODE::SET + RxControl::RGMII_EN::SET;
        if mode.speed == Speed::M10 {
            rcr += RxControl::RMII_10T::SET;
        }
        if !mode.full_duplex {
            rcr += RxControl::DRT::SET;
        }
        bus.write(RCR, rcr);
        bus.write(
            TCR,
            if mode.full_duplex {
                TxControl::FDEN::SET
            } else {
                TxControl::FDEN::CLEAR
            },
        );
        bus.write(TFWR, TxWatermark::STRFWD::SET);
        // No unicast hash; every multicast group (the stack filters).
        bus.set(IAUR, 0);
        bus.set(IALR, 0);
        bus.set(GAUR, u32::MAX);
        bus.set(GALR, u32::MAX);
        bus.set(MRBR, RX_BUF_BYTES as u32);
        bus.set(RDSR, self.rx.paddr32());
        bus.set(TDSR, self.tx.paddr32());
        bus.set(MIBC, 0);
        self.macerr = self.bus.get(IEEE_R_MACERR);
        self.program_mac();
        let mut ecr = Control::ETHEREN::SET + Control::DBSWP::SET;
        if mode.speed == Speed::M1000 {
            ecr += Control::SPEED::SET;
        }
        self.bus.write(ECR, ecr);
        self.txf = false;
        self.bus
            .write(EIMR, Interrupt::RXF::SET + Interrupt::EBERR::SET);
        self.refill();
    }

    /// Stops the controller: ETHEREN clear, interrupts masked and
    /// acknowledged.
    fn stop_controller(&mut self) {
        self.bus.write(ECR, Control::DBSWP::SET);
        self.bus.set(EIMR, 0);
        self.bus.set(EIR, u32::MAX);
        self.txf = false;
    }

    /// Stops the controller and hands everything back: transmits in
    /// flight and queued are aborted, every lent buffer returned.
    pub fn disable(&mut self, emit: &mut impl FnMut(Event)) {
        self.stop_controller();
        self.abort_all(eth::RESET, emit);
        let lent = &mut self.lent;
        self.rx.reset(|l| {
            let _ = lent.push_back(l);
        });
        while let Some(l) = self.lent.pop_front() {
            emit(Event::RxReturn { buf: l.buf });
        }
        while let Some(buf) = self.refused.pop_front() {
            emit(Event::RxReturn { buf });
        }
        self.enabled = false;
    }

    /// Takes a receive buffer the client lends: `len` bytes at `buf` in
    /// the data area. It is armed by the next [`refill`](Self::refill)
    /// (or service or poll). A refused buffer is kept and handed back on
    /// disable, as the protocol wants every lent buffer answered.
    pub fn lend(&mut self, buf: u32, len: u16) -> Result<(), LendError> {
        let held = self.held();
        let refused = match check_lend(buf, len, self.frames.len(), RX_BUF_BYTES, held, MAX_LENT) {
            Ok(())
                if !self
                    .frames
                    .paddr_at(buf as usize)
                    .is_multiple_of(BUF_ALIGN as u64) =>
            {
                Err(LendError::Misaligned)
            }
            checked => checked,
        };
        match refused {
            Err(e) => {
                self.counters.rx_bad_lend += 1;
                // Past MAX_LENT the client broke the protocol's bound; the
                // buffer is forgotten (counted).
                let _ = self.refused.push_back(buf);
                Err(e)
            }
            Ok(()) => {
                let paddr = self.frames.paddr_at(buf as usize) as u32;
                // Room was checked (held < MAX_LENT).
                let _ = self.lent.push_back(Lent { buf, len, paddr });
                Ok(())
            }
        }
    }

    /// Arms waiting buffers into free descriptors and tells the device.
    pub fn refill(&mut self) {
        if !self.enabled {
            return;
        }
        let mut armed = false;
        while !self.rx.is_full() {
            let Some(l) = self.lent.pop_front() else {
                break;
            };
            self.rx.arm(l);
            armed = true;
        }
        if armed {
            self.bus.write(RDAR, DescriptorActive::ACTIVE::SET);
        }
    }

    /// Sends `len` bytes at `buf` in the data area, now or when a
    /// descriptor frees up; its completion comes as an event.
    pub fn transmit(&mut self, buf: u32, len: u16, now_ns: u64, emit: &mut impl FnMut(Event)) {
        if !self.enabled {
            emit(Event::TxAbort {
                buf,
                error: eth::RESET,
            });
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

    /// Reaps released descriptors, feeds queued requests to free ones,
    /// tells the device, and unmasks TXF only while frames stay in flight.
    fn pump_tx(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) {
        loop {
            self.reap(emit);
            let mut started = false;
            while !self.tx.is_full() {
                let Some(job) = self.backlog.pop() else {
                    break;
                };
                self.start_tx(job, now_ns);
                started = true;
            }
            if !started {
                break;
            }
            self.bus.write(TDAR, DescriptorActive::ACTIVE::SET);
        }
        let want_txf = self.tx.busy() > 0;
        if want_txf && !self.txf {
            // A completion between the reap and the unmask must still
            // interrupt: clear the stale event, look again, then unmask.
            self.bus.write(EIR, Interrupt::TXF::SET);
            self.reap(emit);
        }
        let want_txf = self.tx.busy() > 0;
        if want_txf != self.txf {
            self.txf = want_txf;
            let mut mask = Interrupt::RXF::SET + Interrupt::EBERR::SET;
            if want_txf {
                mask += Interrupt::TXF::SET;
            }
            self.bus.write(EIMR, mask);
        }
        self.backlog.notices(emit);
    }

    fn reap(&mut self, emit: &mut impl FnMut(Event)) {
        let counters = &mut self.counters;
        self.tx.reap(|job| {
            counters.tx_frames += 1;
            counters.tx_bytes += u64::from(job.len);
            emit(Event::TxDone { buf: job.buf });
        });
    }

    fn start_tx(&mut self, job: TxJob, now_ns: u64) {
        let len = usize::from(job.len);
        let at = job.buf as usize;
        // The data area was checked below 4 GiB at start-up.
        let direct = self.frames.paddr_at(at);
        let paddr = if len < MIN_WIRE_FRAME || !direct.is_multiple_of(BUF_ALIGN as u64) {
            let slot = self.tx.next_index() * BOUNCE_BYTES;
            let mut frame = [0u8; MAX_FRAME];
            let frame = &mut frame[..len.max(MIN_WIRE_FRAME)];
            self.frames.copy_out(at, &mut frame[..len]);
            self.bounce.copy_in(slot, frame);
            self.counters.tx_bounced += 1;
            self.bounce.paddr_at(slot)
        } else {
            direct
        };
        let wire_len = len.max(MIN_WIRE_FRAME) as u16;
        self.tx.submit(paddr as u32, wire_len, job, now_ns);
    }

    /// Handles an interrupt: reads the events once, acknowledges what it
    /// saw, and acts on it. The PD acknowledges the IRQ with the kernel
    /// afterwards, when the device's events are clear.
    pub fn service(
        &mut self,
        budget: usize,
        now_ns: u64,
        emit: &mut impl FnMut(Event),
    ) -> Serviced {
        self.counters.interrupts += 1;
        let raw = self.bus.get(EIR);
        let events = raw & handled().value;
        if events == 0 {
            self.counters.spurious += 1;
        }
        self.bus.set(EIR, events);
        let events = hwio::LocalRegisterCopy::<u32, Interrupt::Register>::new(events);
        for field in [Interrupt::UN, Interrupt::RL, Interrupt::LC] {
            if events.is_set(field) {
                self.counters.tx_errors += 1;
            }
        }
        if events.is_set(Interrupt::BABR) {
            self.counters.rx_babbling += 1;
        }
        self.count_missed();
        if !self.enabled {
            return Serviced::default();
        }
        if events.is_set(Interrupt::EBERR) {
            self.counters.bus_errors += 1;
            self.restart(emit);
        }
        self.pump_tx(now_ns, emit);
        let s = self.poll_rx(budget, emit);
        if events.is_set(Interrupt::RXF) && !s.more && self.rx.skipped() {
            self.counters.rx_ring_resets += 1;
            self.restart(emit);
        }
        s
    }

    /// Whether the device stopped receiving (RDAR reads 0: it found no
    /// empty descriptor where it looked) while the oldest descriptor the
    /// driver armed is still empty: the device looks elsewhere, and
    /// would wait there for good.
    fn stalled_elsewhere(&mut self) -> bool {
        self.rx.armed() > 0 && !self.bus.is_set(RDAR, DescriptorActive::ACTIVE) && !self.rx.ready()
    }

    fn count_missed(&mut self) {
        let now = self.bus.get(IEEE_R_MACERR);
        self.counters.rx_missed += u64::from(now.wrapping_sub(self.macerr));
        self.macerr = now;
    }

    /// Takes up to `budget` received descriptors (after an interrupt,
    /// after more buffers were lent, or after a `more`), re-arming the
    /// buffers of what it drops, then arms waiting buffers.
    pub fn poll_rx(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        if !self.enabled {
            return Serviced::default();
        }
        for _ in 0..budget {
            match self.rx.take() {
                Rx::Empty => break,
                Rx::Frame { lent, len } => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += len as u64;
                    emit(Event::Rx {
                        buf: lent.buf,
                        len: len as u16,
                    });
                }
                Rx::Drop {
                    lent,
                    reason,
                    first,
                } => {
                    if first {
                        match reason {
                            DropReason::TooLong => self.counters.rx_too_long += 1,
                            DropReason::BadStatus { .. } => self.counters.rx_bad_status += 1,
                            DropReason::Runt { .. } => self.counters.rx_runt += 1,
                            DropReason::BadLength { .. } => self.counters.rx_bad_length += 1,
                        }
                    }
                    // Still the client's: armed again at once.
                    let _ = self.lent.push_front(lent);
                }
            }
        }
        self.refill();
        if self.stalled_elsewhere() {
            self.counters.rx_ring_resets += 1;
            self.restart(emit);
        }
        Serviced {
            more: self.rx.ready(),
            starved: self.rx.armed() == 0,
        }
    }

    /// Polls the PHY (the PD calls it from a Timer timeout): a change of
    /// the link comes as an event, and a link that comes up in another
    /// mode than the MAC's gets the controller restarted in the new one.
    /// Returns the new state when it changed. Nothing is polled while the
    /// NIC is disabled.
    pub fn poll_link(&mut self, emit: &mut impl FnMut(Event)) -> Option<bool> {
        if !self.enabled {
            return None;
        }
        let up = match self.phy.link_up(&mut self.bus) {
            Ok(up) => up,
            Err(MdioTimeout { .. }) => {
                self.counters.mdio_errors += 1;
                return None;
            }
        };
        if up == self.link_up {
            return None;
        }
        if up {
            match self.phy.mode(&mut self.bus) {
                Ok(mode) if mode != self.mode => {
                    self.mode = mode;
                    self.restart(emit);
                }
                Ok(_) => {}
                Err(_) => self.counters.mdio_errors += 1,
            }
        }
        self.link_up = up;
        emit(Event::Link { up });
        Some(up)
    }

    /// A transmit outstanding for longer than [`TX_TIMEOUT_NS`] means the
    /// controller is stuck: abort what is in flight and restart it.
    /// Returns whether it did.
    pub fn check_watchdog(&mut self, now_ns: u64, emit: &mut impl FnMut(Event)) -> bool {
        if !self.enabled {
            return false;
        }
        self.pump_tx(now_ns, emit);
        match self.tx.oldest_since() {
            Some(since) if now_ns.saturating_sub(since) >= TX_TIMEOUT_NS => {
                self.restart(emit);
                self.pump_tx(now_ns, emit);
                true
            }
            _ => false,
        }
    }

    /// Stops the controller, aborts the transmits in flight (the queue is
    /// kept), takes the armed buffers back to the front of the waiting
    /// ones, and starts it again.
    fn restart(&mut self, emit: &mut impl FnMut(Event)) {
        self.counters.chip_resets += 1;
        self.stop_controller();
        let counters = &mut self.counters;
        self.tx.reset(|job| {
            counters.tx_failed += 1;
            emit(Event::TxAbort {
                buf: job.buf,
                error: eth::RESET,
            })
        });
        let mut back: Vec<Lent, RX_SLOTS> = Vec::new();
        self.rx.reset(|l| {
            let _ = back.push(l);
        });
        for l in back.iter().rev() {
            // Room: these were counted among the held buffers.
            let _ = self.lent.push_front(*l);
        }
        self.start_controller();
    }

    fn abort_all(&mut self, error: u32, emit: &mut impl FnMut(Event)) {
        self.tx.reset(|job| {
            emit(Event::TxAbort {
                buf: job.buf,
                error,
            })
        });
        self.backlog.abort_all(error, emit);
    }
}

/// Software reset: ECR.RESET reads 1 until the controller is done.
fn reset<B: Bus>(bus: &mut B) -> Result<(), InitError> {
    bus.write(ECR, Control::RESET::SET);
    for _ in 0..RESET_POLLS {
        if !bus.is_set(ECR, Control::RESET) {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(InitError::ResetStuck)
}

#[cfg(test)]
mod tests;
