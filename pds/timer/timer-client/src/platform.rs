//! Sleeping in a client PD's executor: a [`Platform`] whose deadline is a
//! Timer request.
//!
//! dingo-rt's executor asks its platform for one thing about time: "wake me
//! at or after `at_ns`" ([`Platform::set_deadline`]), and re-checks the
//! clock after every [`Platform::wait`]. [`TimerPlatform`] wraps the PD's
//! ordinary platform (which waits on the notification and reads the time
//! page) and turns that deadline into Timer messages on a port of its own:
//!
//! - a new deadline earlier than the request standing for the old one
//!   cancels it (if it is still unanswered) and requests the new one under
//!   a fresh id; a later deadline, or none, leaves the standing request
//!   alone: when it fires, the platform asks for the wanted deadline (if
//!   any) and sleeps on. A timeout armed per operation and dropped or
//!   pushed later when the operation ends (a driver's command timeout)
//!   then costs one request per timeout period instead of a cancel and a
//!   request per operation;
//! - `wait` sends whatever the ring had no room for, drains the answers,
//!   and blocks; it returns when another channel fired, when the `fired`
//!   of the *current* request arrived, or when the clock has passed the
//!   deadline.
//!
//! Ids only grow, so an answer to a replaced request (a `fired` that
//! crossed its cancel, or the `cancelled`) never matches the current id and
//! is dropped: a stale expiry cannot end a newer sleep. Even if it did, the
//! executor compares the deadline with the clock before resuming a task, so
//! no sleep ends early either way.
//!
//! If the timer PD is full (`rejected`), the platform returns from `wait`
//! and asks again on the next one: the sleep degrades to polling the timer
//! PD until a queue slot frees, and still never ends early.

use dingo_protocols::timer::Msg;
use dingo_rt::executor::Platform;
use dingo_rt::ring::{Arm, NotifyPeer};
use dingo_rt::typed::Fault;

use crate::port::TimerPort;

/// The one outstanding request that stands for the executor's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Live {
    id: u32,
    deadline_ns: u64,
}

/// The bookkeeping of [`TimerPlatform`], free of any port: which message
/// brings the timer PD in line with the wanted deadline, and which answers
/// matter.
#[derive(Debug, Default)]
pub struct Sleeper {
    want: Option<u64>,
    live: Option<Live>,
    next_id: u32,
    /// The live request was answered (`fired` or `rejected`) since the last
    /// [`take_due`](Self::take_due).
    due: bool,
}

impl Sleeper {
    pub const fn new() -> Self {
        Sleeper {
            want: None,
            live: None,
            next_id: 0,
            due: false,
        }
    }

    /// The executor's deadline changed.
    pub fn set_deadline(&mut self, at_ns: Option<u64>) {
        self.want = at_ns;
    }

    /// The deadline the executor wants.
    pub fn deadline(&self) -> Option<u64> {
        self.want
    }

    /// The next message to send, if the timer PD does not yet have a
    /// request at or before the wanted deadline: first the cancel of a
    /// request for a later one, then the request for the wanted one.
    pub fn next_message(&self) -> Option<Msg> {
        match (self.live, self.want) {
            (Some(live), Some(want)) if want < live.deadline_ns => {
                Some(Msg::Cancel { id: live.id })
            }
            (None, Some(at)) => Some(Msg::Request {
                id: self.next_id,
                deadline_ns: at,
            }),
            _ => None,
        }
    }

    /// `msg`, returned by [`next_message`](Self::next_message), went out.
    pub fn sent(&mut self, msg: &Msg) {
        match *msg {
            Msg::Cancel { .. } => self.live = None,
            Msg::Request { id, deadline_ns } => {
                self.live = Some(Live { id, deadline_ns });
                self.next_id = id.wrapping_add(1);
            }
            _ => {}
        }
    }

    /// An answer arrived. Returns whether it answered the live request;
    /// answers to replaced requests are stale and change nothing.
    pub fn answer(&mut self, msg: &Msg) -> bool {
        let (Msg::Fired { id } | Msg::Rejected { id, .. } | Msg::Cancelled { id }) = *msg else {
            return false;
        };
        if self.live.is_none_or(|live| live.id != id) {
            return false;
        }
        // Only this platform cancels, and it forgets the id when it does,
        // so a live id's answer is `fired` or `rejected`: either way the
        // executor must look at the clock (and, if rejected, ask again).
        self.live = None;
        self.due = true;
        true
    }

    /// Whether the live request was answered since the last call; clears it.
    pub fn take_due(&mut self) -> bool {
        core::mem::take(&mut self.due)
    }
}

/// A client PD's platform: `inner` for notifications, IRQs and the clock,
/// plus a Timer port for deadlines. See the module doc.
pub struct TimerPlatform<'r, P: Platform> {
    inner: P,
    port: TimerPort<'r>,
    sleeper: Sleeper,
    /// The last send found the ring full: wait for the timer PD to make room.
    blocked: bool,
}

impl<'r, P: Platform> TimerPlatform<'r, P> {
    /// Wraps `inner`; `port` is the client end of a Timer port used by
    /// nothing else.
    pub fn new(inner: P, port: TimerPort<'r>) -> Self {
        TimerPlatform {
            inner,
            port,
            sleeper: Sleeper::new(),
            blocked: false,
        }
    }

    /// The Timer port, e.g. for its counters.
    pub fn port(&self) -> &TimerPort<'r> {
        &self.port
    }

    fn channel_bit(&self) -> u64 {
        1 << self.port.channel()
    }

    /// Sends what the sleeper needs and takes every answer waiting.
    fn exchange(&mut self) {
        let now = self.inner.now_ns();
        self.blocked = false;
        while let Some(msg) = self.sleeper.next_message() {
            match self.port.try_send(&msg, now) {
                Ok(()) => self.sleeper.sent(&msg),
                Err(Fault::Full) => {
                    self.blocked = true;
                    break;
                }
                Err(f) => panic!("timer port: sending {msg}: {f}"),
            }
        }
        loop {
            match self.port.try_recv(now) {
                Ok(Some(msg)) => {
                    self.sleeper.answer(&msg);
                }
                Ok(None) => break,
                Err(f) => panic!("timer port: receiving: {f}"),
            }
        }
        if self.port.take_notify() == NotifyPeer::Yes {
            self.inner.notify(self.port.channel());
        }
    }

    /// Arms the rings' wake-me flags; `true` means something changed
    /// meanwhile and blocking now could miss it.
    fn arm(&mut self) -> bool {
        let rx = self.port.prepare_recv_sleep();
        let tx = if self.blocked {
            self.port.prepare_send_sleep()
        } else {
            Ok(Arm::Sleep)
        };
        match (rx, tx) {
            (Ok(Arm::Sleep), Ok(Arm::Sleep)) => false,
            (Ok(_), Ok(_)) => true,
            (Err(f), _) | (_, Err(f)) => panic!("timer port: {f}"),
        }
    }

    fn deadline_passed(&self) -> bool {
        self.sleeper
            .deadline()
            .is_some_and(|at| self.inner.now_ns() >= at)
    }
}

impl<P: Platform> Platform for TimerPlatform<'_, P> {
    fn wait(&mut self) -> u64 {
        let timer = self.channel_bit();
        loop {
            self.exchange();
            // An answer to a request standing for an earlier deadline than
            // the one wanted now (or for none) is no reason to return: the
            // exchange above asked for the wanted one.
            let due = self.sleeper.take_due();
            if self.deadline_passed() {
                return 0;
            }
            if due {
                continue;
            }
            if self.arm() {
                continue;
            }
            let others = self.inner.wait() & !timer;
            if others != 0 {
                // Answers that came with it are taken on the next wait.
                return others;
            }
        }
    }

    fn notify(&mut self, channel: u8) {
        self.inner.notify(channel);
    }

    fn irq_ack(&mut self, channel: u8) {
        self.inner.irq_ack(channel);
    }

    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }

    fn set_deadline(&mut self, at_ns: Option<u64>) {
        self.sleeper.set_deadline(at_ns);
        // Tell the timer PD now rather than at the next wait, so that a
        // cancelled sleep frees its queue slot even if the PD stays busy.
        self.exchange();
    }
}

#[cfg(test)]
mod tests;
