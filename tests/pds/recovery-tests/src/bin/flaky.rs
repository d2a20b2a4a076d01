//! Writes through a wild pointer while its incarnation (the monitor's
//! count of its instances) is below `crash_until`; then says so on `done`
//! and idles.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, debug_println};

pd_config::program!("flaky");

/// Nothing is mapped here in any PD.
const WILD: u64 = 0xdead_0000;

struct Flaky;

fn init() -> Flaky {
    let cfg = config::load();
    let n = microkit::recovery::incarnation();
    if n < cfg.params.crash_until {
        debug_println!("{}: incarnation {n}: writing through {WILD:#x}", cfg.name);
        // SAFETY: not safe at all, on purpose: the write faults, the kernel
        // stops this thread and tells the monitor.
        unsafe { (WILD as *mut u64).write_volatile(n) };
        debug_println!(
            "{}: FAILED: a write to an unmapped address went through",
            cfg.name
        );
    }
    debug_println!("{}: incarnation {n} runs", cfg.name);
    if let Some(done) = cfg.channels.done {
        Channel::from(done).notify();
    }
    Flaky
}

impl Handler for Flaky {
    fn notified(&mut self, _: ChannelSet) {}
}

microkit::protection_domain!(init);
