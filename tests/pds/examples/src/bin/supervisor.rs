//! Waits for a success report from the producer (channel 0), the consumer
//! (channel 1) and the ticker (channel 2), then ends the run through the
//! debug-exit port it owns. First it checks that its I/O port capability
//! really is limited to the range system.xml declares.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, IoPort, debug_println};

/// The raw capability of the debug-exit range, to test its limits.
const DEBUG_EXIT_CAP: IoPort = IoPort::new(0);
const PRODUCER: Channel = Channel::new(0);
const CONSUMER: Channel = Channel::new(1);
const TICKER: Channel = Channel::new(2);
/// A port outside the declared 0xf4..0xf8 (the POST diagnostic port).
const FOREIGN_PORT: u16 = 0x80;

struct Supervisor {
    seen: ChannelSet,
}

fn init() -> Supervisor {
    match DEBUG_EXIT_CAP.out8(FOREIGN_PORT, 0) {
        Err(e) => {
            debug_println!("supervisor: port {FOREIGN_PORT:#x} outside its range refused ({e:?})")
        }
        Ok(()) => {
            debug_println!("supervisor: FAILED: wrote port {FOREIGN_PORT:#x} outside its range")
        }
    }
    debug_println!("supervisor: waiting for reports");
    Supervisor {
        seen: ChannelSet::from_bits(0),
    }
}

impl Handler for Supervisor {
    fn notified(&mut self, channels: ChannelSet) {
        for ch in channels.iter() {
            debug_println!("supervisor: report on {ch}");
        }
        self.seen = ChannelSet::from_bits(self.seen.bits() | channels.bits());
        if [PRODUCER, CONSUMER, TICKER]
            .iter()
            .all(|&ch| self.seen.contains(ch))
        {
            debug_println!("supervisor: all checks passed; ending the run");
            microkit::debug_exit().success();
        }
    }
}

microkit::protection_domain!(init);
