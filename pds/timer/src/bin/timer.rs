//! The timer PD: the time base and the timeouts of every other PD.
//!
//! At start-up it takes over the HPET (LegacyReplacement route: timer 0 on
//! IOAPIC pin 2, edge-triggered, the PIT cut off), measures the TSC over
//! about 10 ms of HPET time, cross-checks the result against the TSC
//! frequency seL4 put in bootinfo, and publishes the conversion on the time
//! page, from which every PD reads the time with `rdtsc` and no IPC (see
//! timer-core's crate doc). Then it serves the Timer protocol on one port
//! per client (timer-server) with one-shot HPET programming: armed for the
//! earliest pending deadline, disarmed when nothing is pending, so an idle
//! system takes no timer interrupts. Timeouts expire against the TSC clock,
//! the one clients compare with, never against the interrupt itself; the
//! count of interrupts taken is published next to the time page. The
//! comparator is computed from readings taken when it is set, at the
//! HPET's rate measured against the TSC clock since the calibration
//! (timer-core's `wait_for`): under TCG the calibrated TSC rate can be a
//! thousand ppm off, and at the nominal rate from the calibration the HPET
//! ran tens of milliseconds ahead of the TSC clock within a minute, which
//! this PD met by spinning out the gap before every deadline, starving
//! every PD below it (the usb boot test's rare hang).
//!
//! It is an async PD on dingo-rt's executor, the shape of every PD off the
//! packet path: start-up runs to completion in the first poll, then one
//! task polls the server, programs the HPET and awaits its channels
//! (clients and IRQ). It spawns nothing, so its executor has no task slots
//! to scan.
//!
//! What the shape costs, measured against the synchronous loop this PD had
//! before (the same image but for this file, debug build, the timer boot
//! test under `-icount shift=S`, where one instruction takes 2^S virtual
//! ns): lateness median / worst of the 100 random timeouts, the answer to
//! a past deadline, and the 10 ms sleep, in µs.
//!
//! | S | synchronous               | async                     |
//! |---|---------------------------|---------------------------|
//! | 0 | 7 / 61, past 10, 10007    | 7 / 61, past 10, 10008    |
//! | 1 | 14 / 88, past 20, 10015   | 15 / 90, past 21, 10016   |
//! | 2 | 29 / 94, past 40, 10030   | 30 / 99, past 42, 10032   |
//! | 3 | 59 / 180, past 81, 10061  | 61 / 139, past 84, 10064  |
//!
//! About 3 µs at S = 3, some 375 instructions more per wake-up, a few
//! percent of the path (the worst case moves either way with the schedule):
//! small enough for the timer, which wakes once per timeout; the packet-path
//! PDs, which wake per batch of frames, keep a synchronous loop (README).
//!
//! # What it takes from the system description
//!
//! pds/timer/pd.toml declares it: the HPET's register page (a device
//! region), the time page, the HPET interrupt (LegacyReplacement: IOAPIC
//! pin 2, edge), and up to 16 Timer ports, one per client, each with its
//! channel. It needs a priority above every client's.
#![no_std]
#![no_main]

use dingo_pd::microkit::hwio::Mmio;
use dingo_pd::microkit::{Channel, debug_println, setvar};
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use dingo_protocols::timer::Observer;
use dingo_rt::executor::Executor;
use dingo_rt::typed::Supervisor;
use timer_client::clock::{TimeReader, TimeWriter, rdtsc};
use timer_client::port::TimerPort;
use timer_core::clock::{Calibration, Conversion, FS_PER_NS, Reading, Sample, Wait, wait_for};
use timer_core::hpet::{ArmOutcome, Config, Hpet, Route, Trigger};
use timer_server::{CAPACITY, Server};

pd_config::program!("timer");

// Bootinfo's TSC frequency, which the monitor fills in (an implicit setvar).
setvar!(dingo_bootinfo_tsc_mhz);

/// Most clients one timer PD serves (its manifest's `clients` role).
const MAX_CLIENTS: usize = 16;

/// The calibration interval: 10 ms of HPET time gives about 1 ppm from the
/// HPET's quantisation; sampling jitter under emulation dominates.
const CALIBRATION_NS: u64 = 10_000_000;
/// How far the measured TSC frequency may lie from bootinfo's MHz figure
/// and still count as agreeing.
const TOLERANCE_PPM: u32 = 500;
/// A deadline this close is waited for by spinning: arming the HPET for it
/// would cost an interrupt and likely arrive later anyway.
const SPIN_NS: u64 = 20_000;
/// An interrupt this early for its deadline is spun out rather than armed
/// again: it is early by the error of the HPET rate `wait_for` measured
/// (a few ppm) times the time it was armed for.
const EARLY_SPIN_NS: u64 = 1_000_000;

static REPORTER: ConsoleReporter = ConsoleReporter;

/// A TSC reading paired with an HPET reading: the TSC is read on both
/// sides of the slow MMIO read and averaged.
fn sample(hpet: &mut Hpet<Mmio>) -> Sample {
    let before = rdtsc();
    let hpet_ticks = hpet.now_ticks();
    let after = rdtsc();
    Sample {
        tsc: before + (after - before) / 2,
        hpet_ticks,
    }
}

fn calibrate(hpet: &mut Hpet<Mmio>) -> Calibration {
    let ticks = CALIBRATION_NS * FS_PER_NS / u64::from(hpet.period_fs());
    let first = sample(hpet);
    while hpet.now_ticks() < first.hpet_ticks + ticks {
        core::hint::spin_loop();
    }
    let second = sample(hpet);
    match Calibration::from_samples(first, second, hpet.period_fs()) {
        Ok(cal) => cal,
        Err(e) => panic!("timer: TSC calibration failed: {e}"),
    }
}

fn cross_check(cal: &Calibration) {
    let mhz = dingo_bootinfo_tsc_mhz.get();
    debug_println!(
        "timer: TSC {} Hz measured against the HPET; bootinfo says {mhz} MHz",
        cal.tsc_hz()
    );
    let Ok(mhz) = u32::try_from(mhz) else {
        panic!("timer: bootinfo TSC frequency {mhz} MHz does not fit 32 bits");
    };
    // The HPET is the reference: its period is fixed by the hardware,
    // while seL4's figure comes from a short PIT measurement at boot, which
    // under QEMU's TCG is several percent off. A disagreement is reported,
    // and the HPET measurement is used either way.
    match cal.check(mhz, TOLERANCE_PPM) {
        Ok(()) => debug_println!(
            "timer: TSC cross-check with bootinfo passed (tolerance {TOLERANCE_PPM} ppm)"
        ),
        Err(e) => debug_println!(
            "timer: TSC cross-check with bootinfo: off by {} ppm (tolerance {TOLERANCE_PPM} ppm); \
             using the HPET measurement",
            e.off_ppm
        ),
    }
}

/// The time page's address, found in the config once: the executor's clock
/// is a plain `fn() -> u64`, called after every wait.
static TIME_PAGE: spin::Once<usize> = spin::Once::new();

/// The executor's clock: the time this PD publishes, 0 before it first
/// does (the executor reads the clock before `main` runs; nothing here
/// sleeps through the executor, so only its monotonicity matters).
fn clock() -> u64 {
    let page = *TIME_PAGE.call_once(|| config::load().regions.time_page.vaddr);
    // SAFETY: system-builder checked that the time page is mapped here, a
    // page at least; a reader only reads it.
    unsafe { TimeReader::new(page as *const u8) }
        .try_now_ns()
        .unwrap_or(0)
}

async fn main(ex: &Executor<'_, MicrokitPlatform, 0>) {
    let config = Config {
        route: Route::LegacyReplacement,
        trigger: Trigger::Edge,
    };
    let cfg = config::load();
    let bus = cfg.regions.hpet.mmio("hpet");
    let mut hpet = match Hpet::init(bus, config) {
        Ok(h) => h,
        Err(e) => panic!("timer: {e}"),
    };
    let cal = calibrate(&mut hpet);
    cross_check(&cal);
    let conversion: Conversion = cal.conversion();
    let period_fs = hpet.period_fs();
    let anchor = cal.anchor();
    // SAFETY: system-builder checked that the time page is mapped
    // read-write here, a page at least; this PD is its only writer.
    let mut time = unsafe { TimeWriter::new(cfg.regions.time_page.as_ptr()) };
    time.publish(&conversion);
    let now = || conversion.tsc_to_ns(rdtsc());

    let ports = cfg
        .ports
        .clients
        .iter()
        .map(|client| -> TimerPort<'static> {
            dingo_pd::typed_port(
                cfg.name,
                client,
                Observer::new(now()),
                Supervisor::log(&REPORTER),
            )
        });
    let mut server: Server<'static, MAX_CLIENTS> = Server::new(ports);
    let hpet_irq = Channel::from(cfg.irqs.hpet);
    debug_println!(
        "timer: serving {} clients, capacity {CAPACITY} timeouts; HPET timer 0 on IOAPIC pin {}",
        server.clients(),
        hpet.ioapic_pin()
    );

    let wake_on = cfg
        .ports
        .clients
        .iter()
        .fold(1 << hpet_irq.index(), |m, c| m | 1u64 << c.channel);
    let mut irqs = 0u64;
    // The deadline the comparator is set for, and the one it last fired for.
    let mut armed: Option<u64> = None;
    let mut fired: Option<u64> = None;
    let mut duplicates = 0;
    loop {
        // Clients are notified at once, not when this task next yields: a
        // spin for a close deadline below may keep it busy meanwhile.
        let next = server.poll(now(), |ch| Channel::new(ch).notify());
        if server.stats().duplicates != duplicates {
            duplicates = server.stats().duplicates;
            debug_println!(
                "timer: a client reused a live timeout id ({duplicates} so far); no answer"
            );
        }
        match next {
            None => {
                hpet.disarm();
                armed = None;
            }
            Some(deadline) if armed != Some(deadline) => {
                let reading = Reading {
                    ns: now(),
                    ticks: hpet.now_ticks(),
                };
                let spin = if fired == Some(deadline) {
                    EARLY_SPIN_NS
                } else {
                    SPIN_NS
                };
                match wait_for(deadline, reading, anchor, period_fs, spin) {
                    Wait::Spin => {
                        while now() < deadline {
                            core::hint::spin_loop();
                        }
                        continue;
                    }
                    Wait::Arm(ticks) => match hpet.arm(ticks) {
                        ArmOutcome::Armed => armed = Some(deadline),
                        ArmOutcome::FireNow { .. } => continue,
                    },
                }
            }
            Some(_) => {}
        }
        if server.prepare_wait() {
            continue;
        }
        if ex.any_channel(wake_on).await & 1 << hpet_irq.index() != 0 {
            irqs += 1;
            time.set_irq_count(irqs);
            hpet.ack();
            // The comparator fired: the next deadline needs a fresh arm.
            fired = armed.take();
            // At once rather than queued on the executor: the next arm may
            // be for a deadline only microseconds away.
            if let Err(e) = hpet_irq.irq_ack() {
                panic!("timer: IRQ ack refused: {e:?}");
            }
        }
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
