//! Echoes the bench client: a notification back for each notification, a
//! one-register reply for each call.
#![no_std]
#![no_main]

use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, mr, set_mr};

const CLIENT: Channel = Channel::new(0);

struct Server;

fn init() -> Server {
    Server
}

impl Handler for Server {
    fn notified(&mut self, _: ChannelSet) {
        CLIENT.notify();
    }

    fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
        set_mr(0, mr(0));
        MessageInfo::new(0, 0, 0, 1)
    }
}

microkit::protection_domain!(init);
