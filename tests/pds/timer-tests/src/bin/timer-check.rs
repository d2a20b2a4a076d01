//! The timer test's checker: sleeps through the timer, collects the random
//! clients' lateness, drives the Timer protocol's edge cases and the idle
//! window, and ends the run (see the crate doc).
#![no_std]
#![no_main]

use dingo_pd::dingo_rt::executor::Millis;

use dingo_pd::MicrokitPlatform;
use dingo_pd::dingo_rt::executor::{Either, Executor, select};
use dingo_pd::microkit::{self, debug_println};
use dingo_protocols::timer::Msg;
use dingo_protocols::timer::REJECT_FULL;
use embedded_hal_async::delay::DelayNs;
use timer_client::delay::Delay;
use timer_client::platform::TimerPlatform;
use timer_client::port::TimerPort;
use timer_server::CAPACITY;
use timer_tests::{median_worst, read_results, timer_port};

pd_config::program!("timer-check");

const MS: u64 = 1_000_000;

type Ex<'a> = Executor<'a, TimerPlatform<'static, MicrokitPlatform>>;

fn clock() -> u64 {
    timer_tests::now(|| {
        let r = config::load().regions;
        (r.time_page, r.counter)
    })
}

fn platform() -> TimerPlatform<'static, MicrokitPlatform> {
    let cfg = config::load();
    let port = timer_port(cfg.name, &cfg.ports.sleep, clock());
    TimerPlatform::new(MicrokitPlatform::new(clock), port)
}

fn irq_count(cfg: &config::Config) -> u64 {
    timer_tests::reader(&cfg.regions.time_page, cfg.regions.counter.as_ref()).irq_count()
}

/// A check failed: the message is printed with FAILED and the run stops.
struct Failed;

fn check(ok: bool, what: core::fmt::Arguments<'_>) -> Result<(), Failed> {
    if ok {
        debug_println!("timer-check: {what}");
        Ok(())
    } else {
        debug_println!("timer-check: FAILED: {what}");
        Err(Failed)
    }
}

async fn recv(ex: &Ex<'_>, port: &mut TimerPort<'_>) -> Result<Msg, Failed> {
    port.recv(ex).await.map_err(|f| {
        debug_println!("timer-check: FAILED: Timer port: {f}");
        Failed
    })
}

async fn send(ex: &Ex<'_>, port: &mut TimerPort<'_>, msg: Msg) -> Result<(), Failed> {
    port.send(ex, msg).await.map_err(|f| {
        debug_println!("timer-check: FAILED: Timer port: {f}");
        Failed
    })
}

async fn sleeps(ex: &Ex<'_>) -> Result<(), Failed> {
    let start = ex.now_ns();
    ex.sleep(10.ms()).await;
    let slept = ex.now_ns() - start;
    check(
        slept >= 10 * MS,
        format_args!("async sleep of 10 ms resumed after {} us", slept / 1000),
    )?;
    // Two sleeps race: the shorter wins, and the longer one's request is
    // cancelled when the select drops it.
    let start = ex.now_ns();
    let winner = match select(ex.sleep(60.ms()), ex.sleep(20.ms())).await {
        Either::First(()) => 60,
        Either::Second(()) => 20,
    };
    let slept = ex.now_ns() - start;
    // Under a loaded host both may be due by the time the PD runs; then
    // the select's first future wins, which is fine.
    check(
        slept >= 20 * MS && (winner == 20 || slept >= 60 * MS),
        format_args!(
            "select of 60 ms and 20 ms sleeps: the {winner} ms one won after {} us",
            slept / 1000
        ),
    )?;
    // The same through embedded-hal-async's DelayNs, for generic drivers.
    let start = ex.now_ns();
    Delay::new(ex).delay_ms(5).await;
    let slept = ex.now_ns() - start;
    check(
        slept >= 5 * MS,
        format_args!(
            "embedded-hal DelayNs of 5 ms resumed after {} us",
            slept / 1000
        ),
    )
}

async fn lateness(ex: &Ex<'_>, cfg: &config::Config) -> Result<(), Failed> {
    let mut all = [0u64; 512];
    let mut n = 0;
    let clients = &cfg.channels.clients;
    if clients.len() != cfg.regions.results.len() {
        return check(
            false,
            format_args!(
                "{} client channels but {} results regions",
                clients.len(),
                cfg.regions.results.len()
            ),
        );
    }
    for (ch, results) in clients.iter().zip(&cfg.regions.results) {
        ex.channel(ch.id).await;
        n += read_results(results, &mut all[n..]);
    }
    let expected = usize::from(cfg.params.timeouts);
    let (median, worst) = median_worst(&mut all[..n]);
    check(
        n == expected,
        format_args!(
            "{n} timeouts from {} clients: lateness median {} us, worst {} us",
            clients.len(),
            median / 1000,
            worst / 1000
        ),
    )
}

async fn protocol(
    ex: &Ex<'_>,
    port: &mut TimerPort<'_>,
    cfg: &config::Config,
) -> Result<(), Failed> {
    // A deadline in the past fires at once.
    let asked = ex.now_ns();
    send(
        ex,
        port,
        Msg::Request {
            id: 1,
            deadline_ns: asked - MS,
        },
    )
    .await?;
    let msg = recv(ex, port).await?;
    let took = ex.now_ns() - asked;
    // "At once": without waiting for any deadline; the bound leaves room
    // for an emulator on a busy host.
    check(
        msg == Msg::Fired { id: 1 } && took < 50 * MS,
        format_args!("deadline in the past: {msg} after {} us", took / 1000),
    )?;

    // A cancelled timeout never fires: id 2 is cancelled well before its
    // deadline, and id 3 fires only after id 2's deadline has passed.
    let start = ex.now_ns();
    send(
        ex,
        port,
        Msg::Request {
            id: 2,
            deadline_ns: start + 30 * MS,
        },
    )
    .await?;
    send(
        ex,
        port,
        Msg::Request {
            id: 3,
            deadline_ns: start + 60 * MS,
        },
    )
    .await?;
    send(ex, port, Msg::Cancel { id: 2 }).await?;
    let first = recv(ex, port).await?;
    let second = recv(ex, port).await?;
    let past = ex.now_ns() >= start + 30 * MS;
    check(
        first == Msg::Cancelled { id: 2 } && second == Msg::Fired { id: 3 } && past,
        format_args!(
            "cancel before the deadline: {first}, then {second} past the cancelled deadline, no fired(id=2)"
        ),
    )?;

    // Past the capacity: every slot holds a live timeout, one more is
    // rejected; cancelling them all answers each once.
    let far = ex.now_ns() + 10_000 * MS;
    for id in 0..=CAPACITY as u32 {
        send(
            ex,
            port,
            Msg::Request {
                id: 100 + id,
                deadline_ns: far,
            },
        )
        .await?;
    }
    let over = recv(ex, port).await?;
    let want = Msg::Rejected {
        id: 100 + CAPACITY as u32,
        reason: REJECT_FULL,
    };
    check(
        over == want,
        format_args!(
            "request {} past the capacity of {CAPACITY}: {over}",
            CAPACITY + 1
        ),
    )?;
    for id in 0..CAPACITY as u32 {
        send(ex, port, Msg::Cancel { id: 100 + id }).await?;
    }
    let mut cancelled = 0;
    for id in 0..CAPACITY as u32 {
        if recv(ex, port).await? == (Msg::Cancelled { id: 100 + id }) {
            cancelled += 1;
        }
    }
    check(
        cancelled == CAPACITY,
        format_args!("{cancelled} of {CAPACITY} queued timeouts cancelled"),
    )?;

    // An idle window: nothing pending but one 2 s timeout.
    let before = irq_count(cfg);
    let start = ex.now_ns();
    send(
        ex,
        port,
        Msg::Request {
            id: 4,
            deadline_ns: start + 2_000 * MS,
        },
    )
    .await?;
    let msg = recv(ex, port).await?;
    let window = ex.now_ns() - start;
    let irqs = irq_count(cfg) - before;
    check(
        msg == Msg::Fired { id: 4 } && irqs == 1 && window >= 2_000 * MS,
        format_args!(
            "idle window of {} ms with one requested expiry: {irqs} timer interrupt(s) (total so far {})",
            window / MS,
            irq_count(cfg)
        ),
    )
}

async fn run(ex: &Ex<'_>, cfg: &config::Config) -> Result<(), Failed> {
    sleeps(ex).await?;
    lateness(ex, cfg).await?;
    let mut port = timer_port(cfg.name, &cfg.ports.direct, ex.now_ns());
    protocol(ex, &mut port, cfg).await?;
    let c = port.counters();
    check(
        c.violations == 0 && c.malformed == 0,
        format_args!(
            "Timer port: {} sent, {} received, 0 violations",
            c.sent, c.received
        ),
    )
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    if run(ex, &cfg).await.is_ok() {
        debug_println!("timer-check: all checks passed; ending the run");
        microkit::debug_exit(cfg.ioports.debug_exit).success();
    }
}

dingo_pd::async_protection_domain!(main, platform = platform());
