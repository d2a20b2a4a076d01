//! One USB Ethernet device's life and the EthernetController side.

use core::fmt;

use dingo_protocols::ethernet_controller::{self as eth, Msg as EthMsg};
use dingo_protocols::lifecycle::Msg as LcMsg;
use heapless::Deque;
use usb_bus::Wire;
use usb_bus::session::{Device, Event, Session};
use usb_core::desc::{
    self, Config, ConfigNext, ConfigRead, DescError, Descriptor, DeviceDescriptor, Endpoint,
};
use usb_core::notes::Notes;
use usb_core::setup::{Setup, descriptor};
use usb_core::{kind, status};

use crate::notify::{self, Notification};

/// The driver's DMA window: control transfers first, then the receive
/// and transmit slots, one frame each.
pub const CONTROL_BUF: u32 = 0;
pub const CONTROL_LEN: u16 = 512;
pub const SLOT: u32 = 2048;
pub const RX_SLOTS: usize = 4;
pub const TX_SLOTS: usize = 4;
pub const RX_BASE: u32 = SLOT;
pub const TX_BASE: u32 = RX_BASE + RX_SLOTS as u32 * SLOT;
/// The notification endpoint's buffer.
pub const NOTIFY_BUF: u32 = TX_BASE + TX_SLOTS as u32 * SLOT;
/// Bytes of window the driver uses.
pub const WINDOW_BYTES: u32 = NOTIFY_BUF + 64;
/// An Ethernet frame without its CRC, as CDC-ECM carries it.
pub const MAX_FRAME: u16 = 1514;
pub const MIN_FRAME: u16 = 14;
/// How long an `enable` waits for a device being set up (the protocol
/// gives the driver a second).
pub const ENABLE_WAIT_NS: u64 = 900_000_000;
/// How long a Lifecycle `start` waits for a device (the protocol gives
/// five seconds); then the driver runs without one.
pub const START_WAIT_NS: u64 = 4_000_000_000;

const EP0: u32 = 0;
const BULK_IN: u32 = 1;
const BULK_OUT: u32 = 2;
/// The control interface's interrupt IN endpoint (notifications).
const NOTIFY: u32 = 3;
const RX_XFER: u32 = 100;
const TX_XFER: u32 = 200;
const NOTIFY_XFER: u32 = 300;

/// Transmits waiting for a slot; the client's queue stops at
/// [`STOP_AT`] and starts again at [`START_AT`].
const TX_WAIT: usize = 64;
const STOP_AT: usize = 32;
const START_AT: usize = 8;
/// Receive buffers the client may lend (the net PD's are 128 in all).
const LENT: usize = 256;
const OUT: usize = LENT + TX_WAIT + 32;

/// The driver's DMA window or the EthernetController's data area, as the
/// CPU sees them.
pub trait Memory {
    fn size(&self) -> u32;
    fn read(&self, offset: u32, dst: &mut [u8]);
    fn write(&self, offset: u32, src: &[u8]);
}

/// Why a device was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    NoEcm,
    Descriptor(DescError),
    BadMac,
    Transfer { step: &'static str, status: u8 },
    PipeRefused(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoEcm => f.write_str(
                "no configuration with a CDC Ethernet control interface (2/6/0) and a data interface with bulk IN and OUT",
            ),
            Failure::Descriptor(e) => write!(f, "{e}"),
            Failure::BadMac => f.write_str("the MAC address string is not twelve hex digits"),
            Failure::Transfer { step, status: s } => {
                write!(f, "{step}: transfer {}", status::name(*s))
            }
            Failure::PipeRefused(p) => write!(f, "the hub refused the {p} pipe"),
        }
    }
}

/// What the driver tells its PD to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    Ready {
        /// Devices set up so far, this one included.
        count: u64,
        addr: u8,
        config: u8,
        mac: [u8; 6],
        ep_in: u8,
        ep_out: u8,
    },
    Failed(Failure),
    Gone {
        addr: u8,
    },
    /// The device reported its network connection (NetworkConnection).
    Link {
        up: bool,
    },
    /// The device reported its bit rates (ConnectionSpeedChange).
    Speed {
        down: u32,
        up: u32,
    },
    /// A notification that was not one: counted and dropped.
    BadNotification(notify::Malformed),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    OpenEp0,
    Device,
    Configuration(ConfigRead),
    SetConfig,
    Mac,
    SetInterface,
    OpenPipes {
        opened: u8,
    },
    Running,
    /// Clearing a halted bulk endpoint (its pipe).
    ClearHalt {
        pipe: u32,
    },
    Failed,
}

/// What set-up found in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecm {
    pub config: u8,
    pub mac_string: u8,
    pub control_interface: u8,
    /// The control interface's interrupt IN endpoint, if it has one.
    pub notify: Option<Endpoint>,
    pub data_interface: u8,
    pub alternate: u8,
    pub bulk_in: Endpoint,
    pub bulk_out: Endpoint,
}

/// Counters (nic-stats names in the PD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Devices set up and running.
    pub ready: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_zero_length: u64,
    pub rx_bad_length: u64,
    pub rx_too_long_for_buffer: u64,
    pub rx_dropped_disabled: u64,
    pub rx_bad_lend: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_waited: u64,
    pub tx_bad_request: u64,
    pub tx_aborted: u64,
    pub transfer_errors: u64,
    pub stalls: u64,
    pub failed: u64,
    /// Notifications taken: NetworkConnection, ConnectionSpeedChange,
    /// others (valid, not acted on), malformed ones.
    pub link_reports: u64,
    pub speed_reports: u64,
    pub other_notifications: u64,
    pub bad_notifications: u64,
}

/// The driver.
pub struct Driver {
    pub session: Session,
    step: Step,
    device: Option<Device>,
    configs: u8,
    ecm: Option<Ecm>,
    mac: Option<[u8; 6]>,
    /// Receive slots queued on the bulk IN pipe.
    rx_queued: [bool; RX_SLOTS],
    /// Filled receive slots waiting for a lent buffer: (slot, length).
    filled: Deque<(usize, u16), RX_SLOTS>,
    /// Packets of each transmit slot still on the bulk OUT pipe.
    tx_parts: [u8; TX_SLOTS],
    tx_wait: Deque<(u32, u16), TX_WAIT>,
    lent: Deque<(u32, u16), LENT>,
    enabled: bool,
    enable_until: Option<u64>,
    stopped: bool,
    link_up: bool,
    /// The link as the device last reported it (NetworkConnection); up
    /// until it says otherwise, since a device need not report at all
    /// (QEMU's usb-net never does).
    device_link: bool,
    /// The notification transfer is queued.
    notify_queued: bool,
    /// The device's last bit rates (down, up), if it reported them.
    pub speed: Option<(u32, u32)>,
    start_until: Option<u64>,
    lc_out: Deque<LcMsg, 4>,
    out: Deque<EthMsg, OUT>,
    notes: Notes<Note, 8>,
    pub stats: Stats,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub const fn new() -> Self {
        Driver {
            session: Session::new(),
            step: Step::Idle,
            device: None,
            configs: 0,
            ecm: None,
            mac: None,
            rx_queued: [false; RX_SLOTS],
            filled: Deque::new(),
            tx_parts: [0; TX_SLOTS],
            tx_wait: Deque::new(),
            lent: Deque::new(),
            enabled: false,
            enable_until: None,
            stopped: false,
            link_up: false,
            device_link: true,
            notify_queued: false,
            speed: None,
            start_until: None,
            lc_out: Deque::new(),
            out: Deque::new(),
            notes: Notes::new(),
            stats: Stats {
                ready: 0,
                rx_frames: 0,
                rx_bytes: 0,
                rx_zero_length: 0,
                rx_bad_length: 0,
                rx_too_long_for_buffer: 0,
                rx_dropped_disabled: 0,
                rx_bad_lend: 0,
                tx_frames: 0,
                tx_bytes: 0,
                tx_waited: 0,
                tx_bad_request: 0,
                tx_aborted: 0,
                transfer_errors: 0,
                stalls: 0,
                failed: 0,
                link_reports: 0,
                speed_reports: 0,
                other_notifications: 0,
                bad_notifications: 0,
            },
        }
    }

    /// The next EthernetController message for the client.
    pub fn take_out(&mut self) -> Option<EthMsg> {
        self.out.pop_front()
    }

    pub fn unget_out(&mut self, m: EthMsg) {
        let _ = self.out.push_front(m);
    }

    /// The next Lifecycle answer.
    pub fn take_lc(&mut self) -> Option<LcMsg> {
        self.lc_out.pop_front()
    }

    pub fn unget_lc(&mut self, m: LcMsg) {
        let _ = self.lc_out.push_front(m);
    }

    pub fn take_note(&mut self) -> Option<Note> {
        self.notes.take()
    }

    /// Whether client requests may be taken: every answer one can cause
    /// fits (a disable answers every lent buffer and waiting transmit).
    pub fn has_room(&self) -> bool {
        self.out.len() + LENT + TX_WAIT + 16 <= OUT
    }

    /// Running with a device: frames move.
    pub fn running(&self) -> bool {
        self.step == Step::Running || matches!(self.step, Step::ClearHalt { .. })
    }

    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// Receive buffers the client lent and the driver holds.
    pub fn lent(&self) -> usize {
        self.lent.len()
    }

    pub fn waiting(&self) -> usize {
        self.tx_wait.len()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        [self.session.deadline(), self.enable_until, self.start_until]
            .into_iter()
            .flatten()
            .min()
    }

    fn note(&mut self, n: Note) {
        self.notes.push(n);
    }

    fn emit(&mut self, m: EthMsg) {
        // has_room keeps space for every answer before input is taken.
        let _ = self.out.push_back(m);
    }

    fn control(&mut self, step: Step, s: Setup, now: u64) {
        self.step = step;
        self.session
            .control(EP0, step_id(step), s, CONTROL_BUF, now);
    }

    fn fail(&mut self, why: Failure) {
        self.stats.failed += 1;
        self.note(Note::Failed(why));
        self.step = Step::Failed;
        self.session.release();
    }

    /// Timeouts: control transfers, a waiting enable or start.
    pub fn tick(&mut self, now: u64) {
        // An aborted control transfer completes ABORTED, which fails its
        // step.
        self.session.tick(now);
        if self.enable_until.is_some_and(|d| now >= d) {
            self.enable_until = None;
            self.emit(EthMsg::EnableFailed { error: eth::GONE });
        }
        if self.start_until.is_some_and(|d| now >= d) {
            // The driver runs without a device; `enable` fails until one
            // is set up.
            self.start_until = None;
            let _ = self.lc_out.push_back(LcMsg::StartComplete);
        }
    }

    // ---- Lifecycle ----

    pub fn lifecycle(&mut self, m: LcMsg, now: u64) {
        match m {
            LcMsg::Start if self.running() => {
                let _ = self.lc_out.push_back(LcMsg::StartComplete);
            }
            LcMsg::Start => self.start_until = Some(now + START_WAIT_NS),
            LcMsg::Stop | LcMsg::Unplugged => {
                self.start_until = None;
                let _ = self.lc_out.push_back(LcMsg::StopComplete);
            }
            // The driver's own messages.
            LcMsg::StartComplete | LcMsg::StartFailed { .. } | LcMsg::StopComplete => {}
        }
    }

    // ---- EthernetController ----

    /// A request from the client.
    pub fn eth(&mut self, m: EthMsg, now: u64, win: &impl Memory, frames: &impl Memory) {
        match m {
            EthMsg::Enable if self.running() => self.complete_enable(),
            EthMsg::Enable => self.enable_until = Some(now + ENABLE_WAIT_NS),
            EthMsg::Disable => self.disable(),
            EthMsg::RxBuffer { buf, len } => {
                if u64::from(buf) + u64::from(len) > u64::from(frames.size())
                    || len < MIN_FRAME
                    || self.lent.is_full()
                {
                    // Kept anyway, so a disable returns it: it is only
                    // never filled.
                    self.stats.rx_bad_lend += 1;
                }
                if self.lent.push_back((buf, len)).is_err() {
                    // More than the client has: returned at once.
                    self.emit(EthMsg::RxBufferReturn { buf });
                }
                self.deliver(win, frames);
            }
            EthMsg::TxPacket { buf, len } => self.transmit(buf, len, win, frames),
            // The driver's own messages.
            _ => {}
        }
    }

    fn complete_enable(&mut self) {
        self.enable_until = None;
        self.enabled = true;
        self.stopped = false;
        let mac = self.mac.unwrap_or_default();
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&mac);
        self.emit(EthMsg::MacAddress {
            mac: u64::from_be_bytes(b),
        });
        self.emit(EthMsg::EnableComplete);
        if self.device_link {
            self.link_up = true;
            self.emit(EthMsg::LinkChange { up: true });
        }
    }

    fn disable(&mut self) {
        self.abort_waiting();
        while let Some((buf, _)) = self.lent.pop_front() {
            self.emit(EthMsg::RxBufferReturn { buf });
        }
        self.enabled = false;
        self.stopped = false;
        self.emit(EthMsg::DisableComplete);
    }

    fn abort_waiting(&mut self) {
        while let Some((buf, _)) = self.tx_wait.pop_front() {
            self.stats.tx_aborted += 1;
            self.emit(EthMsg::TxPacketAbort {
                buf,
                error: eth::GONE,
            });
        }
        if core::mem::take(&mut self.stopped) && self.enabled {
            self.emit(EthMsg::TxStartQueue);
        }
    }

    fn transmit(&mut self, buf: u32, len: u16, win: &impl Memory, frames: &impl Memory) {
        if !self.enabled {
            return;
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&len)
            || u64::from(buf) + u64::from(len) > u64::from(frames.size())
        {
            self.stats.tx_bad_request += 1;
            return self.emit(EthMsg::TxPacketAbort {
                buf,
                error: eth::BAD_REQUEST,
            });
        }
        if !self.running() {
            self.stats.tx_aborted += 1;
            return self.emit(EthMsg::TxPacketAbort {
                buf,
                error: eth::GONE,
            });
        }
        match self.tx_parts.iter().position(|&p| p == 0) {
            Some(slot) if self.tx_wait.is_empty() => self.send_frame(slot, buf, len, win, frames),
            _ => {
                if self.tx_wait.push_back((buf, len)).is_err() {
                    self.stats.tx_aborted += 1;
                    return self.emit(EthMsg::TxPacketAbort {
                        buf,
                        error: eth::QUEUE_FULL,
                    });
                }
                self.stats.tx_waited += 1;
                if self.tx_wait.len() >= STOP_AT && !self.stopped {
                    self.stopped = true;
                    self.emit(EthMsg::TxStopQueue);
                }
            }
        }
    }

    /// Copies a frame into a transmit slot and queues it: its full
    /// packets, then the short rest (a zero-length packet if none), which
    /// ends the frame.
    fn send_frame(
        &mut self,
        slot: usize,
        buf: u32,
        len: u16,
        win: &impl Memory,
        frames: &impl Memory,
    ) {
        let Some(e) = self.ecm else { return };
        let mut b = [0u8; MAX_FRAME as usize];
        let n = usize::from(len);
        frames.read(buf, &mut b[..n]);
        let base = TX_BASE + slot as u32 * SLOT;
        win.write(base, &b[..n]);
        let mp = u32::from(e.bulk_out.max_packet.max(1));
        let len = u32::from(len);
        let head = len - len % mp;
        let mut parts = 0;
        let xfer = TX_XFER + slot as u32;
        if head > 0 && self.session.submit(BULK_OUT, xfer, 0, base, head) {
            parts += 1;
        }
        let rest = len - head;
        let at = if rest == 0 { 0 } else { base + head };
        if self.session.submit(BULK_OUT, xfer, 0, at, rest) {
            parts += 1;
        }
        self.tx_parts[slot] = parts;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += u64::from(len);
        self.emit(EthMsg::TxPacketDone { buf });
    }

    fn tx_done(&mut self, slot: usize, st: u8, now: u64, win: &impl Memory, frames: &impl Memory) {
        self.tx_parts[slot] = self.tx_parts[slot].saturating_sub(1);
        match st {
            status::OK => {}
            status::STALL if self.step == Step::Running => {
                self.stats.stalls += 1;
                self.clear_halt(BULK_OUT, now);
            }
            status::UNPLUGGED | status::ABORTED => return,
            _ => self.stats.transfer_errors += 1,
        }
        while self.running()
            && let Some(free) = self.tx_parts.iter().position(|&p| p == 0)
            && let Some((buf, len)) = self.tx_wait.pop_front()
        {
            self.send_frame(free, buf, len, win, frames);
        }
        if self.stopped && self.tx_wait.len() <= START_AT {
            self.stopped = false;
            self.emit(EthMsg::TxStartQueue);
        }
    }

    fn clear_halt(&mut self, pipe: u32, now: u64) {
        let Some(e) = self.ecm else { return };
        let ep = if pipe == BULK_IN {
            e.bulk_in.address
        } else {
            e.bulk_out.address
        };
        self.control(Step::ClearHalt { pipe }, Setup::clear_halt(ep), now);
    }

    fn queue_rx(&mut self, slot: usize) {
        if self.running()
            && !self.rx_queued[slot]
            && self.session.submit(
                BULK_IN,
                RX_XFER + slot as u32,
                0,
                RX_BASE + slot as u32 * SLOT,
                SLOT,
            )
        {
            self.rx_queued[slot] = true;
        }
    }

    fn rx_done(
        &mut self,
        slot: usize,
        st: u8,
        actual: u32,
        now: u64,
        win: &impl Memory,
        frames: &impl Memory,
    ) {
        self.rx_queued[slot] = false;
        match st {
            status::OK if actual == 0 => {
                // The zero-length packet after a frame of full packets.
                self.stats.rx_zero_length += 1;
                self.queue_rx(slot);
            }
            status::OK if actual < u32::from(MIN_FRAME) || actual > u32::from(MAX_FRAME) => {
                self.stats.rx_bad_length += 1;
                self.queue_rx(slot);
            }
            status::OK if !self.enabled => {
                self.stats.rx_dropped_disabled += 1;
                self.queue_rx(slot);
            }
            status::OK => {
                let _ = self.filled.push_back((slot, actual as u16));
                self.deliver(win, frames);
            }
            status::STALL if self.step == Step::Running => {
                self.stats.stalls += 1;
                self.clear_halt(BULK_IN, now);
            }
            status::UNPLUGGED | status::ABORTED => {}
            _ => {
                self.stats.transfer_errors += 1;
                self.queue_rx(slot);
            }
        }
    }

    /// Filled slots into lent buffers.
    fn deliver(&mut self, win: &impl Memory, frames: &impl Memory) {
        while self.enabled
            && let Some(&(slot, len)) = self.filled.front()
            && let Some((buf, cap)) = self.lent.pop_front()
        {
            if len > cap || u64::from(buf) + u64::from(len) > u64::from(frames.size()) {
                // This buffer cannot take it: the frame is dropped, the
                // buffer goes back to the pool.
                self.stats.rx_too_long_for_buffer += 1;
                let _ = self.lent.push_back((buf, cap));
                self.filled.pop_front();
                self.queue_rx(slot);
                if self.lent.len() == 1 {
                    break;
                }
                continue;
            }
            self.filled.pop_front();
            let mut b = [0u8; MAX_FRAME as usize];
            let n = usize::from(len);
            win.read(RX_BASE + slot as u32 * SLOT, &mut b[..n]);
            frames.write(buf, &b[..n]);
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += u64::from(len);
            self.emit(EthMsg::RxPacket { buf, len });
            self.queue_rx(slot);
        }
    }

    // ---- the device ----

    /// A message from the hub.
    pub fn input(&mut self, w: Wire, now: u64, win: &impl Memory, frames: &impl Memory) {
        let Some(e) = self.session.input(w) else {
            return;
        };
        match e {
            Event::Device(d) => {
                self.device = Some(d);
                self.ecm = None;
                self.device_link = true;
                self.speed = None;
                self.step = Step::OpenEp0;
                self.session.open(EP0, 0, kind::CONTROL, 8, 0);
            }
            Event::Opened(EP0) if self.step == Step::OpenEp0 => {
                let s = Setup::get_descriptor(descriptor::DEVICE, 0, DeviceDescriptor::LEN as u16);
                self.control(Step::Device, s, now);
            }
            Event::Opened(p @ (BULK_IN | BULK_OUT | NOTIFY)) => self.pipe_opened(p),
            // Without notifications the driver runs as with a device that
            // sends none.
            Event::OpenFailed(NOTIFY) => {
                if let Some(e) = self.ecm.as_mut() {
                    e.notify = None;
                }
                self.pipe_opened(NOTIFY);
            }
            Event::OpenFailed(p) if self.session.present() => {
                self.fail(Failure::PipeRefused(match p {
                    EP0 => "control",
                    BULK_IN => "bulk IN",
                    _ => "bulk OUT",
                }));
            }
            Event::Configured(_) if self.step == Step::SetConfig => {
                let Some(e) = self.ecm else { return };
                self.control(Step::Mac, Setup::get_string(e.mac_string, 64), now);
            }
            Event::ConfigFailed(_) => self.fail(Failure::Transfer {
                step: "SET_CONFIGURATION",
                status: status::FAILED,
            }),
            Event::Complete {
                pipe: EP0,
                status: st,
                actual,
                ..
            } => self.control_done(st, actual, now, win),
            Event::Complete {
                pipe: BULK_IN,
                xfer,
                status: st,
                actual,
            } => {
                let slot = xfer.wrapping_sub(RX_XFER) as usize;
                if slot < RX_SLOTS {
                    self.rx_done(slot, st, actual, now, win, frames);
                }
            }
            Event::Complete {
                pipe: BULK_OUT,
                xfer,
                status: st,
                ..
            } => {
                let slot = xfer.wrapping_sub(TX_XFER) as usize;
                if slot < TX_SLOTS {
                    self.tx_done(slot, st, now, win, frames);
                }
            }
            Event::Complete {
                pipe: NOTIFY,
                status: st,
                actual,
                ..
            } => self.notify_done(st, actual, win),
            Event::Detached => self.detached(),
            Event::Idle => {
                self.detached();
                self.step = Step::Idle;
            }
            _ => {}
        }
    }

    fn pipe_opened(&mut self, p: u32) {
        let Step::OpenPipes { opened } = self.step else {
            return;
        };
        let opened = opened | 1 << p;
        self.step = Step::OpenPipes { opened };
        if opened == (1 << BULK_IN | 1 << BULK_OUT | 1 << NOTIFY) {
            self.start_running();
        }
    }

    fn queue_notify(&mut self) {
        if self.running()
            && !self.notify_queued
            && self.ecm.is_some_and(|e| e.notify.is_some())
            && self
                .session
                .submit(NOTIFY, NOTIFY_XFER, 0, NOTIFY_BUF, notify::MAX_LEN as u32)
        {
            self.notify_queued = true;
        }
    }

    fn notify_done(&mut self, st: u8, actual: u32, win: &impl Memory) {
        self.notify_queued = false;
        match st {
            status::OK => {
                let mut b = [0u8; notify::MAX_LEN];
                let n = (actual as usize).min(b.len());
                win.read(NOTIFY_BUF, &mut b[..n]);
                let Some(e) = self.ecm else { return };
                let f = notify::Function {
                    control: e.control_interface,
                    data: e.data_interface,
                };
                match notify::parse(&b[..n], f) {
                    Ok(Notification::Connection { up }) => {
                        self.stats.link_reports += 1;
                        // Devices repeat the state (QEMU's on every poll):
                        // only a change is worth a line.
                        if self.device_link != up {
                            self.device_link = up;
                            self.note(Note::Link { up });
                        }
                        if self.enabled && self.link_up != up {
                            self.link_up = up;
                            self.emit(EthMsg::LinkChange { up });
                        }
                    }
                    Ok(Notification::Speed { down, up }) => {
                        self.stats.speed_reports += 1;
                        self.speed = Some((down, up));
                        self.note(Note::Speed { down, up });
                    }
                    Ok(Notification::Other { .. }) => self.stats.other_notifications += 1,
                    Err(m) => {
                        self.stats.bad_notifications += 1;
                        self.note(Note::BadNotification(m));
                    }
                }
                self.queue_notify();
            }
            // A halted notification endpoint is left so: the link stays
            // as last reported, the frames keep moving.
            status::STALL => self.stats.stalls += 1,
            status::UNPLUGGED | status::ABORTED => {}
            _ => {
                self.stats.transfer_errors += 1;
                self.queue_notify();
            }
        }
    }

    fn start_running(&mut self) {
        self.step = Step::Running;
        self.notify_queued = false;
        self.rx_queued = [false; RX_SLOTS];
        self.filled.clear();
        self.tx_parts = [0; TX_SLOTS];
        for slot in 0..RX_SLOTS {
            self.queue_rx(slot);
        }
        self.queue_notify();
        if let (Some(d), Some(e), Some(mac)) = (self.device, self.ecm, self.mac) {
            self.stats.ready += 1;
            self.note(Note::Ready {
                count: self.stats.ready,
                addr: d.addr,
                config: e.config,
                mac,
                ep_in: e.bulk_in.address,
                ep_out: e.bulk_out.address,
            });
        }
        if self.start_until.take().is_some() {
            let _ = self.lc_out.push_back(LcMsg::StartComplete);
        }
        if self.enable_until.is_some() {
            self.complete_enable();
        } else if self.enabled && !self.link_up && self.device_link {
            self.link_up = true;
            self.emit(EthMsg::LinkChange { up: true });
        }
    }

    fn detached(&mut self) {
        let was_running = self.running();
        if !matches!(self.step, Step::Idle) {
            self.step = Step::Idle;
        }
        self.rx_queued = [false; RX_SLOTS];
        self.notify_queued = false;
        self.filled.clear();
        self.tx_parts = [0; TX_SLOTS];
        self.abort_waiting();
        if self.enabled && core::mem::take(&mut self.link_up) {
            self.emit(EthMsg::LinkChange { up: false });
        }
        if let Some(d) = self.device.take()
            && was_running
        {
            self.note(Note::Gone { addr: d.addr });
        }
    }

    fn control_done(&mut self, st: u8, actual: u32, now: u64, win: &impl Memory) {
        let step = self.step;
        if st != status::OK {
            if matches!(step, Step::Idle | Step::Failed) || !self.session.present() {
                return;
            }
            return self.fail(Failure::Transfer {
                step: step_name(step),
                status: st,
            });
        }
        let mut b = [0u8; CONTROL_LEN as usize];
        let n = (actual as usize).min(b.len());
        win.read(CONTROL_BUF, &mut b[..n]);
        let b = &b[..n];
        match step {
            Step::Device => match DeviceDescriptor::parse(b) {
                Err(e) => self.fail(Failure::Descriptor(e)),
                Ok(d) if d.configurations == 0 => self.fail(Failure::NoEcm),
                Ok(d) => {
                    self.configs = d.configurations;
                    self.read_config(ConfigRead::Header { index: 0 }, now);
                }
            },
            Step::Configuration(r) => match r.next(b, CONTROL_LEN) {
                Err(e) => self.fail(Failure::Descriptor(e)),
                Ok(ConfigNext::Read(r)) => self.read_config(r, now),
                Ok(ConfigNext::Done(c)) => match ecm_of(&c) {
                    Some(e) => {
                        self.ecm = Some(e);
                        self.step = Step::SetConfig;
                        self.session.set_configuration(e.config);
                    }
                    None if r.index() + 1 < self.configs => self.read_config(
                        ConfigRead::Header {
                            index: r.index() + 1,
                        },
                        now,
                    ),
                    None => self.fail(Failure::NoEcm),
                },
            },
            Step::Mac => match mac_of(b) {
                None => self.fail(Failure::BadMac),
                Some(mac) => {
                    self.mac = Some(mac);
                    let Some(e) = self.ecm else { return };
                    let s = Setup::set_interface(e.data_interface, e.alternate);
                    self.control(Step::SetInterface, s, now);
                }
            },
            Step::SetInterface => {
                let Some(e) = self.ecm else { return };
                self.step = Step::OpenPipes { opened: 0 };
                let ok = self.session.open(
                    BULK_IN,
                    e.bulk_in.address,
                    kind::BULK,
                    e.bulk_in.max_packet,
                    0,
                ) && self.session.open(
                    BULK_OUT,
                    e.bulk_out.address,
                    kind::BULK,
                    e.bulk_out.max_packet,
                    0,
                );
                if !ok {
                    return self.fail(Failure::PipeRefused("bulk"));
                }
                match e.notify {
                    Some(n)
                        if self.session.open(
                            NOTIFY,
                            n.address,
                            kind::INTERRUPT,
                            n.max_packet,
                            n.interval,
                        ) => {}
                    _ => {
                        if let Some(e) = self.ecm.as_mut() {
                            e.notify = None;
                        }
                        self.pipe_opened(NOTIFY);
                    }
                }
            }
            Step::ClearHalt { pipe } => {
                self.step = Step::Running;
                if pipe == BULK_IN {
                    for slot in 0..RX_SLOTS {
                        if !self.filled.iter().any(|&(s, _)| s == slot) {
                            self.queue_rx(slot);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn read_config(&mut self, r: ConfigRead, now: u64) {
        self.control(Step::Configuration(r), r.setup(), now);
    }
}

fn step_id(s: Step) -> u32 {
    match s {
        Step::Device => 1,
        Step::Configuration(ConfigRead::Header { .. }) => 2,
        Step::Configuration(ConfigRead::Whole { .. }) => 3,
        Step::Mac => 4,
        Step::SetInterface => 5,
        Step::ClearHalt { .. } => 6,
        _ => 9,
    }
}

fn step_name(s: Step) -> &'static str {
    match s {
        Step::Device => "device descriptor",
        Step::Configuration(ConfigRead::Header { .. }) => "configuration header",
        Step::Configuration(ConfigRead::Whole { .. }) => "configuration",
        Step::Mac => "MAC address string",
        Step::SetInterface => "SET_INTERFACE",
        Step::ClearHalt { .. } => "CLEAR_FEATURE",
        _ => "control transfer",
    }
}

/// CDC class codes (CDC 1.2 §4) and the Ethernet Networking functional
/// descriptor (CDC-ECM 1.2 §5.4).
const CDC_CLASS: u8 = 2;
const ECM_SUBCLASS: u8 = 6;
const CDC_DATA_CLASS: u8 = 10;
const ETHERNET_FUNCTIONAL: u8 = 0x0f;
const UNION_FUNCTIONAL: u8 = 0x06;

/// The CDC-ECM function of a configuration, if it has one: the control
/// interface's MAC string, the data interface its union names (else the
/// first data interface) and that interface's alternate setting with a
/// bulk IN and a bulk OUT endpoint.
pub fn ecm_of(c: &Config<'_>) -> Option<Ecm> {
    let control = c
        .interfaces()
        .find(|i| (i.class, i.subclass, i.protocol) == (CDC_CLASS, ECM_SUBCLASS, 0))?;
    let mut mac_string = None;
    let mut union_data = None;
    for d in c.within(&control) {
        if let Descriptor::Other { kind, bytes } = d
            && kind == descriptor::CS_INTERFACE
            && bytes.len() >= 4
        {
            match bytes[2] {
                ETHERNET_FUNCTIONAL if bytes.len() >= 13 => mac_string = Some(bytes[3]),
                UNION_FUNCTIONAL if bytes.len() >= 5 => union_data = Some(bytes[4]),
                _ => {}
            }
        }
    }
    let mac_string = mac_string.filter(|&s| s != 0)?;
    let notify = c
        .endpoints(&control)
        .find(|e| e.kind == kind::INTERRUPT && e.is_in() && e.max_packet > 0 && e.interval > 0);
    for i in c.interfaces() {
        if i.class != CDC_DATA_CLASS || union_data.is_some_and(|n| n != i.number) {
            continue;
        }
        let bulk = |dir_in: bool| {
            c.endpoints(&i)
                .find(|e| e.kind == kind::BULK && e.is_in() == dir_in && e.max_packet > 0)
        };
        if let (Some(bulk_in), Some(bulk_out)) = (bulk(true), bulk(false)) {
            return Some(Ecm {
                config: c.value,
                mac_string,
                control_interface: control.number,
                notify,
                data_interface: i.number,
                alternate: i.alternate,
                bulk_in,
                bulk_out,
            });
        }
    }
    None
}

/// The MAC address from its string descriptor: twelve hex digits.
pub fn mac_of(b: &[u8]) -> Option<[u8; 6]> {
    let mut text = [0u8; 13];
    let n = desc::string_ascii(b, &mut text).ok()?;
    if n != 12 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, pair) in text[..12].chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        mac[i] = (hi << 4 | lo) as u8;
    }
    Some(mac)
}

#[cfg(test)]
mod tests;
