//! The client-side shadows of the protocols whose providers are restarted
//! (see `tingu_rt::shadow` for what a shadow is and who drives it):
//! [`Ethernet`] for EthernetController, [`Lifecycle`] for Lifecycle and
//! [`Block`] for BlockDevice.
//! The other protocols have none ([`NoShadow`]): a port of theirs tells
//! its user that the peer restarted.

use heapless::Deque;
use tingu_rt::Flow;
use tingu_rt::shadow::{Incoming, NoShadow, Outgoing, Replay, Shadow, Shadowed, Stats};

use crate::{block_device as blk, ethernet_controller as eth, lifecycle as lc};

impl Shadowed for eth::Msg {
    type Shadow = Ethernet;
}
impl Shadowed for lc::Msg {
    type Shadow = Lifecycle;
}
impl Shadowed for crate::timer::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for crate::power_management::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for crate::usb_bus::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for crate::usb_host_controller::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for crate::usb_pipe::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for blk::Msg {
    type Shadow = Block;
}
impl Shadowed for crate::keyboard::Msg {
    type Shadow = NoShadow;
}
impl Shadowed for crate::usb_root_ports::Msg {
    type Shadow = NoShadow;
}

/// Buffers of each kind (lent, transmitting) one shadow records: the
/// receive buffers a driver may hold (rtl8139-core's `MAX_LENT`) and as
/// many transmits. A client with more outstanding is held back until some
/// are answered.
pub const CAPACITY: usize = 256;

/// A buffer the client handed the driver, and whether the fresh driver
/// still has to be given it.
#[derive(Clone, Copy, Debug)]
struct Buf {
    buf: u32,
    len: u16,
    replay: bool,
}

/// The client's view of the driver, from the messages it has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Disabled,
    Enabling,
    Enabled,
    Disabling,
}

/// Answers the shadow owes the client.
#[derive(Clone, Copy, Debug, Default)]
struct Owed {
    start_queue: bool,
    link_down: bool,
    /// Abort every recorded transmit.
    abort_tx: bool,
    /// Return every recorded receive buffer.
    return_rx: bool,
    disable_complete: bool,
}

/// EthernetController's shadow: whether the client enabled the driver,
/// the receive buffers lent and the transmits outstanding (both in the
/// order given, which is the order a driver answers them in), the MAC
/// address, the link and the queue state the client saw.
///
/// After a restart it replays `enable` (if the client had enabled or was
/// enabling), lends every recorded buffer again, and once the fresh driver
/// says `enableComplete` (absorbed if the client had seen one) resubmits
/// every outstanding transmit: their frames are still in the data area,
/// which the client owns until an answer comes. A `macAddress` and a
/// `linkChange` the client already knows are absorbed; a queue the client
/// saw stopped is started (the fresh driver's queue runs). The client is
/// held back (its sends see a full ring) until the replay is done.
///
/// If the client was disabling, the shadow answers for the dead driver:
/// every transmit aborted ([`eth::RESTARTED`]), every buffer returned,
/// then `disableComplete`. If the fresh driver fails to enable, the client
/// (which believes the driver enabled) gets its transmits aborted and the
/// link down, and later transmits are aborted at once, until another
/// restart.
#[derive(Debug)]
pub struct Ethernet {
    view: View,
    /// The fresh driver could not be enabled (`enableFailed` after a replay).
    lost: bool,
    mac: Option<u64>,
    link: Option<bool>,
    stopped: bool,
    lent: Deque<Buf, CAPACITY>,
    tx: Deque<Buf, CAPACITY>,
    send_enable: bool,
    await_enable: bool,
    /// The fresh driver's first link notice is still to come.
    await_link: bool,
    /// Records with `replay` set.
    lent_due: u16,
    tx_due: u16,
    owed: Owed,
    stats: Stats,
}

impl Default for Ethernet {
    fn default() -> Self {
        Ethernet {
            view: View::Disabled,
            lost: false,
            mac: None,
            link: None,
            stopped: false,
            lent: Deque::new(),
            tx: Deque::new(),
            send_enable: false,
            await_enable: false,
            await_link: false,
            lent_due: 0,
            tx_due: 0,
            owed: Owed::default(),
            stats: Stats::default(),
        }
    }
}

/// Removes the record of `buf`: usually the oldest (drivers answer in
/// order), else wherever it is, keeping the order of the rest. Returns
/// whether it was due for replay.
fn take(q: &mut Deque<Buf, CAPACITY>, buf: u32) -> Option<Buf> {
    if q.front().is_some_and(|b| b.buf == buf) {
        return q.pop_front();
    }
    let mut found = None;
    for _ in 0..q.len() {
        let Some(b) = q.pop_front() else { break };
        if found.is_none() && b.buf == buf {
            found = Some(b);
        } else {
            // Room: one was just taken out.
            let _ = q.push_back(b);
        }
    }
    found
}

fn mark_all(q: &mut Deque<Buf, CAPACITY>) -> u16 {
    for b in q.iter_mut() {
        b.replay = true;
    }
    q.len() as u16
}

impl Ethernet {
    fn replaying(&self) -> bool {
        self.send_enable || self.await_enable || self.lent_due > 0 || self.tx_due > 0
    }

    fn forget_lent(&mut self, buf: u32) {
        if take(&mut self.lent, buf).is_some_and(|b| b.replay) {
            self.lent_due -= 1;
        }
    }

    fn forget_tx(&mut self, buf: u32) {
        if take(&mut self.tx, buf).is_some_and(|b| b.replay) {
            self.tx_due -= 1;
        }
    }

    /// The fresh driver cannot be used: answer for it.
    fn lose(&mut self) {
        self.lost = true;
        self.owed.abort_tx = true;
        for b in self.tx.iter_mut() {
            b.replay = false;
        }
        self.tx_due = 0;
        if self.link == Some(true) {
            self.owed.link_down = true;
            self.link = Some(false);
        }
    }
}

impl Shadow<eth::Msg> for Ethernet {
    const TRANSPARENT: bool = true;

    fn outgoing(&mut self, msg: &eth::Msg) -> Outgoing {
        if self.replaying() {
            return Outgoing::Hold;
        }
        let record = |q: &mut Deque<Buf, CAPACITY>, buf: u32, len: u16| {
            if q.push_back(Buf {
                buf,
                len,
                replay: false,
            })
            .is_ok()
            {
                Outgoing::Answered
            } else {
                Outgoing::Hold
            }
        };
        match *msg {
            eth::Msg::TxPacket { .. } if self.tx.is_full() => Outgoing::Hold,
            eth::Msg::RxBuffer { .. } if self.lent.is_full() => Outgoing::Hold,
            // No driver to take them: transmits are aborted at once, buffers
            // kept for the next instance.
            eth::Msg::TxPacket { buf, len } if self.lost => {
                self.owed.abort_tx = true;
                self.stats.replayed.answered += 1;
                record(&mut self.tx, buf, len)
            }
            eth::Msg::RxBuffer { buf, len } if self.lost => record(&mut self.lent, buf, len),
            eth::Msg::Disable if self.lost => {
                self.lost = false;
                self.view = View::Disabling;
                self.owed.abort_tx = true;
                self.owed.return_rx = true;
                self.owed.disable_complete = true;
                Outgoing::Answered
            }
            _ => Outgoing::Wire,
        }
    }

    fn sent(&mut self, msg: &eth::Msg) {
        match *msg {
            eth::Msg::Enable => self.view = View::Enabling,
            eth::Msg::Disable => self.view = View::Disabling,
            eth::Msg::TxPacket { buf, len } => {
                // outgoing() made sure of the room.
                let _ = self.tx.push_back(Buf {
                    buf,
                    len,
                    replay: false,
                });
            }
            eth::Msg::RxBuffer { buf, len } => {
                let _ = self.lent.push_back(Buf {
                    buf,
                    len,
                    replay: false,
                });
            }
            _ => {}
        }
    }

    fn received(&mut self, msg: &eth::Msg) -> Incoming {
        match *msg {
            eth::Msg::EnableComplete => {
                let again = self.await_enable && self.view == View::Enabled;
                self.await_enable = false;
                self.view = View::Enabled;
                if again {
                    self.stats.absorbed += 1;
                    if self.stopped {
                        self.stopped = false;
                        self.owed.start_queue = true;
                    }
                    return Incoming::Absorb;
                }
            }
            eth::Msg::EnableFailed { .. } => {
                let again = self.await_enable && self.view == View::Enabled;
                self.await_enable = false;
                if again {
                    self.stats.absorbed += 1;
                    self.lose();
                    return Incoming::Absorb;
                }
                self.view = View::Disabled;
            }
            eth::Msg::MacAddress { mac } => {
                if self.await_enable && self.mac.is_some() {
                    self.stats.absorbed += 1;
                    return Incoming::Absorb;
                }
                self.mac = Some(mac);
            }
            eth::Msg::LinkChange { up } => {
                if core::mem::take(&mut self.await_link) && self.link == Some(up) {
                    self.stats.absorbed += 1;
                    return Incoming::Absorb;
                }
                self.link = Some(up);
            }
            eth::Msg::TxPacketDone { buf } | eth::Msg::TxPacketAbort { buf, .. } => {
                self.forget_tx(buf)
            }
            eth::Msg::RxPacket { buf, .. } | eth::Msg::RxBufferReturn { buf } => {
                self.forget_lent(buf)
            }
            eth::Msg::DisableComplete => self.view = View::Disabled,
            eth::Msg::TxStopQueue => self.stopped = true,
            eth::Msg::TxStartQueue => self.stopped = false,
            // Requests travel the other way; the observer refuses them.
            eth::Msg::Enable
            | eth::Msg::Disable
            | eth::Msg::TxPacket { .. }
            | eth::Msg::RxBuffer { .. } => {}
        }
        Incoming::Deliver
    }

    fn peer_restarted(&mut self, _end: &mut dyn FnMut(&eth::Msg, Flow)) -> Replay {
        // The protocol has no message for a driver that vanished; the old
        // session just ends.
        self.stats.restarts += 1;
        let mut r = Replay::default();
        match self.view {
            View::Disabled => {
                self.lent_due = mark_all(&mut self.lent);
                r.state = u32::from(self.lent_due);
            }
            View::Enabling | View::Enabled => {
                self.send_enable = true;
                self.await_enable = true;
                self.await_link = true;
                self.lent_due = mark_all(&mut self.lent);
                r.state = 1 + u32::from(self.lent_due);
                if self.owed.abort_tx {
                    // Lost before: those are being answered already.
                    r.answered = self.tx.len() as u32;
                } else {
                    self.tx_due = mark_all(&mut self.tx);
                    r.resubmitted = u32::from(self.tx_due);
                }
                self.lost = false;
            }
            View::Disabling => {
                self.owed.abort_tx = true;
                self.owed.return_rx = true;
                self.owed.disable_complete = true;
                r.answered = (self.tx.len() + self.lent.len()) as u32;
            }
        }
        self.stats.replayed.state += r.state;
        self.stats.replayed.resubmitted += r.resubmitted;
        self.stats.replayed.answered += r.answered;
        r
    }

    fn replay(&self) -> Option<eth::Msg> {
        if self.send_enable {
            return Some(eth::Msg::Enable);
        }
        if self.lent_due > 0 {
            let b = self.lent.iter().find(|b| b.replay)?;
            return Some(eth::Msg::RxBuffer {
                buf: b.buf,
                len: b.len,
            });
        }
        if self.tx_due > 0 && !self.await_enable {
            let b = self.tx.iter().find(|b| b.replay)?;
            return Some(eth::Msg::TxPacket {
                buf: b.buf,
                len: b.len,
            });
        }
        None
    }

    fn replayed(&mut self) {
        if self.send_enable {
            self.send_enable = false;
        } else if self.lent_due > 0 {
            if let Some(b) = self.lent.iter_mut().find(|b| b.replay) {
                b.replay = false;
                self.lent_due -= 1;
            }
        } else if let Some(b) = self.tx.iter_mut().find(|b| b.replay) {
            b.replay = false;
            self.tx_due -= 1;
        }
    }

    fn local(&mut self) -> Option<eth::Msg> {
        let o = &mut self.owed;
        if o.start_queue {
            o.start_queue = false;
            return Some(eth::Msg::TxStartQueue);
        }
        if o.link_down {
            o.link_down = false;
            return Some(eth::Msg::LinkChange { up: false });
        }
        if o.abort_tx {
            match self.tx.pop_front() {
                Some(b) => {
                    return Some(eth::Msg::TxPacketAbort {
                        buf: b.buf,
                        // The driver restarted while the packet was
                        // outstanding, and its new instance cannot take it.
                        error: eth::RESTARTED,
                    });
                }
                None => o.abort_tx = false,
            }
        }
        if o.return_rx {
            match self.lent.pop_front() {
                Some(b) => return Some(eth::Msg::RxBufferReturn { buf: b.buf }),
                None => o.return_rx = false,
            }
        }
        if o.disable_complete {
            o.disable_complete = false;
            self.view = View::Disabled;
            return Some(eth::Msg::DisableComplete);
        }
        None
    }

    fn pending_local(&self) -> bool {
        let o = &self.owed;
        o.start_queue
            || o.link_down
            || (o.abort_tx && !self.tx.is_empty())
            || (o.return_rx && !self.lent.is_empty())
            || o.disable_complete
    }

    fn holding(&self) -> bool {
        self.replaying()
    }

    fn outstanding(&self) -> u32 {
        self.tx.len() as u32
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

/// The client's view of a driver's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Init,
    Starting,
    Running,
    Failed,
    Stopping,
    Unplugging,
    Stopped,
}

/// Lifecycle's shadow: how far the client took the driver. After a
/// restart the old session ends as the protocol says a vanished driver's
/// does (`unplugged`, then `stopComplete`, observed but not sent); a
/// driver the client had started (or was starting) gets a fresh `start`,
/// and its `startComplete` is absorbed if the client had one already. A
/// client that was stopping the driver (or had unplugged it) gets its
/// `stopComplete` from the shadow, and the fresh driver stays in `init`.
#[derive(Debug)]
pub struct Lifecycle {
    view: Life,
    send_start: bool,
    await_start: bool,
    owe_stop_complete: bool,
    stats: Stats,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            view: Life::Init,
            send_start: false,
            await_start: false,
            owe_stop_complete: false,
            stats: Stats::default(),
        }
    }
}

impl Shadow<lc::Msg> for Lifecycle {
    const TRANSPARENT: bool = true;

    fn outgoing(&mut self, _: &lc::Msg) -> Outgoing {
        if self.send_start || self.await_start {
            Outgoing::Hold
        } else {
            Outgoing::Wire
        }
    }

    fn sent(&mut self, msg: &lc::Msg) {
        self.view = match msg {
            lc::Msg::Start => Life::Starting,
            lc::Msg::Stop => Life::Stopping,
            lc::Msg::Unplugged => Life::Unplugging,
            _ => self.view,
        };
    }

    fn received(&mut self, msg: &lc::Msg) -> Incoming {
        let reply = matches!(msg, lc::Msg::StartComplete | lc::Msg::StartFailed { .. });
        if reply && core::mem::take(&mut self.await_start) && self.view != Life::Starting {
            self.stats.absorbed += 1;
            return Incoming::Absorb;
        }
        match msg {
            lc::Msg::StartComplete => self.view = Life::Running,
            lc::Msg::StartFailed { .. } => self.view = Life::Failed,
            lc::Msg::StopComplete => self.view = Life::Stopped,
            _ => {}
        }
        Incoming::Deliver
    }

    fn peer_restarted(&mut self, end: &mut dyn FnMut(&lc::Msg, Flow)) -> Replay {
        self.stats.restarts += 1;
        let mut r = Replay::default();
        match self.view {
            Life::Init | Life::Stopped => {}
            Life::Starting | Life::Running | Life::Failed => {
                end(&lc::Msg::Unplugged, Flow::Sent);
                end(&lc::Msg::StopComplete, Flow::Received);
                self.send_start = true;
                self.await_start = true;
                if self.view == Life::Starting {
                    r.resubmitted = 1;
                } else {
                    r.state = 1;
                }
            }
            Life::Stopping | Life::Unplugging => {
                end(&lc::Msg::StopComplete, Flow::Received);
                self.owe_stop_complete = true;
                r.answered = 1;
            }
        }
        self.stats.replayed.state += r.state;
        self.stats.replayed.resubmitted += r.resubmitted;
        self.stats.replayed.answered += r.answered;
        r
    }

    fn replay(&self) -> Option<lc::Msg> {
        self.send_start.then_some(lc::Msg::Start)
    }

    fn replayed(&mut self) {
        self.send_start = false;
    }

    fn local(&mut self) -> Option<lc::Msg> {
        if core::mem::take(&mut self.owe_stop_complete) {
            self.view = Life::Stopped;
            return Some(lc::Msg::StopComplete);
        }
        None
    }

    fn pending_local(&self) -> bool {
        self.owe_stop_complete
    }

    fn holding(&self) -> bool {
        self.send_start || self.await_start
    }

    fn outstanding(&self) -> u32 {
        u32::from(matches!(
            self.view,
            Life::Starting | Life::Stopping | Life::Unplugging
        ))
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests;

/// Requests one [`Block`] shadow records; a client with more outstanding
/// is held back until some are answered.
pub const BLOCK_CAPACITY: usize = 64;

/// A request the client has outstanding, and whether the fresh driver
/// still has to be given it.
#[derive(Clone, Copy, Debug)]
struct BlockReq {
    msg: blk::Msg,
    replay: bool,
}

impl BlockReq {
    fn req(&self) -> u32 {
        match self.msg {
            blk::Msg::Read { req, .. } | blk::Msg::Write { req, .. } => req,
            _ => 0,
        }
    }
}

/// BlockDevice's shadow: the disk the client saw (its geometry, from
/// `ready`, until `gone`) and its reads and writes outstanding, in the
/// order sent.
///
/// The protocol has no message for a driver that vanished. After a
/// restart the fresh driver sets its device up again and announces it with
/// `ready`; requests the client sends until then are kept with the
/// outstanding ones (the send succeeds). If the client saw the disk
/// present, that `ready` is absorbed when
/// it gives the geometry the client knows, and every outstanding request is
/// then resubmitted as it was sent: a read's buffer and a write's data are
/// still in the data region, which the client owns until the answer, and a
/// block read or written twice reads or holds the same. A `ready` with
/// another geometry is another disk: the shadow answers the outstanding
/// requests GONE, tells the client `gone`, then hands it the new `ready`.
/// If the client saw no disk, the dead driver owed every outstanding
/// request a GONE (the protocol's answer without a disk), and the shadow
/// gives it at once.
///
/// What it cannot do: a fresh driver that never announces the disk (the
/// device went meanwhile, or its set-up fails) leaves the client held with
/// its requests unanswered, as a driver that hangs would.
#[derive(Debug, Default)]
pub struct Block {
    /// The geometry of the disk the client saw present.
    disk: Option<(u64, u32)>,
    reqs: Deque<BlockReq, BLOCK_CAPACITY>,
    /// Restarted with the disk present: the fresh `ready` is still to come.
    await_ready: bool,
    /// Records with `replay` set.
    due: u16,
    /// Requests in flight at the last restart, to be resubmitted.
    planned: u16,
    /// Answer every recorded request GONE.
    owe_gone_answers: bool,
    owe_gone: bool,
    owe_ready: Option<(u64, u32)>,
    stats: Stats,
}

impl Block {
    fn forget(&mut self, req: u32) {
        let Some(i) = self.reqs.iter().position(|r| r.req() == req) else {
            return;
        };
        // Usually the oldest: a driver answers in order.
        for _ in 0..i {
            if let Some(r) = self.reqs.pop_front() {
                let _ = self.reqs.push_back(r);
            }
        }
        if self.reqs.pop_front().is_some_and(|r| r.replay) {
            self.due -= 1;
        }
        for _ in i..self.reqs.len() {
            if let Some(r) = self.reqs.pop_front() {
                let _ = self.reqs.push_back(r);
            }
        }
    }
}

impl Shadow<blk::Msg> for Block {
    const TRANSPARENT: bool = true;

    fn outgoing(&mut self, msg: &blk::Msg) -> Outgoing {
        let request = matches!(msg, blk::Msg::Read { .. } | blk::Msg::Write { .. });
        if request && self.reqs.is_full() {
            return Outgoing::Hold;
        }
        if self.await_ready && request {
            // Kept for the fresh driver with those outstanding: holding the
            // client instead would stall one that sends before it receives
            // again, and only a receive brings the `ready` that ends this.
            let _ = self.reqs.push_back(BlockReq {
                msg: *msg,
                replay: true,
            });
            self.due += 1;
            return Outgoing::Answered;
        }
        if self.due > 0 {
            // Resubmissions go first.
            return Outgoing::Hold;
        }
        Outgoing::Wire
    }

    fn sent(&mut self, msg: &blk::Msg) {
        if let blk::Msg::Read { .. } | blk::Msg::Write { .. } = msg {
            // outgoing() made sure of the room.
            let _ = self.reqs.push_back(BlockReq {
                msg: *msg,
                replay: false,
            });
        }
    }

    fn received(&mut self, msg: &blk::Msg) -> Incoming {
        match *msg {
            blk::Msg::Ready { blocks, block_size } => {
                if core::mem::take(&mut self.await_ready) {
                    self.stats.absorbed += 1;
                    if self.disk != Some((blocks, block_size)) {
                        // Another disk: nothing outstanding may go to it.
                        for r in self.reqs.iter_mut() {
                            r.replay = false;
                        }
                        self.stats.replayed.resubmitted -= u32::from(self.planned);
                        self.stats.replayed.answered += u32::from(self.planned);
                        self.due = 0;
                        self.owe_gone_answers = true;
                        self.owe_gone = true;
                        self.owe_ready = Some((blocks, block_size));
                    }
                    return Incoming::Absorb;
                }
                self.disk = Some((blocks, block_size));
            }
            blk::Msg::Gone => self.disk = None,
            blk::Msg::Done { req, .. } => self.forget(req),
            // Requests travel the other way; the observer refuses them.
            blk::Msg::Read { .. } | blk::Msg::Write { .. } => {}
        }
        Incoming::Deliver
    }

    fn peer_restarted(&mut self, end: &mut dyn FnMut(&blk::Msg, Flow)) -> Replay {
        self.stats.restarts += 1;
        let mut r = Replay::default();
        if self.disk.is_some() {
            if !self.await_ready {
                // For the old session's observer, the disk went with its
                // driver (a session that never saw it present ends as is).
                end(&blk::Msg::Gone, Flow::Received);
            } else {
                // Restarted again before its ready: planned once already.
                self.stats.replayed.resubmitted -= u32::from(self.planned);
            }
            self.await_ready = true;
            for q in self.reqs.iter_mut() {
                q.replay = true;
            }
            self.due = self.reqs.len() as u16;
            self.planned = self.due;
            r.resubmitted = u32::from(self.due);
        } else {
            self.owe_gone_answers = true;
            r.answered = self.reqs.len() as u32;
        }
        self.stats.replayed.resubmitted += r.resubmitted;
        self.stats.replayed.answered += r.answered;
        r
    }

    fn replay(&self) -> Option<blk::Msg> {
        if self.await_ready || self.due == 0 {
            return None;
        }
        self.reqs.iter().find(|r| r.replay).map(|r| r.msg)
    }

    fn replayed(&mut self) {
        if let Some(r) = self.reqs.iter_mut().find(|r| r.replay) {
            r.replay = false;
            self.due -= 1;
        }
    }

    fn local(&mut self) -> Option<blk::Msg> {
        if self.owe_gone_answers {
            match self.reqs.pop_front() {
                Some(r) => {
                    return Some(blk::Msg::Done {
                        req: r.req(),
                        status: blk::GONE,
                    });
                }
                None => self.owe_gone_answers = false,
            }
        }
        if core::mem::take(&mut self.owe_gone) {
            self.disk = None;
            return Some(blk::Msg::Gone);
        }
        if let Some((blocks, block_size)) = self.owe_ready.take() {
            self.disk = Some((blocks, block_size));
            return Some(blk::Msg::Ready { blocks, block_size });
        }
        None
    }

    fn pending_local(&self) -> bool {
        (self.owe_gone_answers && !self.reqs.is_empty())
            || self.owe_gone
            || self.owe_ready.is_some()
    }

    fn holding(&self) -> bool {
        self.await_ready || self.due > 0
    }

    fn outstanding(&self) -> u32 {
        self.reqs.len() as u32
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
