//! One keyboard's life: set-up, reports, unplug.

use core::fmt;

use heapless::Deque;
use usb_bus::Wire;
use usb_bus::session::{Device, Event, Session};
use usb_core::desc::{self, Config, ConfigNext, ConfigRead, Descriptor};
use usb_core::notes::Notes;
use usb_core::setup::{Setup, request_type};
use usb_core::{kind, status};

use crate::keys::{Change, KeyEvent, Keys, REPORT};

/// Where the driver's buffers sit in its DMA window.
pub const CONTROL_BUF: u32 = 0;
pub const CONTROL_LEN: u16 = 512;
pub const REPORT_BUFS: [u32; 2] = [512, 512 + REPORT as u32];
/// Bytes of window the driver uses.
pub const WINDOW_BYTES: u32 = 512 + 2 * REPORT as u32;
/// How often the report endpoint is polled, in ms: every frame. A boot
/// keyboard's bInterval (QEMU's: 10) is the longest period it allows, and
/// the controller's tree would round 10 down to 8 ms, which is then most of
/// a key's latency (bench/usb's keyboard figures: median 6 ms, p99 9 ms
/// idle at 8 ms). Polling a keyboard that has nothing to say costs the CPU
/// nothing: it NAKs, and the controller retries in the next frame without
/// an interrupt.
pub const POLL_MS: u8 = 1;

const EP0: u32 = 0;
const REPORTS: u32 = 1;

/// HID class requests (HID 1.11 §7.2).
const SET_IDLE: u8 = 0x0a;
const SET_PROTOCOL: u8 = 0x0b;
const BOOT_PROTOCOL: u16 = 0;

/// The driver's DMA window, as the CPU reads it.
pub trait Window {
    fn read(&self, offset: u32, dst: &mut [u8]);
}

/// What the keyboard's consumer gets (the Keyboard protocol's messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Connected,
    Key(KeyEvent),
    Rollover,
    Disconnected,
}

/// Why a keyboard was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    NoBootInterface,
    Descriptor(desc::DescError),
    Transfer { step: &'static str, status: u8 },
    PipeRefused(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoBootInterface => {
                f.write_str("no HID boot keyboard interface with an interrupt IN endpoint")
            }
            Failure::Descriptor(e) => write!(f, "{e}"),
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
        addr: u8,
        interface: u8,
        endpoint: u8,
        /// The endpoint's bInterval.
        interval: u8,
        /// The period it is polled at ([`POLL_MS`]).
        polled: u8,
    },
    Failed(Failure),
    Gone {
        addr: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    OpenEp0,
    Configuration(ConfigRead),
    SetConfig,
    SetProtocol,
    SetIdle,
    OpenReports,
    Running,
    /// Recovering a halted interrupt endpoint.
    ClearHalt,
    /// Given up: the device is being released.
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Boot {
    config: u8,
    interface: u8,
    endpoint: u8,
    max_packet: u16,
    interval: u8,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub reports: u64,
    pub keys: u64,
    pub failed: u64,
}

/// The keyboard driver.
pub struct Driver {
    pub session: Session,
    step: Step,
    device: Option<Device>,
    boot: Option<Boot>,
    keys: Keys,
    out: Deque<Out, 64>,
    notes: Notes<Note, 8>,
    connected: bool,
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
            boot: None,
            keys: Keys::new(),
            out: Deque::new(),
            notes: Notes::new(),
            connected: false,
            stats: Stats {
                reports: 0,
                keys: 0,
                failed: 0,
            },
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn take_out(&mut self) -> Option<Out> {
        self.out.pop_front()
    }

    pub fn unget_out(&mut self, o: Out) {
        let _ = self.out.push_front(o);
    }

    pub fn take_note(&mut self) -> Option<Note> {
        self.notes.take()
    }

    /// Whether input may be taken: the consumer's queue has room for a
    /// report's worth of events.
    pub fn has_room(&self) -> bool {
        self.out.len() + 20 < self.out.capacity()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.session.deadline()
    }

    fn note(&mut self, n: Note) {
        self.notes.push(n);
    }

    fn control(&mut self, step: Step, s: Setup, now: u64) {
        self.step = step;
        self.session
            .control(EP0, step_id(step), s, CONTROL_BUF, now);
    }

    fn read_config(&mut self, r: ConfigRead, now: u64) {
        self.control(Step::Configuration(r), r.setup(), now);
    }

    fn fail(&mut self, why: Failure) {
        self.stats.failed += 1;
        self.note(Note::Failed(why));
        self.step = Step::Failed;
        self.session.release();
    }

    /// Timeouts of the driver's control transfers: an aborted one
    /// completes ABORTED, which fails its step.
    pub fn tick(&mut self, now: u64) {
        self.session.tick(now);
    }

    /// A message from the hub.
    pub fn input(&mut self, w: Wire, now: u64, mem: &impl Window) {
        let Some(e) = self.session.input(w) else {
            return;
        };
        match e {
            Event::Device(d) => {
                self.device = Some(d);
                self.boot = None;
                self.step = Step::OpenEp0;
                self.session.open(EP0, 0, kind::CONTROL, 8, 0);
            }
            Event::Opened(EP0) if self.step == Step::OpenEp0 => {
                self.read_config(ConfigRead::Header { index: 0 }, now);
            }
            Event::Opened(REPORTS) if self.step == Step::OpenReports => {
                self.step = Step::Running;
                for (i, b) in REPORT_BUFS.iter().enumerate() {
                    self.session
                        .submit(REPORTS, 100 + i as u32, 0, *b, REPORT as u32);
                }
                if let (Some(d), Some(b)) = (self.device, self.boot) {
                    self.note(Note::Ready {
                        addr: d.addr,
                        interface: b.interface,
                        endpoint: b.endpoint,
                        interval: b.interval,
                        polled: POLL_MS.min(b.interval.max(1)),
                    });
                }
                self.connected = true;
                let _ = self.out.push_back(Out::Connected);
            }
            Event::OpenFailed(p) if self.session.present() => {
                self.fail(Failure::PipeRefused(if p == EP0 {
                    "control"
                } else {
                    "interrupt"
                }));
            }
            Event::Configured(_) if self.step == Step::SetConfig => {
                let Some(b) = self.boot else { return };
                let s = Setup::new(
                    request_type::CLASS | request_type::INTERFACE,
                    SET_PROTOCOL,
                    BOOT_PROTOCOL,
                    u16::from(b.interface),
                    0,
                );
                self.control(Step::SetProtocol, s, now);
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
            } => self.control_done(st, actual, now, mem),
            Event::Complete {
                pipe: REPORTS,
                xfer,
                status: st,
                actual,
            } => self.report_done(xfer, st, actual, now, mem),
            Event::Detached => self.detached(),
            Event::Idle => {
                // Detached with nothing open: the keys go now.
                self.detached();
                self.step = Step::Idle;
            }
            _ => {}
        }
    }

    fn detached(&mut self) {
        for k in self.keys.release_all() {
            let _ = self.out.push_back(Out::Key(k));
        }
        if core::mem::take(&mut self.connected) {
            let _ = self.out.push_back(Out::Disconnected);
        }
        if let Some(d) = self.device.take() {
            self.note(Note::Gone { addr: d.addr });
        }
        if self.step != Step::Idle {
            self.step = Step::Idle;
        }
    }

    fn control_done(&mut self, st: u8, actual: u32, now: u64, mem: &impl Window) {
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
        match step {
            Step::Configuration(r) => {
                let mut b = [0u8; CONTROL_LEN as usize];
                let n = (actual as usize).min(b.len());
                mem.read(CONTROL_BUF, &mut b[..n]);
                match r.next(&b[..n], CONTROL_LEN) {
                    Err(e) => self.fail(Failure::Descriptor(e)),
                    Ok(ConfigNext::Read(r)) => self.read_config(r, now),
                    Ok(ConfigNext::Done(c)) => match boot_interface(&c) {
                        None => self.fail(Failure::NoBootInterface),
                        Some(boot) => {
                            self.boot = Some(boot);
                            self.step = Step::SetConfig;
                            self.session.set_configuration(boot.config);
                        }
                    },
                }
            }
            Step::SetProtocol => {
                let Some(b) = self.boot else { return };
                let s = Setup::new(
                    request_type::CLASS | request_type::INTERFACE,
                    SET_IDLE,
                    0,
                    u16::from(b.interface),
                    0,
                );
                self.control(Step::SetIdle, s, now);
            }
            Step::SetIdle => {
                let Some(b) = self.boot else { return };
                self.step = Step::OpenReports;
                self.session.open(
                    REPORTS,
                    b.endpoint,
                    kind::INTERRUPT,
                    b.max_packet.min(REPORT as u16),
                    POLL_MS.min(b.interval.max(1)),
                );
            }
            Step::ClearHalt => {
                self.step = Step::Running;
                for (i, b) in REPORT_BUFS.iter().enumerate() {
                    self.session
                        .submit(REPORTS, 100 + i as u32, 0, *b, REPORT as u32);
                }
            }
            _ => {}
        }
    }

    fn report_done(&mut self, xfer: u32, st: u8, actual: u32, now: u64, mem: &impl Window) {
        let i = (xfer.wrapping_sub(100) as usize).min(1);
        match st {
            status::OK => {
                self.stats.reports += 1;
                let mut r = [0u8; REPORT];
                let n = (actual as usize).min(REPORT);
                mem.read(REPORT_BUFS[i], &mut r[..n]);
                match self.keys.report(&r[..n]) {
                    Change::Keys(events) => {
                        for e in events {
                            self.stats.keys += u64::from(e.pressed);
                            let _ = self.out.push_back(Out::Key(e));
                        }
                    }
                    Change::Rollover => {
                        let _ = self.out.push_back(Out::Rollover);
                    }
                    Change::None | Change::Malformed => {}
                }
                if self.step == Step::Running {
                    self.session
                        .submit(REPORTS, xfer, 0, REPORT_BUFS[i], REPORT as u32);
                }
            }
            status::STALL if self.step == Step::Running => {
                if let Some(b) = self.boot {
                    self.control(Step::ClearHalt, Setup::clear_halt(b.endpoint), now);
                }
            }
            // Unplugged or aborted: nothing more on this pipe.
            _ => {}
        }
    }
}

fn step_id(s: Step) -> u32 {
    match s {
        Step::Configuration(ConfigRead::Header { .. }) => 1,
        Step::Configuration(ConfigRead::Whole { .. }) => 2,
        Step::SetProtocol => 3,
        Step::SetIdle => 4,
        Step::ClearHalt => 5,
        _ => 9,
    }
}

fn step_name(s: Step) -> &'static str {
    match s {
        Step::Configuration(ConfigRead::Header { .. }) => "configuration header",
        Step::Configuration(ConfigRead::Whole { .. }) => "configuration",
        Step::SetProtocol => "SET_PROTOCOL",
        Step::SetIdle => "SET_IDLE",
        Step::ClearHalt => "CLEAR_FEATURE",
        _ => "control transfer",
    }
}

/// The first HID boot keyboard interface (3/1/1, alternate 0) with an
/// interrupt IN endpoint, in the configuration.
fn boot_interface(c: &Config<'_>) -> Option<Boot> {
    for i in c.interfaces() {
        if (i.class, i.subclass, i.protocol, i.alternate) != (3, 1, 1, 0) {
            continue;
        }
        for d in c.within(&i) {
            if let Descriptor::Endpoint(e) = d
                && e.kind == kind::INTERRUPT
                && e.is_in()
            {
                return Some(Boot {
                    config: c.value,
                    interface: i.number,
                    endpoint: e.address,
                    max_packet: e.max_packet,
                    interval: e.interval,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
