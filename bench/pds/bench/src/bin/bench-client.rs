//! Times notification round trips and protected procedure calls to the
//! bench server through the Microkit runtime, prints the figures, and ends
//! the run through the debug-exit port.
#![no_std]
#![no_main]

use bench::{ROUNDS, WARMUP};
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, IoPort, cycles, debug_println, set_mr};

const SERVER: Channel = Channel::new(0);
const DEBUG_EXIT: IoPort = IoPort::new(0);

struct Client {
    round: u64,
    start: u64,
}

fn init() -> Client {
    bench::use_com1_console();
    SERVER.notify();
    Client { round: 0, start: 0 }
}

impl Handler for Client {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(SERVER) {
            return;
        }
        // One notification went there and one came back.
        self.round += 1;
        if self.round == WARMUP {
            self.start = cycles();
        }
        if self.round < WARMUP + ROUNDS {
            SERVER.notify();
            return;
        }
        let notify = (cycles() - self.start) / ROUNDS;
        let call = || {
            set_mr(0, 1);
            SERVER.pp_call(MessageInfo::new(0, 0, 0, 1));
        };
        (0..WARMUP).for_each(|_| call());
        let start = cycles();
        (0..ROUNDS).for_each(|_| call());
        let ppc = (cycles() - start) / ROUNDS;
        debug_println!("bench: pd notify-roundtrip {notify} cycles ({ROUNDS} rounds)");
        debug_println!("bench: pd ppc-roundtrip {ppc} cycles ({ROUNDS} rounds)");
        let _ = DEBUG_EXIT.out8(0xf4, 0x10);
    }
}

microkit::protection_domain!(init);
