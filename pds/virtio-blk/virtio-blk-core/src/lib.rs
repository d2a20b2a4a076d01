//! The host-testable core of the virtio-blk driver PD: one virtio-blk
//! device driven through virtio-drivers' transport and split virtqueue
//! ([`VirtQueue`]), turned into events for the BlockDevice protocol.
//!
//! A request is a three-descriptor chain: a 16-byte request header and a
//! one-byte status from the driver's own DMA memory, and between them the
//! client's buffer in the port's data region, which the device reads or
//! writes directly (no copy). The crate's `VirtIOBlk` does the same with
//! a queue of 16 and `begin_init`'s unchecked negotiation; this core drives
//! the crate's `VirtQueue` itself so that every used entry passes
//! virtio-kit's [`Guard`] (virtio-blk completes out of order, so the id
//! is looked up among the requests in flight) and the queue is as deep as
//! the device offers.
//!
//! Device values are never trusted: the capacity bounds every request, an
//! unknown status byte is an I/O error (counted), a used length that does
//! not fit the chain is an I/O error, and an impossible used entry resets
//! the device: requests in flight are answered IO_ERROR and the disk is
//! `gone`.

#![cfg_attr(not(test), no_std)]

use core::fmt;

use dma::DmaBuf;
use heapless::Deque;
use virtio_drivers::Hal;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;
use virtio_kit::hal::HalState;
use virtio_kit::used::{self, Guard, NegotiateError, Recorder};

/// Descriptors in the queue (QEMU's default for virtio-blk).
pub const QSIZE: usize = 256;
/// Requests in flight at once (three descriptors each).
pub const SLOTS: usize = 64;
/// virtio-blk's sector: the BlockDevice block size this driver serves.
pub const BLOCK: u32 = 512;
/// Bytes per request slot in the header memory: header, status, padding.
const SLOT_BYTES: usize = 32;
/// Bytes of header memory a driver needs.
pub const HDRS_LEN: usize = SLOTS * SLOT_BYTES;
/// Requests waiting for a slot.
pub const WAITING: usize = 64;
const CONFIG_TRIES: u32 = 8;

/// Feature bits (virtio 1.1, 5.2.3 and 6).
pub mod feature {
    pub const RO: u64 = 1 << 5;
    pub const FLUSH: u64 = 1 << 9;
    pub const EVENT_IDX: u64 = 1 << 29;
    pub const VERSION_1: u64 = 1 << 32;
}

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// BlockDevice's done statuses.
pub mod status {
    pub const OK: u8 = 0;
    pub const IO_ERROR: u8 = 1;
    pub const GONE: u8 = 2;
    pub const BAD_REQUEST: u8 = 3;
}

/// What the driver tells its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Ready { blocks: u64, block_size: u32 },
    Gone,
    Done { req: u32, status: u8 },
}

/// Counters for the tests and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub interrupts: u64,
    pub spurious: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bad_requests: u64,
    /// Requests the device failed (IOERR, UNSUPP).
    pub io_errors: u64,
    /// Status bytes or used lengths no device may write.
    pub bad_status: u64,
    pub device_faults: u64,
    pub notifies: u64,
}

#[derive(Debug)]
pub enum InitError {
    Negotiate(NegotiateError),
    Queue(virtio_drivers::Error),
    Rings,
    HeadersTooSmall { len: usize },
    Config,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Negotiate(e) => write!(f, "{e}"),
            InitError::Queue(e) => write!(f, "setting up the virtqueue: {e}"),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Request {
    req: u32,
    write: bool,
    block: u64,
    count: u32,
    buf: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    r: Request,
    slot: u8,
}

/// One virtio-blk device.
pub struct Disk<H: Hal, T: Transport> {
    t: Recorder<T>,
    q: VirtQueue<H, QSIZE>,
    g: Guard,
    event_idx: bool,
    read_only: bool,
    blocks: u64,
    /// Request headers and status bytes, a slot each.
    hdrs: DmaBuf,
    data: DmaBuf,
    chains: [Option<InFlight>; QSIZE],
    in_flight: u16,
    free: heapless::Vec<u8, SLOTS>,
    waiting: Deque<Request, WAITING>,
    kicked: u16,
    added: u16,
    gone: bool,
    fault: Option<used::Fault>,
    counters: Counters,
}

/// # Safety
/// `vaddr..vaddr + len` lies in a DMA buffer this driver owns or was
/// given for the request (checked by the callers); the crate only takes
/// the address and length.
unsafe fn bytes<'a>(vaddr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: see the function's contract.
    unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, len) }
}

impl<H: Hal, T: Transport> Disk<H, T> {
    /// Takes the device: negotiation, the queue (rings from the HAL whose
    /// state is `hal`), the capacity. `hdrs` ([`HDRS_LEN`] bytes) and
    /// `data` (the BlockDevice data region) must be HAL windows.
    pub fn new(
        transport: T,
        hal: &'static HalState,
        mut hdrs: DmaBuf,
        data: DmaBuf,
    ) -> Result<Self, InitError> {
        if hdrs.len() < HDRS_LEN {
            return Err(InitError::HeadersTooSmall { len: hdrs.len() });
        }
        let mut t = Recorder::new(transport);
        let features =
            used::negotiate(&mut t, feature::RO | feature::EVENT_IDX, feature::VERSION_1)
                .map_err(InitError::Negotiate)?;
        let event_idx = features & feature::EVENT_IDX != 0;
        let q = VirtQueue::new(&mut t, 0, false, event_idx).map_err(InitError::Queue)?;
        let g = Guard::new(&t, 0, hal).ok_or(InitError::Rings)?;
        // The capacity is a u64, read as two u32s: the crate's config reads
        // assert an alignment of at most 4 (it panics on a u64).
        let blocks = used::read_consistent(&t, CONFIG_TRIES, |t| {
            let lo = t.read_config_space::<u32>(0)?;
            let hi = t.read_config_space::<u32>(4)?;
            Ok(u64::from(hi) << 32 | u64::from(lo))
        })
        .ok_or(InitError::Config)?;
        hdrs.zero();
        used::driver_ok(&mut t);
        Ok(Disk {
            t,
            q,
            g,
            event_idx,
            read_only: features & feature::RO != 0,
            blocks,
            hdrs,
            data,
            chains: [None; QSIZE],
            in_flight: 0,
            free: (0..SLOTS as u8).collect(),
            waiting: Deque::new(),
            kicked: 0,
            added: 0,
            gone: false,
            fault: None,
            counters: Counters::default(),
        })
    }

    /// The disk's geometry, for `ready`: 512-byte blocks.
    pub fn ready(&self) -> Event {
        Event::Ready {
            blocks: self.blocks,
            block_size: BLOCK,
        }
    }
    pub fn blocks(&self) -> u64 {
        self.blocks
    }
    pub fn read_only(&self) -> bool {
        self.read_only
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn fault(&self) -> Option<used::Fault> {
        self.fault
    }
    /// Requests in flight or waiting.
    pub fn outstanding(&self) -> usize {
        usize::from(self.in_flight) + self.waiting.len()
    }
    pub fn transport(&mut self) -> &mut Recorder<T> {
        &mut self.t
    }

    /// A read (`write` false) or write of `count` blocks from `block`, into
    /// or from `buf` in the data region; answered by a `Done` event.
    pub fn submit(
        &mut self,
        req: u32,
        write: bool,
        block: u64,
        count: u32,
        buf: u32,
        emit: &mut impl FnMut(Event),
    ) {
        if self.gone {
            emit(Event::Done {
                req,
                status: status::GONE,
            });
            return;
        }
        let len = u64::from(count) * u64::from(BLOCK);
        let in_disk = block
            .checked_add(u64::from(count))
            .is_some_and(|end| end <= self.blocks);
        let in_data = u64::from(buf)
            .checked_add(len)
            .is_some_and(|end| end <= self.data.len() as u64);
        if count == 0 || !in_disk || !in_data || (write && self.read_only) {
            self.counters.bad_requests += 1;
            emit(Event::Done {
                req,
                status: status::BAD_REQUEST,
            });
            return;
        }
        let r = Request {
            req,
            write,
            block,
            count,
            buf,
        };
        if self.waiting.push_back(r).is_err() {
            self.counters.bad_requests += 1;
            emit(Event::Done {
                req,
                status: status::BAD_REQUEST,
            });
            return;
        }
        self.pump();
    }

    fn slot_addr(&self, slot: u8) -> usize {
        self.hdrs.vaddr() + usize::from(slot) * SLOT_BYTES
    }

    /// The chain's three buffers: header, data, status.
    ///
    /// # Safety
    /// As for [`bytes`]: the slot is this driver's, the data range was
    /// checked inside the data region by `submit`.
    unsafe fn parts<'a>(&self, f: &InFlight) -> (&'a mut [u8], &'a mut [u8], &'a mut [u8]) {
        let s = self.slot_addr(f.slot);
        let d = self.data.vaddr() + f.r.buf as usize;
        let len = f.r.count as usize * BLOCK as usize;
        // SAFETY: see the function's contract.
        unsafe { (bytes(s, 16), bytes(d, len), bytes(s + 16, 1)) }
    }

    fn pump(&mut self) {
        while self.fault.is_none() && self.q.available_desc() >= 3 {
            let Some(slot) = self.free.pop() else {
                break;
            };
            let Some(r) = self.waiting.pop_front() else {
                let _ = self.free.push(slot);
                break;
            };
            let off = usize::from(slot) * SLOT_BYTES;
            self.hdrs
                .write::<u32>(off, if r.write { T_OUT } else { T_IN });
            self.hdrs.write::<u32>(off + 4, 0);
            self.hdrs.write::<u64>(off + 8, r.block);
            // The device writes the status; a value it never wrote shows.
            self.hdrs.write::<u8>(off + 16, 0xff);
            dma::barrier::publish();
            let f = InFlight { r, slot };
            // SAFETY: parts' contract holds (slot free, data checked); the
            // driver touches none of the three until the chain is popped.
            let token = unsafe {
                let (h, d, s) = self.parts(&f);
                if r.write {
                    self.q.add(&[h, d], &mut [s])
                } else {
                    self.q.add(&[h], &mut [d, s])
                }
            };
            match token {
                Ok(token) => {
                    self.chains[usize::from(token)] = Some(f);
                    self.in_flight += 1;
                    self.added = self.added.wrapping_add(1);
                }
                Err(_) => {
                    let _ = self.waiting.push_front(r);
                    let _ = self.free.push(slot);
                    break;
                }
            }
        }
    }

    /// Notifies the device of the chains added since the last call, if it
    /// asked to be.
    pub fn kick(&mut self) {
        if self.fault.is_none() && self.g.need_notify(self.event_idx, self.kicked, self.added) {
            self.t.notify(0);
            self.counters.notifies += 1;
        }
        self.kicked = self.added;
    }

    /// Handles an interrupt (the ISR read lowers it) and completes what
    /// the device used.
    pub fn service(&mut self, emit: &mut impl FnMut(Event)) {
        self.counters.interrupts += 1;
        if self.fault.is_some() {
            return;
        }
        if self.t.ack_interrupt().is_empty() {
            self.counters.spurious += 1;
        }
        self.poll(emit);
    }

    /// Completes used chains, feeds waiting requests, notifies.
    pub fn poll(&mut self, emit: &mut impl FnMut(Event)) {
        loop {
            if self.fault.is_some() {
                return;
            }
            let chains = &self.chains;
            let next = self.g.next(self.in_flight, |id| {
                chains[usize::from(id)].map(|f| 1 + if f.r.write { 0 } else { f.r.count * BLOCK })
            });
            let u = match next {
                Ok(Some(u)) => u,
                Ok(None) => break,
                Err(f) => return self.give_up(f, emit),
            };
            let Some(f) = self.chains[usize::from(u.id)] else {
                break;
            };
            // SAFETY: the same buffers as added with this token.
            let popped = unsafe {
                let (h, d, s) = self.parts(&f);
                if f.r.write {
                    self.q.pop_used(u.id, &[h, d], &mut [s])
                } else {
                    self.q.pop_used(u.id, &[h], &mut [d, s])
                }
            };
            if popped.is_err() {
                return self.give_up(used::Fault::Changed { id: u.id }, emit);
            }
            self.g.taken();
            self.chains[usize::from(u.id)] = None;
            self.in_flight -= 1;
            let _ = self.free.push(f.slot);
            dma::barrier::acquire();
            let st = self.hdrs.read::<u8>(usize::from(f.slot) * SLOT_BYTES + 16);
            let status = match st {
                _ if u.overlong || u.len == 0 => {
                    self.counters.bad_status += 1;
                    status::IO_ERROR
                }
                S_OK => {
                    let bytes = u64::from(f.r.count) * u64::from(BLOCK);
                    if f.r.write {
                        self.counters.writes += 1;
                        self.counters.bytes_written += bytes;
                    } else {
                        self.counters.reads += 1;
                        self.counters.bytes_read += bytes;
                    }
                    status::OK
                }
                S_IOERR | S_UNSUPP => {
                    self.counters.io_errors += 1;
                    status::IO_ERROR
                }
                _ => {
                    self.counters.bad_status += 1;
                    status::IO_ERROR
                }
            };
            emit(Event::Done {
                req: f.r.req,
                status,
            });
        }
        self.pump();
        self.kick();
    }

    /// The device wrote what it cannot have: reset it; requests in flight
    /// and waiting are answered IO_ERROR, the disk is gone.
    fn give_up(&mut self, fault: used::Fault, emit: &mut impl FnMut(Event)) {
        self.counters.device_faults += 1;
        self.fault = Some(fault);
        let _ = used::reset(&mut self.t);
        for c in self.chains.iter_mut() {
            if let Some(f) = c.take() {
                emit(Event::Done {
                    req: f.r.req,
                    status: status::IO_ERROR,
                });
            }
        }
        self.in_flight = 0;
        while let Some(r) = self.waiting.pop_front() {
            emit(Event::Done {
                req: r.req,
                status: status::IO_ERROR,
            });
        }
        self.gone = true;
        emit(Event::Gone);
    }
}

#[cfg(test)]
mod tests;
