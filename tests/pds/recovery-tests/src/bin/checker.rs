//! Waits until `flaky` says it runs and `hang` has answered `pongs` pings
//! (one of them from its restarted instance), then ends the run: the
//! system kept running through every restart and the give-up.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, debug_println};

pd_config::program!("checker");

struct Checker {
    flaky: Channel,
    hang: Channel,
    flaky_runs: bool,
    pongs: u8,
    want: u8,
    exit: microkit::RunExit,
}

fn init() -> Checker {
    let cfg = config::load();
    let hang = Channel::from(cfg.channels.hang);
    hang.notify();
    Checker {
        flaky: Channel::from(cfg.channels.flaky),
        hang,
        flaky_runs: false,
        pongs: 0,
        want: cfg.params.pongs,
        exit: microkit::debug_exit(cfg.ioports.debug_exit),
    }
}

impl Handler for Checker {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.flaky) {
            debug_println!("checker: flaky runs");
            self.flaky_runs = true;
        }
        if channels.contains(self.hang) {
            self.pongs += 1;
            debug_println!("checker: pong {}", self.pongs);
            if self.pongs < self.want {
                self.hang.notify();
            }
        }
        if self.flaky_runs && self.pongs >= self.want {
            debug_println!("checker: every PD that could recover did; ending the run");
            self.exit.success();
        }
    }
}

microkit::protection_domain!(init);
