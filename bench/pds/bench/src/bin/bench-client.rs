//! Times notification round trips to the bench echo and protected
//! procedure calls to the bench server through the Microkit runtime,
//! prints the figures, and ends the run through the debug-exit port.
#![no_std]
#![no_main]

use bench::{ROUNDS, WARMUP};
use microkit::hwio::tsc::rdtsc;
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, debug_println, set_mr};

pd_config::program!("bench-client");

struct Client {
    server: Channel,
    echo: Channel,
    debug_exit: pd_config::IoPorts,
    round: u64,
    start: u64,
}

fn init() -> Client {
    let cfg = config::load();
    bench::use_com1_console(cfg.ioports.console);
    let server = Channel::from(cfg.channels.bench_server);
    let echo = Channel::from(cfg.channels.bench_echo);
    echo.notify();
    Client {
        server,
        echo,
        debug_exit: cfg.ioports.debug_exit,
        round: 0,
        start: 0,
    }
}

impl Handler for Client {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(self.echo) {
            return;
        }
        // One notification went there and one came back.
        self.round += 1;
        if self.round == WARMUP {
            self.start = rdtsc();
        }
        if self.round < WARMUP + ROUNDS {
            self.echo.notify();
            return;
        }
        let notify = (rdtsc() - self.start) / ROUNDS;
        let server = self.server;
        let call = || {
            set_mr(0, 1);
            server.pp_call(MessageInfo::new(0, 0, 0, 1));
        };
        (0..WARMUP).for_each(|_| call());
        let start = rdtsc();
        (0..ROUNDS).for_each(|_| call());
        let ppc = (rdtsc() - start) / ROUNDS;
        debug_println!("bench: pd notify-roundtrip {notify} cycles ({ROUNDS} rounds)");
        debug_println!("bench: pd ppc-roundtrip {ppc} cycles ({ROUNDS} rounds)");
        microkit::debug_exit(self.debug_exit).success();
    }
}

microkit::protection_domain!(init);
