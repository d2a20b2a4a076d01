//! Times message round trips to the port server over three ports, one
//! after the other, with the same exchange loop ([`bench::Client`]): raw
//! ring writes of pre-encoded slots, a typed dingo-rt port with its
//! observers off, and one observed on both sides (the EthernetController
//! client side: enable once, then txPacket answered by txPacketDone).
//! Prints the three figures and the bytes each kind of port end takes,
//! and ends the run.
#![no_std]
#![no_main]

use bench::{Client, ROUNDS, Unobserved, port, typed};
use dingo_protocols::ethernet_controller::{Msg, Observer};
use dingo_rt::port::Port;
use dingo_rt::typed::{Protocol, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{Channel, ChannelSet, Handler, debug_println};
use tingu_rt::Message;

pd_config::program!("port-client");

const PACKET: Msg = Msg::TxPacket { buf: 0, len: 60 };

struct Pd {
    raw: Client<Port<64>>,
    unobserved: Client<TypedPort<'static, Unobserved<Msg>>>,
    observed: Client<TypedPort<'static, Protocol<Observer>>>,
    channels: [Channel; 3],
    debug_exit: pd_config::IoPorts,
}

fn is_done(msg: &Msg) -> bool {
    matches!(msg, Msg::TxPacketDone { .. })
}

fn init() -> Pd {
    let cfg = config::load();
    bench::use_com1_console(cfg.ioports.console);
    let mut request = [0; 64];
    PACKET.encode(&mut request);
    let p = &cfg.ports;
    let channels = [p.raw.channel, p.unobserved.channel, p.observed.channel].map(Channel::new);
    let mut pd = Pd {
        raw: Client::new(port(cfg.name, &p.raw), channels[0], request),
        unobserved: Client::new(
            typed(cfg.name, &p.unobserved, Unobserved::new()),
            channels[1],
            PACKET,
        ),
        observed: Client::new(
            typed(
                cfg.name,
                &p.observed,
                Protocol::client(Observer::new(rdtsc())),
            ),
            channels[2],
            PACKET,
        ),
        channels,
        debug_exit: cfg.ioports.debug_exit,
    };
    pd.raw.open(request);
    pd
}

impl Handler for Pd {
    fn notified(&mut self, channels: ChannelSet) {
        let [raw, unobserved, observed] = self.channels;
        if channels.contains(raw) {
            self.raw.notified(|_| true);
            if self.raw.result.is_some() {
                self.unobserved.open(Msg::Enable);
            }
        }
        if channels.contains(unobserved) {
            self.unobserved.notified(is_done);
            if self.unobserved.result.is_some() {
                self.observed.open(Msg::Enable);
            }
        }
        if channels.contains(observed) {
            self.observed.notified(is_done);
            if let (Some(raw), Some(off), Some(on)) = (
                self.raw.result,
                self.unobserved.result,
                self.observed.result,
            ) {
                debug_println!("bench: raw port-roundtrip {raw} cycles ({ROUNDS} rounds)");
                debug_println!("bench: unobserved port-roundtrip {off} cycles ({ROUNDS} rounds)");
                debug_println!("bench: dingo port-roundtrip {on} cycles ({ROUNDS} rounds)");
                let c = self.observed.end.counters();
                debug_println!(
                    "port-client: typed port {} sent, {} received, {} violations",
                    c.sent,
                    c.received,
                    c.violations
                );
                // RAM per port end: what each kind of end adds to its PD.
                debug_println!(
                    "port-client: bytes per port end: raw {}, typed unobserved {}, typed observed {} (its observer {})",
                    size_of::<Port<64>>(),
                    size_of::<TypedPort<'static, Unobserved<Msg>>>(),
                    size_of::<TypedPort<'static, Protocol<Observer>>>(),
                    size_of::<Protocol<Observer>>()
                );
                microkit::debug_exit(self.debug_exit).success();
            }
        }
    }
}

microkit::protection_domain!(init);
