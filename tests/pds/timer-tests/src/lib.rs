//! In-image tests of the timer PD (tests/systems/timer.xml). Three random
//! clients (`timer-client-a`, `-b`, `-c`) together set 100 timeouts of 1 to
//! 50 ms, check that each fires in deadline order and never before its
//! deadline, and hand their lateness figures to `timer-check` through a
//! results region each. `timer-check` sleeps in an async task through the
//! timer, merges the figures (median, worst), then drives the Timer
//! protocol itself: a deadline in the past, a cancel, the capacity limit,
//! and an idle 2-second window whose interrupt count it reads from the time
//! page; it ends the run through the debug-exit port. This library holds
//! what the PDs share.
#![no_std]

use dingo_pd::ConsoleReporter;
use dingo_pd::microkit::{Channel, debug_println};
use dingo_protocols::timer::Msg;
use dingo_rt::executor::{Executor, Platform};
use dingo_rt::typed::{Fault, Supervisor};
use timer_client::clock::TimeReader;
use timer_client::port::{End, TimerPort, attach};

/// The channel of every client's Timer port.
pub const TIMER_CHANNEL: u8 = 0;
/// A random client's channel to `timer-check`.
pub const CHECK_CHANNEL: u8 = 1;
/// `timer-check`'s channels from the random clients, in client order.
pub const RESULT_CHANNELS: [u8; 3] = [2, 3, 4];

/// Timeouts per random client: 34 + 33 + 33 = 100.
pub const CLIENT_TIMEOUTS: [usize; 3] = [34, 33, 33];
/// Timeouts a client keeps pending at once.
pub const BATCH: usize = 12;
/// The random durations: 1 ms up to 50 ms.
pub const MIN_NS: u64 = 1_000_000;
pub const MAX_NS: u64 = 50_000_000;

/// A results region: word 0 is the number of figures, published last;
/// the lateness figures (ns) follow.
pub const RESULTS_SIZE: usize = 0x1000;
pub const MAX_RESULTS: usize = RESULTS_SIZE / 8 - 1;

pub static REPORTER: ConsoleReporter = ConsoleReporter;

/// The time, from the time page at `time_page_vaddr`.
pub fn now(time_page_vaddr: u64) -> u64 {
    // SAFETY: system.xml maps the time page region (read-only) there in
    // every PD of this crate.
    unsafe { TimeReader::new(time_page_vaddr as *const u8) }.now_ns()
}

/// The client end of the Timer port at `vaddr` on `channel`, checked by its
/// observer under the fatal policy: a violation ends the PD, and the test.
pub fn timer_port(vaddr: u64, channel: u8, name: &'static str, now_ns: u64) -> TimerPort<'static> {
    // SAFETY: system.xml maps this PD's Timer port region read-write at
    // `vaddr`; the timer PD holds the other side, and this PD attaches once.
    match unsafe {
        attach(
            vaddr as *mut u8,
            channel,
            End::Client,
            Supervisor::fatal(&REPORTER),
            name,
            "timer",
            now_ns,
        )
    } {
        Ok(p) => p,
        Err(e) => panic!("{name}: bad Timer port at {vaddr:#x}: {e:?}"),
    }
}

/// xorshift64*: deterministic durations from a per-client seed.
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Median and worst of `figures` (sorted in place).
pub fn median_worst(figures: &mut [u64]) -> (u64, u64) {
    figures.sort_unstable();
    match figures.len() {
        0 => (0, 0),
        n if n % 2 == 1 => (figures[n / 2], figures[n - 1]),
        n => (figures[n / 2 - 1].midpoint(figures[n / 2]), figures[n - 1]),
    }
}

/// What went wrong in a client's run.
pub enum Failure {
    Port(Fault),
    Early {
        id: u32,
        deadline: u64,
        at: u64,
    },
    Order {
        id: u32,
        deadline: u64,
        previous: u64,
    },
    Unexpected(Msg),
}

impl From<Fault> for Failure {
    fn from(f: Fault) -> Self {
        Failure::Port(f)
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Port(fault) => write!(f, "Timer port: {fault}"),
            Failure::Early { id, deadline, at } => {
                write!(
                    f,
                    "timeout {id} fired early: at {at} ns, deadline {deadline} ns"
                )
            }
            Failure::Order {
                id,
                deadline,
                previous,
            } => write!(
                f,
                "timeout {id} (deadline {deadline} ns) fired after one with deadline {previous} ns"
            ),
            Failure::Unexpected(m) => write!(f, "unexpected answer {m}"),
        }
    }
}

/// One random client: `count` timeouts of random duration in batches of
/// [`BATCH`], each checked on receipt; returns the lateness figures.
pub async fn random_timeouts<P: Platform>(
    ex: &Executor<'_, P>,
    port: &mut TimerPort<'_>,
    seed: u64,
    count: usize,
    lateness: &mut [u64],
) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let mut deadlines = [0u64; BATCH];
    let mut previous = 0;
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let start = ex.now_ns();
        for (i, d) in deadlines[..n].iter_mut().enumerate() {
            *d = start + MIN_NS + rng.below(MAX_NS - MIN_NS + 1);
            let id = (done + i) as u32;
            port.send(
                ex,
                Msg::Request {
                    id,
                    deadline_ns: *d,
                },
            )
            .await?;
        }
        for _ in 0..n {
            let msg = port.recv(ex).await?;
            let at = ex.now_ns();
            let Msg::Fired { id } = msg else {
                return Err(Failure::Unexpected(msg));
            };
            let Some(&deadline) = (id as usize)
                .checked_sub(done)
                .and_then(|i| deadlines[..n].get(i))
            else {
                return Err(Failure::Unexpected(msg));
            };
            if at < deadline {
                return Err(Failure::Early { id, deadline, at });
            }
            if deadline < previous {
                return Err(Failure::Order {
                    id,
                    deadline,
                    previous,
                });
            }
            previous = deadline;
            lateness[id as usize] = at - deadline;
        }
        done += n;
    }
    Ok(())
}

/// Publishes `figures` in the results region at `vaddr` and tells
/// `timer-check`.
pub fn publish_results(vaddr: u64, figures: &[u64]) {
    assert!(
        figures.len() <= MAX_RESULTS,
        "too many figures for the results region"
    );
    let words = vaddr as *mut u64;
    for (i, f) in figures.iter().enumerate() {
        // SAFETY: system.xml maps RESULTS_SIZE bytes read-write at `vaddr`
        // in this PD; index i + 1 <= MAX_RESULTS stays inside.
        unsafe { words.add(i + 1).write_volatile(*f) };
    }
    // The count goes last, after the figures, with release ordering.
    // SAFETY: word 0 of the same region, aligned; read by timer-check as an
    // atomic.
    let count = unsafe { &*(words as *const core::sync::atomic::AtomicU64) };
    count.store(figures.len() as u64, core::sync::atomic::Ordering::Release);
    Channel::new(CHECK_CHANNEL).notify();
}

/// Reads a results region published by [`publish_results`].
pub fn read_results(vaddr: u64, out: &mut [u64]) -> usize {
    let words = vaddr as *const u64;
    // SAFETY: system.xml maps the client's results region (read-only) at
    // `vaddr` here; word 0 is the count, written atomically by the client.
    let count = unsafe { &*(words as *const core::sync::atomic::AtomicU64) }
        .load(core::sync::atomic::Ordering::Acquire) as usize;
    let count = count.min(MAX_RESULTS).min(out.len());
    for (i, o) in out[..count].iter_mut().enumerate() {
        // SAFETY: inside the mapped region, as above.
        *o = unsafe { words.add(i + 1).read_volatile() };
    }
    count
}

/// Runs one random client PD: `index` 0..3 picks its share and seed.
pub async fn random_client<P: Platform>(
    ex: &Executor<'_, P>,
    name: &'static str,
    index: usize,
    port_vaddr: u64,
    results_vaddr: u64,
) {
    let mut port = timer_port(port_vaddr, TIMER_CHANNEL, name, ex.now_ns());
    let count = CLIENT_TIMEOUTS[index];
    let mut lateness = [0u64; 64];
    let seed = 0x7133_0000 + index as u64 * 7919;
    match random_timeouts(ex, &mut port, seed, count, &mut lateness).await {
        Ok(()) => {
            let figures = &mut lateness[..count];
            publish_results(results_vaddr, figures);
            let (median, worst) = median_worst(figures);
            debug_println!(
                "{name}: {count} timeouts fired in deadline order, none early; lateness median {} us, worst {} us",
                median / 1000,
                worst / 1000
            );
        }
        Err(e) => debug_println!("{name}: FAILED: {e}"),
    }
}
