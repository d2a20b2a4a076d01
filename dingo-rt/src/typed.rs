//! Typed, observed ports: the glue between Tingu-generated protocol code
//! and a [`Port`]'s rings.
//!
//! A [`TypedPort`] carries one protocol's messages (`M: tingu_rt::Message`)
//! and checks every one of them with its observer:
//!
//! - **Sending** ([`TypedPort::try_send`], [`TypedPort::send`]): make sure a
//!   slot is free, observe the message as [`Flow::Sent`], and only if the
//!   observer accepts it encode it into the slot and publish it. A refused
//!   message never reaches the ring. Checking for space first matters: the
//!   observer has advanced once it accepts, so the push after it must not
//!   fail for lack of room.
//! - **Receiving** ([`TypedPort::try_recv`], [`TypedPort::recv`]): pop a
//!   private copy of the slot, decode it (a malformed slot is counted and
//!   reported, never trusted), observe it as [`Flow::Received`], and only
//!   then deliver it.
//!
//! Notifications follow the ring's signal suppression: a port notifies the
//! peer only when a push or pop says the peer asked for it
//! ([`NotifyPeer::Yes`]). The async operations queue that notification on
//! the executor; the synchronous ones record it, and the caller collects it
//! with [`TypedPort::take_notify`].
//!
//! # Violations and policy
//!
//! Every problem a port detects (a protocol violation, a timeout state
//! overrun, a malformed slot, a corrupted ring) is counted in
//! [`Counters`] and handed as a [`Report`] to the PD's [`Reporter`]. The
//! PD's [`Policy`] then decides:
//!
//! - [`Policy::Log`]: report and keep going. A refused send returns
//!   [`Fault::Violation`] so the sender knows the message did not go; a bad
//!   incoming message is dropped and receiving continues with the next one.
//! - [`Policy::Fatal`]: report, then call [`Reporter::fatal`]. On seL4 that
//!   hook faults the PD so the monitor sees it and restarts the PD; should
//!   it return (host tests), the operation returns the [`Fault`].
//!
//! A corrupted ring poisons the port; it is reported once and every later
//! operation returns [`Fault::Ring`] under either policy.
//!
//! # Observers
//!
//! A port talks to its observer through [`PortObserver`]. Two adapters
//! cover the generated code:
//!
//! - [`Protocol`] wraps a bare protocol observer (`timer::Observer`, ...)
//!   and knows whether this end is the provider or the (`mirror`) client.
//! - [`ComponentPort`] reaches one port of a component observer
//!   (`ethernet_driver::Observer`, ...) shared by all the PD's ports through
//!   a `RefCell`, so that dependencies between its protocols are enforced
//!   (`eth.txPacket` only while `lc` is running). The PD hands it the
//!   generated `observe_<port>` method and the way to that port's protocol
//!   observer inside the component (for its timeout check).
//!
//! # Timeouts
//!
//! A timeout state overrun must be noticed even when no message arrives.
//! The observers do not expose their next deadline, so a PD checks every
//! port periodically, e.g. every 100 ms, from its event loop, and after
//! every message. An overrun is then reported at most one period late:
//!
//! ```no_run
//! use core::time::Duration;
//! use dingo_protocols::{ethernet_controller as eth, ethernet_driver};
//! use dingo_rt::executor::{Either, Executor, Platform, select};
//! use dingo_rt::typed::{ComponentPort, Fault, TypedPort};
//!
//! type EthPort<'r, 'c> = TypedPort<'r, ComponentPort<'c, ethernet_driver::Observer, eth::Observer>>;
//!
//! async fn serve<P: Platform>(exec: &Executor<'_, P>, port: &mut EthPort<'_, '_>) -> Result<(), Fault> {
//!     loop {
//!         // Bind the outcome first: the select borrows the port until it
//!         // is dropped.
//!         let woke = select(port.recv(exec), exec.sleep(Duration::from_millis(100))).await;
//!         if let Either::First(msg) = woke {
//!             if let eth::Msg::Enable = msg? {
//!                 port.send(exec, eth::Msg::EnableComplete).await?;
//!             }
//!         }
//!         // Reported and counted by the port; under Policy::Log the PD
//!         // keeps serving.
//!         let _ = port.check_timeouts(exec.now_ns());
//!     }
//! }
//! ```
//!
//! Losing the `select` to the sleep loses no message: a receive either
//! completes with a message or has taken none.

use core::cell::RefCell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use tingu_rt::{Flow, Message, Observer, SLOT, Violation, ViolationKind, WireError};

use crate::executor::{Executor, Platform};
use crate::port::{DataArea, Port};
use crate::ring::{Arm, NotifyPeer, RingError};

/// What a [`TypedPort`] checks its messages with.
// The Err type is large on purpose, as in tingu-rt: it carries the history
// without a heap, and it is only built on the violation path.
#[allow(clippy::result_large_err)]
pub trait PortObserver {
    /// The protocol's message type.
    type Msg: Message;
    /// Checks one message this end sent or received and advances the
    /// protocol state. A rejected message leaves the state unchanged.
    fn observe(&mut self, msg: &Self::Msg, flow: Flow, now_ns: u64) -> Result<(), Violation>;
    /// Reports a timeout state overrun of this port (once per overrun).
    fn check_timeouts(&mut self, now_ns: u64) -> Result<(), Violation>;
}

/// A bare protocol observer as one end of a port.
pub struct Protocol<O> {
    observer: O,
    mirror: bool,
}

impl<O: Observer> Protocol<O> {
    /// This end provides the protocol (it receives the `in` messages).
    pub const fn provider(observer: O) -> Self {
        Protocol {
            observer,
            mirror: false,
        }
    }

    /// This end is the `mirror` (client) side: it sends the `in` messages.
    pub const fn client(observer: O) -> Self {
        Protocol {
            observer,
            mirror: true,
        }
    }

    /// The protocol observer, e.g. to read its state.
    pub fn inner(&self) -> &O {
        &self.observer
    }
}

#[allow(clippy::result_large_err)]
impl<O: Observer> PortObserver for Protocol<O> {
    type Msg = O::Msg;

    fn observe(&mut self, msg: &O::Msg, flow: Flow, now_ns: u64) -> Result<(), Violation> {
        self.observer
            .observe(msg, flow.direction(self.mirror), now_ns)
    }

    fn check_timeouts(&mut self, now_ns: u64) -> Result<(), Violation> {
        self.observer.check_timeouts(now_ns)
    }
}

/// A generated component observer's `observe_<port>` method.
#[allow(clippy::result_large_err)]
pub type ObserveFn<C, M> = fn(&mut C, &M, Flow, u64) -> Result<(), Violation>;

/// One port of a component observer `C` that all the PD's ports share;
/// `O` is the protocol observer of that port inside `C`.
///
/// The component observer lives in a `RefCell` owned by the PD; each port
/// borrows it only for the duration of one check, and the PD has one
/// thread, so the borrows never overlap unless the PD holds one across a
/// port operation (a bug, which panics).
pub struct ComponentPort<'c, C, O: Observer> {
    component: &'c RefCell<C>,
    observe: ObserveFn<C, O::Msg>,
    port: fn(&mut C) -> &mut O,
}

impl<'c, C, O: Observer> ComponentPort<'c, C, O> {
    /// For port `eth` of `ethernet_driver`:
    /// `ComponentPort::new(&obs, ethernet_driver::Observer::observe_eth, |c| &mut c.eth)`.
    /// Messages go through `observe`, which enforces the component's
    /// dependencies; timeouts are checked on `port(component)` only, so an
    /// overrun is counted against the port it happened on.
    pub const fn new(
        component: &'c RefCell<C>,
        observe: ObserveFn<C, O::Msg>,
        port: fn(&mut C) -> &mut O,
    ) -> Self {
        ComponentPort {
            component,
            observe,
            port,
        }
    }

    /// The shared component observer.
    pub fn component(&self) -> &'c RefCell<C> {
        self.component
    }
}

#[allow(clippy::result_large_err)]
impl<C, O: Observer> PortObserver for ComponentPort<'_, C, O> {
    type Msg = O::Msg;

    fn observe(&mut self, msg: &O::Msg, flow: Flow, now_ns: u64) -> Result<(), Violation> {
        (self.observe)(&mut self.component.borrow_mut(), msg, flow, now_ns)
    }

    fn check_timeouts(&mut self, now_ns: u64) -> Result<(), Violation> {
        (self.port)(&mut self.component.borrow_mut()).check_timeouts(now_ns)
    }
}

/// What a PD does when one of its ports detects a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Report and keep going; the offending message is dropped.
    Log,
    /// Report, then call [`Reporter::fatal`].
    Fatal,
}

/// A problem a port detected, as handed to the [`Reporter`].
#[derive(Clone, Copy, Debug)]
pub enum Report<'a> {
    /// A message broke the protocol, or a timeout state was overrun. The
    /// violation names the component and port, the protocol state, the
    /// offending message and the last messages on the port.
    Violation(&'a Violation),
    /// The peer wrote a slot that does not decode as a message of the
    /// protocol; it was not delivered.
    Malformed {
        component: &'static str,
        port: &'static str,
        protocol: &'static str,
        error: WireError,
        slot: &'a [u8; SLOT],
    },
    /// The peer corrupted the ring indices; the port is unusable.
    Ring {
        component: &'static str,
        port: &'static str,
        protocol: &'static str,
        error: RingError,
    },
}

/// Bytes of a malformed slot shown in its report: the id and the first
/// fields, enough to recognise what the peer meant.
const SHOWN_BYTES: usize = 16;

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Violation(v) => fmt::Display::fmt(v, f),
            Report::Malformed {
                component,
                port,
                protocol,
                error,
                slot,
            } => {
                write!(
                    f,
                    "component {component} port {port}: {protocol}: malformed slot from the peer dropped: {error}; slot bytes"
                )?;
                for byte in &slot[..SHOWN_BYTES] {
                    write!(f, " {byte:02x}")?;
                }
                write!(f, " ...")
            }
            Report::Ring {
                component,
                port,
                protocol,
                error,
            } => write!(
                f,
                "component {component} port {port}: {protocol}: {error}; port disabled"
            ),
        }
    }
}

/// Where a PD's ports send their reports; one per PD, shared by its ports.
/// Implementations use `Cell`s for any state: the PD has one thread.
pub trait Reporter {
    /// Records or prints one report (on seL4, a line on the debug console).
    fn report(&self, report: &Report<'_>);
    /// Called after [`report`](Self::report) under [`Policy::Fatal`]. On
    /// seL4 it faults the PD, handing it to the monitor, and does not
    /// return; on the host it may record and return.
    fn fatal(&self, report: &Report<'_>);
}

/// A PD's policy and reporter, copied into each of its ports.
#[derive(Clone, Copy)]
pub struct Supervisor<'r> {
    pub policy: Policy,
    pub reporter: &'r dyn Reporter,
}

impl<'r> Supervisor<'r> {
    /// Problems are reported and the PD keeps going.
    pub const fn log(reporter: &'r dyn Reporter) -> Self {
        Supervisor {
            policy: Policy::Log,
            reporter,
        }
    }

    /// Problems are reported, then handed to [`Reporter::fatal`].
    pub const fn fatal(reporter: &'r dyn Reporter) -> Self {
        Supervisor {
            policy: Policy::Fatal,
            reporter,
        }
    }
}

/// Why a port operation did not complete. The details went to the
/// [`Reporter`] already, except for `Full`, which is not a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// [`TypedPort::try_send`]: no free slot; nothing was observed or sent.
    Full,
    /// The observer rejected the message (or a timeout state overran).
    Violation(ViolationKind),
    /// A slot from the peer did not decode.
    Malformed(WireError),
    /// The peer corrupted the ring; the port stays unusable.
    Ring(RingError),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Full => f.write_str("port transmit ring is full"),
            Fault::Violation(kind) => write!(f, "protocol violation: {kind:?}"),
            Fault::Malformed(e) => write!(f, "malformed slot from the peer: {e}"),
            Fault::Ring(e) => write!(f, "port ring: {e}"),
        }
    }
}

impl core::error::Error for Fault {}

/// Per-port statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages accepted by the observer and published.
    pub sent: u64,
    /// Messages decoded, accepted by the observer and delivered.
    pub received: u64,
    /// Slots from the peer that did not decode.
    pub malformed: u64,
    /// Violations reported: refused sends, rejected receives, timeout
    /// state overruns.
    pub violations: u64,
}

/// One end of a Dingo port carrying the messages of one protocol, checked
/// by observer `O`.
pub struct TypedPort<'r, O: PortObserver> {
    port: Port<SLOT>,
    observer: O,
    supervisor: Supervisor<'r>,
    component: &'static str,
    name: &'static str,
    counters: Counters,
    /// A push or pop said the peer waits for a notification that has not
    /// been handed out yet.
    owed_notify: bool,
    ring_reported: bool,
}

impl<'r, O: PortObserver> TypedPort<'r, O> {
    /// Wraps `port`, whose messages `observer` checks; `component` and
    /// `name` label its reports (e.g. `ethernet_driver::NAME`, `"eth"`).
    pub fn new(
        port: Port<SLOT>,
        observer: O,
        supervisor: Supervisor<'r>,
        component: &'static str,
        name: &'static str,
    ) -> Self {
        TypedPort {
            port,
            observer,
            supervisor,
            component,
            name,
            counters: Counters::default(),
            owed_notify: false,
            ring_reported: false,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The bulk data area that messages refer to by offset.
    pub fn data(&self) -> &DataArea {
        &self.port.data
    }

    /// The Microkit channel of the port.
    pub fn channel(&self) -> u8 {
        self.port.channel
    }

    /// Whether the peer must be notified because of operations since the
    /// last call; clears the record. Synchronous users call this after a
    /// batch of [`try_send`](Self::try_send)/[`try_recv`](Self::try_recv)
    /// and notify [`channel`](Self::channel) on `Yes`.
    pub fn take_notify(&mut self) -> NotifyPeer {
        if core::mem::take(&mut self.owed_notify) {
            NotifyPeer::Yes
        } else {
            NotifyPeer::No
        }
    }

    /// Observes and sends `msg` if a slot is free. On `Err` the message was
    /// not sent. Collect the notification with [`take_notify`](Self::take_notify).
    pub fn try_send(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        let in_flight = self.port.tx.len().map_err(|e| self.ring_failed(e))?;
        if in_flight == self.port.tx.capacity() {
            return Err(Fault::Full);
        }
        self.observe(msg, Flow::Sent, now_ns)?;
        let mut slot = [0; SLOT];
        msg.encode(&mut slot);
        // Cannot be Full: this is the only producer and a slot was free.
        let notify = self.port.tx.push(&slot).map_err(|e| self.ring_failed(e))?;
        self.owed_notify |= notify == NotifyPeer::Yes;
        self.counters.sent += 1;
        Ok(())
    }

    /// Takes the next message that decodes and passes the observer, or
    /// `None` when the ring is empty. Under [`Policy::Log`] bad slots on the
    /// way are reported and skipped; under [`Policy::Fatal`] the first one
    /// ends the call with its fault. Collect the notification with
    /// [`take_notify`](Self::take_notify).
    pub fn try_recv(&mut self, now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        loop {
            let popped = self.port.rx.pop().map_err(|e| self.ring_failed(e))?;
            let Some((slot, notify)) = popped else {
                return Ok(None);
            };
            self.owed_notify |= notify == NotifyPeer::Yes;
            if let Some(msg) = self.accept(&slot, now_ns)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Runs the observer's timeout check for this port: an overrun is
    /// counted, reported and handled by the policy.
    pub fn check_timeouts(&mut self, now_ns: u64) -> Result<(), Fault> {
        self.observer
            .check_timeouts(now_ns)
            .map_err(|v| self.violated(v))
    }

    /// Arms the receive ring's "wake me" flag before a synchronous PD
    /// blocks; [`Arm::Retry`] means a message arrived meanwhile.
    pub fn prepare_recv_sleep(&mut self) -> Result<Arm, Fault> {
        self.port
            .rx
            .prepare_sleep()
            .map_err(|e| self.ring_failed(e))
    }

    /// Arms the transmit ring's "wake me" flag after [`Fault::Full`];
    /// [`Arm::Retry`] means a slot was freed meanwhile.
    pub fn prepare_send_sleep(&mut self) -> Result<Arm, Fault> {
        self.port
            .tx
            .prepare_sleep()
            .map_err(|e| self.ring_failed(e))
    }

    /// Observes and sends `msg`, waiting for a free slot if the ring is
    /// full, and notifies the peer if it asked for it.
    pub async fn send<P: Platform, const N: usize>(
        &mut self,
        exec: &Executor<'_, P, N>,
        msg: O::Msg,
    ) -> Result<(), Fault> {
        self.wait_on_ring(
            exec,
            |port, now| match port.try_send(&msg, now) {
                Ok(()) => Ok(Some(())),
                Err(Fault::Full) => Ok(None),
                Err(e) => Err(e),
            },
            Self::prepare_send_sleep,
        )
        .await
    }

    /// Waits for the next message that decodes and passes the observer
    /// (see [`try_recv`](Self::try_recv) for what happens to the others).
    pub async fn recv<P: Platform, const N: usize>(
        &mut self,
        exec: &Executor<'_, P, N>,
    ) -> Result<O::Msg, Fault> {
        self.wait_on_ring(exec, Self::try_recv, Self::prepare_recv_sleep)
            .await
    }

    /// Repeats `attempt` until it yields a value, sleeping on the port's
    /// channel with the ring's sleep protocol (`arm`) in between. The ring
    /// is re-checked on every poll rather than trusting the channel bit,
    /// which another task waiting on the same channel may have consumed.
    async fn wait_on_ring<P: Platform, const N: usize, T>(
        &mut self,
        exec: &Executor<'_, P, N>,
        mut attempt: impl FnMut(&mut Self, u64) -> Result<Option<T>, Fault>,
        arm: fn(&mut Self) -> Result<Arm, Fault>,
    ) -> Result<T, Fault> {
        let channel = self.port.channel;
        poll_fn(|cx| {
            let now = exec.now_ns();
            // Terminates: Retry means the ring changed, so the next attempt
            // consumes a slot (or a freed one), and a wait that completes
            // at once has consumed the latched channel bit.
            let outcome = loop {
                match attempt(self, now) {
                    Ok(Some(value)) => break Ok(value),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                match arm(self) {
                    Err(e) => break Err(e),
                    Ok(Arm::Retry) => {}
                    Ok(Arm::Sleep) => {
                        if pin!(exec.channel(channel)).poll(cx).is_pending() {
                            self.flush_notify(exec);
                            return Poll::Pending;
                        }
                    }
                }
            };
            self.flush_notify(exec);
            Poll::Ready(outcome)
        })
        .await
    }

    fn flush_notify<P: Platform, const N: usize>(&mut self, exec: &Executor<'_, P, N>) {
        if self.take_notify() == NotifyPeer::Yes {
            exec.notify(self.port.channel);
        }
    }

    /// Observes a message. A timeout overrun that the observer notices
    /// first is reported on its own, then the message is judged by itself:
    /// a legal message that arrives late is still delivered under
    /// [`Policy::Log`].
    fn observe(&mut self, msg: &O::Msg, flow: Flow, now_ns: u64) -> Result<(), Fault> {
        let overrun = self.check_timeouts(now_ns);
        if self.supervisor.policy == Policy::Fatal {
            overrun?;
        }
        self.observer
            .observe(msg, flow, now_ns)
            .map_err(|v| self.violated(v))
    }

    /// Decodes and observes a received slot: `Some` to deliver, `None` if
    /// it was dropped under [`Policy::Log`].
    fn accept(&mut self, slot: &[u8; SLOT], now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        let checked = match O::Msg::decode(slot) {
            Ok(msg) => self.observe(&msg, Flow::Received, now_ns).map(|()| msg),
            Err(error) => {
                self.counters.malformed += 1;
                self.escalate(&Report::Malformed {
                    component: self.component,
                    port: self.name,
                    protocol: O::Msg::PROTOCOL,
                    error,
                    slot,
                });
                Err(Fault::Malformed(error))
            }
        };
        match checked {
            Ok(msg) => {
                self.counters.received += 1;
                Ok(Some(msg))
            }
            Err(_) if self.supervisor.policy == Policy::Log => Ok(None),
            Err(fault) => Err(fault),
        }
    }

    fn violated(&mut self, v: Violation) -> Fault {
        // Bare protocol observers do not know where they sit.
        let v = if v.component.is_empty() {
            v.at(self.component, self.name, v.subport)
        } else {
            v
        };
        self.counters.violations += 1;
        self.escalate(&Report::Violation(&v));
        Fault::Violation(v.kind)
    }

    fn ring_failed(&mut self, error: RingError) -> Fault {
        if error != RingError::Full && !core::mem::replace(&mut self.ring_reported, true) {
            self.escalate(&Report::Ring {
                component: self.component,
                port: self.name,
                protocol: O::Msg::PROTOCOL,
                error,
            });
        }
        match error {
            RingError::Full => Fault::Full,
            e => Fault::Ring(e),
        }
    }

    fn escalate(&self, report: &Report<'_>) {
        let Supervisor { policy, reporter } = self.supervisor;
        reporter.report(report);
        if policy == Policy::Fatal {
            reporter.fatal(report);
        }
    }
}

#[cfg(test)]
mod tests;
