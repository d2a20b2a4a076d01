//! The schedule, its transfers and the controller's life cycle.

use core::fmt;

use dma::{DmaBuf, DmaRegion, barrier};
use heapless::{Deque, Vec};
use hwio::{Bus, FieldValue, LocalRegisterCopy, Registers};
use usb_core::setup::Setup;
use usb_core::{MAX_CONTROL_DATA, kind, status, window};

use crate::desc::{Condition, DESC_SIZE, Ed, EdFlags, EdHead, POINTER_MASK, Td, TdFlags, hcca};
use crate::regs::*;

/// Endpoints open at once.
pub const MAX_ENDPOINTS: usize = 32;
/// Transfers in flight at once.
pub const MAX_TRANSFERS: usize = 64;
/// Descriptors (EDs, TDs, periodic placeholders) in the pool.
pub const POOL: usize = 1024;
/// DMA windows (buffers) the controller's users address.
pub const MAX_WINDOWS: usize = 8;
/// The largest transfer: 1 MiB, 128 TDs of 8 KiB.
pub const MAX_TRANSFER: u32 = 1 << 20;
/// The watchdog's period: the frame number must move within it.
pub const WATCHDOG_NS: u64 = 100_000_000;
/// Events the driver holds before its user takes them.
pub const MAX_EVENTS: usize = 2 * MAX_TRANSFERS + 4 * MAX_ENDPOINTS + 4 * MAX_PORTS;

/// Periodic placeholders: 32 + 16 + 8 + 4 + 2 + 1 for the intervals 32 ms
/// down to 1 ms.
const NODES: usize = 63;
const NONE: u16 = u16::MAX;

/// The end of a software TD queue.
pub(crate) const fn none() -> u16 {
    NONE
}
/// Bytes of the per-transfer SETUP packet area.
const SETUP_BYTES: usize = 8;
/// A TD's buffer may span two 4 KiB pages.
const PAGE: u32 = 4096;
const TD_MAX: u32 = 2 * PAGE;

/// DMA memory this driver needs from its region, for sizing it.
pub const DMA_BYTES: usize = hcca::SIZE + POOL * DESC_SIZE + MAX_TRANSFERS * SETUP_BYTES + 512;

/// A DMA window: where the buffers of one user of the controller live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub paddr: u64,
    pub size: u32,
}

/// What `openEndpoint` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    pub addr: u8,
    pub number: u8,
    pub kind: u8,
    pub dir_in: bool,
    pub max_packet: u16,
    /// Interrupt endpoints: the polling interval in ms (1..=255).
    pub interval: u8,
    pub low_speed: bool,
}

/// Why an endpoint could not be opened (the `error` of endpointFailed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The handle names an endpoint that is still open.
    Duplicate = 1,
    /// No endpoint slot or descriptor left.
    NoRoom = 2,
    /// Isochronous transfers are not supported.
    Isochronous = 3,
    /// Address, endpoint number, max packet or interval out of range.
    BadParams = 4,
    /// The controller is halted.
    Halted = 5,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::Duplicate => "the handle is in use",
            OpenError::NoRoom => "no endpoint or descriptor left",
            OpenError::Isochronous => "isochronous transfers are not supported",
            OpenError::BadParams => "address, endpoint, max packet or interval out of range",
            OpenError::Halted => "the controller is halted",
        })
    }
}

/// Why the controller was re-initialised (the `error` of controllerReset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fatal {
    /// The controller raised UnrecoverableError.
    Unrecoverable = 1,
    /// The frame number stopped moving.
    Watchdog = 2,
}

/// What the driver tells its user, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    PortStatus {
        port: u8,
        connected: bool,
        enabled: bool,
        low_speed: bool,
    },
    PortResetDone {
        port: u8,
        ok: bool,
    },
    EndpointOpened {
        ep: u16,
    },
    EndpointFailed {
        ep: u16,
        error: OpenError,
    },
    Complete {
        xfer: u32,
        status: u8,
        actual: u32,
    },
    EndpointAborted {
        ep: u16,
    },
    EndpointClosed {
        ep: u16,
    },
    ControllerReset {
        cause: Fatal,
    },
    Halted,
}

/// Why a request was refused; the last one is kept for the PD's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownEndpoint { xfer: u32, ep: u16 },
    EndpointClosing { xfer: u32, ep: u16 },
    NoTransferSlot { xfer: u32 },
    NoDescriptors { xfer: u32, needed: usize },
    BadBuffer { xfer: u32, buf: u32, len: u32 },
    BadSetup { xfer: u32, setup: Setup, len: u32 },
    SetupOnNonControl { xfer: u32, ep: u16 },
    TooLong { xfer: u32, len: u32 },
    UnknownPort { port: u8 },
    Halted,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::UnknownEndpoint { xfer, ep } => {
                write!(f, "transfer {xfer}: endpoint {ep} is not open")
            }
            Refusal::EndpointClosing { xfer, ep } => {
                write!(f, "transfer {xfer}: endpoint {ep} is closing")
            }
            Refusal::NoTransferSlot { xfer } => {
                write!(
                    f,
                    "transfer {xfer}: {MAX_TRANSFERS} transfers in flight already"
                )
            }
            Refusal::NoDescriptors { xfer, needed } => {
                write!(f, "transfer {xfer}: {needed} TDs needed, not enough free")
            }
            Refusal::BadBuffer { xfer, buf, len } => write!(
                f,
                "transfer {xfer}: buffer {buf:#x}+{len:#x} is outside the DMA windows"
            ),
            Refusal::BadSetup { xfer, setup, len } => write!(
                f,
                "transfer {xfer}: {setup} does not fit a data stage of {len} bytes"
            ),
            Refusal::SetupOnNonControl { xfer, ep } => write!(
                f,
                "transfer {xfer}: a SETUP packet for endpoint {ep}, which is not a control endpoint"
            ),
            Refusal::TooLong { xfer, len } => {
                write!(
                    f,
                    "transfer {xfer}: {len} bytes is more than {MAX_TRANSFER}"
                )
            }
            Refusal::UnknownPort { port } => write!(f, "port {port} does not exist"),
            Refusal::Halted => f.write_str("the controller is halted"),
        }
    }
}

/// Why the driver could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    Dma(dma::DmaError),
    /// HcRevision is not OHCI 1.0.
    Revision(u32),
    /// HcRhDescriptorA names no port, or more than 15.
    Ports(u32),
    TooManyWindows(usize),
    /// A window the controller cannot address with 32 bits.
    WindowAbove4G {
        index: usize,
        paddr: u64,
        size: u32,
    },
    /// A window of more than 16 MiB (the buffer address's offset).
    WindowTooBig {
        index: usize,
        size: u32,
    },
}

impl From<dma::DmaError> for InitError {
    fn from(e: dma::DmaError) -> Self {
        InitError::Dma(e)
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::Dma(e) => write!(f, "{e}"),
            InitError::Revision(r) => {
                write!(f, "HcRevision is {r:#x}, not OHCI 1.0 (0x10)")
            }
            InitError::Ports(n) => write!(
                f,
                "HcRhDescriptorA says {n} downstream ports (expected 1..={MAX_PORTS})"
            ),
            InitError::TooManyWindows(n) => {
                write!(f, "{n} DMA windows, at most {MAX_WINDOWS}")
            }
            InitError::WindowAbove4G { index, paddr, size } => write!(
                f,
                "DMA window {index} at {paddr:#x}, {size:#x} bytes, is beyond 32-bit addresses"
            ),
            InitError::WindowTooBig { index, size } => write!(
                f,
                "DMA window {index} of {size:#x} bytes is larger than {:#x}",
                window::MAX_SIZE
            ),
        }
    }
}

/// The driver's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub submitted: u64,
    pub completed: u64,
    pub refused: u64,
    /// Done-queue entries taken.
    pub done_tds: u64,
    /// Done-queue entries that named no TD in flight (dropped, the rest of
    /// that list too).
    pub bad_done: u64,
    /// TDs retired out of their queue's order.
    pub out_of_order: u64,
    /// Halted EDs recovered.
    pub halts_recovered: u64,
    /// Short IN packets that ended a multi-TD transfer early.
    pub short_packets: u64,
    pub aborted_transfers: u64,
    pub controller_resets: u64,
    pub watchdog_resets: u64,
    pub interrupts: u64,
    /// Done queues taken (WritebackDoneHead interrupts).
    pub done_queues: u64,
    /// Scheduling overruns the controller reported.
    pub overruns: u64,
    /// Connects and disconnects whose change bit was lost: cleared with
    /// another between the driver's read of the port and its clear.
    pub lost_connect_changes: u64,
}

/// Descriptors and transfers in use: what a leak shows up in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub eds: usize,
    /// TDs queued, not counting each ED's placeholder.
    pub tds: usize,
    pub placeholders: usize,
    pub transfers: usize,
    pub endpoints: usize,
}

/// How many slots of the pool hold each kind of descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotCounts {
    pub(crate) eds: usize,
    pub(crate) tds: usize,
    pub(crate) placeholders: usize,
}

impl SlotCounts {
    fn count(&mut self, s: Slot, add: bool) {
        let n = match s {
            Slot::Ed { .. } => &mut self.eds,
            Slot::Td { .. } => &mut self.tds,
            Slot::Placeholder { .. } => &mut self.placeholders,
            Slot::Free | Slot::Node => return,
        };
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
    }

    /// A walk of the pool.
    pub(crate) fn of(slots: &[Slot]) -> Self {
        let mut c = SlotCounts::default();
        for &s in slots {
            c.count(s, true);
        }
        c
    }
}

/// What a descriptor slot of the pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Free,
    /// A skipped ED of the periodic tree.
    Node,
    Ed {
        ep: u8,
    },
    Placeholder {
        ep: u8,
    },
    Td {
        xfer: u8,
        /// The next TD of the same endpoint, in queue order.
        next: u16,
        /// First byte's physical address (0 for a zero-length TD).
        start: u32,
        len: u32,
        stage: Stage,
    },
}

/// What a TD does for its transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Setup,
    Data,
    /// The status stage of a control transfer.
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    /// Skipped since frame `since`; what to do once two frames passed.
    Unlinking {
        since: u16,
        close: bool,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint {
    pub(crate) handle: u16,
    pub(crate) spec: EndpointSpec,
    pub(crate) ed: u16,
    pub(crate) placeholder: u16,
    /// Oldest and newest queued TD (NONE when empty).
    pub(crate) first: u16,
    pub(crate) last: u16,
    /// Periodic placeholder it hangs from (interrupt endpoints).
    pub(crate) node: u8,
    pub(crate) phase: Phase,
    /// abortEndpoint requests to answer when the skip ends.
    pub(crate) abort_answers: u16,
    /// resetToggle requested: done when the skip ends.
    pub(crate) reset_toggle: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    pub(crate) id: u32,
    pub(crate) ep: u8,
    /// TDs not yet retired.
    pub(crate) tds: u16,
    pub(crate) actual: u32,
    pub(crate) status: u8,
    /// To be completed ABORTED when its endpoint's skip ends.
    pub(crate) aborting: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// Allocated, not started.
    Stopped,
    Running,
    Halted,
}

/// The OHCI driver on bus `B`.
pub struct Ohci<B: Bus> {
    bus: B,
    hcca: DmaBuf,
    pool: DmaBuf,
    setup: DmaBuf,
    windows: Vec<Window, MAX_WINDOWS>,
    pub(crate) slots: [Slot; POOL],
    /// Slots holding an ED, a TD, a placeholder: kept as slots change, so
    /// that the counters (published after every batch of work) need no
    /// walk of the pool; the schedule checker compares them with one.
    pub(crate) held: SlotCounts,
    free: Vec<u16, POOL>,
    pub(crate) eps: [Option<Endpoint>; MAX_ENDPOINTS],
    pub(crate) xfers: [Option<Transfer>; MAX_TRANSFERS],
    /// Transfers in `xfers`: asked before every request taken, so kept
    /// rather than counted.
    in_flight: usize,
    /// EDs on the control and bulk lists, in list order (endpoint indices).
    pub(crate) control: Vec<u8, MAX_ENDPOINTS>,
    pub(crate) bulk: Vec<u8, MAX_ENDPOINTS>,
    /// Periodic placeholder slots: level l (interval 2^l) starts at
    /// `(1 << l) - 1`.
    pub(crate) nodes: [u16; NODES],
    ports: u8,
    /// Ports with a reset in progress (bit per port).
    resetting: u16,
    /// Ports last reported connected (bit per port).
    reported: u16,
    events: Deque<Event, MAX_EVENTS>,
    run: Run,
    /// Watchdog: the frame number at the last check and when it was taken.
    watch_frame: u16,
    watch_ns: u64,
    sof_enabled: bool,
    stats: Stats,
    last_refusal: Option<Refusal>,
}

fn node_index(interval: u32, phase: usize) -> usize {
    (interval as usize - 1) + phase
}

/// The largest power of two not above `ms`, at most 32.
fn interval_level(ms: u8) -> u32 {
    let ms = u32::from(ms.clamp(1, 32));
    1 << (31 - ms.leading_zeros())
}

impl<B: Bus> Ohci<B> {
    /// Takes its descriptors from `dma` (a region the controller can reach
    /// with 32-bit addresses) and records where its users' buffers are.
    pub fn new(bus: B, dma: &mut DmaRegion, windows: &[Window]) -> Result<Self, InitError> {
        if windows.len() > MAX_WINDOWS {
            return Err(InitError::TooManyWindows(windows.len()));
        }
        let mut list = Vec::new();
        for (index, w) in windows.iter().enumerate() {
            if w.paddr + u64::from(w.size) > 1 << 32 {
                return Err(InitError::WindowAbove4G {
                    index,
                    paddr: w.paddr,
                    size: w.size,
                });
            }
            if w.size > window::MAX_SIZE {
                return Err(InitError::WindowTooBig {
                    index,
                    size: w.size,
                });
            }
            // Cannot fail: the length was checked above.
            let _ = list.push(*w);
        }
        let mut hcca = dma.alloc("ohci hcca", hcca::SIZE, hcca::ALIGN)?;
        hcca.zero();
        hcca.paddr32()?;
        let mut pool = dma.alloc("ohci descriptors", POOL * DESC_SIZE, DESC_SIZE)?;
        pool.zero();
        pool.paddr32()?;
        let setup = dma.alloc("ohci setup packets", MAX_TRANSFERS * SETUP_BYTES, 8)?;
        setup.paddr32()?;
        let mut free = Vec::new();
        for i in (0..POOL as u16).rev() {
            let _ = free.push(i);
        }
        Ok(Ohci {
            bus,
            hcca,
            pool,
            setup,
            windows: list,
            slots: [Slot::Free; POOL],
            held: SlotCounts::default(),
            free,
            eps: [None; MAX_ENDPOINTS],
            xfers: [None; MAX_TRANSFERS],
            in_flight: 0,
            control: Vec::new(),
            bulk: Vec::new(),
            nodes: [NONE; NODES],
            ports: 0,
            resetting: 0,
            reported: 0,
            events: Deque::new(),
            run: Run::Stopped,
            watch_frame: 0,
            watch_ns: 0,
            sof_enabled: false,
            stats: Stats::default(),
            last_refusal: None,
        })
    }

    pub(crate) fn bus_get(&mut self, reg: hwio::Register<u32>) -> u32 {
        self.bus.get(reg)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Downstream ports of the root hub (known after `start`).
    pub fn ports(&self) -> u8 {
        self.ports
    }

    /// The request refused last, for the PD's report.
    pub fn take_refusal(&mut self) -> Option<Refusal> {
        self.last_refusal.take()
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage {
            eds: self.held.eds,
            tds: self.held.tds,
            placeholders: self.held.placeholders,
            ..Usage::default()
        };
        u.transfers = self.in_flight;
        u.endpoints = self.eps.iter().flatten().count();
        u
    }

    /// The next event for the user.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Puts back an event the user could not pass on yet.
    pub fn unget_event(&mut self, e: Event) {
        // Cannot fail: it was just taken, so there is room.
        let _ = self.events.push_front(e);
    }

    fn emit(&mut self, e: Event) {
        if let Event::Complete { .. } = e {
            self.stats.completed += 1;
        }
        // The queue holds an answer for every transfer and request the
        // driver can hold at once (MAX_EVENTS), so it does not overflow.
        let _ = self.events.push_back(e);
    }

    fn refuse(&mut self, r: Refusal) {
        self.stats.refused += 1;
        self.last_refusal = Some(r);
    }

    // ---- descriptors ----

    pub(crate) fn slot_paddr(&self, slot: u16) -> u32 {
        // The pool was checked below 4 GiB in new().
        self.pool.paddr_at(usize::from(slot) * DESC_SIZE) as u32
    }

    /// The slot of a descriptor address the controller wrote, if it is one.
    pub(crate) fn slot_of(&self, paddr: u32) -> Option<u16> {
        let base = self.pool.paddr();
        let off = u64::from(paddr).checked_sub(base)?;
        if off % DESC_SIZE as u64 != 0 || off >= (POOL * DESC_SIZE) as u64 {
            return None;
        }
        Some((off / DESC_SIZE as u64) as u16)
    }

    pub(crate) fn read_ed(&self, slot: u16) -> Ed {
        self.pool.read(usize::from(slot) * DESC_SIZE)
    }

    fn write_ed(&mut self, slot: u16, ed: Ed) {
        self.pool.write(usize::from(slot) * DESC_SIZE, ed)
    }

    pub(crate) fn read_td(&self, slot: u16) -> Td {
        self.pool.read(usize::from(slot) * DESC_SIZE)
    }

    fn write_td(&mut self, slot: u16, td: Td) {
        self.pool.write(usize::from(slot) * DESC_SIZE, td)
    }

    fn set_ed_word(&mut self, slot: u16, word: usize, value: u32) {
        self.pool
            .write(usize::from(slot) * DESC_SIZE + word * 4, value)
    }

    fn alloc(&mut self, what: Slot) -> Option<u16> {
        let s = self.free.pop()?;
        self.set_slot(s, what);
        Some(s)
    }

    /// Changes what slot `s` holds, counted.
    fn set_slot(&mut self, s: u16, what: Slot) {
        let old = core::mem::replace(&mut self.slots[usize::from(s)], what);
        self.held.count(old, false);
        self.held.count(what, true);
    }

    fn release(&mut self, s: u16) {
        self.set_slot(s, Slot::Free);
        self.write_td(s, Td::default());
        // Cannot fail: every slot is either free or allocated once.
        let _ = self.free.push(s);
    }

    // ---- start, stop, re-initialisation ----

    /// Resets the controller and starts it: HCCA, periodic tree, lists,
    /// interrupts, then USBRESET (every connected device is reported
    /// again) and OPERATIONAL.
    pub fn start(&mut self, now_ns: u64) -> Result<(), InitError> {
        let rev = self.bus.read(HC_REVISION).read(Revision::REV);
        if rev != 0x10 {
            return Err(InitError::Revision(rev));
        }
        let ndp = self.bus.read(HC_RH_DESCRIPTOR_A).read(RhDescriptorA::NDP);
        if ndp == 0 || ndp as usize > MAX_PORTS {
            return Err(InitError::Ports(ndp));
        }
        self.ports = ndp as u8;
        self.build_tree();
        self.program(now_ns);
        Ok(())
    }

    /// The periodic tree: HCCA slot i -> 32 ms node i -> 16 ms node i%16 ->
    /// ... -> 1 ms node; interrupt EDs hang after the node of their level.
    fn build_tree(&mut self) {
        for n in self.nodes {
            if n != NONE {
                self.release(n);
            }
        }
        for n in 0..NODES {
            // Cannot fail: the pool has far more than 63 slots and the tree
            // is built when it is empty.
            self.nodes[n] = self.alloc(Slot::Node).unwrap_or(NONE);
        }
        let mut level = 32u32;
        while level >= 1 {
            for phase in 0..level as usize {
                let me = self.nodes[node_index(level, phase)];
                let next = if level == 1 {
                    0
                } else {
                    self.slot_paddr(self.nodes[node_index(level / 2, phase % (level as usize / 2))])
                };
                let flags = EdFlags::K::SET.value;
                self.write_ed(
                    me,
                    Ed {
                        flags,
                        tail: 0,
                        head: 0,
                        next,
                    },
                );
            }
            level /= 2;
        }
        for i in 0..hcca::SLOTS {
            let p = self.slot_paddr(self.nodes[node_index(32, i)]);
            self.hcca.write(hcca::INTERRUPT_TABLE + 4 * i, p);
        }
    }

    fn list_head(&self, list: &[u8]) -> u32 {
        list.first().map_or(0, |&e| self.ed_paddr(e))
    }

    fn ed_paddr(&self, ep: u8) -> u32 {
        self.eps[usize::from(ep)].map_or(0, |e| self.slot_paddr(e.ed))
    }

    fn program(&mut self, now_ns: u64) {
        let b = &mut self.bus;
        b.write(HC_COMMAND_STATUS, CommandStatus::HCR::SET);
        // QEMU resets inside the write; real controllers take up to 10 us.
        for _ in 0..1000 {
            if !b.is_set(HC_COMMAND_STATUS, CommandStatus::HCR) {
                break;
            }
        }
        b.set(HC_HCCA, self.hcca.paddr() as u32);
        let control_head = self.list_head(&self.control);
        let bulk_head = self.list_head(&self.bulk);
        let b = &mut self.bus;
        b.set(HC_CONTROL_HEAD_ED, control_head);
        b.set(HC_BULK_HEAD_ED, bulk_head);
        b.set(HC_CONTROL_CURRENT_ED, 0);
        b.set(HC_BULK_CURRENT_ED, 0);
        b.write(
            HC_FM_INTERVAL,
            FmInterval::FI.val(FRAME_INTERVAL) + FmInterval::FSMPS.val(FS_LARGEST_PACKET),
        );
        b.set(HC_PERIODIC_START, PERIODIC_START);
        b.set(HC_LS_THRESHOLD, LS_THRESHOLD);
        b.write(HC_INTERRUPT_DISABLE, Interrupt::MIE::SET + all_interrupts());
        b.set(HC_INTERRUPT_STATUS, u32::MAX);
        b.write(
            HC_INTERRUPT_ENABLE,
            Interrupt::MIE::SET
                + Interrupt::WDH::SET
                + Interrupt::UE::SET
                + Interrupt::RHSC::SET
                + Interrupt::SO::SET,
        );
        self.sof_enabled = false;
        // USBRESET first: QEMU re-attaches every device, so each connected
        // port reports a connect status change.
        b.write(HC_CONTROL, Control::HCFS::Reset);
        b.write(
            HC_CONTROL,
            Control::HCFS::Operational
                + Control::CBSR.val(3)
                + Control::PLE::SET
                + Control::CLE::SET
                + Control::BLE::SET,
        );
        // Ports are always powered on QEMU (NoPowerSwitching); elsewhere
        // switch them on once, globally.
        if !b.is_set(HC_RH_DESCRIPTOR_A, RhDescriptorA::NPS) {
            b.write(HC_RH_STATUS, RhStatus::LPSC::SET);
        }
        self.run = Run::Running;
        self.watch_frame = self.frame();
        self.watch_ns = now_ns;
        for port in 0..self.ports {
            self.report_port(port);
        }
    }

    fn frame(&mut self) -> u16 {
        self.bus.read(HC_FM_NUMBER).read(FmNumber::FN) as u16
    }

    /// Completes everything, forgets every endpoint and re-initialises the
    /// controller.
    fn recover(&mut self, cause: Fatal, now_ns: u64) {
        self.stats.controller_resets += 1;
        if cause == Fatal::Watchdog {
            self.stats.watchdog_resets += 1;
        }
        self.bus.write(HC_CONTROL, Control::HCFS::Reset);
        self.drop_everything();
        self.end_port_resets();
        self.emit(Event::ControllerReset { cause });
        self.program(now_ns);
    }

    /// Every transfer completes ABORTED, every pending answer is given,
    /// every endpoint and its descriptors are freed. The controller must
    /// not be running.
    fn drop_everything(&mut self) {
        for i in 0..MAX_ENDPOINTS {
            let Some(ep) = self.eps[i] else { continue };
            let mut s = ep.first;
            while s != NONE {
                let Slot::Td { next, .. } = self.slots[usize::from(s)] else {
                    break;
                };
                self.release(s);
                s = next;
            }
            for _ in 0..ep.abort_answers {
                self.emit(Event::EndpointAborted { ep: ep.handle });
            }
            if let Phase::Unlinking { close: true, .. } = ep.phase {
                self.emit(Event::EndpointClosed { ep: ep.handle });
            }
            self.release(ep.placeholder);
            self.release(ep.ed);
            self.eps[i] = None;
        }
        for i in 0..MAX_TRANSFERS {
            if let Some(x) = self.xfers[i].take() {
                self.in_flight -= 1;
                self.stats.aborted_transfers += 1;
                self.emit(Event::Complete {
                    xfer: x.id,
                    status: status::ABORTED,
                    actual: x.actual,
                });
            }
        }
        self.control.clear();
        self.bulk.clear();
        self.build_tree();
    }

    /// Completes everything and stops the controller for good.
    pub fn halt(&mut self) {
        self.bus.write(HC_CONTROL, Control::HCFS::Reset);
        self.bus
            .write(HC_INTERRUPT_DISABLE, Interrupt::MIE::SET + all_interrupts());
        self.drop_everything();
        self.end_port_resets();
        self.run = Run::Halted;
        self.emit(Event::Halted);
    }

    // ---- root hub ----

    /// Answers every port reset in progress as failed.
    fn end_port_resets(&mut self) {
        for port in 0..self.ports {
            if self.resetting & 1 << port != 0 {
                self.emit(Event::PortResetDone { port, ok: false });
            }
        }
        self.resetting = 0;
    }

    fn port_register(&self, port: u8) -> Option<usize> {
        (port < self.ports).then_some(usize::from(port))
    }

    fn report_port(&mut self, port: u8) {
        let s = self.bus.read(HC_RH_PORT_STATUS.at(usize::from(port)));
        self.port_event(port, s);
    }

    fn port_event(&mut self, port: u8, s: LocalRegisterCopy<u32, PortStatus::Register>) {
        let connected = s.is_set(PortStatus::CCS);
        if connected {
            self.reported |= 1 << port;
        } else {
            self.reported &= !(1 << port);
        }
        self.emit(Event::PortStatus {
            port,
            connected,
            enabled: s.is_set(PortStatus::PES),
            low_speed: s.is_set(PortStatus::LSDA),
        });
    }

    /// Starts a port reset; PortResetDone follows.
    pub fn port_reset(&mut self, port: u8) {
        let Some(i) = self.port_register(port) else {
            self.refuse(Refusal::UnknownPort { port });
            self.emit(Event::PortResetDone { port, ok: false });
            return;
        };
        if self.run != Run::Running {
            self.emit(Event::PortResetDone { port, ok: false });
            return;
        }
        self.resetting |= 1 << port;
        self.bus
            .write(HC_RH_PORT_COMMAND.at(i), PortCommand::SET_PORT_RESET::SET);
        // Nothing connected: the controller only sets CSC, no reset ends.
        if !self.bus.is_set(HC_RH_PORT_STATUS.at(i), PortStatus::CCS) {
            self.resetting &= !(1 << port);
            self.emit(Event::PortResetDone { port, ok: false });
        }
        self.root_hub_changes();
    }

    /// Disables a port (its device stays connected and powered).
    pub fn port_disable(&mut self, port: u8) {
        let Some(i) = self.port_register(port) else {
            self.refuse(Refusal::UnknownPort { port });
            return;
        };
        self.bus.write(
            HC_RH_PORT_COMMAND.at(i),
            PortCommand::CLEAR_PORT_ENABLE::SET,
        );
        self.root_hub_changes();
    }

    fn root_hub_changes(&mut self) {
        for port in 0..self.ports {
            let i = usize::from(port);
            let s = self.bus.read(HC_RH_PORT_STATUS.at(i));
            let change = s.is_set(PortStatus::CSC) || s.is_set(PortStatus::PESC);
            let reset_done = s.is_set(PortStatus::PRSC);
            let mut clear: FieldValue<u32, PortCommand::Register> = PortCommand::CLEAR_CSC::CLEAR;
            if s.is_set(PortStatus::CSC) {
                clear += PortCommand::CLEAR_CSC::SET;
            }
            if s.is_set(PortStatus::PESC) {
                clear += PortCommand::CLEAR_PESC::SET;
            }
            if s.is_set(PortStatus::PSSC) {
                clear += PortCommand::CLEAR_PSSC::SET;
            }
            if s.is_set(PortStatus::OCIC) {
                clear += PortCommand::CLEAR_OCIC::SET;
            }
            if reset_done {
                clear += PortCommand::CLEAR_PRSC::SET;
            }
            // A device plugged or unplugged between the read and the
            // clear had its connect change cleared with this one (QEMU
            // sets CSC again, already set, and raises RHSC again, but the
            // next look finds no change bit): the port is read again, and
            // what it is now reported if that is not what was read. Any
            // other lost change shows as a connection unlike the one last
            // reported.
            let after = if clear.value != 0 {
                self.bus.write(HC_RH_PORT_COMMAND.at(i), clear);
                self.bus.read(HC_RH_PORT_STATUS.at(i))
            } else {
                s
            };
            if change {
                self.port_event(port, s);
            }
            let reported = self.reported & 1 << port != 0;
            if after.is_set(PortStatus::CCS) != reported {
                self.stats.lost_connect_changes += 1;
                self.port_event(port, after);
            }
            if reset_done && self.resetting & 1 << port != 0 {
                self.resetting &= !(1 << port);
                let ok = s.is_set(PortStatus::CCS) && s.is_set(PortStatus::PES);
                self.emit(Event::PortResetDone { port, ok });
            }
        }
    }

    // ---- endpoints ----

    fn endpoint_index(&self, handle: u16) -> Option<usize> {
        self.eps
            .iter()
            .position(|e| e.is_some_and(|e| e.handle == handle))
    }

    fn ed_flags(spec: &EndpointSpec, skip: bool) -> u32 {
        let dir = match spec.kind {
            kind::CONTROL => EdFlags::D::FromTd,
            _ if spec.dir_in => EdFlags::D::In,
            _ => EdFlags::D::Out,
        };
        let mut v = EdFlags::FA.val(u32::from(spec.addr))
            + EdFlags::EN.val(u32::from(spec.number))
            + dir
            + EdFlags::MPS.val(u32::from(spec.max_packet));
        if spec.low_speed {
            v += EdFlags::S::SET;
        }
        if skip {
            v += EdFlags::K::SET;
        }
        v.value
    }

    fn spec_ok(spec: &EndpointSpec) -> bool {
        let mp = spec.max_packet;
        let mp_ok = match spec.kind {
            kind::CONTROL => matches!(mp, 8 | 16 | 32 | 64) && (!spec.low_speed || mp == 8),
            kind::BULK => matches!(mp, 8 | 16 | 32 | 64) && !spec.low_speed,
            kind::INTERRUPT => (1..=64).contains(&mp) && (!spec.low_speed || mp <= 8),
            _ => false,
        };
        let interval_ok = spec.kind != kind::INTERRUPT || spec.interval > 0;
        spec.addr < 128 && spec.number < 16 && mp_ok && interval_ok
    }

    /// Opens an endpoint; EndpointOpened or EndpointFailed follows.
    pub fn open_endpoint(&mut self, handle: u16, spec: EndpointSpec) {
        let fail = |me: &mut Self, error| me.emit(Event::EndpointFailed { ep: handle, error });
        if self.run != Run::Running {
            return fail(self, OpenError::Halted);
        }
        if spec.kind == kind::ISOCHRONOUS {
            return fail(self, OpenError::Isochronous);
        }
        if !Self::spec_ok(&spec) {
            return fail(self, OpenError::BadParams);
        }
        if self.endpoint_index(handle).is_some() {
            return fail(self, OpenError::Duplicate);
        }
        let Some(i) = self.eps.iter().position(Option::is_none) else {
            return fail(self, OpenError::NoRoom);
        };
        if self.free.len() < 2 {
            return fail(self, OpenError::NoRoom);
        }
        let ep = i as u8;
        // Cannot fail: two free slots were checked above.
        let ed = self.alloc(Slot::Ed { ep }).unwrap_or(NONE);
        let placeholder = self.alloc(Slot::Placeholder { ep }).unwrap_or(NONE);
        self.write_td(placeholder, Td::default());
        let ph = self.slot_paddr(placeholder);
        let mut e = Endpoint {
            handle,
            spec,
            ed,
            placeholder,
            first: NONE,
            last: NONE,
            node: 0,
            phase: Phase::Active,
            abort_answers: 0,
            reset_toggle: false,
        };
        self.write_ed(
            ed,
            Ed {
                flags: Self::ed_flags(&spec, false),
                tail: ph,
                head: ph,
                next: 0,
            },
        );
        match spec.kind {
            kind::INTERRUPT => {
                let level = interval_level(spec.interval);
                let phase = self.quietest_phase(level);
                let node = node_index(level, phase);
                e.node = node as u8;
                self.eps[i] = Some(e);
                let n = self.nodes[node];
                let after = self.read_ed(n).next;
                self.set_ed_word(ed, 3, after);
                barrier::publish();
                self.set_ed_word(n, 3, self.slot_paddr(ed));
            }
            kind::CONTROL => {
                self.eps[i] = Some(e);
                self.append_to_list(ep, true);
            }
            _ => {
                self.eps[i] = Some(e);
                self.append_to_list(ep, false);
            }
        }
        self.emit(Event::EndpointOpened { ep: handle });
    }

    /// The phase of `level` whose node has the fewest interrupt EDs.
    fn quietest_phase(&self, level: u32) -> usize {
        let mut load = [0u8; 32];
        for e in self.eps.iter().flatten() {
            if e.spec.kind == kind::INTERRUPT {
                let l = interval_level(e.spec.interval);
                if l == level {
                    load[usize::from(e.node) - (level as usize - 1)] += 1;
                }
            }
        }
        (0..level as usize).min_by_key(|&p| load[p]).unwrap_or(0)
    }

    fn append_to_list(&mut self, ep: u8, control: bool) {
        let ed = self.ed_paddr(ep);
        let list = if control { &self.control } else { &self.bulk };
        match list.last().copied() {
            Some(last) => {
                let slot = self.eps[usize::from(last)].map_or(NONE, |e| e.ed);
                barrier::publish();
                self.set_ed_word(slot, 3, ed);
            }
            None => {
                barrier::publish();
                let reg = if control {
                    HC_CONTROL_HEAD_ED
                } else {
                    HC_BULK_HEAD_ED
                };
                self.bus.set(reg, ed);
            }
        }
        let list = if control {
            &mut self.control
        } else {
            &mut self.bulk
        };
        // Cannot fail: the lists hold at most MAX_ENDPOINTS endpoints.
        let _ = list.push(ep);
    }

    /// Takes the ED off its list; the controller may still be looking at
    /// it until two frame boundaries have passed.
    fn unlink(&mut self, i: usize) {
        let Some(e) = self.eps[i] else { return };
        let ep = i as u8;
        let next = self.read_ed(e.ed).next;
        match e.spec.kind {
            kind::INTERRUPT => {
                // Find the predecessor: the node or an ED after it.
                let mut prev = self.nodes[usize::from(e.node)];
                for _ in 0..MAX_ENDPOINTS + 1 {
                    let p_next = self.read_ed(prev).next;
                    if p_next == self.slot_paddr(e.ed) {
                        self.set_ed_word(prev, 3, next);
                        break;
                    }
                    match self.slot_of(p_next) {
                        Some(s) => prev = s,
                        None => break,
                    }
                }
            }
            k => {
                let control = k == kind::CONTROL;
                let list = if control { &self.control } else { &self.bulk };
                let Some(pos) = list.iter().position(|&x| x == ep) else {
                    return;
                };
                if pos == 0 {
                    let reg = if control {
                        HC_CONTROL_HEAD_ED
                    } else {
                        HC_BULK_HEAD_ED
                    };
                    self.bus.set(reg, next);
                } else {
                    let prev = list[pos - 1];
                    let slot = self.eps[usize::from(prev)].map_or(NONE, |e| e.ed);
                    self.set_ed_word(slot, 3, next);
                }
                let list = if control {
                    &mut self.control
                } else {
                    &mut self.bulk
                };
                list.remove(pos);
            }
        }
    }

    fn skip(&mut self, i: usize, close: bool) {
        let frame = self.frame();
        let Some(e) = self.eps[i].as_mut() else {
            return;
        };
        let close = close || matches!(e.phase, Phase::Unlinking { close: true, .. });
        e.phase = Phase::Unlinking {
            since: frame,
            close,
        };
        let (slot, spec) = (e.ed, e.spec);
        self.set_ed_word(slot, 0, Self::ed_flags(&spec, true));
        self.want_frames(true);
    }

    /// Completes every pending transfer of the endpoint ABORTED; then
    /// EndpointAborted.
    pub fn abort_endpoint(&mut self, handle: u16) {
        let Some(i) = self.endpoint_index(handle) else {
            // Nothing pending on an endpoint that does not exist.
            self.emit(Event::EndpointAborted { ep: handle });
            return;
        };
        for x in self.xfers.iter_mut().flatten() {
            if usize::from(x.ep) == i {
                x.aborting = true;
            }
        }
        if let Some(e) = self.eps[i].as_mut() {
            e.abort_answers += 1;
        }
        self.skip(i, false);
    }

    /// Aborts every pending transfer and frees the endpoint; then
    /// EndpointClosed.
    pub fn close_endpoint(&mut self, handle: u16) {
        let Some(i) = self.endpoint_index(handle) else {
            self.emit(Event::EndpointClosed { ep: handle });
            return;
        };
        if matches!(
            self.eps[i].map(|e| e.phase),
            Some(Phase::Unlinking { close: true, .. })
        ) {
            // Closing already: the second close is answered with it. Only
            // one endpointClosed per handle can follow, so answer now.
            self.emit(Event::EndpointClosed { ep: handle });
            return;
        }
        for x in self.xfers.iter_mut().flatten() {
            if usize::from(x.ep) == i {
                x.aborting = true;
            }
        }
        self.unlink(i);
        self.skip(i, true);
    }

    /// The next packet on the endpoint is DATA0 again.
    pub fn reset_toggle(&mut self, handle: u16) {
        let Some(i) = self.endpoint_index(handle) else {
            return;
        };
        if let Some(e) = self.eps[i].as_mut() {
            e.reset_toggle = true;
        }
        self.skip(i, false);
    }

    fn want_frames(&mut self, on: bool) {
        if on != self.sof_enabled {
            self.sof_enabled = on;
            if on {
                self.bus.set(HC_INTERRUPT_STATUS, Interrupt::SF::SET.value);
                self.bus.write(HC_INTERRUPT_ENABLE, Interrupt::SF::SET);
            } else {
                self.bus.write(HC_INTERRUPT_DISABLE, Interrupt::SF::SET);
            }
        }
    }

    /// Finishes the skips that are two frames old, if the controller holds
    /// no retired TD of its own.
    fn reclaim(&mut self) {
        if !self.eps.iter().flatten().any(|e| e.phase != Phase::Active) {
            self.want_frames(false);
            return;
        }
        if self.bus.get(HC_DONE_HEAD) & POINTER_MASK != 0 {
            return;
        }
        let frame = self.frame();
        for i in 0..MAX_ENDPOINTS {
            let Some(e) = self.eps[i] else { continue };
            let Phase::Unlinking { since, close } = e.phase else {
                continue;
            };
            if frame.wrapping_sub(since) < 2 {
                continue;
            }
            self.finish_skip(i, close);
        }
    }

    fn finish_skip(&mut self, i: usize, close: bool) {
        let Some(e) = self.eps[i] else { return };
        // Remove the aborted transfers' TDs (they are the oldest, so at the
        // front; keep the order of the rest).
        let mut keep_first = NONE;
        let mut keep_last = NONE;
        let mut s = e.first;
        while s != NONE {
            let Slot::Td { xfer, next, .. } = self.slots[usize::from(s)] else {
                break;
            };
            let aborting = self.xfers[usize::from(xfer)].is_none_or(|x| x.aborting || close);
            if aborting {
                self.release(s);
                if let Some(x) = self.xfers[usize::from(xfer)].as_mut() {
                    x.tds = x.tds.saturating_sub(1);
                }
            } else {
                if keep_first == NONE {
                    keep_first = s;
                } else if let Slot::Td { next, .. } = &mut self.slots[usize::from(keep_last)] {
                    *next = s;
                }
                keep_last = s;
            }
            s = next;
        }
        if keep_last != NONE {
            if let Slot::Td { next, .. } = &mut self.slots[usize::from(keep_last)] {
                *next = NONE;
            }
            // The hardware chain of the kept TDs: each to the next kept one,
            // the last to the placeholder.
            let mut s = keep_first;
            while s != NONE {
                let Slot::Td { next, .. } = self.slots[usize::from(s)] else {
                    break;
                };
                let to = if next == NONE {
                    self.slot_paddr(e.placeholder)
                } else {
                    self.slot_paddr(next)
                };
                self.pool.write(usize::from(s) * DESC_SIZE + 8, to);
                s = next;
            }
        }
        for j in 0..MAX_TRANSFERS {
            let Some(x) = self.xfers[j] else { continue };
            if usize::from(x.ep) == i && (x.aborting || close) {
                self.xfers[j] = None;
                self.in_flight -= 1;
                self.stats.aborted_transfers += 1;
                let st = if x.status == status::OK {
                    status::ABORTED
                } else {
                    x.status
                };
                self.emit(Event::Complete {
                    xfer: x.id,
                    status: st,
                    actual: x.actual,
                });
            }
        }
        let head_word = self.read_ed(e.ed).head;
        let carry = if e.reset_toggle {
            0
        } else {
            head_word & EdHead::C::SET.value
        };
        let first = if keep_first == NONE {
            self.slot_paddr(e.placeholder)
        } else {
            self.slot_paddr(keep_first)
        };
        if close {
            self.release(e.placeholder);
            self.release(e.ed);
            self.eps[i] = None;
            for _ in 0..e.abort_answers {
                self.emit(Event::EndpointAborted { ep: e.handle });
            }
            self.emit(Event::EndpointClosed { ep: e.handle });
            return;
        }
        self.set_ed_word(e.ed, 2, first | carry);
        barrier::publish();
        self.set_ed_word(e.ed, 0, Self::ed_flags(&e.spec, false));
        let answers = e.abort_answers;
        if let Some(e) = self.eps[i].as_mut() {
            e.first = keep_first;
            e.last = keep_last;
            e.phase = Phase::Active;
            e.abort_answers = 0;
            e.reset_toggle = false;
        }
        for _ in 0..answers {
            self.emit(Event::EndpointAborted { ep: e.handle });
        }
        if keep_first != NONE {
            self.kick(e.spec.kind);
        }
    }

    // ---- transfers ----

    fn resolve(&self, buf: u32, len: u32) -> Option<u32> {
        let (w, off) = window::split(buf);
        let w = self.windows.get(usize::from(w))?;
        let end = off.checked_add(len)?;
        if end > w.size {
            return None;
        }
        // new() checked every window below 4 GiB.
        Some((w.paddr + u64::from(off)) as u32)
    }

    /// Queues a transfer; Complete follows (at once if it is refused).
    pub fn submit(&mut self, xfer: u32, handle: u16, setup: u64, buf: u32, len: u32) {
        self.stats.submitted += 1;
        let refused = |me: &mut Self, r: Refusal| {
            me.refuse(r);
            me.emit(Event::Complete {
                xfer,
                status: status::FAILED,
                actual: 0,
            });
        };
        if self.run != Run::Running {
            return refused(self, Refusal::Halted);
        }
        let Some(i) = self.endpoint_index(handle) else {
            return refused(self, Refusal::UnknownEndpoint { xfer, ep: handle });
        };
        let Some(e) = self.eps[i] else { return };
        if let Phase::Unlinking { close: true, .. } = e.phase {
            return refused(self, Refusal::EndpointClosing { xfer, ep: handle });
        }
        if len > MAX_TRANSFER {
            return refused(self, Refusal::TooLong { xfer, len });
        }
        let control = e.spec.kind == kind::CONTROL;
        let setup = Setup::from_u64(setup);
        if control {
            if u32::from(setup.length) != len || len > MAX_CONTROL_DATA {
                return refused(self, Refusal::BadSetup { xfer, setup, len });
            }
        } else if setup != Setup::from_u64(0) {
            return refused(self, Refusal::SetupOnNonControl { xfer, ep: handle });
        }
        let paddr = if len == 0 {
            0
        } else {
            match self.resolve(buf, len) {
                Some(p) => p,
                None => return refused(self, Refusal::BadBuffer { xfer, buf, len }),
            }
        };
        let Some(x) = self.xfers.iter().position(Option::is_none) else {
            return refused(self, Refusal::NoTransferSlot { xfer });
        };
        // The TDs: SETUP, data, status for control; data chunks otherwise.
        let mut plan: Vec<(u32, u32, u32, Stage), { MAX_PLAN }> = Vec::new();
        let mp = u32::from(e.spec.max_packet);
        if control {
            let setup_p = self.setup.paddr_at(x * SETUP_BYTES) as u32;
            self.setup.copy_in(x * SETUP_BYTES, &setup.to_bytes());
            let _ = plan.push((
                (TdFlags::DP::Setup + TdFlags::T::Data0 + TdFlags::CC.val(0xf)).value,
                setup_p,
                SETUP_BYTES as u32,
                Stage::Setup,
            ));
            let data_dir = if setup.is_in() {
                TdFlags::DP::In
            } else {
                TdFlags::DP::Out
            };
            if len > 0 {
                let _ = plan.push((
                    (data_dir + TdFlags::T::Data1 + TdFlags::R::SET + TdFlags::CC.val(0xf)).value,
                    paddr,
                    len,
                    Stage::Data,
                ));
            }
            let status_dir = if setup.is_in() && len > 0 {
                TdFlags::DP::Out
            } else {
                TdFlags::DP::In
            };
            let _ = plan.push((
                (status_dir + TdFlags::T::Data1 + TdFlags::CC.val(0xf)).value,
                0,
                0,
                Stage::Status,
            ));
        } else {
            let dir = if e.spec.dir_in {
                TdFlags::DP::In
            } else {
                TdFlags::DP::Out
            };
            let mut at = paddr;
            let mut left = len;
            loop {
                let room = (TD_MAX - (at % PAGE)) / mp * mp;
                let n = left.min(room);
                let last = n == left;
                let mut flags = dir + TdFlags::T::Carry + TdFlags::CC.val(0xf);
                if last && e.spec.dir_in {
                    flags += TdFlags::R::SET;
                }
                let _ = plan.push((flags.value, if n == 0 { 0 } else { at }, n, Stage::Data));
                at += n;
                left -= n;
                if last {
                    break;
                }
            }
        }
        // Every TD interrupts (DI = 0): see the crate doc.
        let needed = plan.len();
        if self.free.len() < needed {
            return refused(self, Refusal::NoDescriptors { xfer, needed });
        }
        self.in_flight += 1;
        self.xfers[x] = Some(Transfer {
            id: xfer,
            ep: i as u8,
            tds: needed as u16,
            actual: 0,
            status: status::OK,
            aborting: false,
        });
        // The old placeholder becomes the first TD; new slots follow; a new
        // placeholder ends the queue.
        let mut slots: Vec<u16, { MAX_PLAN }> = Vec::new();
        let _ = slots.push(e.placeholder);
        for _ in 1..needed {
            let _ = slots.push(self.alloc(Slot::Free).unwrap_or(NONE));
        }
        let new_placeholder = self
            .alloc(Slot::Placeholder { ep: i as u8 })
            .unwrap_or(NONE);
        self.write_td(new_placeholder, Td::default());
        for (k, &(flags, start, n, stage)) in plan.iter().enumerate().rev() {
            let s = slots[k];
            let next_slot = if k + 1 < needed { slots[k + 1] } else { NONE };
            self.set_slot(
                s,
                Slot::Td {
                    xfer: x as u8,
                    next: next_slot,
                    start,
                    len: n,
                    stage,
                },
            );
            let next_p = self.slot_paddr(if next_slot == NONE {
                new_placeholder
            } else {
                next_slot
            });
            let (cbp, be) = if n == 0 {
                (0, 0)
            } else {
                (start, start + n - 1)
            };
            // The first TD (the old placeholder) is written last: the
            // controller may look at the placeholder at any time but never
            // processes it while it is the tail.
            self.write_td(
                s,
                Td {
                    flags,
                    cbp,
                    next: next_p,
                    be,
                },
            );
        }
        if e.last != NONE
            && let Slot::Td { next, .. } = &mut self.slots[usize::from(e.last)]
        {
            *next = slots[0];
        }
        let (first, last) = (
            if e.first == NONE { slots[0] } else { e.first },
            slots[needed - 1],
        );
        if let Some(ep) = self.eps[i].as_mut() {
            ep.first = first;
            ep.last = last;
            ep.placeholder = new_placeholder;
        }
        barrier::publish();
        let tail = self.slot_paddr(new_placeholder);
        self.set_ed_word(e.ed, 1, tail);
        if e.phase == Phase::Active {
            self.kick(e.spec.kind);
        }
    }

    fn kick(&mut self, k: u8) {
        barrier::full();
        match k {
            kind::CONTROL => self.bus.write(HC_COMMAND_STATUS, CommandStatus::CLF::SET),
            kind::BULK => self.bus.write(HC_COMMAND_STATUS, CommandStatus::BLF::SET),
            _ => {}
        }
    }

    // ---- interrupts and completions ----

    /// Handles the controller's interrupt; returns whether it had raised one.
    pub fn interrupt(&mut self, now_ns: u64) -> bool {
        if self.run != Run::Running {
            return false;
        }
        let enabled = self.bus.get(HC_INTERRUPT_ENABLE);
        let pending = LocalRegisterCopy::<u32, Interrupt::Register>::new(
            self.bus.get(HC_INTERRUPT_STATUS) & enabled,
        );
        if pending.get() == 0 {
            return false;
        }
        self.stats.interrupts += 1;
        if pending.is_set(Interrupt::UE) {
            self.recover(Fatal::Unrecoverable, now_ns);
            return true;
        }
        if pending.is_set(Interrupt::SO) {
            self.stats.overruns += 1;
        }
        if pending.is_set(Interrupt::WDH) {
            self.take_done_queue();
        }
        // Acknowledge before looking at the root hub and the skips, so that
        // a change after this read raises the interrupt again.
        self.bus.set(HC_INTERRUPT_STATUS, pending.get());
        if pending.is_set(Interrupt::RHSC) {
            self.root_hub_changes();
        }
        self.reclaim();
        true
    }

    /// Periodic work: the watchdog, and skips to finish when no interrupt
    /// came. Call every [`WATCHDOG_NS`] or so.
    pub fn tick(&mut self, now_ns: u64) {
        if self.run != Run::Running {
            return;
        }
        let frame = self.frame();
        if frame != self.watch_frame {
            self.watch_frame = frame;
            self.watch_ns = now_ns;
        } else if now_ns.saturating_sub(self.watch_ns) >= WATCHDOG_NS {
            self.recover(Fatal::Watchdog, now_ns);
            return;
        }
        self.reclaim();
    }

    fn take_done_queue(&mut self) {
        self.stats.done_queues += 1;
        barrier::acquire();
        let head = self.hcca.read::<u32>(hcca::DONE_HEAD) & POINTER_MASK;
        self.hcca.write::<u32>(hcca::DONE_HEAD, 0);
        // The list is newest first: collect, then retire oldest first.
        let mut list: Vec<u16, POOL> = Vec::new();
        let mut p = head;
        while p != 0 {
            let Some(s) = self.slot_of(p) else {
                self.stats.bad_done += 1;
                break;
            };
            if !matches!(self.slots[usize::from(s)], Slot::Td { .. })
                || list.contains(&s)
                || list.push(s).is_err()
            {
                self.stats.bad_done += 1;
                break;
            }
            p = self.read_td(s).next & POINTER_MASK;
        }
        for &s in list.iter().rev() {
            self.retire(s);
        }
    }

    /// Bytes a retired TD moved.
    fn moved(&self, td: &Td, start: u32, len: u32) -> u32 {
        if td.cbp == 0 || len == 0 {
            return if td.cbp == 0 { len } else { 0 };
        }
        let end = start + len - 1;
        let cbp = td.cbp;
        // cbp is the next byte to move: inside the buffer.
        if (start & !(PAGE - 1)) == (cbp & !(PAGE - 1)) {
            if cbp < start || cbp > end {
                return 0;
            }
            cbp - start
        } else {
            // Crossed into the buffer's second page.
            if (cbp & !(PAGE - 1)) != (end & !(PAGE - 1)) || cbp > end {
                return 0;
            }
            (PAGE - start % PAGE) + (cbp % PAGE)
        }
    }

    fn retire(&mut self, s: u16) {
        let Slot::Td {
            xfer,
            next,
            start,
            len,
            stage,
        } = self.slots[usize::from(s)]
        else {
            return;
        };
        self.stats.done_tds += 1;
        let td = self.read_td(s);
        let Some(t) = self.xfers[usize::from(xfer)] else {
            self.stats.bad_done += 1;
            return;
        };
        let i = usize::from(t.ep);
        let Some(e) = self.eps[i] else {
            self.stats.bad_done += 1;
            return;
        };
        // Unlink from the software queue (in order, normally at the front).
        if e.first == s {
            let last = if e.last == s { NONE } else { e.last };
            if let Some(ep) = self.eps[i].as_mut() {
                ep.first = next;
                ep.last = last;
            }
        } else {
            self.stats.out_of_order += 1;
            self.unqueue(i, s);
        }
        self.release(s);
        let cc = Condition::from_code(
            LocalRegisterCopy::<u32, TdFlags::Register>::new(td.flags).read(TdFlags::CC),
        );
        let bytes = self.moved(&td, start, len);
        let halted = self.read_ed(e.ed).head & EdHead::H::SET.value != 0;
        let Some(t) = self.xfers[usize::from(xfer)].as_mut() else {
            return;
        };
        // The SETUP and status stages move no data of the caller's.
        if stage == Stage::Data && cc != Condition::NotAccessed {
            t.actual += bytes;
        }
        t.tds = t.tds.saturating_sub(1);
        match cc {
            Condition::NoError => {
                if t.tds == 0 {
                    self.finish(usize::from(xfer));
                }
            }
            Condition::DataUnderrun => {
                // A short packet on a TD without bufferRounding: the data
                // stage is over; a control transfer still runs its status
                // stage.
                self.stats.short_packets += 1;
                self.drop_rest(usize::from(xfer), true);
                self.resume(i, halted);
            }
            other => {
                let st = if other == Condition::Stall {
                    status::STALL
                } else {
                    status::FAILED
                };
                if let Some(t) = self.xfers[usize::from(xfer)].as_mut() {
                    t.status = st;
                }
                self.drop_rest(usize::from(xfer), false);
                self.resume(i, halted);
            }
        }
    }

    /// Removes slot `s` from endpoint `i`'s software queue wherever it is.
    fn unqueue(&mut self, i: usize, s: u16) {
        let Some(e) = self.eps[i] else { return };
        let mut prev = NONE;
        let mut cur = e.first;
        while cur != NONE && cur != s {
            prev = cur;
            cur = match self.slots[usize::from(cur)] {
                Slot::Td { next, .. } => next,
                _ => NONE,
            };
        }
        if cur != s {
            return;
        }
        let after = match self.slots[usize::from(s)] {
            Slot::Td { next, .. } => next,
            _ => NONE,
        };
        if prev == NONE {
            if let Some(ep) = self.eps[i].as_mut() {
                ep.first = after;
            }
        } else if let Slot::Td { next, .. } = &mut self.slots[usize::from(prev)] {
            *next = after;
        }
        if e.last == s
            && let Some(ep) = self.eps[i].as_mut()
        {
            ep.last = prev;
        }
    }

    fn finish(&mut self, x: usize) {
        if let Some(t) = self.xfers[x].take() {
            self.in_flight -= 1;
            self.emit(Event::Complete {
                xfer: t.id,
                status: t.status,
                actual: t.actual,
            });
        }
    }

    /// After an error on transfer `x`: its remaining TDs leave the queue
    /// (all of them, or all but a control status stage when `keep_status`).
    /// Only valid while the ED is halted or skipped; `resume` checks.
    fn drop_rest(&mut self, x: usize, keep_status: bool) {
        let Some(t) = self.xfers[x] else { return };
        let i = usize::from(t.ep);
        let Some(e) = self.eps[i] else { return };
        let halted = self.read_ed(e.ed).head & EdHead::H::SET.value != 0;
        if !halted {
            // The controller went on past the error (it should not): let
            // the skip path clean up once it cannot be looking.
            if let Some(t) = self.xfers[x].as_mut() {
                t.aborting = true;
                if t.status == status::OK {
                    // Keep what moved; a short read completes OK.
                    t.status = status::OK;
                }
            }
            self.skip(i, false);
            return;
        }
        let mut s = e.first;
        let mut kept = 0u16;
        while s != NONE {
            let Slot::Td {
                xfer, next, stage, ..
            } = self.slots[usize::from(s)]
            else {
                break;
            };
            if usize::from(xfer) != x {
                break;
            }
            if keep_status && stage == Stage::Status {
                kept += 1;
                s = next;
                continue;
            }
            self.unqueue(i, s);
            self.release(s);
            s = next;
        }
        if let Some(t) = self.xfers[x].as_mut() {
            t.tds = kept;
        }
        if kept == 0 {
            self.finish(x);
        }
    }

    /// Restarts a halted ED at its first queued TD, keeping its toggle.
    fn resume(&mut self, i: usize, halted: bool) {
        let Some(e) = self.eps[i] else { return };
        if !halted {
            return;
        }
        self.stats.halts_recovered += 1;
        let carry = self.read_ed(e.ed).head & EdHead::C::SET.value;
        let first = if e.first == NONE {
            e.placeholder
        } else {
            e.first
        };
        // The first queued TD's hardware successor chain is intact (only
        // TDs of the failed transfer at the front were removed).
        let p = self.slot_paddr(first);
        self.set_ed_word(e.ed, 2, p | carry);
        if e.first != NONE && e.phase == Phase::Active {
            self.kick(e.spec.kind);
        }
    }
}

fn all_interrupts() -> FieldValue<u32, Interrupt::Register> {
    Interrupt::SO::SET
        + Interrupt::WDH::SET
        + Interrupt::SF::SET
        + Interrupt::RD::SET
        + Interrupt::UE::SET
        + Interrupt::FNO::SET
        + Interrupt::RHSC::SET
        + Interrupt::OC::SET
}

/// TDs one transfer needs at most: SETUP + status, or a data chunk per
/// 4 KiB of a 1 MiB transfer plus one for a misaligned start.
const MAX_PLAN: usize = (MAX_TRANSFER / PAGE) as usize + 2;

/// What the tests change behind the driver's back, playing the device.
#[cfg(test)]
impl<B: Bus> Ohci<B> {
    pub(crate) fn poke_pool(&mut self, slot: u16, word: usize, value: u32) {
        self.set_ed_word(slot, word, value)
    }

    pub(crate) fn poke_hcca_done(&mut self, value: u32) {
        self.hcca.write(hcca::DONE_HEAD, value)
    }
}

/// The names of [`Ohci::counters`], in order (the stats page's layout).
pub const COUNTERS: [&str; 14] = [
    "eds",
    "tds",
    "placeholders",
    "transfers",
    "endpoints",
    "submitted",
    "completed",
    "refused",
    "bad_done",
    "halts_recovered",
    "aborted",
    "controller_resets",
    "watchdog_resets",
    "lost_connect_changes",
];

impl<B: Bus> Ohci<B> {
    /// What is in use and what was counted, as [`COUNTERS`] names them.
    pub fn counters(&self) -> [u64; COUNTERS.len()] {
        let u = self.usage();
        let s = self.stats;
        [
            u.eds as u64,
            u.tds as u64,
            u.placeholders as u64,
            u.transfers as u64,
            u.endpoints as u64,
            s.submitted,
            s.completed,
            s.refused,
            s.bad_done,
            s.halts_recovered,
            s.aborted_transfers,
            s.controller_resets,
            s.watchdog_resets,
            s.lost_connect_changes,
        ]
    }

    /// Whether a request may be taken now: whatever it and everything in
    /// flight answer still fits the event queue.
    pub fn can_take_request(&self) -> bool {
        self.events.len() + self.in_flight + MAX_ENDPOINTS + 2 * MAX_PORTS + 4 < MAX_EVENTS
    }
}
