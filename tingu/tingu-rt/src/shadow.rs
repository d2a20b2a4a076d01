//! Shadows: what the client end of a port keeps so that a restarted
//! provider can be brought back to where the client believes it is,
//! after Nooks' shadow drivers.
//!
//! A provider (a driver) that faults is restarted by the monitor with its
//! memory re-zeroed: it remembers nothing of the session. The client's code
//! must not notice, so the client's end of the port records, per protocol,
//! what a fresh provider needs to reach the client's view again (for
//! EthernetController: that it was enabled, the receive buffers lent, the
//! transmits outstanding), and when the port sees the provider's new
//! incarnation it replays that into the new session. Requests in flight at
//! the crash are resubmitted, or answered with the abort message the
//! protocol gives them; none is silently lost. Replies of the fresh
//! provider that the client already had from the old one (a second
//! `enableComplete`) are absorbed.
//!
//! The port (dingo-rt's `TypedPort`) drives a shadow; the shadow only
//! decides. Everything it is told has passed the port's observer, and
//! every message it replays passes the observer too, so the observer
//! follows the new session as the protocol defines it. Answers the shadow
//! gives itself ([`Shadow::local`]) reconcile the client's view with the
//! new session's and travel on no wire, so no observer sees them.
//!
//! A protocol without a shadow ([`NoShadow`]) is not transparent: the port
//! resets its session and tells its user once that the peer restarted.

use crate::{Flow, Message};

/// What the port does with a message the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Observe it and send it.
    Wire,
    /// Not now (a replay is under way, or there is no room to record it):
    /// the port reports its ring full.
    Hold,
    /// The shadow answers it itself (the provider cannot, for now); the
    /// send succeeds and the answer comes from [`Shadow::local`].
    Answered,
}

/// What the port does with a message from the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Hand it to the client.
    Deliver,
    /// Keep it from the client: the fresh provider's reply to a replayed
    /// request that the client had answered already.
    Absorb,
}

/// What a shadow did about one restart, for its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Messages that bring the fresh provider to the client's view (enable,
    /// the buffers lent, start).
    pub state: u32,
    /// Requests in flight at the crash, sent again.
    pub resubmitted: u32,
    /// Requests in flight at the crash, answered by the shadow.
    pub answered: u32,
}

/// Running totals of a shadow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Restarts of the provider the shadow replayed for.
    pub restarts: u32,
    /// Sums over all restarts.
    pub replayed: Replay,
    /// Replies of fresh providers kept from the client.
    pub absorbed: u32,
}

/// The client-side shadow of one protocol.
pub trait Shadow<M: Message> {
    /// Whether the port hides a restart from its user. A shadow that does
    /// not ([`NoShadow`]) leaves the user to learn of it.
    const TRANSPARENT: bool;

    /// The client wants to send `msg`.
    fn outgoing(&mut self, msg: &M) -> Outgoing;
    /// `msg` went out (after [`outgoing`](Self::outgoing) said
    /// [`Outgoing::Wire`] and the observer accepted it).
    fn sent(&mut self, msg: &M);
    /// `msg` came from the provider and the observer accepted it.
    fn received(&mut self, msg: &M) -> Incoming;
    /// The provider restarted and the messages of its last incarnation
    /// have all been received. `end` is given the messages by which the
    /// protocol ends the old session, for the old session's observer (they
    /// are observed, not sent). Returns what the shadow will replay.
    fn peer_restarted(&mut self, end: &mut dyn FnMut(&M, Flow)) -> Replay;
    /// The next message to send the fresh provider, if one is due now.
    fn replay(&self) -> Option<M>;
    /// The message [`replay`](Self::replay) offered went out.
    fn replayed(&mut self);
    /// The next answer the shadow gives the client itself.
    fn local(&mut self) -> Option<M>;
    /// Whether [`local`](Self::local) has an answer.
    fn pending_local(&self) -> bool;
    /// Whether client sends are held back ([`Outgoing::Hold`]) for a replay.
    fn holding(&self) -> bool;
    /// Requests the client has outstanding with the provider.
    fn outstanding(&self) -> u32;
    fn stats(&self) -> Stats;
}

/// A protocol message type with the shadow its client ends keep.
pub trait Shadowed: Message {
    type Shadow: Shadow<Self> + Default;
}

/// The shadow of a protocol that has none: records nothing, so the port's
/// user is told of a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoShadow;

impl<M: Message> Shadow<M> for NoShadow {
    const TRANSPARENT: bool = false;

    #[inline(always)]
    fn outgoing(&mut self, _: &M) -> Outgoing {
        Outgoing::Wire
    }
    #[inline(always)]
    fn sent(&mut self, _: &M) {}
    #[inline(always)]
    fn received(&mut self, _: &M) -> Incoming {
        Incoming::Deliver
    }
    fn peer_restarted(&mut self, _: &mut dyn FnMut(&M, Flow)) -> Replay {
        Replay::default()
    }
    fn replay(&self) -> Option<M> {
        None
    }
    fn replayed(&mut self) {}
    fn local(&mut self) -> Option<M> {
        None
    }
    fn pending_local(&self) -> bool {
        false
    }
    fn holding(&self) -> bool {
        false
    }
    fn outstanding(&self) -> u32 {
        0
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
}
