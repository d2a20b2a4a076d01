//! smoltcp's [`Device`](smoltcp::phy::Device) over an EthernetController
//! port: frames live in the port's data area, split into receive buffers
//! (all lent to the driver while it is enabled) and transmit buffers (a
//! free list).
//!
//! The device never blocks the driver: every `rxPacket` is taken off the
//! port at once into [`EthDevice::handle`]'s queue, whose capacity is the
//! number of receive buffers; smoltcp gets a private copy of the frame, and
//! the buffer goes back to the driver immediately. Transmit tokens are
//! offered only while a transmit buffer is free, the queue is not stopped
//! (txStopQueue) and the outbox has room, so nothing is ever dropped on
//! the way out. Messages for the driver wait in an outbox
//! ([`EthDevice::next_out`]) until the port has a free slot.

use dingo_protocols::ethernet_controller::{self as eth, Msg};
use heapless::{Deque, Vec};
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::inspect::{self, Counters, Verdict};

/// Bytes per buffer in the data area.
pub const BUF_SIZE: usize = 2048;
/// Most receive or transmit buffers.
pub const MAX_BUFS: usize = 128;
/// The largest frame handled, without CRC (1514 plus a VLAN tag).
pub const MAX_FRAME: usize = 1518;
/// The Ethernet MTU smoltcp is told (frame without CRC, no VLAN tag).
pub const MTU: usize = 1514;
/// Messages waiting for the port: one per buffer and a few more.
const OUTBOX: usize = 2 * MAX_BUFS + 8;

/// The port's data area as the device reads and writes it: the bytes are
/// shared with the driver, so they are only ever copied.
pub trait Memory {
    /// Copies `dst.len()` bytes at `offset`; false if outside the area.
    fn read(&self, offset: u32, dst: &mut [u8]) -> bool;
    /// Copies `src` to `offset`; false if outside the area.
    fn write(&self, offset: u32, src: &[u8]) -> bool;
}

/// How the data area is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Receive buffers at `[0, rx * BUF_SIZE)`.
    pub rx: usize,
    /// Transmit buffers after them.
    pub tx: usize,
}

impl Plan {
    /// Half the buffers that fit each way, at most [`MAX_BUFS`] each.
    pub fn for_area(len: usize) -> Self {
        let each = (len / BUF_SIZE / 2).min(MAX_BUFS);
        Plan { rx: each, tx: each }
    }

    fn rx_index(&self, buf: u32) -> Option<usize> {
        let b = buf as usize;
        (b.is_multiple_of(BUF_SIZE) && b / BUF_SIZE < self.rx).then_some(b / BUF_SIZE)
    }

    fn tx_index(&self, buf: u32) -> Option<usize> {
        let b = (buf as usize).checked_sub(self.rx * BUF_SIZE)?;
        (b.is_multiple_of(BUF_SIZE) && b / BUF_SIZE < self.tx).then_some(b / BUF_SIZE)
    }

    fn tx_buf(&self, index: usize) -> u32 {
        ((self.rx + index) * BUF_SIZE) as u32
    }
}

/// What an `enableFailed` or `txPacketAbort` code means, for a person
/// reading the console; a code the protocol does not define is said to be
/// one (the driver is wrong, or newer).
pub fn failure(code: u32) -> &'static str {
    match code {
        eth::BAD_REQUEST => "bad request",
        eth::DEVICE => "the device failed",
        eth::RESET => "the device was reset",
        eth::QUEUE_FULL => "the driver's queue was full",
        eth::GONE => "no device",
        eth::RESTARTED => "the driver restarted",
        _ => "a code EthernetController does not define",
    }
}

/// The link as the driver reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enable {
    Disabled,
    Enabling,
    Enabled,
    Failed(u32),
}

/// The transmit side, borrowed by transmit tokens while a receive token
/// holds the frame.
pub struct TxSide<M: Memory> {
    mem: M,
    plan: Plan,
    free: Vec<u16, MAX_BUFS>,
    busy: [bool; MAX_BUFS],
    out: Deque<Msg, OUTBOX>,
    stopped: bool,
    /// The stack found no way out since its last poll (no transmit buffer,
    /// stopped queue or full outbox): it must be polled once one is free.
    blocked: bool,
    /// Where smoltcp builds each frame before it is copied into a buffer:
    /// kept, so that it is not zeroed whole for every frame.
    frame: [u8; MAX_FRAME],
    pub counters: Counters,
    mac: [u8; 6],
}

impl<M: Memory> TxSide<M> {
    fn can_send(&mut self) -> bool {
        let can = !self.stopped && !self.free.is_empty() && self.out.len() < OUTBOX;
        self.blocked |= !can;
        can
    }

    /// Writes a frame into a free transmit buffer and queues txPacket.
    fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > MAX_FRAME {
            return false;
        }
        let Some((index, buf)) = self.take_buf() else {
            return false;
        };
        let written = self.mem.write(buf, frame);
        self.queue(index, buf, frame.len(), written)
    }

    /// [`send`](Self::send) for the frame smoltcp built in `self.frame`.
    fn send_built(&mut self, len: usize) -> bool {
        let Some((index, buf)) = self.take_buf() else {
            return false;
        };
        let written = self.mem.write(buf, &self.frame[..len]);
        self.queue(index, buf, len, written)
    }

    fn take_buf(&mut self) -> Option<(u16, u32)> {
        if !self.can_send() {
            return None;
        }
        let index = self.free.pop()?;
        Some((index, self.plan.tx_buf(usize::from(index))))
    }

    fn queue(&mut self, index: u16, buf: u32, len: usize, written: bool) -> bool {
        if !written {
            // The plan fits the area, so this cannot happen.
            let _ = self.free.push(index);
            return false;
        }
        self.busy[usize::from(index)] = true;
        self.counters.tx_frames += 1;
        // Room was checked in can_send.
        let _ = self.out.push_back(Msg::TxPacket {
            buf,
            len: len as u16,
        });
        true
    }
}

/// The EthernetController client's device.
pub struct EthDevice<M: Memory> {
    tx: TxSide<M>,
    /// Received frames not yet given to smoltcp.
    ready: Deque<(u32, u16), MAX_BUFS>,
    lent: [bool; MAX_BUFS],
    rx_scratch: [u8; MAX_FRAME],
    /// The length of a checked frame in `rx_scratch` that [`stage`]
    /// took and smoltcp has not yet.
    ///
    /// [`stage`]: Self::stage
    staged: Option<usize>,
    state: Enable,
    /// The link as last reported; `None` until the first linkChange.
    link: Option<bool>,
    /// Whether a driver announced its address while enabling.
    mac_known: bool,
}

impl<M: Memory> EthDevice<M> {
    pub fn new(mem: M, data_len: usize) -> Self {
        let plan = Plan::for_area(data_len);
        let mut free = Vec::new();
        for i in (0..plan.tx).rev() {
            let _ = free.push(i as u16);
        }
        EthDevice {
            tx: TxSide {
                mem,
                plan,
                free,
                busy: [false; MAX_BUFS],
                out: Deque::new(),
                stopped: false,
                blocked: false,
                frame: [0; MAX_FRAME],
                counters: Counters::default(),
                mac: [0; 6],
            },
            ready: Deque::new(),
            lent: [false; MAX_BUFS],
            rx_scratch: [0; MAX_FRAME],
            staged: None,
            state: Enable::Disabled,
            link: None,
            mac_known: false,
        }
    }

    pub fn plan(&self) -> Plan {
        self.tx.plan
    }

    pub fn counters(&self) -> &Counters {
        &self.tx.counters
    }

    pub fn state(&self) -> Enable {
        self.state
    }

    pub fn link_up(&self) -> bool {
        self.link == Some(true)
    }

    /// The link as the driver last reported it, if it did.
    pub fn link(&self) -> Option<bool> {
        self.link
    }

    pub fn stopped(&self) -> bool {
        self.tx.stopped
    }

    /// The address the driver announced (zero until then).
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac_known.then_some(self.tx.mac)
    }

    /// Whether the stack has work: received frames wait for it, or it
    /// was blocked on the way out and a way is free again. Otherwise a
    /// poll would find nothing to do (the stack's own timers aside, see
    /// `Net::poll_delay_ns`).
    pub fn wants_poll(&self) -> bool {
        let tx = &self.tx;
        !self.ready.is_empty()
            || self.staged.is_some()
            || (tx.blocked && !tx.stopped && !tx.free.is_empty() && tx.out.len() < OUTBOX)
    }

    /// Takes the next frame smoltcp would receive, if it can receive one
    /// now, and says where it goes: `Some(port)` for a UDP datagram to
    /// `port`, `None` for anything else. The next receive hands it over.
    pub fn stage(&mut self) -> Option<Option<u16>> {
        if !self.tx.can_send() {
            return None;
        }
        if self.staged.is_none() {
            self.staged = self.next_frame();
        }
        self.staged
            .map(|len| inspect::udp_destination(&self.rx_scratch[..len]))
    }

    /// The stack is about to be polled: whatever blocked it is seen anew.
    pub fn poll_started(&mut self) {
        self.tx.blocked = false;
    }

    /// Transmits in flight (sent and not yet answered).
    pub fn tx_in_flight(&self) -> usize {
        self.tx.plan.tx - self.tx.free.len()
    }

    /// Asks the driver to enable the NIC.
    pub fn enable(&mut self) {
        if self.state == Enable::Disabled && self.tx.out.push_back(Msg::Enable).is_ok() {
            self.state = Enable::Enabling;
        }
    }

    /// The next message for the driver, if any; put it back with
    /// [`unsend`](Self::unsend) when the port is full.
    pub fn next_out(&mut self) -> Option<Msg> {
        self.tx.out.pop_front()
    }

    /// Returns a message [`next_out`](Self::next_out) gave that the port
    /// could not take; it goes out first next time.
    pub fn unsend(&mut self, msg: Msg) {
        // It came from the outbox, so there is room.
        let _ = self.tx.out.push_front(msg);
    }

    /// Whether messages wait for the port.
    pub fn has_out(&self) -> bool {
        !self.tx.out.is_empty()
    }

    /// Takes one message from the driver (already passed by the port's
    /// observer). Buffers the driver names are checked against what this
    /// client lent or sent; anything else is counted, never used.
    pub fn handle(&mut self, msg: Msg) {
        let c = &mut self.tx.counters;
        match msg {
            Msg::MacAddress { mac } => {
                let bytes = mac.to_be_bytes();
                self.tx.mac.copy_from_slice(&bytes[2..]);
                self.mac_known = true;
            }
            Msg::EnableComplete => {
                self.state = Enable::Enabled;
                let plan = self.tx.plan;
                for i in 0..plan.rx {
                    if !self.lent[i] {
                        self.lent[i] = true;
                        let _ = self.tx.out.push_back(Msg::RxBuffer {
                            buf: (i * BUF_SIZE) as u32,
                            len: BUF_SIZE as u16,
                        });
                    }
                }
            }
            Msg::EnableFailed { error } => self.state = Enable::Failed(error),
            Msg::DisableComplete => self.state = Enable::Disabled,
            Msg::RxPacket { buf, len } => match self.tx.plan.rx_index(buf) {
                Some(i) if self.lent[i] && usize::from(len) <= BUF_SIZE => {
                    self.lent[i] = false;
                    // One entry per receive buffer: never full.
                    let _ = self.ready.push_back((buf, len));
                }
                _ => c.rx_bad_buffer += 1,
            },
            Msg::RxBufferReturn { buf } => match self.tx.plan.rx_index(buf) {
                Some(i) if self.lent[i] => self.lent[i] = false,
                _ => c.rx_bad_buffer += 1,
            },
            Msg::TxPacketDone { buf } | Msg::TxPacketAbort { buf, .. } => {
                if matches!(msg, Msg::TxPacketAbort { .. }) {
                    c.tx_aborted += 1;
                }
                match self.tx.plan.tx_index(buf) {
                    Some(i) if self.tx.busy[i] => {
                        self.tx.busy[i] = false;
                        let _ = self.tx.free.push(i as u16);
                    }
                    _ => c.tx_bad_completion += 1,
                }
            }
            Msg::TxStopQueue => self.tx.stopped = true,
            Msg::TxStartQueue => self.tx.stopped = false,
            Msg::LinkChange { up } => self.link = Some(up),
            // Messages towards the driver never arrive here: the port's
            // observer rejects them.
            Msg::Enable | Msg::Disable | Msg::TxPacket { .. } | Msg::RxBuffer { .. } => {}
        }
    }

    /// Takes the next received frame that passes the checks into the
    /// scratch buffer and lends its buffer again; frames for the raw echo
    /// service are answered here. Returns the frame's length.
    fn next_frame(&mut self) -> Option<usize> {
        while let Some((buf, len)) = self.ready.pop_front() {
            let len = usize::from(len).min(MAX_FRAME);
            let frame = &mut self.rx_scratch[..len];
            let read = self.tx.mem.read(buf, frame);
            if let Some(i) = self.tx.plan.rx_index(buf)
                && self.state == Enable::Enabled
            {
                self.lent[i] = true;
                let _ = self.tx.out.push_back(Msg::RxBuffer {
                    buf,
                    len: BUF_SIZE as u16,
                });
            }
            if !read {
                self.tx.counters.rx_bad_buffer += 1;
                continue;
            }
            self.tx.counters.rx_frames += 1;
            match inspect::check(frame, &mut self.tx.counters) {
                Verdict::Stack => return Some(len),
                Verdict::Drop => {}
                Verdict::Echo => {
                    let mac = self.tx.mac;
                    let (dst, rest) = frame.split_at_mut(6);
                    let mut src = [0; 6];
                    src.copy_from_slice(&rest[..6]);
                    rest[..6].copy_from_slice(&mac);
                    dst.copy_from_slice(&src);
                    if self.tx.send(frame) {
                        self.tx.counters.raw_echoed += 1;
                    } else {
                        self.tx.counters.raw_echo_dropped += 1;
                    }
                }
            }
        }
        None
    }
}

pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

pub struct TxToken<'a, M: Memory> {
    tx: &'a mut TxSide<M>,
}

impl<M: Memory> phy::TxToken for TxToken<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp builds frames up to the MTU it was given. The bytes it
        // is handed are zeroed, so that nothing of an earlier frame could
        // go out with this one.
        let len = len.min(MAX_FRAME);
        let frame = &mut self.tx.frame[..len];
        frame.fill(0);
        let r = f(frame);
        inspect::fill_udp_checksum(frame);
        if !self.tx.send_built(len) {
            self.tx.counters.tx_dropped += 1;
        }
        r
    }
}

impl<M: Memory> phy::Device for EthDevice<M> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, M>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_, M>)> {
        if !self.tx.can_send() {
            // smoltcp may answer any frame; wait for a transmit buffer
            // (the frames stay queued, the driver keeps its buffers).
            return None;
        }
        let len = match self.staged.take() {
            Some(len) => len,
            None => self.next_frame()?,
        };
        Some((
            RxToken {
                frame: &self.rx_scratch[..len],
            },
            TxToken { tx: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, M>> {
        (self.state == Enable::Enabled && self.tx.can_send())
            .then_some(TxToken { tx: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(self.tx.plan.tx);
        // inspect::check verifies every IPv4 header and UDP checksum
        // before the stack sees the frame, and TxToken fills in the UDP
        // checksum of what the stack built, with a sum twice as fast as
        // smoltcp's; smoltcp still does TCP and ICMP.
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.udp = Checksum::None;
        caps
    }
}
