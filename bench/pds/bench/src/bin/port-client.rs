//! Times message round trips to the port server: first as raw ring writes
//! and notifications with pre-encoded slots, then the same exchange through
//! a typed dingo-rt port whose observer checks every message (the
//! EthernetController client side: enable once, then txPacket answered by
//! txPacketDone). Prints both figures and ends the run.
#![no_std]
#![no_main]

use bench::{ROUNDS, WARMUP, port, raw_drain, raw_send};
use dingo_pd::ConsoleReporter;
use dingo_protocols::ethernet_controller::{Msg, Observer};
use dingo_rt::port::Port;
use dingo_rt::ring::{Arm, NotifyPeer};
use dingo_rt::typed::{Protocol, Supervisor, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{Channel, ChannelSet, Handler, debug_println};
use tingu_rt::Message;

pd_config::program!("port-client");

static REPORTER: ConsoleReporter = ConsoleReporter;
const PACKET: Msg = Msg::TxPacket { buf: 0, len: 60 };

struct Client {
    raw: Port<64>,
    raw_channel: Channel,
    request: [u8; 64],
    typed: TypedPort<'static, Protocol<Observer>>,
    typed_channel: Channel,
    debug_exit: pd_config::IoPorts,
    round: u64,
    start: u64,
    raw_cycles: u64,
}

impl Client {
    /// Counts one answered round; starts the clock after the warm-up and
    /// returns whether another round is due.
    fn next_round(&mut self) -> bool {
        self.round += 1;
        if self.round == WARMUP {
            self.start = rdtsc();
        }
        self.round < WARMUP + ROUNDS
    }

    fn typed_send(&mut self, msg: &Msg) {
        if let Err(f) = self.typed.try_send(msg, rdtsc()) {
            debug_println!("port-client: FAILED: typed send: {f:?}");
        }
        if self.typed.take_notify() == NotifyPeer::Yes {
            self.typed_channel.notify();
        }
    }
}

fn init() -> Client {
    let cfg = config::load();
    bench::use_com1_console(cfg.ioports.console);
    let mut request = [0; 64];
    PACKET.encode(&mut request);
    let mut c = Client {
        raw: port(cfg.name, &cfg.ports.raw),
        raw_channel: Channel::new(cfg.ports.raw.channel),
        request,
        typed: TypedPort::new(
            port(cfg.name, &cfg.ports.typed),
            Protocol::client(Observer::new(rdtsc())),
            Supervisor::fatal(&REPORTER),
            cfg.name,
            cfg.ports.typed.role,
        ),
        typed_channel: Channel::new(cfg.ports.typed.channel),
        debug_exit: cfg.ioports.debug_exit,
        round: 0,
        start: 0,
        raw_cycles: 0,
    };
    raw_send(&mut c.raw, c.raw_channel, &c.request);
    c
}

impl Handler for Client {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.raw_channel) {
            let mut answers = 0;
            raw_drain(&mut self.raw, |_| answers += 1);
            for _ in 0..answers {
                if self.next_round() {
                    let request = self.request;
                    raw_send(&mut self.raw, self.raw_channel, &request);
                } else {
                    self.raw_cycles = (rdtsc() - self.start) / ROUNDS;
                    self.round = 0;
                    self.typed_send(&Msg::Enable);
                }
            }
        }
        if channels.contains(self.typed_channel) {
            loop {
                while let Ok(Some(msg)) = self.typed.try_recv(rdtsc()) {
                    let more = match msg {
                        Msg::EnableComplete => true,
                        Msg::TxPacketDone { .. } => self.next_round(),
                        _ => continue,
                    };
                    if more {
                        self.typed_send(&PACKET);
                        continue;
                    }
                    let typed_cycles = (rdtsc() - self.start) / ROUNDS;
                    let c = self.typed.counters();
                    debug_println!(
                        "bench: raw port-roundtrip {} cycles ({ROUNDS} rounds)",
                        self.raw_cycles
                    );
                    debug_println!(
                        "bench: dingo port-roundtrip {typed_cycles} cycles ({ROUNDS} rounds)"
                    );
                    debug_println!(
                        "port-client: typed port {} sent, {} received, {} violations",
                        c.sent,
                        c.received,
                        c.violations
                    );
                    microkit::debug_exit(self.debug_exit).success();
                }
                match self.typed.prepare_recv_sleep() {
                    Ok(Arm::Retry) => continue,
                    _ => break,
                }
            }
        }
    }
}

microkit::protection_domain!(init);
