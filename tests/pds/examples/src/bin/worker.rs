//! The fault test's survivor: it runs after the faulty PD has faulted (it
//! has a lower priority), calls the adder, and ends the run through the
//! debug-exit port when the answer is right.
#![no_std]
#![no_main]

use examples::ADD_LABEL;
use microkit::hwio::debug_exit::Code;
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, debug_println, mr, set_mr};

pd_config::program!("worker");

struct Worker;

fn init() -> Worker {
    let cfg = config::load();
    for i in 0..10 {
        set_mr(i, i as u64 + 1);
    }
    let reply = Channel::from(cfg.channels.adder).pp_call(MessageInfo::new(ADD_LABEL, 0, 0, 10));
    let sum = mr(0);
    debug_println!(
        "worker: adder says 1+..+10 = {sum} (label {})",
        reply.label()
    );
    let code = if sum == 55 {
        Code::Success
    } else {
        Code::Failure
    };
    debug_println!("worker: finished; ending the run");
    microkit::debug_exit(cfg.ioports.debug_exit).exit(code);
    Worker
}

impl Handler for Worker {
    fn notified(&mut self, _: ChannelSet) {}
}

microkit::protection_domain!(init);
