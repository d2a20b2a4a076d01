//! Echoes the bench client's notifications: one back for each. It serves
//! no protected procedure calls, so it waits on its notification alone, as
//! the raw baseline's echo thread does.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler};

pd_config::program!("bench-echo");

struct Echo {
    client: Channel,
}

fn init() -> Echo {
    Echo {
        client: config::load().channels.bench_client.into(),
    }
}

impl Handler for Echo {
    fn notified(&mut self, _: ChannelSet) {
        self.client.notify();
    }
}

microkit::protection_domain!(init);
