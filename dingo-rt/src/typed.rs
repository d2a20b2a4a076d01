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
//!   (`eth.txPacket` only while `lc` is running). The PD names the port by
//!   its generated type (`ethernet_driver::ports::Eth`), which also says
//!   which side of the protocol the component is on.
//!
//! # Versions
//!
//! Each end publishes the hash of its protocol ([`Message::HASH`], generated
//! from the protocol's normalised definition) in the header of the ring it
//! transmits on, when the port is created, and checks the peer's on every
//! operation until it has seen it. Attach order does not matter: a peer that
//! has not attached yet has published nothing, and that is fine until a
//! message arrives, because a peer publishes its hash before its first
//! message. A different hash, or a message from a peer that published none,
//! means the two PDs were built from different versions of the protocol:
//! the port reports it once ([`Report::Version`], naming the protocol, both
//! hashes, the component and the port) and refuses every later operation
//! with [`Fault::Version`]. The peer's hash is only compared, never trusted
//! for anything else.
//!
//! # Restarts
//!
//! The monitor restarts a PD that fails, with its shared regions (port
//! regions among them) kept and everything else fresh. Each port end runs
//! a session handshake in the rings' headers ([`Session`]): a restarted
//! end uses its rings only once its peer acknowledged the new
//! incarnation, and the peer notices the new incarnation on its next
//! operation (one load). The surviving end then:
//!
//! 1. on a client end with a transparent shadow
//!    (`tingu_rt::shadow::Shadowed`), first receives what the old instance
//!    still sent, as usual;
//! 2. lets the shadow end the old session in the protocol's terms (for
//!    Lifecycle: `unplugged`, `stopComplete`), restarts the observer
//!    ([`PortObserver::restart`]), discards what the old instance never
//!    took and resets indices it corrupted, acknowledges, wakes the peer,
//!    and reports [`Report::PeerRestarted`];
//! 3. sends the shadow's replay through the observer, holds the client's
//!    own sends back ([`Fault::Full`]) until the replay is done, keeps the
//!    fresh instance's repeated replies from the client, and hands it the
//!    answers the shadow gives itself (aborts for requests that cannot be
//!    resubmitted).
//!
//! The client's code sees none of it. An end without a transparent shadow
//! (a provider, or a protocol without one) gets [`Fault::PeerRestarted`]
//! once, from the operation that noticed: its outstanding business with
//! the old instance is void.
//!
//! # Timeouts
//!
//! A timeout state overrun must be noticed even when no message arrives.
//! Observers know when the current timeout state overruns
//! ([`TypedPort::deadline_ns`]); [`TypedPort::recv`] and
//! [`TypedPort::send`] wait for that deadline as well as for the ring, so
//! an overrun is reported the moment it happens, with no polling:
//!
//! ```no_run
//! use dingo_protocols::{ethernet_controller as eth, ethernet_driver};
//! use dingo_rt::executor::{Executor, Platform};
//! use dingo_rt::typed::{ComponentPort, Fault, TypedPort};
//!
//! type EthPort<'r, 'c> = TypedPort<'r, ComponentPort<'c, ethernet_driver::ports::Eth>>;
//!
//! async fn serve<P: Platform>(exec: &Executor<'_, P>, port: &mut EthPort<'_, '_>) -> Result<(), Fault> {
//!     loop {
//!         // Under Policy::Log an overrun while waiting is reported and
//!         // counted, and the wait goes on; under Policy::Fatal it ends it.
//!         if let eth::Msg::Enable = port.recv(exec).await? {
//!             port.send(exec, eth::Msg::EnableComplete).await?;
//!         }
//!     }
//! }
//! ```
//!
//! A synchronous PD (a Microkit `Handler` event loop) asks
//! [`TypedPort::deadline_ns`] when to wake and then calls
//! [`TypedPort::check_timeouts`].

use core::cell::RefCell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use tingu_rt::shadow::{Incoming, Outgoing, Replay, Shadow, Shadowed};
use tingu_rt::{Flow, Message, Observer, SLOT, Violation, ViolationKind, WireError, offending};

use crate::executor::{Executor, Platform};
use crate::port::{DataArea, Port, Session, SessionEvent};
use crate::ring::{Arm, NotifyPeer, RingError};

/// What a [`TypedPort`] checks its messages with. The accepting path
/// returns nothing but `Ok`; a violation's report is built only when there
/// is one, and handed to `show` while the observer's state it borrows is
/// still at hand.
pub trait PortObserver {
    /// The protocol's message type, with its client-side shadow.
    type Msg: Shadowed;
    /// Checks one message this end sent or received and advances the
    /// protocol state. A rejected message leaves the state unchanged; a
    /// timeout overrun noticed first is reported instead, and the message
    /// is not judged.
    fn observe(
        &mut self,
        msg: &Self::Msg,
        flow: Flow,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind>;
    /// Reports a timeout state overrun of this port (once per overrun).
    fn check_timeouts(
        &mut self,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind>;
    /// When the port's current timeout state overruns, if it is in one.
    fn deadline_ns(&self) -> Option<u64>;
    /// Starts a new session, because the peer restarted: the protocol's
    /// initial state at `now_ns`. Observers that keep no state need not.
    fn restart(&mut self, _now_ns: u64) {}
    /// Whether this end is the protocol's client (`mirror`) side, which
    /// keeps the protocol's shadow.
    fn is_client(&self) -> bool {
        false
    }
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

impl<O: Observer> PortObserver for Protocol<O>
where
    O::Msg: Shadowed,
{
    type Msg = O::Msg;

    // Always inlined with the generated `check` and `step`: any one of
    // them as a call costs more than the three inline (see tingu's rust.rs).
    #[inline(always)]
    fn observe(
        &mut self,
        msg: &O::Msg,
        flow: Flow,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        let dir = flow.direction(self.mirror);
        self.observer.check(msg, dir, now_ns).inspect_err(|&kind| {
            show(&self.observer.violation(kind, offending(kind, msg, dir)));
        })
    }

    #[inline]
    fn check_timeouts(
        &mut self,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        self.observer
            .check_deadline(now_ns)
            .inspect_err(|&kind| show(&self.observer.violation(kind, None)))
    }

    fn deadline_ns(&self) -> Option<u64> {
        self.observer.deadline_ns()
    }

    fn restart(&mut self, now_ns: u64) {
        self.observer.restart(now_ns);
    }

    fn is_client(&self) -> bool {
        self.mirror
    }
}

/// One port `P` of a component observer that all the PD's ports share:
/// `P` is the port's type in the generated component module
/// (`<component>::ports::<Port>`), which says how the component judges its
/// messages and, from the spec, which side of the protocol the component
/// is on.
///
/// The component observer lives in a `RefCell` owned by the PD; each port
/// borrows it only for the duration of one check, and the PD has one
/// thread, so the borrows never overlap unless the PD holds one across a
/// port operation (a bug, which panics).
pub struct ComponentPort<'c, P: tingu_rt::Port> {
    component: &'c RefCell<P::Component>,
    _port: core::marker::PhantomData<P>,
}

impl<'c, P: tingu_rt::Port> ComponentPort<'c, P> {
    /// For port `eth` of `ethernet_driver`:
    /// `ComponentPort::new(&obs, ethernet_driver::ports::Eth)`. Messages
    /// are judged by the whole component, which enforces its dependencies;
    /// timeouts are checked on the port's own protocol observer, so an
    /// overrun is counted against the port it happened on.
    pub const fn new(component: &'c RefCell<P::Component>, _port: P) -> Self {
        ComponentPort {
            component,
            _port: core::marker::PhantomData,
        }
    }

    /// The shared component observer.
    pub fn component(&self) -> &'c RefCell<P::Component> {
        self.component
    }
}

impl<P: tingu_rt::Port> PortObserver for ComponentPort<'_, P>
where
    <P::Observer as Observer>::Msg: Shadowed,
{
    type Msg = <P::Observer as Observer>::Msg;

    #[inline(always)]
    fn observe(
        &mut self,
        msg: &Self::Msg,
        flow: Flow,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        let mut component = self.component.borrow_mut();
        P::check(&mut component, msg, flow, now_ns).inspect_err(|&kind| {
            show(&P::report(&component, kind, msg, flow));
        })
    }

    fn check_timeouts(
        &mut self,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        let mut component = self.component.borrow_mut();
        P::observer(&mut component)
            .check_timeouts(now_ns)
            .map_err(|v| {
                show(&v);
                v.kind
            })
    }

    fn deadline_ns(&self) -> Option<u64> {
        P::observer(&mut self.component.borrow_mut()).deadline_ns()
    }

    fn restart(&mut self, now_ns: u64) {
        P::observer(&mut self.component.borrow_mut()).restart(now_ns);
    }

    fn is_client(&self) -> bool {
        P::MIRROR
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
    Violation(&'a Violation<'a>),
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
    /// The peer was built from a different version of the protocol (or
    /// sent messages without saying which); the port is unusable.
    Version {
        component: &'static str,
        port: &'static str,
        protocol: &'static str,
        /// This end's protocol hash.
        ours: u64,
        /// The peer's, 0 if it published none.
        theirs: u64,
    },
    /// Not a problem: the peer is a new instance (the monitor restarted
    /// it), and this end started a new session with it: what the old one
    /// left in the rings was discarded, and the shadow (on a client end)
    /// replays what the new one needs.
    PeerRestarted {
        component: &'static str,
        port: &'static str,
        protocol: &'static str,
        /// The peer's new incarnation (2 for its first restart).
        incarnation: u32,
        /// The shadow's replay; all zero on an end without one.
        replay: Replay,
        /// Requests outstanding with the old instance when it vanished.
        outstanding: u32,
        /// Messages discarded from the rings: this end's that the old
        /// instance never took, and the old instance's this end never read.
        discarded: (u32, u32),
        /// Whether the shadow hides the restart from this end's code.
        transparent: bool,
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
            Report::Version {
                component,
                port,
                protocol,
                ours,
                theirs: 0,
            } => write!(
                f,
                "component {component} port {port}: the peer sent messages without publishing its protocol hash (this side speaks protocol {protocol}, hash {ours:#018x}); port disabled"
            ),
            Report::Version {
                component,
                port,
                protocol,
                ours,
                theirs,
            } => write!(
                f,
                "component {component} port {port}: built from different versions of protocol {protocol}: this side has hash {ours:#018x}, the peer {theirs:#018x}; port disabled"
            ),
            Report::PeerRestarted {
                component,
                port,
                protocol,
                incarnation,
                replay,
                outstanding,
                discarded,
                transparent,
            } => {
                write!(
                    f,
                    "component {component} port {port}: {protocol}: the peer restarted (incarnation {incarnation}); new session, {} of ours and {} of its messages discarded",
                    discarded.0, discarded.1
                )?;
                if *transparent {
                    write!(
                        f,
                        "; shadow: {outstanding} requests outstanding, replaying {} for the state, resubmitting {}, answering {}",
                        replay.state, replay.resubmitted, replay.answered
                    )
                } else {
                    write!(f, "; no shadow: this end's code is told")
                }
            }
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

    fn escalate(self, report: &Report<'_>) {
        self.reporter.report(report);
        if self.policy == Policy::Fatal {
            self.reporter.fatal(report);
        }
    }
}

/// What [`TypedPort::send_queued`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// How many messages went onto the ring.
    pub sent: usize,
    /// Whether it stopped at a full ring, with a message put back: the
    /// loop arms the port for space before it sleeps.
    pub full: bool,
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
    /// The peer speaks another version of the protocol; the port stays
    /// unusable.
    Version {
        /// This end's protocol hash.
        ours: u64,
        /// The peer's (0: it sent messages without publishing one).
        theirs: u64,
    },
    /// Once per restart of the peer, on an end without a transparent
    /// shadow: the peer is a new instance and the port started a new
    /// session with it. Whatever this end had outstanding with the old one
    /// is void; the operation did nothing and may be repeated.
    PeerRestarted {
        /// The peer's new incarnation.
        incarnation: u32,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Full => f.write_str("port transmit ring is full"),
            Fault::Violation(kind) => write!(f, "protocol violation: {kind:?}"),
            Fault::Malformed(e) => write!(f, "malformed slot from the peer: {e}"),
            Fault::Ring(e) => write!(f, "port ring: {e}"),
            Fault::Version { ours, theirs } => write!(
                f,
                "peer built from a different protocol version (hash {theirs:#018x}, ours {ours:#018x})"
            ),
            Fault::PeerRestarted { incarnation } => {
                write!(f, "the peer restarted (incarnation {incarnation})")
            }
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
    /// Restarts of the peer this end started a new session for.
    pub restarts: u64,
    /// Messages the shadow replayed to restarted peers (also in `sent`).
    pub replayed: u64,
}

/// What this end knows about the peer's protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerVersion {
    /// The peer has published nothing yet.
    Unknown,
    /// The peer published our hash.
    Same,
    /// It published another one (or sent messages without one): refused.
    Different(u64),
}

/// One end of a Dingo port carrying the messages of one protocol, checked
/// by observer `O`.
pub struct TypedPort<'r, O: PortObserver> {
    port: Port<SLOT>,
    observer: O,
    supervisor: Supervisor<'r>,
    /// The component and port names that label reports.
    labels: (&'static str, &'static str),
    counters: Counters,
    peer: PeerVersion,
    /// A push or pop said the peer waits for a notification that has not
    /// been handed out yet.
    owed_notify: bool,
    ring_reported: bool,
    session: Session,
    /// On a client end: what a restarted provider needs replayed.
    shadow: Option<<O::Msg as Shadowed>::Shadow>,
    /// A restart of the peer, to be accepted once the old instance's
    /// messages are all received (a transparent shadow wants them).
    pending_restart: Option<u32>,
    /// The last slot that did not decode, for its report.
    bad_slot: [u8; SLOT],
    /// Whether the session is up, the peer's version checked and there is
    /// no shadow or pending restart: [`steady`](Self::steady) without the
    /// look at the peer's incarnation.
    steady: bool,
}

impl<'r, O: PortObserver> TypedPort<'r, O> {
    /// Wraps `port`, whose messages `observer` checks; `component` and
    /// `name` label its reports (e.g. `ethernet_driver::NAME`, `"eth"`).
    /// Publishes this end's protocol hash for the peer to check.
    pub fn new(
        mut port: Port<SLOT>,
        observer: O,
        supervisor: Supervisor<'r>,
        component: &'static str,
        name: &'static str,
    ) -> Self {
        port.tx.publish_tag(O::Msg::HASH);
        let session = port.begin_session();
        let shadow = observer.is_client().then(Default::default);
        TypedPort {
            port,
            observer,
            supervisor,
            labels: (component, name),
            counters: Counters::default(),
            peer: PeerVersion::Unknown,
            // A restarted end waits for the peer's acknowledgement: wake
            // the peer to give it.
            owed_notify: session.mine > 1,
            ring_reported: false,
            session,
            shadow,
            pending_restart: None,
            bad_slot: [0; SLOT],
            steady: false,
        }
    }

    /// Keeps the client end's shadow only if `peer_restarts`: for a port
    /// whose provider is never restarted, recording what a new instance
    /// would need is only a cost on every message. Without it the port
    /// tells this end's code when the peer restarts anyway, as an end of a
    /// protocol without a shadow does.
    pub fn shadowed(mut self, peer_restarts: bool) -> Self {
        if !peer_restarts {
            self.shadow = None;
        }
        self.settle();
        self
    }

    /// This end's part in the port's session (see [`Session`]).
    pub fn session(&self) -> Session {
        self.session
    }

    /// Requests this end has outstanding with the peer, as its shadow
    /// counts them (0 on an end without one).
    pub fn outstanding(&self) -> u32 {
        self.shadow.as_ref().map_or(0, |s| s.outstanding())
    }

    /// The shadow's running totals, on a client end.
    pub fn shadow_stats(&self) -> Option<tingu_rt::shadow::Stats> {
        self.shadow.as_ref().map(|s| s.stats())
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

    /// When the port's current timeout state overruns, if it is in one: a
    /// synchronous PD sets its timer for it and then calls
    /// [`check_timeouts`](Self::check_timeouts).
    pub fn deadline_ns(&self) -> Option<u64> {
        self.observer.deadline_ns()
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
    #[inline]
    pub fn try_send(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        if self.steady() {
            return self.send_wire(msg, now_ns);
        }
        self.send_unsteady(msg, now_ns)
    }

    /// Sends the messages `queue` holds, in order, until it is empty or
    /// the ring is full: `take` gives the next one, `unget` puts back the
    /// one that found no slot, so that it goes first on the next call. A
    /// message refused for any other [`Fault`] is dropped (the port has
    /// reported it); a loop that must act on one, a peer restart say,
    /// sends with [`try_send`](Self::try_send) itself.
    #[inline]
    pub fn send_queued<Q>(
        &mut self,
        now_ns: u64,
        queue: &mut Q,
        mut take: impl FnMut(&mut Q) -> Option<O::Msg>,
        unget: impl FnOnce(&mut Q, O::Msg),
    ) -> Sent {
        let mut sent = 0;
        while let Some(msg) = take(queue) {
            match self.try_send(&msg, now_ns) {
                Ok(()) => sent += 1,
                Err(Fault::Full) => {
                    unget(queue, msg);
                    return Sent { sent, full: true };
                }
                Err(_) => {}
            }
        }
        Sent { sent, full: false }
    }

    /// Whether the port is in its common state (`steady`, below):
    /// then an armed [`prepare_recv_sleep`](Self::prepare_recv_sleep)'s
    /// flag stays set until the peer notifies, and a PD may leave a port
    /// whose channel did not wake it alone.
    pub fn is_steady(&self) -> bool {
        self.steady()
    }

    /// Whether the port is in its common state: a session up with the same
    /// peer instance, its version checked, and no shadow to keep. Then a
    /// message takes the short paths of [`try_send`](Self::try_send) and
    /// [`try_recv`](Self::try_recv); everything else (sessions starting,
    /// restarts, shadows, the first message of a peer) the general ones.
    /// The short paths exist because the general ones, with their loops
    /// and cases, cost the port benchmark over 100 instructions a round
    /// trip more, even when every case was false.
    #[inline(always)]
    fn steady(&self) -> bool {
        self.steady && self.port.rx.peer_incarnation() == self.session.peer
    }

    /// Recomputes [`steady`](Self::steady)'s cached part: the state it
    /// depends on changes only on the general paths, which end here.
    fn settle(&mut self) {
        self.steady = self.session.ready
            && self.peer == PeerVersion::Same
            && self.shadow.is_none()
            && self.pending_restart.is_none();
    }

    #[inline(never)]
    fn send_unsteady(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        let sent = self.send_general(msg, now_ns);
        self.settle();
        sent
    }

    fn send_general(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        if let Some(event) = self.port.session_event(&mut self.session) {
            self.on_session(event, now_ns)?;
        }
        if !self.session.ready {
            return Err(Fault::Full);
        }
        if self.shadow.is_some() {
            if let Some(incarnation) = self.pending_restart {
                // A client that sends before it receives again must not
                // wait for a receive to start the new session: once the old
                // instance's messages are all in, a send starts it too.
                if !self.port.rx.is_empty().unwrap_or(true) {
                    return Err(Fault::Full);
                }
                self.accept_restart(incarnation, now_ns);
            }
            match self.shadow.as_mut().map(|s| s.outgoing(msg)) {
                Some(Outgoing::Hold) => {
                    self.pump_replay(now_ns);
                    return Err(Fault::Full);
                }
                Some(Outgoing::Answered) => return Ok(()),
                Some(Outgoing::Wire) | None => {}
            }
        }
        self.send_wire(msg, now_ns)?;
        if let Some(shadow) = &mut self.shadow {
            shadow.sent(msg);
        }
        Ok(())
    }

    /// Observes and pushes one message. Always inlined: every message
    /// takes this path, and as a call of its own it cost the port
    /// benchmark about 40 instructions a round trip.
    #[inline(always)]
    fn send_wire(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        if self.peer != PeerVersion::Same {
            self.check_peer(false)?;
        }
        let slot = match self.port.tx.reserve() {
            Ok(slot) => slot,
            Err(e) => return Err(ring_failed(self.ring_report(), e)),
        };
        // Observed only once a slot is sure: an accepted message has
        // advanced the observer, so it must go out.
        observe(
            &mut self.observer,
            &mut self.counters,
            &self.supervisor,
            &self.labels,
            msg,
            Flow::Sent,
            now_ns,
        )?;
        let mut bytes = [0; SLOT];
        msg.encode(&mut bytes);
        self.owed_notify |= slot.push_prefix(&bytes, O::Msg::WIRE_BYTES) == NotifyPeer::Yes;
        self.counters.sent += 1;
        Ok(())
    }

    /// Takes the next message that decodes and passes the observer, or
    /// `None` when the ring is empty. Under [`Policy::Log`] bad slots on the
    /// way are reported and skipped; under [`Policy::Fatal`] the first one
    /// ends the call with its fault. Collect the notification with
    /// [`take_notify`](Self::take_notify).
    #[inline]
    pub fn try_recv(&mut self, now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        if !self.steady() {
            return self.recv_unsteady(now_ns);
        }
        // Decoded straight from the private copy; the bytes are kept aside
        // only for the report of a malformed slot (carried in the result,
        // they were copied on every message).
        let bad_slot = &mut self.bad_slot;
        let popped = self
            .port
            .rx
            .pop_prefix_with(O::Msg::WIRE_BYTES, |slot| decode_keeping(slot, bad_slot));
        // The message is checked by reference and returned as it came:
        // through `accept`'s `Option` it was copied several times over.
        match popped {
            Ok(None) => Ok(None),
            Ok(Some((Ok(msg), notify))) => {
                self.owed_notify |= notify == NotifyPeer::Yes;
                match self.observe_received(&msg, now_ns) {
                    Ok(()) => Ok(Some(msg)),
                    Err(fault) => self.refused(fault, now_ns),
                }
            }
            Ok(Some((Err(error), notify))) => {
                self.owed_notify |= notify == NotifyPeer::Yes;
                let fault = self.malformed(error);
                self.refused(fault, now_ns)
            }
            Err(e) => Err(ring_failed(self.ring_report(), e)),
        }
    }

    /// A message [`try_recv`](Self::try_recv) did not deliver: under
    /// [`Policy::Log`] the next one is looked at, otherwise `fault` ends
    /// the call.
    #[cold]
    #[inline(never)]
    fn refused(&mut self, fault: Fault, now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        if self.supervisor.policy == Policy::Log {
            self.recv_unsteady(now_ns)
        } else {
            Err(fault)
        }
    }

    #[inline(never)]
    fn recv_unsteady(&mut self, now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        let received = self.recv_general(now_ns);
        self.settle();
        received
    }

    fn recv_general(&mut self, now_ns: u64) -> Result<Option<O::Msg>, Fault> {
        if let Some(event) = self.port.session_event(&mut self.session) {
            self.on_session(event, now_ns)?;
        }
        if !self.session.ready {
            return Ok(None);
        }
        if self.peer == PeerVersion::Unknown {
            // A peer that has published its tag but sent nothing yet (a
            // server not asked anything) would otherwise keep this end off
            // the short paths until its first message.
            self.check_peer(false)?;
        }
        if self.shadow.is_some() {
            if let Some(msg) = shadow_local(&mut self.shadow) {
                return Ok(Some(msg));
            }
            self.pump_replay(now_ns);
        }
        loop {
            let bad_slot = &mut self.bad_slot;
            let popped = self
                .port
                .rx
                .pop_prefix_with(O::Msg::WIRE_BYTES, |slot| decode_keeping(slot, bad_slot));
            let (decoded, notify) = match popped {
                Ok(Some(popped)) => popped,
                // The old instance's last messages are all in (or it
                // corrupted the ring, which accept_restart resets): now the
                // new session.
                Ok(None) | Err(_) if self.pending_restart.is_some() => {
                    if let Some(incarnation) = self.pending_restart.take() {
                        self.accept_restart(incarnation, now_ns);
                    }
                    if let Some(msg) = shadow_local(&mut self.shadow) {
                        return Ok(Some(msg));
                    }
                    continue;
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(ring_failed(self.ring_report(), e)),
            };
            self.owed_notify |= notify == NotifyPeer::Yes;
            if self.peer != PeerVersion::Same {
                // The peer published its hash before this message.
                self.check_peer(true)?;
            }
            if let Some(msg) = self.accept(decoded, now_ns)? {
                let absorbed = self
                    .shadow
                    .as_mut()
                    .is_some_and(|s| s.received(&msg) == Incoming::Absorb);
                if absorbed {
                    // A reply the client had from the old instance; what
                    // it unblocks (resubmissions) goes out now.
                    self.pump_replay(now_ns);
                    if let Some(msg) = shadow_local(&mut self.shadow) {
                        return Ok(Some(msg));
                    }
                    continue;
                }
                return Ok(Some(msg));
            }
        }
    }

    /// Acts on what [`Port::session_event`] found.
    #[cold]
    #[inline(never)]
    fn on_session(&mut self, event: SessionEvent, now_ns: u64) -> Result<(), Fault> {
        match event {
            SessionEvent::Ready => {
                // Versions are checked again: a new session, a new peer.
                self.peer = PeerVersion::Unknown;
                Ok(())
            }
            SessionEvent::PeerRestarted { incarnation } => {
                let transparent = self
                    .shadow
                    .as_ref()
                    .is_some_and(|_| <O::Msg as Shadowed>::Shadow::TRANSPARENT);
                if transparent && self.session.ready {
                    // Take the old instance's last messages first; the new
                    // session starts when the ring is empty (try_recv).
                    // Restarted again meanwhile: the newest counts.
                    self.pending_restart = Some(incarnation);
                    return Ok(());
                }
                let was_ready = self.session.ready;
                self.accept_restart(incarnation, now_ns);
                if was_ready && !transparent {
                    return Err(Fault::PeerRestarted { incarnation });
                }
                Ok(())
            }
        }
    }

    /// Starts the new session with the peer's `incarnation`: the old
    /// session ends for the observer (and the shadow says how), the rings
    /// are reset, the peer is acknowledged and woken, the replay begins.
    #[cold]
    #[inline(never)]
    fn accept_restart(&mut self, incarnation: u32, now_ns: u64) {
        self.pending_restart = None;
        let mut replay = Replay::default();
        let mut outstanding = 0;
        if let Some(shadow) = &mut self.shadow {
            outstanding = shadow.outstanding();
            let (observer, counters, supervisor, labels) = (
                &mut self.observer,
                &mut self.counters,
                &self.supervisor,
                &self.labels,
            );
            replay = shadow.peer_restarted(&mut |msg, flow| {
                // The protocol's own end of a vanished peer's session: legal
                // by the shadow's construction, reported if not.
                let _ = observe(observer, counters, supervisor, labels, msg, flow, now_ns);
            });
        }
        self.observer.restart(now_ns);
        let discarded = self.port.accept_peer(&mut self.session, incarnation);
        self.peer = PeerVersion::Unknown;
        self.ring_reported = false;
        self.owed_notify = true;
        self.counters.restarts += 1;
        self.supervisor.reporter.report(&Report::PeerRestarted {
            component: self.labels.0,
            port: self.labels.1,
            protocol: O::Msg::PROTOCOL,
            incarnation,
            replay,
            outstanding,
            discarded,
            transparent: self.shadow.is_some() && <O::Msg as Shadowed>::Shadow::TRANSPARENT,
        });
        if self.session.ready {
            self.pump_replay(now_ns);
        }
    }

    /// Sends what the shadow has to replay, as far as the ring has room.
    fn pump_replay(&mut self, now_ns: u64) {
        while let Some(msg) = self.shadow.as_ref().and_then(|s| s.replay()) {
            match self.send_wire(&msg, now_ns) {
                Ok(()) => self.counters.replayed += 1,
                Err(Fault::Full) => return,
                // Refused by the observer (reported) or a broken ring:
                // skipped, so the replay cannot stall on it.
                Err(_) => {}
            }
            if let Some(shadow) = &mut self.shadow {
                shadow.replayed();
            }
        }
    }

    /// Runs the observer's timeout check for this port: an overrun is
    /// counted, reported and handled by the policy.
    pub fn check_timeouts(&mut self, now_ns: u64) -> Result<(), Fault> {
        let (counters, supervisor, labels) = (&mut self.counters, &self.supervisor, &self.labels);
        self.observer
            .check_timeouts(now_ns, |v| violated(counters, supervisor, labels, v))
            .map_err(Fault::Violation)
    }

    /// Arms the receive ring's "wake me" flag before a synchronous PD
    /// blocks; [`Arm::Retry`] means a message arrived meanwhile.
    #[inline]
    pub fn prepare_recv_sleep(&mut self) -> Result<Arm, Fault> {
        if self.steady() {
            let armed = self.port.rx.prepare_sleep();
            return armed.map_err(|e| ring_failed(self.ring_report(), e));
        }
        self.prepare_recv_sleep_unsteady()
    }

    /// Withdraws the receive ring's "wake me" flag while the PD is awake:
    /// messages a higher-priority peer pushes before this PD arms again
    /// cost it no notification. The PD must then call
    /// [`prepare_recv_sleep`](Self::prepare_recv_sleep) before it blocks.
    #[inline]
    pub fn withdraw_recv_sleep(&mut self) {
        self.port.rx.withdraw_sleep();
    }

    #[inline(never)]
    fn prepare_recv_sleep_unsteady(&mut self) -> Result<Arm, Fault> {
        if self.port.peer_changed(&self.session) || self.pending_restart.is_some() {
            return Ok(Arm::Retry);
        }
        if !self.session.ready {
            // The peer's acknowledgement comes with a notification.
            return Ok(if self.port.acknowledged(&self.session) {
                Arm::Retry
            } else {
                Arm::Sleep
            });
        }
        if let Some(shadow) = &self.shadow {
            if shadow.pending_local() {
                return Ok(Arm::Retry);
            }
            if shadow.replay().is_some() {
                // A replay waits for room: be woken when the peer frees a slot.
                match self.port.tx.prepare_sleep() {
                    Ok(Arm::Sleep) => {}
                    Ok(Arm::Retry) => return Ok(Arm::Retry),
                    Err(e) => return Err(ring_failed(self.ring_report(), e)),
                }
            }
        }
        let armed = self.port.rx.prepare_sleep();
        armed.map_err(|e| ring_failed(self.ring_report(), e))
    }

    /// Arms the transmit ring's "wake me" flag after [`Fault::Full`];
    /// [`Arm::Retry`] means a slot was freed meanwhile.
    pub fn prepare_send_sleep(&mut self) -> Result<Arm, Fault> {
        if self.port.peer_changed(&self.session) {
            return Ok(Arm::Retry);
        }
        if !self.session.ready || self.pending_restart.is_some() {
            // Woken by the peer's acknowledgement, or by its messages.
            return Ok(Arm::Sleep);
        }
        if self
            .shadow
            .as_ref()
            .is_some_and(|s| s.holding() && s.replay().is_none())
        {
            // Held back for the replay, whose replies come with a
            // notification (a replay waiting for room is armed below).
            return Ok(Arm::Sleep);
        }
        let armed = self.port.tx.prepare_sleep();
        armed.map_err(|e| ring_failed(self.ring_report(), e))
    }

    /// Observes and sends `msg`, waiting for a free slot if the ring is
    /// full, and notifies the peer if it asked for it. A timeout overrun
    /// while waiting is reported when it happens (see the module docs).
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
    /// A timeout overrun while waiting is reported when it happens.
    pub async fn recv<P: Platform, const N: usize>(
        &mut self,
        exec: &Executor<'_, P, N>,
    ) -> Result<O::Msg, Fault> {
        self.wait_on_ring(exec, Self::try_recv, Self::prepare_recv_sleep)
            .await
    }

    /// Repeats `attempt` until it yields a value, sleeping on the port's
    /// channel with the ring's sleep protocol (`arm`) in between, and until
    /// the observer's deadline, so that an overrun is reported on time.
    /// The ring is re-checked on every poll rather than trusting the channel
    /// bit, which another task waiting on the same channel may have consumed.
    async fn wait_on_ring<P: Platform, const N: usize, T>(
        &mut self,
        exec: &Executor<'_, P, N>,
        mut attempt: impl FnMut(&mut Self, u64) -> Result<Option<T>, Fault>,
        arm: fn(&mut Self) -> Result<Arm, Fault>,
    ) -> Result<T, Fault> {
        let channel = self.port.channel;
        poll_fn(|cx| {
            // Terminates: Retry means the ring changed, so the next attempt
            // consumes a slot (or a freed one); a wait that completes at once
            // has consumed the latched channel bit; an overrun moves the
            // deadline past now.
            let outcome = loop {
                let now = exec.now_ns();
                if self.deadline_ns().is_some_and(|d| now > d) {
                    match self.check_timeouts(now) {
                        Err(e) if self.supervisor.policy == Policy::Fatal => break Err(e),
                        _ => {}
                    }
                }
                match attempt(self, now) {
                    Ok(Some(value)) => break Ok(value),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                match arm(self) {
                    Err(e) => break Err(e),
                    Ok(Arm::Retry) => {}
                    Ok(Arm::Sleep) => {
                        if pin!(exec.channel(channel)).poll(cx).is_ready() {
                            continue;
                        }
                        // Strictly after the deadline: an overrun is `now > deadline`.
                        let overrun_at = self.deadline_ns().map(|d| d.saturating_add(1));
                        if overrun_at
                            .is_some_and(|at| pin!(exec.sleep_until(at)).poll(cx).is_ready())
                        {
                            continue;
                        }
                        self.flush_notify(exec);
                        return Poll::Pending;
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

    /// Observes a received message: `Some` to deliver, `None` if it was
    /// dropped under [`Policy::Log`].
    fn accept(
        &mut self,
        decoded: Result<O::Msg, WireError>,
        now_ns: u64,
    ) -> Result<Option<O::Msg>, Fault> {
        let checked = match decoded {
            Ok(msg) => self.observe_received(&msg, now_ns).map(|()| msg),
            Err(error) => Err(self.malformed(error)),
        };
        match checked {
            Ok(msg) => Ok(Some(msg)),
            Err(_) if self.supervisor.policy == Policy::Log => Ok(None),
            Err(fault) => Err(fault),
        }
    }

    /// Checks a received message with the observer and counts it if it
    /// passes.
    #[inline(always)]
    fn observe_received(&mut self, msg: &O::Msg, now_ns: u64) -> Result<(), Fault> {
        observe(
            &mut self.observer,
            &mut self.counters,
            &self.supervisor,
            &self.labels,
            msg,
            Flow::Received,
            now_ns,
        )?;
        self.counters.received += 1;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn malformed(&mut self, error: WireError) -> Fault {
        self.counters.malformed += 1;
        let slot = &self.bad_slot;
        self.supervisor.escalate(&Report::Malformed {
            component: self.labels.0,
            port: self.labels.1,
            protocol: O::Msg::PROTOCOL,
            error,
            slot,
        });
        Fault::Malformed(error)
    }

    /// Looks at the peer's published hash (`received`: a message from the
    /// peer was just taken, so it must have published one).
    #[cold]
    #[inline(never)]
    fn check_peer(&mut self, received: bool) -> Result<(), Fault> {
        let ours = O::Msg::HASH;
        if let PeerVersion::Unknown = self.peer {
            let theirs = self.port.rx.peer_tag();
            self.peer = match theirs {
                0 if !received => return Ok(()),
                t if t == ours => PeerVersion::Same,
                t => {
                    self.supervisor.escalate(&Report::Version {
                        component: self.labels.0,
                        port: self.labels.1,
                        protocol: O::Msg::PROTOCOL,
                        ours,
                        theirs: t,
                    });
                    PeerVersion::Different(t)
                }
            };
        }
        match self.peer {
            PeerVersion::Different(theirs) => Err(Fault::Version { ours, theirs }),
            _ => Ok(()),
        }
    }

    /// What a ring fault needs to be reported once.
    fn ring_report(&mut self) -> RingReport<'_, 'r> {
        RingReport {
            reported: &mut self.ring_reported,
            supervisor: self.supervisor,
            labels: self.labels,
            protocol: O::Msg::PROTOCOL,
        }
    }
}

/// Decodes `slot`, keeping a copy in `bad` if it does not decode.
fn decode_keeping<M: Message>(slot: &[u8; SLOT], bad: &mut [u8; SLOT]) -> Result<M, WireError> {
    M::decode(slot).inspect_err(|_| *bad = *slot)
}

fn shadow_local<S: Shadow<M>, M: Message>(shadow: &mut Option<S>) -> Option<M> {
    shadow.as_mut().and_then(|s| s.local())
}

/// Checks a message with the port's observer; a violation is counted and
/// reported. A timeout overrun noticed first is reported on its own, then
/// (under [`Policy::Log`]) the message is judged by itself: a legal message
/// that arrives late is still delivered.
#[inline]
fn observe<O: PortObserver>(
    observer: &mut O,
    counters: &mut Counters,
    // By reference: copied in, they were loaded before every check, though
    // only a violation's report reads them.
    supervisor: &Supervisor<'_>,
    labels: &(&'static str, &'static str),
    msg: &O::Msg,
    flow: Flow,
    now_ns: u64,
) -> Result<(), Fault> {
    let first = observer.observe(msg, flow, now_ns, |v| {
        violated(counters, supervisor, labels, v)
    });
    match first {
        Ok(()) => Ok(()),
        Err(kind) => rejected(
            observer, counters, supervisor, labels, msg, flow, now_ns, kind,
        ),
    }
}

/// The rejection path of [`observe`].
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn rejected<O: PortObserver>(
    observer: &mut O,
    counters: &mut Counters,
    supervisor: &Supervisor<'_>,
    labels: &(&'static str, &'static str),
    msg: &O::Msg,
    flow: Flow,
    now_ns: u64,
    kind: ViolationKind,
) -> Result<(), Fault> {
    if matches!(kind, ViolationKind::TimeoutOverrun { .. }) && supervisor.policy == Policy::Log {
        return observer
            .observe(msg, flow, now_ns, |v| {
                violated(counters, supervisor, labels, v)
            })
            .map_err(Fault::Violation);
    }
    Err(Fault::Violation(kind))
}

/// Counts and reports a violation; bare protocol observers do not know
/// where they sit, so the port's labels are added.
#[cold]
#[inline(never)]
fn violated(
    counters: &mut Counters,
    supervisor: &Supervisor<'_>,
    &(component, port): &(&'static str, &'static str),
    v: &Violation<'_>,
) {
    let v = if v.component.is_empty() {
        v.at(component, port, v.subport)
    } else {
        *v
    };
    counters.violations += 1;
    supervisor.escalate(&Report::Violation(&v));
}

struct RingReport<'p, 'r> {
    reported: &'p mut bool,
    supervisor: Supervisor<'r>,
    labels: (&'static str, &'static str),
    protocol: &'static str,
}

/// A ring error as a fault; a corruption is reported once per port.
#[cold]
#[inline(never)]
fn ring_failed(r: RingReport<'_, '_>, error: RingError) -> Fault {
    if error != RingError::Full && !core::mem::replace(r.reported, true) {
        r.supervisor.escalate(&Report::Ring {
            component: r.labels.0,
            port: r.labels.1,
            protocol: r.protocol,
            error,
        });
    }
    match error {
        RingError::Full => Fault::Full,
        e => Fault::Ring(e),
    }
}

#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod tests;
