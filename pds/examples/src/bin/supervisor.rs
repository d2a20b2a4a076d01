//! Waits for a success report from the producer (channel 0) and the
//! consumer (channel 1), then ends the run through the debug-exit port it
//! owns.
#![no_std]
#![no_main]

use examples::{DEBUG_EXIT_PORT, EXIT_SUCCESS};
use microkit::{Channel, ChannelSet, Handler, IoPort, debug_println};

const DEBUG_EXIT: IoPort = IoPort::new(0);
const PRODUCER: Channel = Channel::new(0);
const CONSUMER: Channel = Channel::new(1);

struct Supervisor {
    seen: ChannelSet,
}

fn init() -> Supervisor {
    debug_println!("supervisor: waiting for the producer's and the consumer's reports");
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
        if self.seen.contains(PRODUCER) && self.seen.contains(CONSUMER) {
            debug_println!("supervisor: all checks passed; ending the run");
            let _ = DEBUG_EXIT.out8(DEBUG_EXIT_PORT, EXIT_SUCCESS);
        }
    }
}

microkit::protection_domain!(init);
