//! The timer PD of the i.MX6 boards: the time base and the timeouts of
//! every other PD, as the pc's timer PD (pds/timer) is on x86, with the
//! same Timer protocol, server (timer-server), time page and client
//! library (timer-client).
//!
//! What differs is the hardware. The GPT (timer-core's [`gpt`] module) is
//! both the clock and the deadline timer: a 32-bit counter at 3 MHz that
//! every PD reads through a read-only mapping of the GPT's page (its
//! `counter` region role), and output compare 1 as a one-shot interrupt
//! for the earliest pending deadline, disarmed when nothing is pending.
//! Nothing needs calibrating: the counter's rate is the crystal's. The time
//! page holds the conversion from the extended counter to nanoseconds,
//! with the counter's 64-bit base; output compare 2 interrupts every half
//! wrap (716 s) to move that base on, so that readers extending the
//! counter around it stay right. Each move publishes a conversion one
//! nanosecond ahead of the old one at that instant, which keeps time
//! monotonic across the switch (the floors of the two differ by at most
//! that nanosecond).
//!
//! A deadline in the past, or one the counter passes while the compare is
//! written, is answered at once: the compare would only fire after a wrap.
//! Timeouts expire against the clock the clients read, never against the
//! interrupt. The count of interrupts taken is published next to the time
//! page, as on the pc.
//!
//! Its roles are in pds/timer/gpt-timer/pd.toml. It needs a priority above
//! every client's.
#![no_std]
#![no_main]

use dingo_pd::microkit::{Channel, debug_println};
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use dingo_protocols::timer::Observer;
use dingo_rt::executor::Executor;
use dingo_rt::typed::Supervisor;
use timer_client::clock::{Counter, TimeReader, TimeWriter};
use timer_client::port::TimerPort;
use timer_core::clock::Conversion;
use timer_core::gpt::{ArmOutcome, Gpt, HZ};
use timer_server::{CAPACITY, Server};

pd_config::program!("gpt-timer");

/// Most clients one timer PD serves (its manifest's `clients` role).
const MAX_CLIENTS: usize = 16;
/// A deadline this close is waited for by spinning: arming the compare for
/// it would cost an interrupt and likely arrive later anyway.
const SPIN_NS: u64 = 20_000;

static REPORTER: ConsoleReporter = ConsoleReporter;

/// The time page and the GPT, found in the config once: the executor's
/// clock is a plain `fn() -> u64`.
static CLOCK: spin::Once<(usize, usize)> = spin::Once::new();

/// The executor's clock: the time this PD publishes, 0 before it first
/// does (nothing here sleeps through the executor, so only its
/// monotonicity matters).
fn clock() -> u64 {
    let &(page, gpt) = CLOCK.call_once(|| {
        let cfg = config::load();
        (cfg.regions.time_page.vaddr, cfg.regions.gpt.vaddr)
    });
    // SAFETY: system-builder checked that the time page and the GPT's
    // registers are mapped here, a page each.
    unsafe { TimeReader::with_counter(page as *const u8, Counter::gpt(gpt)) }
        .try_now_ns()
        .unwrap_or(0)
}

async fn main(ex: &Executor<'_, MicrokitPlatform, 0>) {
    let cfg = config::load();
    let mut gpt = match Gpt::init(cfg.regions.gpt.mmio("gpt")) {
        Ok(g) => g,
        Err(e) => panic!("timer: {e}"),
    };
    let mut conversion = match Conversion::new(HZ, gpt.now(), 0) {
        Ok(c) => c,
        Err(e) => panic!("timer: {e}"),
    };
    // SAFETY: system-builder checked that the time page is mapped
    // read-write here, a page at least; this PD is its only writer.
    let mut time = unsafe { TimeWriter::new(cfg.regions.time_page.as_ptr()) };
    time.publish(&conversion);
    debug_println!(
        "timer: GPT counter at {HZ} Hz (24 MHz crystal / 8) published on the time page; no calibration needed"
    );

    let start = conversion.tsc_to_ns(gpt.now());
    let ports = cfg
        .ports
        .clients
        .iter()
        .map(|client| -> TimerPort<'static> {
            dingo_pd::typed_port(
                cfg.name,
                client,
                Observer::new(start),
                Supervisor::log(&REPORTER),
            )
        });
    let mut server: Server<'static, MAX_CLIENTS> = Server::new(ports);
    let irq = Channel::from(cfg.irqs.gpt);
    debug_println!(
        "timer: serving {} clients, capacity {CAPACITY} timeouts; GPT compare 1 on {}",
        server.clients(),
        irq
    );

    let wake_on = cfg
        .ports
        .clients
        .iter()
        .fold(1u64 << irq.index(), |m, c| m | 1u64 << c.channel);
    let mut irqs = 0u64;
    let mut armed: Option<u64> = None;
    let mut duplicates = 0;
    loop {
        let now = conversion.tsc_to_ns(gpt.now());
        let next = server.poll(now, |ch| Channel::new(ch).notify());
        if server.stats().duplicates != duplicates {
            duplicates = server.stats().duplicates;
            debug_println!(
                "timer: a client reused a live timeout id ({duplicates} so far); no answer"
            );
        }
        match next {
            None => {
                gpt.disarm();
                armed = None;
            }
            Some(deadline) => {
                let ticks = conversion.ns_to_tsc(deadline);
                if armed != Some(ticks) {
                    if deadline.saturating_sub(now) <= SPIN_NS {
                        while conversion.tsc_to_ns(gpt.now()) < deadline {
                            core::hint::spin_loop();
                        }
                        continue;
                    }
                    match gpt.arm(ticks) {
                        // A short arm comes back before the deadline, and
                        // the loop arms again from there.
                        ArmOutcome::Armed | ArmOutcome::ArmedShort { .. } => armed = Some(ticks),
                        ArmOutcome::FireNow { .. } => continue,
                    }
                }
            }
        }
        if server.prepare_wait() {
            continue;
        }
        if ex.any_channel(wake_on).await & 1 << irq.index() != 0 {
            irqs += 1;
            time.set_irq_count(irqs);
            let events = gpt.take_events();
            if events.compare {
                // The compare fired: the next deadline needs a fresh arm.
                armed = None;
            }
            if events.rebase {
                let at = gpt.now();
                // One nanosecond ahead of the old conversion at this
                // instant: never behind it afterwards (see the crate doc).
                conversion = match Conversion::new(HZ, at, conversion.tsc_to_ns(at) + 1) {
                    Ok(c) => c,
                    Err(e) => panic!("timer: {e}"),
                };
                time.publish(&conversion);
                gpt.arm_rebase();
            }
            if let Err(e) = irq.irq_ack() {
                panic!("timer: IRQ ack refused: {e:?}");
            }
        }
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
