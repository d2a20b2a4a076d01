//! What every NIC driver PD (rtl8139, virtio-net, imx-enet) does the same
//! way on its EthernetController and Lifecycle ports, so that a driver's
//! event loop holds only what its device needs: its core speaks in
//! [`Event`]s, [`request`] takes the client's next request, [`Outbox`]
//! queues what the driver has to say until the port has room, and
//! [`Lifecycle`] answers start, stop and unplug. Messages the port's
//! observer refused or that did not decode are skipped here: the port has
//! counted and reported them already.
#![cfg_attr(not(test), no_std)]

use dingo_protocols::ethernet_controller::Msg;
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
