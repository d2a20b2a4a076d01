//! Serves protected procedure calls: replies with the sum of the caller's
//! message registers, under the caller's label.
#![no_std]
#![no_main]

use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, debug_println, mr, set_mr};

struct Adder {
    calls: u64,
}

fn init() -> Adder {
    Adder { calls: 0 }
}

impl Handler for Adder {
    fn notified(&mut self, channels: ChannelSet) {
        debug_println!("adder: unexpected notification {:#x}", channels.bits());
    }

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        self.calls += 1;
        let sum: u64 = (0..msg.length() as usize).map(mr).sum();
        debug_println!(
            "adder: call {} on {channel}: {} MRs, sum {sum}",
            self.calls,
            msg.length()
        );
        set_mr(0, sum);
        MessageInfo::new(msg.label(), 0, 0, 1)
    }
}

microkit::protection_domain!(init);
