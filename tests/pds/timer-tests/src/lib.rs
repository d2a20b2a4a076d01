//! In-image tests of the timer PD (tests/systems/timer.xml). Three
//! instances of the random client `timer-client` together set 100 timeouts
//! of 1 to 50 ms (each its share, as its config says), check that each fires in deadline order and never before its
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
use dingo_protocols::timer::{Msg, Observer};
use dingo_rt::executor::{Executor, Platform};
use dingo_rt::typed::{Fault, Supervisor};
use pd_config::{DeviceRegion, PortConfig, SharedRegion};
use timer_client::clock::{Counter, TimeReader};
use timer_client::port::TimerPort;

/// Timeouts a client keeps pending at once.
pub const BATCH: usize = 12;
/// The random durations: 1 ms up to 50 ms.
pub const MIN_NS: u64 = 1_000_000;
pub const MAX_NS: u64 = 50_000_000;

pub static REPORTER: ConsoleReporter = ConsoleReporter;

/// Figures a results region holds: word 0 is their number, published
/// last; the lateness figures (ns) follow.
pub fn capacity(results: &SharedRegion) -> usize {
    results.size / 8 - 1
}

/// The time page and the counter region, found in the config once: the
/// executor's clock is a plain `fn() -> u64`, called for every time
/// reading.
static CLOCK: spin::Once<(SharedRegion, Option<DeviceRegion>)> = spin::Once::new();

/// The reader of `time_page`, whose counter is the board's: the TSC on the
/// pc, the GPT's counter in the `counter` region on the i.MX6 (which the
/// system must then give).
pub fn reader(time_page: &SharedRegion, counter: Option<&DeviceRegion>) -> TimeReader {
    #[cfg(target_arch = "x86_64")]
    let counter = {
        let _ = counter;
        Counter::Tsc
    };
    #[cfg(not(target_arch = "x86_64"))]
    let counter = match counter {
        Some(r) => Counter::gpt(r.vaddr),
        None => panic!(
            "no counter region: on this board the time page converts the GPT's counter, which system.xml must map (role `counter`)"
        ),
    };
    // SAFETY: system-builder checked that the time page is mapped
    // (readable, a page at least) where the config says, and the counter
    // region (read-only, uncached) too.
    unsafe { TimeReader::with_counter(time_page.as_ptr(), counter) }
}

/// The time (`regions` gives the time page and the counter region the
/// first time).
pub fn now(regions: impl FnOnce() -> (SharedRegion, Option<DeviceRegion>)) -> u64 {
    let (page, counter) = CLOCK.call_once(regions);
    reader(page, counter.as_ref()).now_ns()
}

/// This PD's client end of a Timer port, checked by its observer under the
/// fatal policy: a violation ends the PD, and the test.
pub fn timer_port(pd: &'static str, cfg: &PortConfig, now_ns: u64) -> TimerPort<'static> {
    dingo_pd::typed_port(pd, cfg, Observer::new(now_ns), Supervisor::fatal(&REPORTER))
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

/// Publishes `figures` in the results region and tells `timer-check` on
/// `check`.
pub fn publish_results(results: &SharedRegion, check: Channel, figures: &[u64]) {
    assert!(
        figures.len() <= capacity(results),
        "too many figures for the results region"
    );
    let words = results.as_ptr().cast::<u64>();
    for (i, f) in figures.iter().enumerate() {
        // SAFETY: system-builder checked that the region is mapped
        // read-write here for results.size bytes; i + 1 <= capacity()
        // keeps the word inside.
        unsafe { words.add(i + 1).write_volatile(*f) };
    }
    // The count goes last, after the figures, with release ordering.
    // SAFETY: word 0 of the same region, aligned; read by timer-check as an
    // atomic.
    let count = unsafe { &*(words as *const core::sync::atomic::AtomicU64) };
    count.store(figures.len() as u64, core::sync::atomic::Ordering::Release);
    check.notify();
}

/// Reads a results region published by [`publish_results`].
pub fn read_results(results: &SharedRegion, out: &mut [u64]) -> usize {
    let words = results.as_ptr().cast::<u64>();
    // SAFETY: system-builder checked that the client's results region is
    // mapped readable here for results.size bytes; word 0 is the count,
    // written atomically by the client.
    let count = unsafe { &*(words as *const core::sync::atomic::AtomicU64) }
        .load(core::sync::atomic::Ordering::Acquire) as usize;
    let count = count.min(capacity(results)).min(out.len());
    for (i, o) in out[..count].iter_mut().enumerate() {
        // SAFETY: inside the mapped region, as above.
        *o = unsafe { words.add(i + 1).read_volatile() };
    }
    count
}

/// What one random client is given.
pub struct ClientConfig<'c> {
    pub name: &'static str,
    pub timer: &'c PortConfig,
    pub results: &'c SharedRegion,
    pub check: Channel,
    pub timeouts: usize,
    pub seed: u64,
}

/// Runs one random client PD.
pub async fn random_client<P: Platform>(ex: &Executor<'_, P>, cfg: ClientConfig<'_>) {
    let name = cfg.name;
    let mut port = timer_port(name, cfg.timer, ex.now_ns());
    let count = cfg.timeouts;
    let mut lateness = [0u64; 64];
    if count > lateness.len() {
        debug_println!(
            "{name}: FAILED: {count} timeouts, at most {}",
            lateness.len()
        );
        return;
    }
    match random_timeouts(ex, &mut port, cfg.seed, count, &mut lateness).await {
        Ok(()) => {
            let figures = &mut lateness[..count];
            publish_results(cfg.results, cfg.check, figures);
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
