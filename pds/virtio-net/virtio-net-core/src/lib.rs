//! The host-testable core of the virtio-net driver PD: one virtio-net
//! device driven through virtio-drivers' transport and split virtqueues
//! ([`VirtQueue`]), turned into events for the EthernetController
//! protocol. The PD builds the transport (virtio-kit's PCI transport over
//! the pci PD); tests give it a fake device playing QEMU's rings in kit/dma
//! host memory, or writing garbage.
//!
//! # Zero copy
//!
//! Frames never move. A receive chain is two descriptors: a 12-byte
//! virtio-net header from the driver's own DMA memory, then the buffer the
//! client lent in the port's data area, so the frame lands where the
//! client reads it. A transmit chain is the one all-zero header (shared by
//! every chain: the device only reads it) and the client's frame in place.
//! The crate's own `VirtIONetRaw` wants the header and the frame in one
//! buffer, which would force a copy each way (the client's buffers have no
//! room in front); this core therefore drives the crate's `VirtQueue`
//! directly, which takes any number of buffers per chain.
//!
//! # What is negotiated
//!
//! VERSION_1 (required: the modern transport), MAC, STATUS (link changes
//! as configuration interrupts), EVENT_IDX (notification suppression both
//! ways) and MRG_RXBUF. Mergeable buffers are asked for only so that a
//! frame longer than a lent buffer reaches the driver as several buffers,
//! which it drops and counts (`rx_too_long`); without them QEMU drops such
//! a frame silently. No indirect descriptors: the crate builds them on the
//! heap, and a PD has none.
//!
//! # Trust
//!
//! Every used entry passes virtio-kit's [`Guard`] before the crate pops
//! it: the index may not run ahead of the chains in flight, the 32-bit id
//! must head a chain in flight, the length must fit the chain. A length
//! too long or a header with an impossible buffer count drops that frame
//! (counted) and the buffer goes back to the device; anything else about
//! the ring is a device fault: the device is reset, transmits are aborted,
//! lent buffers are kept until the client disables, and the link is
//! reported down. The crate is never asked to pop an entry the guard did
//! not accept, so its panics on mismatched chains cannot be reached from
//! the device.
//!
//! # Interrupts
//!
//! One legacy INTx line for both queues and configuration changes; reading
//! the ISR (the crate's `ack_interrupt`) lowers it. Or, where the system
//! gives the driver an MSI, one MSI-X vector for all of them (virtio-kit's
//! `KitTransport`, whose `ack_interrupt` then always names the queues). With EVENT_IDX the
//! device interrupts for a receive only once the driver has taken every
//! earlier one (the crate writes `used_event` as it pops), so a busy queue
//! costs no interrupt per frame; transmit completions are asked for once
//! per batch, when the last chain in flight is used ([`Guard::set_used_event`]),
//! and only while more than [`REAP_LATER`] chains are in flight: the
//! completions of fewer wait for the driver's next interrupt or transmit,
//! where they reach the client with that work (a ping-pong echo would
//! otherwise cost an interrupt and a round of both PDs' loops more). A
//! client with more than `REAP_LATER` transmit buffers never waits for
//! them. They are otherwise reaped whenever the driver runs, and the
//! requests the client sends in one go are handed to the device together
//! ([`Nic::transmit`] queues, [`Nic::poll`] adds). Notifications to the
//! device are sent once per batch of adds, when `vring_need_event` says so.

#![cfg_attr(not(test), no_std)]

use core::fmt;

use dingo_protocols::ethernet_controller as eth;
use dma::DmaBuf;
use eth_driver::{Event, LendError, Refusal, TxBacklog, TxJob, check_lend};
use heapless::Deque;
use virtio_drivers::Hal;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{InterruptStatus, Transport};
use virtio_kit::hal::HalState;
use virtio_kit::used::{self, Guard, NegotiateError, Recorder};

/// Descriptors per queue (QEMU's default queue size for virtio-net).
pub const QSIZE: usize = 256;
/// The virtio-net header with VERSION_1 (num_buffers included).
pub const HDR_LEN: usize = 12;
/// Header slots: each receive chain takes two descriptors.
const RX_CHAINS: usize = QSIZE / 2;
/// Bytes between header slots.
const HDR_STRIDE: usize = 16;
/// Bytes of header memory a driver needs: the receive slots and the one
/// transmit header.
pub const HDRS_LEN: usize = (RX_CHAINS + 1) * HDR_STRIDE;
/// Longest frame forwarded (no FCS in virtio; a VLAN tag allowed).
pub const MAX_FRAME: usize = 1518;
/// Shortest frame forwarded (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Receive buffers the client may have lent at once.
pub const MAX_LENT: usize = 256;
/// Transmit chains in flight whose completion may wait for the driver's
/// next interrupt or transmit (see the module doc).
pub const REAP_LATER: u16 = 2;
/// Queued transmit requests at which [`Nic::transmit`] hands them to the
/// device itself rather than leaving them to [`Nic::poll`].
const TX_PUMP_AT: usize = eth_driver::TX_BACKLOG / 2;
/// Configuration reads retried while the device's generation changes.
const CONFIG_TRIES: u32 = 8;

const QUEUE_RX: u16 = 0;
const QUEUE_TX: u16 = 1;

/// Feature bits (virtio 1.1, 5.1.3 and 6).
pub mod feature {
    pub const MAC: u64 = 1 << 5;
    pub const MRG_RXBUF: u64 = 1 << 15;
    pub const STATUS: u64 = 1 << 16;
    pub const EVENT_IDX: u64 = 1 << 29;
    pub const VERSION_1: u64 = 1 << 32;
}

/// Device configuration offsets (virtio_net_config).
const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const LINK_UP: u16 = 1;

/// Counters for the status page and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub interrupts: u64,
    /// Interrupts with an ISR of 0.
    pub spurious: u64,
    pub config_changes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames longer than [`MAX_FRAME`] or than one lent buffer, dropped.
    pub rx_too_long: u64,
    pub rx_runt: u64,
    /// Used entries whose header or length cannot be right (dropped).
    pub rx_bad_header: u64,
    pub rx_bad_lend: u64,
    pub tx_bad_request: u64,
    pub tx_queue_full: u64,
    /// Used entries the guard refused: the device was reset.
    pub device_faults: u64,
    pub rx_notifies: u64,
    pub tx_notifies: u64,
}

/// Bring-up failed.
#[derive(Debug)]
pub enum InitError {
    Negotiate(NegotiateError),
    Queue(virtio_drivers::Error),
    /// The rings are not in the HAL's windows (a driver bug).
    Rings,
    HeadersTooSmall {
        len: usize,
    },
    /// The configuration kept changing under every read.
    Config,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Negotiate(e) => write!(f, "{e}"),
            InitError::Queue(e) => write!(f, "setting up a virtqueue: {e}"),
            InitError::Rings => write!(f, "the virtqueue rings are outside the DMA windows"),
            InitError::HeadersTooSmall { len } => {
                write!(
                    f,
                    "the header buffer has {len:#x} bytes, fewer than {HDRS_LEN:#x}"
                )
            }
            InitError::Config => write!(f, "the device configuration never read consistently"),
        }
    }
}

/// What a service or poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// Used entries remain (budget spent): poll again before sleeping.
    pub more: bool,
    /// The device faulted in this call; [`Nic::fault`] says how.
    pub faulted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lent {
    buf: u32,
    len: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RxChain {
    lent: Lent,
    hdr: u8,
}

/// One virtio-net device.
pub struct Nic<H: Hal, T: Transport> {
    t: Recorder<T>,
    hal: &'static HalState,
    q: Queues<H>,
    /// Receive headers, then the one transmit header.
    hdrs: DmaBuf,
    frames: DmaBuf,
    rx_chains: [Option<RxChain>; QSIZE],
    tx_chains: [Option<TxJob>; QSIZE],
    rx_in_flight: u16,
    tx_in_flight: u16,
    free_hdrs: heapless::Vec<u8, RX_CHAINS>,
    /// Lent, not yet posted to the device.
    lent: Deque<Lent, MAX_LENT>,
    backlog: TxBacklog,
    /// Buffers still to drop of a frame that spans several.
    dropping: u16,
    mac: [u8; 6],
    link_up: bool,
    enabled: bool,
    /// The device was reset (disable, fault): its queues must be set up
    /// again before it is used.
    was_reset: bool,
    fault: Option<used::Fault>,
    counters: Counters,
}

/// The device's two queues as negotiated, with their guards and the
/// available indices at the last notification check.
struct Queues<H: Hal> {
    rx: VirtQueue<H, QSIZE>,
    tx: VirtQueue<H, QSIZE>,
    rxg: Guard,
    txg: Guard,
    features: u64,
    rx_kicked: u16,
    rx_added: u16,
    tx_kicked: u16,
    tx_added: u16,
}

impl<H: Hal> Queues<H> {
    /// Negotiation and both queues, with rings from the HAL (fresh pages
    /// each time: the pool never takes any back).
    fn set_up<T: Transport>(t: &mut Recorder<T>, hal: &HalState) -> Result<Self, InitError> {
        let wanted = feature::MAC | feature::STATUS | feature::EVENT_IDX | feature::MRG_RXBUF;
        let features =
            used::negotiate(t, wanted, feature::VERSION_1).map_err(InitError::Negotiate)?;
        let event_idx = features & feature::EVENT_IDX != 0;
        let rx = VirtQueue::new(t, QUEUE_RX, false, event_idx).map_err(InitError::Queue)?;
        let tx = VirtQueue::new(t, QUEUE_TX, false, event_idx).map_err(InitError::Queue)?;
        Ok(Queues {
            rx,
            tx,
            rxg: Guard::new(t, QUEUE_RX, hal).ok_or(InitError::Rings)?,
            txg: Guard::new(t, QUEUE_TX, hal).ok_or(InitError::Rings)?,
            features,
            rx_kicked: 0,
            rx_added: 0,
            tx_kicked: 0,
            tx_added: 0,
        })
    }

    fn event_idx(&self) -> bool {
        self.features & feature::EVENT_IDX != 0
    }
}

/// Bytes as a slice for the crate's `add`/`pop_used`, which only takes
/// their address and length (its `share`/`unshare` go to virtio-kit's HAL,
/// which translates and copies nothing); the bytes are never read or
/// written through it by Rust code.
///
/// # Safety
/// `vaddr..vaddr + len` lies in a DMA buffer this driver owns or holds
/// lent (checked by the callers against the buffer's bounds).
unsafe fn bytes<'a>(vaddr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: see the function's contract; the slice lives as long as the
    // call to the crate that takes it.
    unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, len) }
}

impl<H: Hal, T: Transport> Nic<H, T> {
    /// Takes the device: negotiates, sets up both queues (rings from the
    /// HAL whose state is `hal`), reads the MAC and the link. `hdrs` holds
    /// the virtio-net headers ([`HDRS_LEN`] bytes at least), `frames` is
    /// the client's data area; the HAL must have both as windows. Nothing
    /// is received or sent before [`enable`](Self::enable).
    pub fn new(
        transport: T,
        hal: &'static HalState,
        mut hdrs: DmaBuf,
        frames: DmaBuf,
    ) -> Result<Self, InitError> {
        if hdrs.len() < HDRS_LEN {
            return Err(InitError::HeadersTooSmall { len: hdrs.len() });
        }
        let mut t = Recorder::new(transport);
        let q = Queues::set_up(&mut t, hal)?;
        hdrs.zero();
        let mac = if q.features & feature::MAC != 0 {
            used::read_consistent(&t, CONFIG_TRIES, |t| {
                t.read_config_space::<[u8; 6]>(CONFIG_MAC)
            })
            .ok_or(InitError::Config)?
        } else {
            // No MAC offered: a locally administered one.
            [0x02, 0, 0, 0, 0, 1]
        };
        used::driver_ok(&mut t);
        let mut nic = Nic {
            t,
            hal,
            q,
            hdrs,
            frames,
            rx_chains: [None; QSIZE],
            tx_chains: [None; QSIZE],
            rx_in_flight: 0,
            tx_in_flight: 0,
            free_hdrs: (0..RX_CHAINS as u8).collect(),
            lent: Deque::new(),
            backlog: TxBacklog::new(),
            dropping: 0,
            mac,
            link_up: true,
            enabled: false,
            was_reset: false,
            fault: None,
            counters: Counters::default(),
        };
        nic.link_up = nic.read_link().unwrap_or(true);
        Ok(nic)
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
    /// Why the device was given up, if it was.
    pub fn fault(&self) -> Option<used::Fault> {
        self.fault
    }
    /// Transmits in flight or queued.
    pub fn tx_outstanding(&self) -> usize {
        usize::from(self.tx_in_flight) + self.backlog.len()
    }
    /// Buffers the client lent that the driver holds.
    pub fn lent(&self) -> usize {
        usize::from(self.rx_in_flight) + self.lent.len()
    }
    /// The transport, for tests that play the device.
    pub fn transport(&mut self) -> &mut Recorder<T> {
        &mut self.t
    }

    fn read_link(&self) -> Option<bool> {
        if self.q.features & feature::STATUS == 0 {
            return Some(true);
        }
        used::read_consistent(&self.t, CONFIG_TRIES, |t| {
            t.read_config_space::<u16>(CONFIG_STATUS)
        })
        .map(|s| s & LINK_UP != 0)
    }

    /// Starts receive (posting every buffer lent so far) and transmit.
    /// After a reset (a disable with chains outstanding, or a device
    /// fault) the device is initialised again first, with fresh rings.
    pub fn enable(&mut self) -> Result<(), InitError> {
        if self.was_reset {
            self.q = Queues::set_up(&mut self.t, self.hal)?;
            used::driver_ok(&mut self.t);
            self.was_reset = false;
            self.fault = None;
            self.dropping = 0;
            self.link_up = self.read_link().unwrap_or(true);
        }
        self.enabled = true;
        self.post_rx();
        self.kick();
        Ok(())
    }

    /// Stops: transmits aborted, every lent buffer returned. A device that
    /// holds chains is reset first, since it could still write them.
    pub fn disable(&mut self, emit: &mut impl FnMut(Event)) {
        self.reap_tx(emit);
        if !self.was_reset && (self.rx_in_flight > 0 || self.tx_in_flight > 0) {
            let _ = used::reset(&mut self.t);
            self.was_reset = true;
            self.release_chains(emit);
        }
        self.abort_all(eth::RESET, emit);
        while let Some(l) = self.lent.pop_front() {
            emit(Event::RxReturn { buf: l.buf });
        }
        self.enabled = false;
    }

    /// Takes a receive buffer: `len` bytes at `buf` in the data area.
    pub fn lend(&mut self, buf: u32, len: u16) -> Result<(), LendError> {
        let held = self.lent();
        if let Err(e) = check_lend(buf, len, self.frames.len(), MAX_FRAME, held, MAX_LENT) {
            self.counters.rx_bad_lend += 1;
            return Err(e);
        }
        // Room was checked: lent() counts this queue.
        let _ = self.lent.push_back(Lent { buf, len });
        if self.enabled {
            self.post_rx();
        }
        Ok(())
    }

    /// The device is not to be used: faulted, or reset and not set up.
    fn broken(&self) -> bool {
        self.fault.is_some() || self.was_reset
    }

    /// Posts lent buffers while descriptors and header slots last. Always
    /// inlined into `lend`, which calls it for every buffer: out of line
    /// (as LLVM chose once the PD's loop grew) it cost the net bench's
    /// 64-byte echo about 30 instructions more.
    #[inline(always)]
    fn post_rx(&mut self) {
        if self.broken() || !self.enabled {
            return;
        }
        while self.q.rx.available_desc() >= 2 {
            let Some(hdr) = self.free_hdrs.pop() else {
                break;
            };
            let Some(l) = self.lent.pop_front() else {
                let _ = self.free_hdrs.push(hdr);
                break;
            };
            let h = self.hdrs.vaddr() + usize::from(hdr) * HDR_STRIDE;
            let b = self.frames.vaddr() + l.buf as usize;
            // SAFETY: the header slot is this driver's (index below
            // RX_CHAINS, inside `hdrs`), the buffer was checked inside the
            // data area when lent; both stay untouched by this PD until the
            // chain is popped.
            let token = unsafe {
                self.q
                    .rx
                    .add(&[], &mut [bytes(h, HDR_LEN), bytes(b, usize::from(l.len))])
            };
            match token {
                Ok(token) => {
                    self.rx_chains[usize::from(token)] = Some(RxChain { lent: l, hdr });
                    self.rx_in_flight += 1;
                    self.q.rx_added = self.q.rx_added.wrapping_add(1);
                }
                Err(_) => {
                    // Cannot happen with two descriptors free; keep the buffer.
                    let _ = self.lent.push_front(l);
                    let _ = self.free_hdrs.push(hdr);
                    break;
                }
            }
        }
    }

    /// Notifies the device of the chains added since the last call, where
    /// it asked to be.
    pub fn kick(&mut self) {
        if self.broken() {
            return;
        }
        let e = self.q.event_idx();
        if self.q.rxg.need_notify(e, self.q.rx_kicked, self.q.rx_added) {
            self.t.notify(QUEUE_RX);
            self.counters.rx_notifies += 1;
        }
        self.q.rx_kicked = self.q.rx_added;
        if self.q.txg.need_notify(e, self.q.tx_kicked, self.q.tx_added) {
            self.t.notify(QUEUE_TX);
            self.counters.tx_notifies += 1;
        }
        self.q.tx_kicked = self.q.tx_added;
    }

    /// Sends `len` bytes at `buf` in the data area; the completion comes as
    /// an event. The request goes to the device at the next
    /// [`poll`](Self::poll) (or [`flush_tx`](Self::flush_tx)), or at once
    /// when many wait.
    pub fn transmit(&mut self, buf: u32, len: u16, emit: &mut impl FnMut(Event)) {
        if self.broken() || !self.enabled {
            let error = if self.broken() { eth::GONE } else { eth::RESET };
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
        if self.backlog.len() >= TX_PUMP_AT {
            self.pump_tx(emit);
        }
    }

    /// Hands the queued transmit requests to the device and notifies it.
    pub fn flush_tx(&mut self, emit: &mut impl FnMut(Event)) {
        if self.broken() || !self.enabled {
            return;
        }
        self.pump_tx(emit);
        self.kick();
    }

    fn pump_tx(&mut self, emit: &mut impl FnMut(Event)) {
        self.reap_tx(emit);
        while !self.broken() && self.q.tx.available_desc() >= 2 {
            let Some(job) = self.backlog.pop() else {
                break;
            };
            let h = self.hdrs.vaddr() + RX_CHAINS * HDR_STRIDE;
            let f = self.frames.vaddr() + job.buf as usize;
            // SAFETY: the transmit header is this driver's and never
            // written after start-up; the frame was checked inside the data
            // area, and the client leaves it alone until txPacketDone.
            let token = unsafe {
                self.q.tx.add(
                    &[&*bytes(h, HDR_LEN), &*bytes(f, usize::from(job.len))],
                    &mut [],
                )
            };
            match token {
                Ok(token) => {
                    self.tx_chains[usize::from(token)] = Some(job);
                    self.tx_in_flight += 1;
                    self.q.tx_added = self.q.tx_added.wrapping_add(1);
                }
                Err(_) => {
                    self.backlog.unpop(job);
                    break;
                }
            }
        }
        // One interrupt when the last chain in flight is done, beyond
        // REAP_LATER of them; none (the event index half the ring space
        // ahead) for fewer.
        if self.q.event_idx() && self.tx_in_flight > 0 {
            let ahead = if self.tx_in_flight > REAP_LATER {
                self.tx_in_flight - 1
            } else {
                0x8000
            };
            self.q
                .txg
                .set_used_event(self.q.txg.taken_count().wrapping_add(ahead));
        }
        self.backlog.notices(emit);
    }

    fn reap_tx(&mut self, emit: &mut impl FnMut(Event)) {
        loop {
            if self.broken() {
                return;
            }
            let chains = &self.tx_chains;
            let next = self
                .q
                .txg
                .next(self.tx_in_flight, |id| chains[usize::from(id)].map(|_| 0));
            let u = match next {
                Ok(Some(u)) => u,
                Ok(None) => return,
                Err(f) => return self.give_up(f, emit),
            };
            let Some(job) = self.tx_chains[usize::from(u.id)] else {
                return;
            };
            let h = self.hdrs.vaddr() + RX_CHAINS * HDR_STRIDE;
            let f = self.frames.vaddr() + job.buf as usize;
            // SAFETY: the same buffers as added with this token.
            let popped = unsafe {
                self.q.tx.pop_used(
                    u.id,
                    &[&*bytes(h, HDR_LEN), &*bytes(f, usize::from(job.len))],
                    &mut [],
                )
            };
            if popped.is_err() {
                return self.give_up(used::Fault::Changed { id: u.id }, emit);
            }
            self.q.txg.taken();
            self.tx_chains[usize::from(u.id)] = None;
            self.tx_in_flight -= 1;
            // A transmit chain has nothing for the device to write: a
            // length is a device oddity, harmless (nothing reads it).
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += u64::from(job.len);
            emit(Event::TxDone { buf: job.buf });
        }
    }

    /// Handles an interrupt: reads (and so lowers) the ISR, takes a link
    /// change, reaps transmits and receives up to `budget` frames.
    pub fn service(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        self.counters.interrupts += 1;
        if self.broken() {
            return Serviced::default();
        }
        let isr = self.t.ack_interrupt();
        if isr.is_empty() {
            self.counters.spurious += 1;
        }
        if isr.contains(InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT) {
            self.counters.config_changes += 1;
            if let Some(up) = self.read_link()
                && up != self.link_up
            {
                self.link_up = up;
                emit(Event::Link { up });
            }
        }
        self.poll(budget, emit)
    }

    /// Reaps transmits, feeds queued ones, receives up to `budget` frames
    /// and reposts buffers; then notifies the device where needed.
    pub fn poll(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        if self.broken() || !self.enabled {
            return Serviced::default();
        }
        self.pump_tx(emit);
        let mut done = self.poll_rx(budget, emit);
        self.post_rx();
        self.kick();
        done.faulted |= self.broken();
        done
    }

    fn poll_rx(&mut self, budget: usize, emit: &mut impl FnMut(Event)) -> Serviced {
        let mut done = Serviced::default();
        for _ in 0..budget {
            if self.broken() {
                return done;
            }
            let chains = &self.rx_chains;
            let next = self.q.rxg.next(self.rx_in_flight, |id| {
                chains[usize::from(id)].map(|c| (HDR_LEN + usize::from(c.lent.len)) as u32)
            });
            let u = match next {
                Ok(Some(u)) => u,
                Ok(None) => return done,
                Err(f) => {
                    self.give_up(f, emit);
                    return done;
                }
            };
            let Some(chain) = self.rx_chains[usize::from(u.id)] else {
                return done;
            };
            let h = self.hdrs.vaddr() + usize::from(chain.hdr) * HDR_STRIDE;
            let b = self.frames.vaddr() + chain.lent.buf as usize;
            // SAFETY: the same buffers as added with this token.
            let popped = unsafe {
                self.q.rx.pop_used(
                    u.id,
                    &[],
                    &mut [bytes(h, HDR_LEN), bytes(b, usize::from(chain.lent.len))],
                )
            };
            if popped.is_err() {
                self.give_up(used::Fault::Changed { id: u.id }, emit);
                return done;
            }
            self.q.rxg.taken();
            self.rx_chains[usize::from(u.id)] = None;
            self.rx_in_flight -= 1;
            let _ = self.free_hdrs.push(chain.hdr);
            dma::barrier::acquire();
            let buffers = self
                .hdrs
                .read::<u16>(usize::from(chain.hdr) * HDR_STRIDE + 10);
            match self.judge(u, buffers) {
                Some(len) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += len as u64;
                    emit(Event::Rx {
                        buf: chain.lent.buf,
                        len: len as u16,
                    });
                }
                // Dropped: the buffer goes straight back to the device.
                None => {
                    let _ = self.lent.push_front(chain.lent);
                }
            }
        }
        done.more = self.q.rxg.pending() > 0;
        done
    }

    /// The frame length of a used receive chain, or `None` to drop it
    /// (counted).
    fn judge(&mut self, u: used::Used, buffers: u16) -> Option<usize> {
        if self.dropping > 0 {
            // A later buffer of a frame already dropped (its header is
            // frame data).
            self.dropping -= 1;
            return None;
        }
        let c = &mut self.counters;
        if u.overlong || (u.len as usize) < HDR_LEN {
            c.rx_bad_header += 1;
            return None;
        }
        match buffers {
            1 => {}
            n if n > 1 && n - 1 <= self.rx_in_flight => {
                c.rx_too_long += 1;
                self.dropping = n - 1;
                return None;
            }
            _ => {
                c.rx_bad_header += 1;
                return None;
            }
        }
        let len = u.len as usize - HDR_LEN;
        if len > MAX_FRAME {
            c.rx_too_long += 1;
            None
        } else if len < MIN_FRAME {
            c.rx_runt += 1;
            None
        } else {
            Some(len)
        }
    }

    /// The device wrote what it cannot have: reset it and stop using it
    /// until the client disables and enables again.
    fn give_up(&mut self, fault: used::Fault, emit: &mut impl FnMut(Event)) {
        self.counters.device_faults += 1;
        self.fault = Some(fault);
        let _ = used::reset(&mut self.t);
        self.was_reset = true;
        self.release_chains(emit);
        self.abort_all(eth::GONE, emit);
        if self.link_up {
            self.link_up = false;
            emit(Event::Link { up: false });
        }
    }

    /// After a reset the device holds nothing: transmits in flight are
    /// aborted, receive chains become plain lent buffers again.
    fn release_chains(&mut self, emit: &mut impl FnMut(Event)) {
        for c in self.tx_chains.iter_mut() {
            if let Some(job) = c.take() {
                emit(Event::TxAbort {
                    buf: job.buf,
                    error: eth::RESET,
                });
            }
        }
        self.tx_in_flight = 0;
        for i in 0..QSIZE {
            if let Some(chain) = self.rx_chains[i].take() {
                let _ = self.lent.push_back(chain.lent);
                let _ = self.free_hdrs.push(chain.hdr);
            }
        }
        self.rx_in_flight = 0;
    }

    fn abort_all(&mut self, error: u32, emit: &mut impl FnMut(Event)) {
        for c in self.tx_chains.iter_mut() {
            if let Some(job) = c.take() {
                emit(Event::TxAbort {
                    buf: job.buf,
                    error,
                });
            }
        }
        self.tx_in_flight = 0;
        self.backlog.abort_all(error, emit);
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
