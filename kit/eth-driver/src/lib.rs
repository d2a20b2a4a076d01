//! What every NIC driver PD (rtl8139, virtio-net, imx-enet) does the same
//! way on its EthernetController and Lifecycle ports, so that a driver's
//! event loop holds only what its device needs: its core speaks in
//! [`Event`]s, [`request`] takes the client's next request, [`TxBacklog`]
//! keeps the frames to send that its device has no room for yet (and the
//! client's transmit flow control), [`Outbox`] queues what the driver has
//! to say until the port has room, and [`Lifecycle`] answers start, stop
//! and unplug. Messages the port's
//! observer refused or that did not decode are skipped here: the port has
//! counted and reported them already.
#![cfg_attr(not(test), no_std)]

use dingo_protocols::ethernet_controller::{self as eth, Msg};
use dingo_protocols::lifecycle;
use dingo_rt::typed::{Fault, PortObserver, TypedPort};
use heapless::Deque;

#[cfg(test)]
mod tests;

/// A client's request to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Enable,
    Disable,
    /// A receive buffer lent to the driver.
    Lend {
        buf: u32,
        len: u16,
    },
    /// A frame to send.
    Transmit {
        buf: u32,
        len: u16,
    },
}

/// What a NIC driver's core has to tell its client: the driver's own
/// EthernetController messages, and only those, so that a core cannot
/// emit a request by mistake; [`From`] gives the message. The abort
/// reasons are the protocol's constants (`ethernet_controller::RESET` and
/// the rest).
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

impl From<Event> for Msg {
    #[inline]
    fn from(e: Event) -> Msg {
        match e {
            Event::Rx { buf, len } => Msg::RxPacket { buf, len },
            Event::TxDone { buf } => Msg::TxPacketDone { buf },
            Event::TxAbort { buf, error } => Msg::TxPacketAbort { buf, error },
            Event::RxReturn { buf } => Msg::RxBufferReturn { buf },
            Event::Link { up } => Msg::LinkChange { up },
            Event::StopQueue => Msg::TxStopQueue,
            Event::StartQueue => Msg::TxStartQueue,
        }
    }
}

/// Why a driver refused a receive buffer its client lent. The buffer is
/// counted, and answered as the driver's core says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LendError {
    /// Not inside the data area.
    OutOfRange,
    /// Too short for the longest frame the device may write into it.
    TooShort,
    /// Not on the boundary the device needs.
    Misaligned,
    /// More buffers lent than the driver holds (the protocol's bound).
    TooMany,
}

/// Checks a receive buffer the client lent before the driver holds it:
/// `len` bytes at `buf` inside the `area` bytes of the data area, room for
/// `need`, and fewer than `max` held already (`held`). What the device
/// also needs of the address (alignment) the driver checks after.
#[inline]
pub fn check_lend(
    buf: u32,
    len: u16,
    area: usize,
    need: usize,
    held: usize,
    max: usize,
) -> Result<(), LendError> {
    let fits = (buf as usize)
        .checked_add(usize::from(len))
        .is_some_and(|end| end <= area);
    if !fits {
        Err(LendError::OutOfRange)
    } else if usize::from(len) < need {
        Err(LendError::TooShort)
    } else if held >= max {
        Err(LendError::TooMany)
    } else {
        Ok(())
    }
}

/// A frame the client asked the driver to send: `len` bytes at offset
/// `buf` of the data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxJob {
    pub buf: u32,
    pub len: u16,
}

/// Transmit requests a [`TxBacklog`] holds at most.
pub const TX_BACKLOG: usize = 64;
/// Requests waiting at which the client is told txStopQueue: a client
/// that sends a few more after it (messages cross) still finds room.
pub const TX_STOP_AT: usize = TX_BACKLOG - 16;
/// Requests waiting at which a stopped client is told txStartQueue.
pub const TX_START_AT: usize = TX_BACKLOG / 4;

/// Why [`TxBacklog::admit`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Empty, longer than the driver's longest frame, or not inside the
    /// data area.
    BadRequest,
    /// The backlog is full: the client sent on after txStopQueue.
    Full,
}

impl Refusal {
    /// The txPacketAbort reason.
    pub fn error(self) -> u32 {
        match self {
            Refusal::BadRequest => eth::BAD_REQUEST,
            Refusal::Full => eth::QUEUE_FULL,
        }
    }
}

/// The frames a driver took from its client and has not yet given its
/// device, in order, and the client's transmit flow control: txStopQueue
/// while the backlog is nearly full, txStartQueue once it has drained to
/// a quarter ([`notices`](Self::notices)). A frame's bounds are checked
/// once, here, before the driver's core gives the device its address.
pub struct TxBacklog {
    queue: Deque<TxJob, TX_BACKLOG>,
    stopped: bool,
}

impl Default for TxBacklog {
    fn default() -> Self {
        Self::new()
    }
}

impl TxBacklog {
    pub const fn new() -> Self {
        TxBacklog {
            queue: Deque::new(),
            stopped: false,
        }
    }

    /// Queues `len` bytes at `buf`, unless the frame is empty, longer than
    /// `max_frame` or reaches past the `area` bytes of the data area, or
    /// the backlog is full.
    #[inline]
    pub fn admit(
        &mut self,
        buf: u32,
        len: u16,
        area: usize,
        max_frame: usize,
    ) -> Result<(), Refusal> {
        let fits = (buf as usize)
            .checked_add(usize::from(len))
            .is_some_and(|end| end <= area);
        if len == 0 || usize::from(len) > max_frame || !fits {
            return Err(Refusal::BadRequest);
        }
        self.queue
            .push_back(TxJob { buf, len })
            .map_err(|_| Refusal::Full)
    }

    /// The oldest frame, to give the device.
    #[inline]
    pub fn pop(&mut self) -> Option<TxJob> {
        self.queue.pop_front()
    }

    /// Puts back the frame [`pop`](Self::pop) gave, which the device had
    /// no room for after all.
    pub fn unpop(&mut self, job: TxJob) {
        // Room: it was just taken out.
        let _ = self.queue.push_front(job);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Tells the client to stop or start sending, when the backlog's
    /// length has crossed a mark since it was last told.
    #[inline]
    pub fn notices(&mut self, emit: &mut impl FnMut(Event)) {
        if !self.stopped && self.queue.len() >= TX_STOP_AT {
            self.stopped = true;
            emit(Event::StopQueue);
        } else if self.stopped && self.queue.len() <= TX_START_AT {
            self.stopped = false;
            emit(Event::StartQueue);
        }
    }

    /// Aborts every frame waiting with `error` (after the driver aborted
    /// those its device held: the client hears of them in order), and
    /// lets a stopped client send again.
    pub fn abort_all(&mut self, error: u32, emit: &mut impl FnMut(Event)) {
        while let Some(job) = self.queue.pop_front() {
            emit(Event::TxAbort {
                buf: job.buf,
                error,
            });
        }
        if core::mem::take(&mut self.stopped) {
            emit(Event::StartQueue);
        }
    }
}

/// The client's next request on `eth`, or `None` when none waits or the
/// port cannot be read now (a broken ring, another protocol version, a
/// restarted peer: the port says which in its report). Always inlined,
/// as is [`Outbox::send`]: called out of line, the two cost the rtl8139
/// driver about 150 instructions per ping-pong echo (the port's fast
/// paths are inlined into them and no longer into the PD's loop).
#[inline(always)]
pub fn request<O: PortObserver<Msg = Msg>>(
    eth: &mut TypedPort<'_, O>,
    now: u64,
) -> Option<Request> {
    loop {
        match eth.try_recv(now) {
            Ok(Some(Msg::Enable)) => return Some(Request::Enable),
            Ok(Some(Msg::Disable)) => return Some(Request::Disable),
            Ok(Some(Msg::RxBuffer { buf, len })) => return Some(Request::Lend { buf, len }),
            Ok(Some(Msg::TxPacket { buf, len })) => return Some(Request::Transmit { buf, len }),
            // The rest are the driver's own messages, which its observer
            // refuses from the client; refused and undecodable slots were
            // reported by the port. Skipped, so the next request is seen.
            Ok(Some(_)) | Err(Fault::Violation(_) | Fault::Malformed(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// What the driver has to tell the client, in order, until the port has
/// room for it. The loop stops taking requests while fewer than a batch's
/// worth of entries are free ([`Outbox::has_room`]), so nothing is pushed
/// into a full outbox.
pub struct Outbox<const N: usize> {
    queue: Deque<Msg, N>,
}

impl<const N: usize> Default for Outbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outbox<N> {
    pub const fn new() -> Self {
        Outbox {
            queue: Deque::new(),
        }
    }

    /// Queues `msg` behind the rest.
    #[inline]
    pub fn push(&mut self, msg: Msg) {
        // Room is kept (see `has_room`).
        let _ = self.queue.push_back(msg);
    }

    /// Queues `msg` before the rest.
    pub fn push_front(&mut self, msg: Msg) {
        let _ = self.queue.push_front(msg);
    }

    /// Whether one more request and a service round of at most `budget`
    /// receive entries fit: each can add two messages, and enabling three.
    #[inline]
    pub fn has_room(&self, budget: usize) -> bool {
        self.queue.len() + 2 * budget + 8 < N
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The answer to enable once the device is up: its hardware address,
    /// enableComplete, and the link state the client starts from.
    pub fn enabled(&mut self, mac: [u8; 6], link_up: bool) {
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(&mac);
        self.push(Msg::MacAddress {
            mac: u64::from_be_bytes(wide),
        });
        self.push(Msg::EnableComplete);
        self.push(Msg::LinkChange { up: link_up });
    }

    /// Sends what is queued, in order, until the port is full. A message
    /// the observer refuses is a bug of this driver: the port reported
    /// it, and it is dropped so that the rest still goes out.
    #[inline(always)]
    pub fn send<O: PortObserver<Msg = Msg>>(&mut self, eth: &mut TypedPort<'_, O>, now: u64) {
        while let Some(msg) = self.queue.front() {
            if let Err(Fault::Full) = eth.try_send(msg, now) {
                break;
            }
            self.queue.pop_front();
        }
    }
}

/// The driver's Lifecycle answers: start is confirmed at once; stop and
/// unplug once the device is quiet. An answer waits while the port is
/// full, and no request is taken meanwhile.
#[derive(Default)]
pub struct Lifecycle {
    reply: Option<lifecycle::Msg>,
}

impl Lifecycle {
    pub const fn new() -> Self {
        Lifecycle { reply: None }
    }

    /// Takes Lifecycle's requests from `lc` (only when `look`: the PD's
    /// loop knows the port has nothing new otherwise), running `stop` to
    /// quiesce the device for stop and unplug, then sends the answer if
    /// the port has room. Returns what went out: `Some(true)` for
    /// startComplete (the driver may serve its client from now on),
    /// `Some(false)` for stopComplete.
    pub fn serve<O: PortObserver<Msg = lifecycle::Msg>>(
        &mut self,
        lc: &mut TypedPort<'_, O>,
        look: bool,
        now: u64,
        mut stop: impl FnMut(),
    ) -> Option<bool> {
        while look && self.reply.is_none() {
            match lc.try_recv(now) {
                Ok(Some(lifecycle::Msg::Start)) => self.reply = Some(lifecycle::Msg::StartComplete),
                Ok(Some(lifecycle::Msg::Stop | lifecycle::Msg::Unplugged)) => {
                    stop();
                    self.reply = Some(lifecycle::Msg::StopComplete);
                }
                Ok(Some(_)) | Err(Fault::Violation(_) | Fault::Malformed(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let reply = self.reply?;
        lc.try_send(&reply, now).ok()?;
        self.reply = None;
        Some(reply == lifecycle::Msg::StartComplete)
    }
}
