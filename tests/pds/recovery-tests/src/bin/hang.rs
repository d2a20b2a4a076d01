//! Answers the checker's pings. Its first instance spins for ever in the
//! handler of the third ping: a handler that never returns, which only
//! the monitor's budget check can end. A later instance announces itself
//! with a pong as soon as it starts.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, debug_println};

pd_config::program!("hang");

struct Hang {
    checker: Channel,
    pings: u32,
    incarnation: u64,
}

fn init() -> Hang {
    let cfg = config::load();
    let checker = Channel::from(cfg.channels.checker);
    let incarnation = microkit::recovery::incarnation();
    debug_println!(
        "hang: incarnation {incarnation}, budget {:?} ms",
        microkit::recovery::budget_ms()
    );
    if incarnation > 1 {
        checker.notify();
    }
    Hang {
        checker,
        pings: 0,
        incarnation,
    }
}

impl Handler for Hang {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(self.checker) {
            return;
        }
        self.pings += 1;
        if self.incarnation == 1 && self.pings == 3 {
            debug_println!("hang: ping 3: spinning in the handler");
            loop {
                core::hint::spin_loop();
            }
        }
        self.checker.notify();
    }
}

microkit::protection_domain!(init);
