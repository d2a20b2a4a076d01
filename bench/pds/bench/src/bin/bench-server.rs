//! Answers the bench client's protected procedure calls with a
//! one-register reply.
#![no_std]
#![no_main]

use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, mr, set_mr};

pd_config::program!("bench-server");

struct Server;

fn init() -> Server {
    // The channel to the client is its PPC endpoint; nothing to keep.
    let _ = config::load();
    Server
}

impl Handler for Server {
    fn notified(&mut self, _: ChannelSet) {}

    fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
        set_mr(0, mr(0));
        MessageInfo::new(0, 0, 0, 1)
    }
}

microkit::protection_domain!(init);
