//! The Timer protocol service of the timer PD, free of hardware and seL4
//! calls so that host tests drive it: [`Server`] reads the requests of up
//! to 64 clients, each on its own Timer port, keeps their timeouts in one
//! [`TimeoutQueue`] of [`CAPACITY`] entries, answers on the ports, and
//! tells the PD which deadline to program the HPET for. The PD's binary
//! (`pds/timer/src/bin/timer.rs`) owns the hardware and the loop.
//!
//! # Answers and back-pressure
//!
//! Every request gets exactly one answer, and an answer must never be lost
//! because a client is slow to read: a `fired` produced while the client's
//! receive ring is full waits in a shared outbox of [`OUTBOX_CAPACITY`]
//! entries, and later answers to that client queue behind it, so each
//! client sees its answers in the order they were produced (expiries in
//! deadline order).
//!
//! The outbox cannot overflow. Call `load` the number of queued timeouts
//! plus outbox entries. Only a request raises it, by one (accepted into the
//! queue, or rejected into the outbox); a cancel moves a timeout from the
//! queue to an answer, an expiry likewise. The server takes a message from
//! a client only while `load < OUTBOX_CAPACITY`, so afterwards
//! `outbox <= load <= OUTBOX_CAPACITY`. While the load is at the limit it
//! reads nobody and waits for clients to drain their rings; as the queue
//! holds at most [`CAPACITY`], the outbox then holds at least
//! [`OUTBOX_SLACK`] answers, so some client does have something to read.
//! A client that requests without ever reading stalls the service for
//! everyone once the slack is used up: the price of a bounded server, and
//! the reason the slack is generous.
//!
//! # Restarted clients
//!
//! A client PD the monitor restarted is a new instance that knows nothing
//! of its predecessor's timeouts; its port tells the server once
//! ([`Fault::PeerRestarted`]), and the server drops that client's queued
//! timeouts and waiting answers, so no answer meant for the old instance
//! reaches the new one. The new instance's ids start over without
//! colliding with old ones.
#![cfg_attr(not(test), no_std)]

use dingo_protocols::timer::{Msg, REJECT_FULL};
use dingo_rt::ring::{Arm, NotifyPeer};
use dingo_rt::typed::Fault;
use timer_client::port::TimerPort;
use timer_core::queue::{Cancel, InsertError, TimeoutQueue};

/// Timeouts the timer PD holds at once, over all clients. One more gets
/// `rejected(id, REJECT_FULL)` until one of them is answered.
pub const CAPACITY: usize = 64;
/// Answers beyond [`CAPACITY`] the outbox holds: rejections of clients
/// that keep requesting while their rings are full.
pub const OUTBOX_SLACK: usize = 16;
/// Answers waiting for room in a client's ring, at most.
pub const OUTBOX_CAPACITY: usize = CAPACITY + OUTBOX_SLACK;

/// What the server has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub fired: u64,
    pub cancelled: u64,
    pub rejected: u64,
    /// Timeouts and answers dropped because their client restarted.
    pub forgotten: u64,
    /// Requests that reused an id still live; the protocol forbids it, so
    /// they get no answer (see timer-core's queue doc).
    pub duplicates: u64,
}

/// Answers that found their client's ring full, oldest first.
struct Outbox {
    items: heapless::Vec<(u8, Msg), OUTBOX_CAPACITY>,
}

impl Outbox {
    fn holds(&self, client: u8) -> bool {
        self.items.iter().any(|(c, _)| *c == client)
    }

    fn remove_client(&mut self, client: u8) -> usize {
        let before = self.items.len();
        self.items.retain(|(c, _)| *c != client);
        before - self.items.len()
    }

    fn push(&mut self, client: u8, msg: Msg) {
        // The load bound in the crate doc makes this unreachable; an
        // overflow would lose an answer, which is worse than stopping.
        assert!(
            self.items.push((client, msg)).is_ok(),
            "timer outbox overflow: the back-pressure bound is broken"
        );
    }
}

/// The Timer service for up to `C` clients; client `i` is `ports[i]`.
pub struct Server<'r, const C: usize> {
    ports: heapless::Vec<TimerPort<'r>, C>,
    queue: TimeoutQueue<CAPACITY>,
    outbox: Outbox,
    stats: Stats,
}

impl<'r, const C: usize> Server<'r, C> {
    /// Serves the provider ends `ports` (at most `C`; the system
    /// description decides how many).
    pub fn new(ports: impl IntoIterator<Item = TimerPort<'r>>) -> Self {
        const { assert!(C <= 64, "client indices are u8 and channel bits fit a u64") };
        let mut all = heapless::Vec::new();
        for port in ports {
            if all.push(port).is_err() {
                panic!("timer-server: more than {C} clients");
            }
        }
        Server {
            ports: all,
            queue: TimeoutQueue::new(),
            outbox: Outbox {
                items: heapless::Vec::new(),
            },
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Timeouts pending in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Answers waiting for room in their client's ring.
    pub fn backlog(&self) -> usize {
        self.outbox.items.len()
    }

    /// Clients served.
    pub fn clients(&self) -> usize {
        self.ports.len()
    }

    /// Client `i`'s port, e.g. for its counters.
    pub fn port(&self, i: usize) -> &TimerPort<'r> {
        &self.ports[i]
    }

    /// Does everything that can be done at time `now_ns`: delivers waiting
    /// answers, takes the clients' requests and cancels, fires what is due.
    /// Calls `notify` with each port channel whose peer must be woken.
    /// Returns the earliest pending deadline, which the hardware must be
    /// armed for, or `None` when nothing is pending.
    pub fn poll(&mut self, now_ns: u64, mut notify: impl FnMut(u8)) -> Option<u64> {
        let mut restarted = self.flush(now_ns);
        for client in 0..self.ports.len() {
            while self.load() < OUTBOX_CAPACITY {
                match self.ports[client].try_recv(now_ns) {
                    Ok(Some(msg)) => self.handle(client as u8, msg, now_ns),
                    Err(Fault::PeerRestarted { .. }) => self.forget(client as u8),
                    // Empty, or the port is broken (already reported by it).
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let Server {
            queue,
            ports,
            outbox,
            stats,
        } = self;
        queue.expire(now_ns, |t| {
            stats.fired += 1;
            restarted |= answer(ports, outbox, t.client, Msg::Fired { id: t.id }, now_ns);
        });
        for client in 0..self.ports.len() as u8 {
            if restarted & (1 << client) != 0 {
                self.forget(client);
            }
        }
        for port in &mut self.ports {
            if port.take_notify() == NotifyPeer::Yes {
                notify(port.channel());
            }
        }
        self.queue.next_deadline()
    }

    /// Arms the wake-me flags of the rings the server waits on before the
    /// PD blocks: every receive ring while requests can be taken, and the
    /// send ring of each client with answers in the outbox. Returns `true`
    /// if something changed meanwhile: poll again instead of blocking.
    pub fn prepare_wait(&mut self) -> bool {
        let mut retry = false;
        let reading = self.load() < OUTBOX_CAPACITY;
        for client in 0..self.ports.len() {
            let port = &mut self.ports[client];
            if reading {
                retry |= matches!(port.prepare_recv_sleep(), Ok(Arm::Retry));
            }
            if self.outbox.holds(client as u8) {
                retry |= matches!(port.prepare_send_sleep(), Ok(Arm::Retry));
            }
        }
        retry
    }

    fn load(&self) -> usize {
        self.queue.len() + self.outbox.items.len()
    }

    /// Drops what was meant for a client's previous instance.
    fn forget(&mut self, client: u8) {
        let dropped = self.queue.remove_client(client) + self.outbox.remove_client(client);
        self.stats.forgotten += dropped as u64;
    }

    fn handle(&mut self, client: u8, msg: Msg, now_ns: u64) {
        match msg {
            Msg::Request { id, deadline_ns } => {
                self.stats.requests += 1;
                match self.queue.insert(client, id, deadline_ns) {
                    Ok(()) => {}
                    Err(InsertError::Full { .. }) => {
                        self.stats.rejected += 1;
                        let reject = Msg::Rejected {
                            id,
                            reason: REJECT_FULL,
                        };
                        answer(&mut self.ports, &mut self.outbox, client, reject, now_ns);
                    }
                    Err(InsertError::Duplicate { .. }) => self.stats.duplicates += 1,
                }
            }
            Msg::Cancel { id } => {
                if let Cancel::Cancelled(_) = self.queue.cancel(client, id) {
                    self.stats.cancelled += 1;
                    let msg = Msg::Cancelled { id };
                    answer(&mut self.ports, &mut self.outbox, client, msg, now_ns);
                }
            }
            // The provider's observer refuses answers coming in, so they
            // are never delivered here.
            Msg::Fired { .. } | Msg::Cancelled { .. } | Msg::Rejected { .. } => {}
        }
    }

    /// Sends the outbox's answers, oldest first, skipping clients whose
    /// ring is still full. Returns the clients found restarted (one bit
    /// each), whose answers are to be forgotten.
    fn flush(&mut self, now_ns: u64) -> u64 {
        let mut full = 0u64;
        let mut restarted = 0u64;
        let ports = &mut self.ports;
        // Kept: answers to clients whose ring is (or was found) full.
        self.outbox.items.retain(|&(client, msg)| {
            let bit = 1u64 << client;
            if full & bit != 0 {
                return true;
            }
            match ports[client as usize].try_send(&msg, now_ns) {
                Ok(()) => false,
                Err(Fault::Full) => {
                    full |= bit;
                    true
                }
                // Kept, and not sent to the new instance: forgotten below.
                Err(Fault::PeerRestarted { .. }) => {
                    full |= bit;
                    restarted |= bit;
                    true
                }
                // A broken port or a refused message: reported by the
                // port; the client cannot be answered any more.
                Err(_) => false,
            }
        });
        restarted
    }
}

/// Sends `msg` to `client`, or queues it behind the client's earlier
/// answers if there are any or its ring is full. Returns the client's bit
/// if it turned out to be restarted (the answer was for its predecessor).
fn answer(
    ports: &mut [TimerPort<'_>],
    outbox: &mut Outbox,
    client: u8,
    msg: Msg,
    now_ns: u64,
) -> u64 {
    if outbox.holds(client) {
        outbox.push(client, msg);
        return 0;
    }
    match ports[client as usize].try_send(&msg, now_ns) {
        Ok(()) => 0,
        Err(Fault::Full) => {
            outbox.push(client, msg);
            0
        }
        Err(Fault::PeerRestarted { .. }) => 1 << client,
        // Reported by the port; nothing can reach this client.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests;
