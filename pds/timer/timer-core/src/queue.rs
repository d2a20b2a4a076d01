//! The timer PD's queue of pending one-shot timeouts.
//!
//! A [`TimeoutQueue<N>`] holds at most `N` timeouts across all clients, in a
//! fixed-capacity `heapless::Vec` kept sorted by deadline, so it needs no
//! allocation. Insertion
//! and cancellation cost O(N) element moves; expiry pops from the end of the
//! array in O(1) each. At the capacities a timer PD uses (64 to 256) that is
//! a few hundred bytes moved per request, cheaper than a heap's bookkeeping.
//!
//! # Mapping to the Timer protocol (`tingu/dingo-protocols/timer.tingu`)
//!
//! Every `request(id)` gets exactly one terminal answer, and a `cancel` may
//! cross a `fired` on the rings. The queue's results map onto the protocol
//! like this:
//!
//! | call                          | result                  | server sends                    |
//! |-------------------------------|-------------------------|---------------------------------|
//! | [`insert`](TimeoutQueue::insert) | `Ok(())`             | nothing yet (later `fired`/`cancelled`) |
//! | `insert`                      | `Err(InsertError::Full)` | `rejected(id, REJECT_FULL)`     |
//! | `insert`                      | `Err(InsertError::Duplicate)` | nothing: the client reused a live id, which the protocol forbids; the PD reports it as the client's violation |
//! | [`expire`](TimeoutQueue::expire) | each popped timeout   | `fired(id)`                     |
//! | [`cancel`](TimeoutQueue::cancel) | `Cancel::Cancelled`  | `cancelled(id)`                 |
//! | `cancel`                      | `Cancel::NotPending`    | **nothing**                     |
//!
//! `NotPending` means the id was already answered (its `fired` or `rejected`
//! is on the way or delivered) or was never requested. Answering `cancelled`
//! there would give the id a second terminal answer; instead the client takes
//! the `fired` that crossed its cancel as the answer. Because an entry leaves
//! the queue exactly when its one answer is produced (popped by `expire` or
//! removed by `cancel`), no id can be answered twice and a stale `fired` can
//! never look like the answer to a later request with the same id.
//!
//! A request whose deadline has already passed is accepted like any other;
//! the next `expire` call pops it, which is how "past deadlines fire at once"
//! is implemented: the PD calls `expire` after handling its requests.

use core::fmt;

/// One pending timeout as the protocol names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// The client's index among the timer PD's Timer ports.
    pub client: u8,
    /// The request id, chosen by the client and unique among its live ones.
    pub id: u32,
    /// Absolute monotonic deadline in nanoseconds.
    pub deadline_ns: u64,
}

/// Why [`TimeoutQueue::insert`] refused a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// All `capacity` slots hold live timeouts.
    Full {
        /// The queue's fixed capacity.
        capacity: usize,
    },
    /// The client already has a live timeout with this id.
    Duplicate {
        /// The client that reused the id.
        client: u8,
        /// The reused id.
        id: u32,
    },
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InsertError::Full { capacity } => {
                write!(
                    f,
                    "timeout queue full: all {capacity} slots hold live timeouts"
                )
            }
            InsertError::Duplicate { client, id } => write!(
                f,
                "client {client} requested timeout id {id} while that id is still live"
            ),
        }
    }
}

/// The outcome of [`TimeoutQueue::cancel`]; see the module doc for the reply
/// each outcome calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Cancel {
    /// The timeout was pending and is now removed: answer `cancelled(id)`.
    Cancelled(Timeout),
    /// Nothing pending under that id (already fired, rejected or unknown):
    /// send nothing.
    NotPending,
}

/// A queued timeout plus its insertion number, which orders equal deadlines.
#[derive(Clone, Copy)]
struct Slot {
    timeout: Timeout,
    seq: u64,
}

impl Slot {
    /// The expiry order: earlier deadline first, then earlier insertion.
    fn key(&self) -> (u64, u64) {
        (self.timeout.deadline_ns, self.seq)
    }
}

/// At most `N` pending timeouts, popped in deadline order.
pub struct TimeoutQueue<const N: usize> {
    /// Sorted by descending [`Slot::key`]: the next timeout to expire is
    /// the last one, so popping it moves nothing.
    slots: heapless::Vec<Slot, N>,
    next_seq: u64,
}

impl<const N: usize> Default for TimeoutQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TimeoutQueue<N> {
    /// The fixed number of timeouts the queue holds, over all clients.
    pub const CAPACITY: usize = N;

    /// An empty queue.
    pub const fn new() -> Self {
        TimeoutQueue {
            slots: heapless::Vec::new(),
            next_seq: 0,
        }
    }

    /// The number of pending timeouts.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no timeout is pending.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `client` has a pending timeout `id`.
    pub fn is_pending(&self, client: u8, id: u32) -> bool {
        self.position(client, id).is_some()
    }

    /// Queues a timeout. Fails when all `N` slots are live or when `client`
    /// already has a live timeout `id`; the queue is unchanged then.
    pub fn insert(&mut self, client: u8, id: u32, deadline_ns: u64) -> Result<(), InsertError> {
        if self.is_pending(client, id) {
            return Err(InsertError::Duplicate { client, id });
        }
        let slot = Slot {
            timeout: Timeout {
                client,
                id,
                deadline_ns,
            },
            seq: self.next_seq,
        };
        let key = slot.key();
        let at = self.slots.partition_point(|s| s.key() > key);
        self.slots
            .insert(at, slot)
            .map_err(|_| InsertError::Full { capacity: N })?;
        self.next_seq += 1;
        Ok(())
    }

    /// Removes `client`'s pending timeout `id`, if there is one.
    pub fn cancel(&mut self, client: u8, id: u32) -> Cancel {
        match self.position(client, id) {
            Some(at) => Cancel::Cancelled(self.slots.remove(at).timeout),
            None => Cancel::NotPending,
        }
    }

    /// Pops every timeout whose deadline is `<= now_ns`, earliest first (in
    /// insertion order among equal deadlines), handing each to `fired`.
    /// Returns how many fired.
    pub fn expire(&mut self, now_ns: u64, mut fired: impl FnMut(Timeout)) -> usize {
        let mut count = 0;
        while self
            .slots
            .last()
            .is_some_and(|s| s.timeout.deadline_ns <= now_ns)
        {
            let Some(slot) = self.slots.pop() else { break };
            fired(slot.timeout);
            count += 1;
        }
        count
    }

    /// The earliest pending deadline: what the hardware timer must be armed
    /// for, or `None` when it can be left disarmed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots.last().map(|s| s.timeout.deadline_ns)
    }

    /// Drops every timeout of `client` without answering, for a client that
    /// was restarted and will never read the answers. Returns how many.
    pub fn remove_client(&mut self, client: u8) -> usize {
        let before = self.slots.len();
        self.slots.retain(|s| s.timeout.client != client);
        before - self.slots.len()
    }

    fn position(&self, client: u8, id: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.timeout.client == client && s.timeout.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn drain<const N: usize>(q: &mut TimeoutQueue<N>, now: u64) -> Vec<Timeout> {
        let mut out = Vec::new();
        let n = q.expire(now, |t| out.push(t));
        assert_eq!(n, out.len());
        out
    }

    fn ids(ts: &[Timeout]) -> Vec<(u8, u32)> {
        ts.iter().map(|t| (t.client, t.id)).collect()
    }

    #[test]
    fn expires_in_deadline_order_and_never_early() {
        let mut q = TimeoutQueue::<8>::new();
        q.insert(0, 1, 300).unwrap();
        q.insert(1, 1, 100).unwrap();
        q.insert(0, 2, 200).unwrap();
        assert_eq!(q.next_deadline(), Some(100));
        assert!(drain(&mut q, 99).is_empty());
        assert_eq!(ids(&drain(&mut q, 100)), [(1, 1)]);
        assert_eq!(q.next_deadline(), Some(200));
        assert_eq!(ids(&drain(&mut q, 1_000)), [(0, 2), (0, 1)]);
        assert_eq!(q.next_deadline(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut q = TimeoutQueue::<8>::new();
        q.insert(2, 7, 50).unwrap();
        q.insert(1, 9, 50).unwrap();
        q.insert(3, 1, 40).unwrap();
        q.insert(0, 4, 50).unwrap();
        assert_eq!(ids(&drain(&mut q, 50)), [(3, 1), (2, 7), (1, 9), (0, 4)]);
    }

    #[test]
    fn past_deadline_fires_on_the_next_expire() {
        let mut q = TimeoutQueue::<4>::new();
        q.insert(0, 1, 10).unwrap();
        assert_eq!(ids(&drain(&mut q, 5_000)), [(0, 1)]);
    }

    #[test]
    fn full_and_duplicate_are_refused_without_change() {
        let mut q = TimeoutQueue::<2>::new();
        q.insert(0, 1, 10).unwrap();
        assert_eq!(
            q.insert(0, 1, 99),
            Err(InsertError::Duplicate { client: 0, id: 1 })
        );
        // The same id from another client is a different timeout.
        q.insert(1, 1, 20).unwrap();
        assert_eq!(q.insert(2, 5, 5), Err(InsertError::Full { capacity: 2 }));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_deadline(), Some(10));
        // A duplicate is reported even when the queue is also full.
        assert_eq!(
            q.insert(1, 1, 30),
            Err(InsertError::Duplicate { client: 1, id: 1 })
        );
        assert_eq!(
            InsertError::Full { capacity: 2 }.to_string(),
            "timeout queue full: all 2 slots hold live timeouts"
        );
    }

    #[test]
    fn cancel_follows_the_protocols_race_rule() {
        let mut q = TimeoutQueue::<4>::new();
        q.insert(0, 1, 100).unwrap();
        q.insert(0, 2, 200).unwrap();
        assert_eq!(
            q.cancel(0, 2),
            Cancel::Cancelled(Timeout {
                client: 0,
                id: 2,
                deadline_ns: 200
            })
        );
        // Cancelled twice: the second cancel finds nothing, so no second answer.
        assert_eq!(q.cancel(0, 2), Cancel::NotPending);
        // A cancel that crossed the fired message: the id is gone, no reply.
        assert_eq!(ids(&drain(&mut q, 150)), [(0, 1)]);
        assert_eq!(q.cancel(0, 1), Cancel::NotPending);
        // Once answered, the id is free again.
        q.insert(0, 1, 400).unwrap();
        assert!(q.is_pending(0, 1));
        // Unknown id and another client's id.
        assert_eq!(q.cancel(0, 77), Cancel::NotPending);
        assert_eq!(q.cancel(1, 1), Cancel::NotPending);
    }

    #[test]
    fn remove_client_keeps_others_in_order() {
        let mut q = TimeoutQueue::<8>::new();
        q.insert(0, 1, 30).unwrap();
        q.insert(1, 1, 10).unwrap();
        q.insert(0, 2, 20).unwrap();
        q.insert(1, 2, 40).unwrap();
        assert_eq!(q.remove_client(1), 2);
        assert_eq!(q.cancel(1, 1), Cancel::NotPending);
        assert_eq!(ids(&drain(&mut q, u64::MAX)), [(0, 2), (0, 1)]);
    }

    #[test]
    fn zero_capacity_is_always_full() {
        let mut q = TimeoutQueue::<0>::new();
        assert_eq!(q.insert(0, 0, 0), Err(InsertError::Full { capacity: 0 }));
        assert_eq!(q.next_deadline(), None);
    }

    /// The reference model: an unordered list; the expected expiry order is
    /// recomputed by sorting on (deadline, insertion number).
    struct Model {
        live: Vec<(Timeout, u64)>,
        next_seq: u64,
        /// Every (client, id, seq) that fired, to catch double answers.
        answered: Vec<(u8, u32, u64)>,
    }

    #[test]
    fn random_operations_match_a_reference_model() {
        const CAP: usize = 16;
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let mut q = TimeoutQueue::<CAP>::new();
            let mut m = Model {
                live: Vec::new(),
                next_seq: 0,
                answered: Vec::new(),
            };
            let mut now = 0u64;
            for step in 0..400 {
                let ctx = format!("seed {seed} step {step}");
                match rng.below(10) {
                    0..=4 => {
                        let client = rng.below(3) as u8;
                        let id = rng.below(12) as u32;
                        // Mostly future deadlines, some already past.
                        let deadline = (now + rng.below(1_000)).saturating_sub(100);
                        let dup = m.live.iter().any(|(t, _)| t.client == client && t.id == id);
                        let got = q.insert(client, id, deadline);
                        if dup {
                            assert_eq!(got, Err(InsertError::Duplicate { client, id }), "{ctx}");
                        } else if m.live.len() == CAP {
                            assert_eq!(got, Err(InsertError::Full { capacity: CAP }), "{ctx}");
                        } else {
                            assert_eq!(got, Ok(()), "{ctx}");
                            let t = Timeout {
                                client,
                                id,
                                deadline_ns: deadline,
                            };
                            m.live.push((t, m.next_seq));
                            m.next_seq += 1;
                        }
                    }
                    5..=6 => {
                        let client = rng.below(3) as u8;
                        let id = rng.below(12) as u32;
                        let got = q.cancel(client, id);
                        match m
                            .live
                            .iter()
                            .position(|(t, _)| t.client == client && t.id == id)
                        {
                            Some(i) => {
                                let (t, _) = m.live.remove(i);
                                assert_eq!(got, Cancel::Cancelled(t), "{ctx}");
                            }
                            None => assert_eq!(got, Cancel::NotPending, "{ctx}"),
                        }
                    }
                    _ => {
                        now += rng.below(300);
                        let fired = drain(&mut q, now);
                        let mut due: Vec<(Timeout, u64)> = m
                            .live
                            .iter()
                            .copied()
                            .filter(|(t, _)| t.deadline_ns <= now)
                            .collect();
                        due.sort_by_key(|(t, seq)| (t.deadline_ns, *seq));
                        let expected: Vec<Timeout> = due.iter().map(|(t, _)| *t).collect();
                        assert_eq!(fired, expected, "{ctx}");
                        assert!(
                            fired.iter().all(|t| t.deadline_ns <= now),
                            "{ctx}: fired early"
                        );
                        for (t, seq) in &due {
                            assert!(
                                !m.answered.contains(&(t.client, t.id, *seq)),
                                "{ctx}: fired twice"
                            );
                            m.answered.push((t.client, t.id, *seq));
                        }
                        m.live.retain(|(t, _)| t.deadline_ns > now);
                    }
                }
                assert_eq!(q.len(), m.live.len(), "{ctx}");
                assert!(q.len() <= CAP, "{ctx}");
                let model_next = m.live.iter().map(|(t, _)| t.deadline_ns).min();
                assert_eq!(q.next_deadline(), model_next, "{ctx}");
                for (t, _) in &m.live {
                    assert!(q.is_pending(t.client, t.id), "{ctx}");
                }
            }
        }
    }
}
