//! Waits for a success report from the producer, the consumer and the
//! ticker, then ends the run through the debug-exit port it owns. First it checks that its I/O port capability
//! really is limited to the range system.xml declares.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, IoPort, debug_println};

pd_config::program!("supervisor");

/// A port outside the declared debug-exit range (the POST diagnostic port).
const FOREIGN_PORT: u16 = 0x80;

struct Supervisor {
    debug_exit: pd_config::IoPorts,
    reporters: [Channel; 3],
    seen: ChannelSet,
}

fn init() -> Supervisor {
    let cfg = config::load();
    let debug_exit = cfg.ioports.debug_exit;
    // The raw capability of the debug-exit range, to test its limits.
    match IoPort::of(debug_exit).out8(FOREIGN_PORT, 0) {
        Err(e) => {
            debug_println!("supervisor: port {FOREIGN_PORT:#x} outside its range refused ({e:?})")
        }
        Ok(()) => {
            debug_println!("supervisor: FAILED: wrote port {FOREIGN_PORT:#x} outside its range")
        }
    }
    debug_println!("supervisor: waiting for reports");
    let ch = cfg.channels;
    Supervisor {
        debug_exit,
        reporters: [ch.producer.into(), ch.consumer.into(), ch.ticker.into()],
        seen: ChannelSet::from_bits(0),
    }
}

impl Handler for Supervisor {
    fn notified(&mut self, channels: ChannelSet) {
        for ch in channels.iter() {
            debug_println!("supervisor: report on {ch}");
        }
        self.seen = ChannelSet::from_bits(self.seen.bits() | channels.bits());
        if self.reporters.iter().all(|&ch| self.seen.contains(ch)) {
            debug_println!("supervisor: all checks passed; ending the run");
            microkit::debug_exit(self.debug_exit).success();
        }
    }
}

microkit::protection_domain!(init);
