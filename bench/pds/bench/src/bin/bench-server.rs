//! Echoes the bench client: a notification back for each notification, a
//! one-register reply for each call.
#![no_std]
#![no_main]

use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, mr, set_mr};

pd_config::program!("bench-server");

struct Server {
    client: Channel,
}

fn init() -> Server {
    Server {
        client: config::load().channels.bench_client.into(),
    }
}

impl Handler for Server {
    fn notified(&mut self, _: ChannelSet) {
        self.client.notify();
    }

    fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
        set_mr(0, mr(0));
        MessageInfo::new(0, 0, 0, 1)
    }
}

microkit::protection_domain!(init);
