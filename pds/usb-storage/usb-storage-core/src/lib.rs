//! The USB disk driver's core (pds/usb-storage): Bulk-Only Transport
//! (USB Mass Storage Class, Bulk-Only Transport 1.0) carrying SCSI
//! commands (INQUIRY, TEST UNIT READY, REQUEST SENSE, READ CAPACITY(10),
//! READ(10), WRITE(10)), and the BlockDevice protocol towards the disk's
//! user.
//!
//! # Few frames per command
//!
//! Under QEMU the bound is the 1 ms frame, not the CPU: the controller
//! reports finished transfers at a frame boundary. So a command's wrapper
//! (bulk OUT) and its data (bulk IN or OUT) are submitted together, and
//! large requests are moved by large commands (up to 1 MiB, the controller
//! driver's largest transfer), so that a command costs as few frames as
//! the device allows. The status wrapper (bulk IN) follows the data stage
//! instead of being queued with it: QEMU 7.2's usb-storage loses a status
//! read queued behind data that completes asynchronously (the controller
//! model re-walks its lists from inside that completion, the device parks
//! the status read as "command still in flight" and nobody ever answers
//! it), and it STALLs a status read while data OUT is still due. Commands cannot overlap: Bulk-Only has one command
//! in flight, and a second command wrapper queued on bulk OUT would reach
//! the device before the first one's data.
//!
//! # Untrusted answers
//!
//! A status wrapper must have the right signature, the tag of its
//! command, a residue no larger than the transfer and a status of 0, 1 or
//! 2 (BOT §6.3); anything else, a phase error (status 2), a stalled stage
//! that stays stalled after CLEAR_FEATURE, or a command that does not
//! complete within its timeout (a device that NAKs forever) leads to reset
//! recovery (§5.3.4: Bulk-Only Mass Storage Reset, then CLEAR_FEATURE
//! (ENDPOINT_HALT) on both bulk endpoints) and one retry; a command that
//! fails again fails its request (IO_ERROR). A failed command (status 1)
//! is followed by REQUEST SENSE, whose sense key is kept for the report.
//!
//! # Injected garbage
//!
//! For the fault campaign (the PD's `campaign` param) the driver can be
//! made to read garbage from the device once: [`Storage::corrupt_next_status`]
//! overwrites the next status wrapper in the DMA window, after the device
//! wrote it and before the driver judges it, with all ones or noise. That
//! is what a device (or a controller) returning garbage for one transfer
//! looks like to this driver; the corruption stands in for the device, not
//! for the controller's registers (the data travels by DMA). The checks
//! above must notice it, and reset recovery retries the command.
//!
//! # Buffers
//!
//! The driver's DMA window is also the BlockDevice port's data region:
//! the first [`DATA_BASE`] bytes are the driver's own (control transfers,
//! wrappers, small replies), the rest the user's, and a request whose
//! buffer is outside it is answered BAD_REQUEST.
#![cfg_attr(not(test), no_std)]

use core::fmt;

use fault_campaign::Garbage;
use heapless::Deque;
use usb_bus::Wire;
use usb_bus::session::{Device, Event, Session};
use usb_core::desc::{self, Config, ConfigNext, ConfigRead, Descriptor};
use usb_core::notes::Notes;
use usb_core::setup::{Setup, request_type};
use usb_core::{kind, status};

pub use dingo_protocols::block_device::{BAD_REQUEST, GONE, IO_ERROR, OK};

/// The window's layout.
pub const CONTROL_BUF: u32 = 0;
pub const CONTROL_LEN: u16 = 512;
pub const CBW_BUF: u32 = 512;
pub const CSW_BUF: u32 = 576;
pub const REPLY_BUF: u32 = 1024;
pub const REPLY_LEN: u32 = 256;
/// Where the user's buffers begin.
pub const DATA_BASE: u32 = 4096;
/// The largest command's data (the controller driver's largest transfer).
pub const MAX_COMMAND: u32 = 1 << 20;
/// Requests waiting at once (the BlockDevice port's ring holds fewer).
pub const MAX_REQUESTS: usize = 32;
/// A command's stages must all complete within this.
pub const COMMAND_TIMEOUT_NS: u64 = 5_000_000_000;
/// TEST UNIT READY attempts while the disk is becoming ready.
const READY_ATTEMPTS: u8 = 10;

const EP0: u32 = 0;
const BULK_IN: u32 = 1;
const BULK_OUT: u32 = 2;

const CBW_SIGNATURE: u32 = 0x4342_5355;
const CSW_SIGNATURE: u32 = 0x5342_5355;
const CBW_LEN: u32 = 31;
const CSW_LEN: u32 = 13;
/// Bulk-Only Mass Storage Reset.
const BOT_RESET: u8 = 0xff;

/// The driver's DMA window, as the CPU sees it.
pub trait Window {
    fn size(&self) -> u32;
    fn read(&self, offset: u32, dst: &mut [u8]);
    fn write(&self, offset: u32, src: &[u8]);
}

/// What the disk's user gets (the BlockDevice protocol's messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Ready { blocks: u64, block_size: u32 },
    Done { req: u32, status: u8 },
    Gone,
}

/// A request from the disk's user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub req: u32,
    pub block: u64,
    pub count: u32,
    pub buf: u32,
    pub write: bool,
}

/// What the driver tells its PD to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    Disk {
        addr: u8,
        vendor: [u8; 8],
        product: [u8; 16],
        revision: [u8; 4],
        blocks: u64,
        block_size: u32,
    },
    Recovery {
        command: &'static str,
        why: Trouble,
    },
    Failed {
        command: &'static str,
        why: Trouble,
    },
    Gone {
        addr: u8,
    },
}

/// What went wrong with the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    NoInterface,
    Descriptor(desc::DescError),
    Control { step: &'static str, status: u8 },
    Stage { stage: &'static str, status: u8 },
    Signature(u32),
    Tag { want: u32, got: u32 },
    Residue { residue: u32, len: u32 },
    BadStatus(u8),
    PhaseError,
    Timeout,
    NotReady { sense: u8 },
    Capacity,
    CheckCondition { sense: u8, asc: u8 },
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trouble::NoInterface => {
                f.write_str("no mass storage interface (8/6/0x50) with bulk IN and OUT")
            }
            Trouble::Descriptor(e) => write!(f, "{e}"),
            Trouble::Control { step, status: s } => {
                write!(f, "{step}: transfer {}", status::name(s))
            }
            Trouble::Stage { stage, status: s } => {
                write!(f, "{stage} stage: transfer {}", status::name(s))
            }
            Trouble::Signature(s) => {
                write!(
                    f,
                    "status wrapper signature {s:#010x} (expected 0x53425355)"
                )
            }
            Trouble::Tag { want, got } => write!(f, "status wrapper tag {got} for command {want}"),
            Trouble::Residue { residue, len } => {
                write!(
                    f,
                    "status wrapper residue {residue} past the transfer of {len}"
                )
            }
            Trouble::BadStatus(s) => write!(f, "status wrapper status {s} (expected 0, 1 or 2)"),
            Trouble::PhaseError => f.write_str("phase error"),
            Trouble::Timeout => write!(f, "no answer within {} ms", COMMAND_TIMEOUT_NS / 1_000_000),
            Trouble::NotReady { sense } => {
                write!(f, "the disk stays not ready (sense key {sense:#x})")
            }
            Trouble::Capacity => f.write_str("READ CAPACITY gave no usable size"),
            Trouble::CheckCondition { sense, asc } => {
                write!(f, "command failed: sense key {sense:#x}, ASC {asc:#04x}")
            }
        }
    }
}

/// A SCSI command the driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Inquiry,
    TestUnitReady,
    RequestSense,
    ReadCapacity,
    /// One piece of a user's request: blocks [block, block + count).
    Rw {
        write: bool,
        block: u64,
        count: u32,
        buf: u32,
    },
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Inquiry => "INQUIRY",
            Cmd::TestUnitReady => "TEST UNIT READY",
            Cmd::RequestSense => "REQUEST SENSE",
            Cmd::ReadCapacity => "READ CAPACITY(10)",
            Cmd::Rw { write: false, .. } => "READ(10)",
            Cmd::Rw { write: true, .. } => "WRITE(10)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    OpenEp0,
    Configuration(ConfigRead),
    SetConfig,
    OpenBulk,
    /// Commands run.
    Ready,
    /// Reset recovery: the reset, then the two CLEAR_FEATUREs.
    Reset {
        step: u8,
    },
    Failed,
}

/// The command in flight.
#[derive(Clone, Copy, Debug)]
struct Running {
    cmd: Cmd,
    tag: u32,
    len: u32,
    /// Stages still to complete: CBW, data, CSW.
    stages: u8,
    /// A stage failed (its status), to sort out once all are done.
    trouble: Option<Trouble>,
    /// Data actually moved.
    actual: u32,
    /// After a stalled status stage, the status is read again once.
    csw_retry: bool,
    /// A CLEAR_FEATURE(ENDPOINT_HALT) for a stalled stage is in flight.
    clearing: bool,
    /// The data (or status) stage waits for the command wrapper to have
    /// gone (a retry after reset recovery, see `start`).
    after_cbw: bool,
    attempt: u8,
    deadline: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bulk {
    config: u8,
    interface: u8,
    bulk_in: (u8, u16),
    bulk_out: (u8, u16),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub recoveries: u64,
    pub failures: u64,
    pub bad_requests: u64,
    /// READ(10) and WRITE(10) commands that passed.
    pub data_commands: u64,
}

/// The disk driver.
pub struct Storage {
    pub session: Session,
    phase: Phase,
    device: Option<Device>,
    bulk: Option<Bulk>,
    running: Option<Running>,
    /// The user's request being worked on, and how far it got.
    current: Option<(Request, u32)>,
    queue: Deque<Request, MAX_REQUESTS>,
    out: Deque<Out, { MAX_REQUESTS + 8 }>,
    notes: Notes<Note, 8>,
    next_tag: u32,
    ready_left: u8,
    /// The disk: blocks and block size, once READ CAPACITY answered.
    disk: Option<(u64, u32)>,
    announced: bool,
    inquiry: ([u8; 8], [u8; 16], [u8; 4]),
    last_sense: (u8, u8),
    /// The command to run again after reset recovery.
    retry: Option<Cmd>,
    /// Bulk pipes opened so far.
    bulk_open: u8,
    /// Garbage the next status wrapper is overwritten with.
    corrupt: Option<Garbage>,
    pub stats: Stats,
}

impl Default for Storage {
    fn default() -> Self {
        Self::new()
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Storage {
    pub const fn new() -> Self {
        Storage {
            session: Session::new(),
            phase: Phase::Idle,
            device: None,
            bulk: None,
            running: None,
            current: None,
            queue: Deque::new(),
            out: Deque::new(),
            notes: Notes::new(),
            next_tag: 1,
            ready_left: READY_ATTEMPTS,
            disk: None,
            announced: false,
            inquiry: ([0; 8], [0; 16], [0; 4]),
            last_sense: (0, 0),
            retry: None,
            bulk_open: 0,
            corrupt: None,
            stats: Stats {
                commands: 0,
                requests: 0,
                bytes_read: 0,
                bytes_written: 0,
                recoveries: 0,
                failures: 0,
                bad_requests: 0,
                data_commands: 0,
            },
        }
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

    /// Whether another request may be taken from the user.
    pub fn has_room(&self) -> bool {
        !self.queue.is_full() && self.out.len() + 2 < self.out.capacity()
    }

    /// Requests waiting or in progress (a leak check once idle).
    pub fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.current.is_some())
    }

    pub fn next_deadline(&self) -> Option<u64> {
        [self.running.map(|r| r.deadline), self.session.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn note(&mut self, n: Note) {
        self.notes.push(n);
    }

    fn emit(&mut self, o: Out) {
        let _ = self.out.push_back(o);
    }

    /// The next status wrapper the driver judges reads `g` instead of what
    /// the device wrote (see the crate doc: injected garbage).
    pub fn corrupt_next_status(&mut self, g: Garbage) {
        self.corrupt = Some(g);
    }

    // ---- the user's requests ----

    /// A request from the disk's user.
    pub fn request(&mut self, r: Request, now: u64, mem: &impl Window) {
        self.stats.requests += 1;
        let Some((blocks, bs)) = self.disk.filter(|_| self.announced) else {
            return self.emit(Out::Done {
                req: r.req,
                status: GONE,
            });
        };
        let bytes = u64::from(r.count) * u64::from(bs);
        let in_disk = r.count > 0
            && r.block
                .checked_add(u64::from(r.count))
                .is_some_and(|e| e <= blocks);
        let in_window = r.buf >= DATA_BASE && u64::from(r.buf) + bytes <= u64::from(mem.size());
        if !in_disk || !in_window {
            self.stats.bad_requests += 1;
            return self.emit(Out::Done {
                req: r.req,
                status: BAD_REQUEST,
            });
        }
        let _ = self.queue.push_back(r);
        self.next_command(now, mem);
    }

    /// Starts the next piece of work if nothing runs.
    fn next_command(&mut self, now: u64, mem: &impl Window) {
        if self.phase != Phase::Ready || self.running.is_some() {
            return;
        }
        if self.current.is_none() {
            self.current = self.queue.pop_front().map(|r| (r, 0));
        }
        let Some((r, done)) = self.current else {
            return;
        };
        let Some((_, bs)) = self.disk else { return };
        let per = (MAX_COMMAND / bs).min(u32::from(u16::MAX));
        let count = (r.count - done).min(per);
        let cmd = Cmd::Rw {
            write: r.write,
            block: r.block + u64::from(done),
            count,
            buf: r.buf + done * bs,
        };
        self.start(cmd, 1, now, mem);
    }

    fn finish_request(&mut self, st: u8, now: u64, mem: &impl Window) {
        if let Some((r, _)) = self.current.take() {
            self.emit(Out::Done {
                req: r.req,
                status: st,
            });
        }
        self.next_command(now, mem);
    }

    // ---- commands ----

    fn cdb(&self, cmd: Cmd) -> ([u8; 16], u8, u32, bool) {
        let mut c = [0u8; 16];
        let bs = self.disk.map_or(512, |d| d.1);
        match cmd {
            Cmd::TestUnitReady => (c, 6, 0, false),
            Cmd::RequestSense => {
                c[0] = 0x03;
                c[4] = 18;
                (c, 6, 18, true)
            }
            Cmd::Inquiry => {
                c[0] = 0x12;
                c[4] = 36;
                (c, 6, 36, true)
            }
            Cmd::ReadCapacity => {
                c[0] = 0x25;
                (c, 10, 8, true)
            }
            Cmd::Rw {
                write,
                block,
                count,
                ..
            } => {
                c[0] = if write { 0x2a } else { 0x28 };
                c[2..6].copy_from_slice(&(block as u32).to_be_bytes());
                c[7..9].copy_from_slice(&(count as u16).to_be_bytes());
                (c, 10, count * bs, !write)
            }
        }
    }

    fn start(&mut self, cmd: Cmd, attempt: u8, now: u64, mem: &impl Window) {
        if self.bulk.is_none() {
            return;
        }
        let (cb, cb_len, len, dir_in) = self.cdb(cmd);
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1).max(1);
        let mut cbw = [0u8; CBW_LEN as usize];
        cbw[0..4].copy_from_slice(&CBW_SIGNATURE.to_le_bytes());
        cbw[4..8].copy_from_slice(&tag.to_le_bytes());
        cbw[8..12].copy_from_slice(&len.to_le_bytes());
        cbw[12] = if dir_in && len > 0 { 0x80 } else { 0 };
        cbw[14] = cb_len;
        cbw[15..31].copy_from_slice(&cb);
        mem.write(CBW_BUF, &cbw);
        mem.write(CSW_BUF, &[0; CSW_LEN as usize]);
        self.stats.commands += 1;
        self.running = Some(Running {
            cmd,
            tag,
            len,
            stages: 0,
            trouble: None,
            actual: 0,
            csw_retry: false,
            clearing: false,
            // After reset recovery the hub has the controller reset both
            // bulk endpoints' toggles, pausing each for a few frames: the
            // IN endpoint may run again before the OUT one, and QEMU's
            // usb-storage STALLs an IN that comes before the command. So a
            // retry sends its wrapper alone first.
            after_cbw: attempt > 1,
            attempt,
            deadline: now + COMMAND_TIMEOUT_NS,
        });
        self.stage(BULK_OUT, tag << 2, CBW_BUF, CBW_LEN);
        if attempt <= 1 {
            self.after_wrapper(cmd, tag, len, dir_in);
        }
    }

    /// The stages that follow the command wrapper: the data, or (without
    /// data) the status.
    fn after_wrapper(&mut self, cmd: Cmd, tag: u32, len: u32, dir_in: bool) {
        let data_buf = match cmd {
            Cmd::Rw { buf, .. } => buf,
            _ => REPLY_BUF,
        };
        if len > 0 {
            let pipe = if dir_in { BULK_IN } else { BULK_OUT };
            self.stage(pipe, tag << 2 | 1, data_buf, len);
        } else {
            self.read_status(tag);
        }
    }

    /// The status stage. With data, only once the data stage is over: QEMU's
    /// usb-storage parks a status read that arrives while it completes an
    /// asynchronous data packet (the controller retries the queue from
    /// inside that completion) and never answers it; and it STALLs a status
    /// read while data OUT is still due.
    fn read_status(&mut self, tag: u32) {
        self.stage(BULK_IN, tag << 2 | 2, CSW_BUF, CSW_LEN);
    }

    /// Submits one stage of the running command, counting it.
    fn stage(&mut self, pipe: u32, xfer: u32, buf: u32, len: u32) {
        if self.session.submit(pipe, xfer, 0, buf, len)
            && let Some(r) = self.running.as_mut()
        {
            r.stages += 1;
        }
    }

    fn stage_done(&mut self, xfer: u32, st: u8, actual: u32, now: u64, mem: &impl Window) {
        let Some(mut r) = self.running else { return };
        if xfer >> 2 != r.tag {
            return;
        }
        let stage = xfer & 3;
        r.stages = r.stages.saturating_sub(1);
        if st != status::OK {
            let name = ["command", "data", "status"][stage as usize];
            if stage == 2 && st == status::STALL && !r.csw_retry {
                // A stalled status stage: clear the halt, read it again.
                r.csw_retry = true;
                r.clearing = true;
                self.running = Some(r);
                let ep = self.bulk.map_or(0x81, |b| b.bulk_in.0);
                self.session
                    .submit(EP0, 0x100, Setup::clear_halt(ep).to_u64(), 0, 0);
                return;
            }
            if r.trouble.is_none() && !(stage == 1 && st == status::STALL) {
                r.trouble = Some(Trouble::Stage {
                    stage: name,
                    status: st,
                });
            }
            if stage == 1 && st == status::STALL {
                // A stalled data stage: the status wrapper still comes
                // (after CLEAR_FEATURE, which the status stage's stall
                // handling sends if the endpoint stays halted).
                let ep = match r.cmd {
                    Cmd::Rw { write: true, .. } => self.bulk.map_or(0x02, |b| b.bulk_out.0),
                    _ => self.bulk.map_or(0x81, |b| b.bulk_in.0),
                };
                r.clearing = true;
                self.session
                    .submit(EP0, 0x200, Setup::clear_halt(ep).to_u64(), 0, 0);
            }
        } else if stage == 1 {
            r.actual = actual;
        } else if stage == 0 && r.after_cbw {
            r.after_cbw = false;
            self.running = Some(r);
            let (_, _, len, dir_in) = self.cdb(r.cmd);
            self.after_wrapper(r.cmd, r.tag, len, dir_in);
            return;
        }
        self.running = Some(r);
        // The data stage is over (a STALL is cleared first, see above):
        // now the status.
        if stage == 1 && st == status::OK {
            self.read_status(r.tag);
        }
        let Some(r) = self.running else { return };
        if r.stages == 0 && !r.clearing {
            self.command_done(now, mem);
        }
    }

    /// A stalled stage's endpoint is cleared (or the clearing failed): the
    /// status wrapper is read now.
    fn cleared(&mut self, st: u8, now: u64, mem: &impl Window) {
        let Some(mut r) = self.running else { return };
        r.clearing = false;
        if st != status::OK && r.trouble.is_none() {
            r.trouble = Some(Trouble::Control {
                step: "CLEAR_FEATURE",
                status: st,
            });
        }
        self.running = Some(r);
        if r.trouble.is_none() {
            self.read_status(r.tag);
        } else if r.stages == 0 {
            self.command_done(now, mem);
        }
    }

    /// All stages are in: judge the status wrapper.
    fn command_done(&mut self, now: u64, mem: &impl Window) {
        let Some(r) = self.running.take() else { return };
        if !self.session.present() {
            return;
        }
        let verdict = match r.trouble {
            Some(t) => Err(t),
            None => {
                let mut csw = [0u8; CSW_LEN as usize];
                if let Some(g) = self.corrupt.take() {
                    garble(g, &mut csw);
                    mem.write(CSW_BUF, &csw);
                }
                mem.read(CSW_BUF, &mut csw);
                let sig = u32::from_le_bytes([csw[0], csw[1], csw[2], csw[3]]);
                let tag = u32::from_le_bytes([csw[4], csw[5], csw[6], csw[7]]);
                let residue = u32::from_le_bytes([csw[8], csw[9], csw[10], csw[11]]);
                if sig != CSW_SIGNATURE {
                    Err(Trouble::Signature(sig))
                } else if tag != r.tag {
                    Err(Trouble::Tag {
                        want: r.tag,
                        got: tag,
                    })
                } else if residue > r.len {
                    Err(Trouble::Residue {
                        residue,
                        len: r.len,
                    })
                } else {
                    match csw[12] {
                        0 => Ok(true),
                        1 => Ok(false),
                        2 => Err(Trouble::PhaseError),
                        s => Err(Trouble::BadStatus(s)),
                    }
                }
            }
        };
        match verdict {
            Ok(passed) => self.command_result(r, passed, now, mem),
            Err(t) => self.recover(r, t, now, mem),
        }
    }

    fn command_result(&mut self, r: Running, passed: bool, now: u64, mem: &impl Window) {
        match r.cmd {
            Cmd::Inquiry => {
                let mut b = [0u8; 36];
                mem.read(REPLY_BUF, &mut b);
                let mut v = [0u8; 8];
                let mut p = [0u8; 16];
                let mut rev = [0u8; 4];
                if passed {
                    v.copy_from_slice(&b[8..16]);
                    p.copy_from_slice(&b[16..32]);
                    rev.copy_from_slice(&b[32..36]);
                }
                self.inquiry = (printable(v), printable(p), printable(rev));
                self.start(Cmd::TestUnitReady, 1, now, mem);
            }
            Cmd::TestUnitReady => {
                if passed {
                    self.start(Cmd::ReadCapacity, 1, now, mem);
                } else {
                    // Not ready (e.g. unit attention after reset): ask why,
                    // and try again a few times.
                    self.ready_left = self.ready_left.saturating_sub(1);
                    self.start(Cmd::RequestSense, 1, now, mem);
                }
            }
            Cmd::RequestSense => {
                let mut b = [0u8; 18];
                mem.read(REPLY_BUF, &mut b);
                self.last_sense = (b[2] & 0x0f, b[12]);
                if self.disk.is_none() {
                    if self.ready_left == 0 {
                        return self.give_up(Trouble::NotReady {
                            sense: self.last_sense.0,
                        });
                    }
                    self.start(Cmd::TestUnitReady, 1, now, mem);
                } else {
                    let (sense, asc) = self.last_sense;
                    self.stats.failures += 1;
                    self.note(Note::Failed {
                        command: "READ/WRITE",
                        why: Trouble::CheckCondition { sense, asc },
                    });
                    self.finish_request(IO_ERROR, now, mem);
                }
            }
            Cmd::ReadCapacity => {
                let mut b = [0u8; 8];
                mem.read(REPLY_BUF, &mut b);
                let (last, bs) = (be32(&b[0..4]), be32(&b[4..8]));
                if !passed || bs == 0 || bs > 4096 || !bs.is_power_of_two() || last == u32::MAX {
                    return self.give_up(Trouble::Capacity);
                }
                let blocks = u64::from(last) + 1;
                self.disk = Some((blocks, bs));
                self.phase = Phase::Ready;
                if let Some(d) = self.device {
                    let (vendor, product, revision) = self.inquiry;
                    self.note(Note::Disk {
                        addr: d.addr,
                        vendor,
                        product,
                        revision,
                        blocks,
                        block_size: bs,
                    });
                }
                self.announced = true;
                self.emit(Out::Ready {
                    blocks,
                    block_size: bs,
                });
                self.next_command(now, mem);
            }
            Cmd::Rw { write, count, .. } => {
                if !passed {
                    return self.start(Cmd::RequestSense, 1, now, mem);
                }
                let bs = self.disk.map_or(512, |d| d.1);
                let bytes = u64::from(count) * u64::from(bs);
                self.stats.data_commands += 1;
                if write {
                    self.stats.bytes_written += bytes;
                } else {
                    self.stats.bytes_read += bytes;
                }
                if let Some((req, done)) = self.current.as_mut() {
                    *done += count;
                    if *done >= req.count {
                        self.finish_request(OK, now, mem);
                        return;
                    }
                }
                self.next_command(now, mem);
            }
        }
    }

    // ---- recovery ----

    fn recover(&mut self, r: Running, why: Trouble, now: u64, mem: &impl Window) {
        if r.attempt >= 2 {
            self.stats.failures += 1;
            self.note(Note::Failed {
                command: r.cmd.name(),
                why,
            });
            return match r.cmd {
                Cmd::Rw { .. } => self.finish_request(IO_ERROR, now, mem),
                _ => self.give_up(why),
            };
        }
        self.stats.recoveries += 1;
        self.note(Note::Recovery {
            command: r.cmd.name(),
            why,
        });
        // Retry the same command after the reset.
        self.running = None;
        self.retry = Some(r.cmd);
        self.phase = Phase::Reset { step: 0 };
        let iface = self.bulk.map_or(0, |b| b.interface);
        let s = Setup::new(
            request_type::CLASS | request_type::INTERFACE,
            BOT_RESET,
            0,
            u16::from(iface),
            0,
        );
        self.session.control(EP0, 0x300, s, 0, now);
    }

    fn reset_step(&mut self, st: u8, now: u64, mem: &impl Window) {
        let Phase::Reset { step } = self.phase else {
            return;
        };
        if st != status::OK {
            return self.give_up(Trouble::Control {
                step: "reset recovery",
                status: st,
            });
        }
        let Some(b) = self.bulk else { return };
        match step {
            0 | 1 => {
                let ep = if step == 0 { b.bulk_in.0 } else { b.bulk_out.0 };
                self.phase = Phase::Reset { step: step + 1 };
                self.session.control(
                    EP0,
                    0x300 + u32::from(step) + 1,
                    Setup::clear_halt(ep),
                    0,
                    now,
                );
            }
            _ => {
                self.phase = if self.disk.is_some() {
                    Phase::Ready
                } else {
                    Phase::OpenBulk
                };
                if let Some(cmd) = self.retry.take() {
                    self.start(cmd, 2, now, mem);
                }
            }
        }
    }

    fn give_up(&mut self, why: Trouble) {
        self.stats.failures += 1;
        self.note(Note::Failed {
            command: "set-up",
            why,
        });
        self.phase = Phase::Failed;
        self.running = None;
        self.fail_all(IO_ERROR);
        self.session.release();
    }

    /// Answers every request (the current one and the queue).
    fn fail_all(&mut self, st: u8) {
        if let Some((r, _)) = self.current.take() {
            self.emit(Out::Done {
                req: r.req,
                status: st,
            });
        }
        while let Some(r) = self.queue.pop_front() {
            self.emit(Out::Done {
                req: r.req,
                status: st,
            });
        }
        if core::mem::take(&mut self.announced) {
            self.emit(Out::Gone);
        }
        self.disk = None;
    }

    /// Timeouts: a command that does not finish (a device that NAKs
    /// forever) has its pipes aborted, which completes its stages ABORTED
    /// and leads to reset recovery.
    pub fn tick(&mut self, now: u64) {
        if let Some(r) = self.running.as_mut()
            && now >= r.deadline
        {
            r.deadline = u64::MAX;
            if r.trouble.is_none() {
                r.trouble = Some(Trouble::Timeout);
            }
            self.session.abort(BULK_IN);
            self.session.abort(BULK_OUT);
        }
        self.session.tick(now);
    }

    // ---- the hub's messages ----

    fn control(&mut self, phase: Phase, s: Setup, now: u64) {
        self.phase = phase;
        self.session.control(EP0, 0x10, s, CONTROL_BUF, now);
    }

    fn read_config(&mut self, r: ConfigRead, now: u64) {
        self.control(Phase::Configuration(r), r.setup(), now);
    }

    /// A message from the hub.
    pub fn input(&mut self, w: Wire, now: u64, mem: &impl Window) {
        let Some(e) = self.session.input(w) else {
            return;
        };
        match e {
            Event::Device(d) => {
                self.device = Some(d);
                self.bulk = None;
                self.disk = None;
                self.ready_left = READY_ATTEMPTS;
                self.phase = Phase::OpenEp0;
                self.session.open(EP0, 0, kind::CONTROL, 8, 0);
            }
            Event::Opened(EP0) if self.phase == Phase::OpenEp0 => {
                self.read_config(ConfigRead::Header { index: 0 }, now);
            }
            Event::Opened(BULK_IN | BULK_OUT)
                if self.phase == Phase::OpenBulk
                // Both open (the second Opened starts the first command).
                && self.opened_bulk() =>
            {
                self.start(Cmd::Inquiry, 1, now, mem);
            }
            Event::OpenFailed(_) if self.session.present() => self.give_up(Trouble::NoInterface),
            Event::Configured(_) if self.phase == Phase::SetConfig => {
                let Some(b) = self.bulk else { return };
                self.phase = Phase::OpenBulk;
                self.bulk_open = 0;
                // OUT first: its ED comes first on the bulk list, so that
                // within a frame a command wrapper goes to the device before
                // the IN stages behind it are tried (QEMU's usb-storage
                // STALLs an IN that comes before the command, where a real
                // device would NAK).
                self.session
                    .open(BULK_OUT, b.bulk_out.0, kind::BULK, b.bulk_out.1, 0);
                self.session
                    .open(BULK_IN, b.bulk_in.0, kind::BULK, b.bulk_in.1, 0);
            }
            Event::ConfigFailed(_) => self.give_up(Trouble::Control {
                step: "SET_CONFIGURATION",
                status: status::FAILED,
            }),
            Event::Complete {
                pipe: EP0,
                xfer,
                status: st,
                actual,
            } => match xfer {
                0x10 => self.setup_step(st, actual, now, mem),
                // A stalled stage's endpoint is cleared: the status follows.
                0x100 | 0x200 => self.cleared(st, now, mem),
                _ => self.reset_step(st, now, mem),
            },
            Event::Complete {
                xfer,
                status: st,
                actual,
                ..
            } => self.stage_done(xfer, st, actual, now, mem),
            Event::AbortComplete(_) => {}
            Event::Detached | Event::Idle => {
                self.running = None;
                self.phase = Phase::Idle;
                self.fail_all(GONE);
                if let Some(d) = self.device.take() {
                    self.note(Note::Gone { addr: d.addr });
                }
            }
            _ => {}
        }
    }

    fn opened_bulk(&mut self) -> bool {
        self.bulk_open += 1;
        self.bulk_open == 2
    }

    fn setup_step(&mut self, st: u8, actual: u32, now: u64, mem: &impl Window) {
        if st != status::OK {
            if self.session.present() {
                self.give_up(Trouble::Control {
                    step: "configuration descriptor",
                    status: st,
                });
            }
            return;
        }
        let Phase::Configuration(r) = self.phase else {
            return;
        };
        let mut b = [0u8; CONTROL_LEN as usize];
        let n = (actual as usize).min(b.len());
        mem.read(CONTROL_BUF, &mut b[..n]);
        match r.next(&b[..n], CONTROL_LEN) {
            Err(e) => self.give_up(Trouble::Descriptor(e)),
            Ok(ConfigNext::Read(r)) => self.read_config(r, now),
            Ok(ConfigNext::Done(c)) => match bulk_interface(&c) {
                None => self.give_up(Trouble::NoInterface),
                Some(bulk) => {
                    self.bulk = Some(bulk);
                    self.phase = Phase::SetConfig;
                    self.session.set_configuration(bulk.config);
                }
            },
        }
    }
}

/// Fills `b` with the garbage `g` (noise: xorshift32 from the seed).
fn garble(g: Garbage, b: &mut [u8]) {
    match g {
        Garbage::AllOnes => b.fill(0xff),
        Garbage::Noise { seed } => {
            let mut x = seed | 1;
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
        }
    }
}

/// Non-printable bytes become spaces (the strings are the device's).
fn printable<const N: usize>(mut b: [u8; N]) -> [u8; N] {
    for c in b.iter_mut() {
        if !(0x20..0x7f).contains(c) {
            *c = b' ';
        }
    }
    b
}

/// The first Bulk-Only SCSI interface (8/6/0x50, alternate 0) with a bulk
/// IN and a bulk OUT endpoint.
fn bulk_interface(c: &Config<'_>) -> Option<Bulk> {
    for i in c.interfaces() {
        if (i.class, i.subclass, i.protocol, i.alternate) != (8, 6, 0x50, 0) {
            continue;
        }
        let (mut bin, mut bout) = (None, None);
        for d in c.within(&i) {
            if let Descriptor::Endpoint(e) = d
                && e.kind == kind::BULK
            {
                if e.is_in() {
                    bin = bin.or(Some((e.address, e.max_packet)));
                } else {
                    bout = bout.or(Some((e.address, e.max_packet)));
                }
            }
        }
        if let (Some(bulk_in), Some(bulk_out)) = (bin, bout) {
            return Some(Bulk {
                config: c.value,
                interface: i.number,
                bulk_in,
                bulk_out,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests;
