//! Answers the port client on its three ports: on the raw port every slot
//! with a pre-encoded answer, on the typed ports each message through the
//! port (observed on one of them: the EthernetController provider side).
#![no_std]
#![no_main]

use bench::{Unobserved, port, serve, typed};
use dingo_protocols::ethernet_controller::{Msg, Observer};
use dingo_rt::port::Port;
use dingo_rt::typed::{Protocol, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{Channel, ChannelSet, Handler};
use tingu_rt::Message;

pd_config::program!("port-server");

struct Server {
    raw: Port<64>,
    answer: [u8; 64],
    unobserved: TypedPort<'static, Unobserved<Msg>>,
    observed: TypedPort<'static, Protocol<Observer>>,
    channels: [Channel; 3],
}

fn answer(msg: &Msg) -> Msg {
    match *msg {
        Msg::Enable => Msg::EnableComplete,
        Msg::TxPacket { buf, .. } => Msg::TxPacketDone { buf },
        _ => panic!("port-server: unexpected {msg}"),
    }
}

fn init() -> Server {
    let cfg = config::load();
    let p = &cfg.ports;
    let mut reply = [0; 64];
    Msg::TxPacketDone { buf: 0 }.encode(&mut reply);
    Server {
        raw: port(cfg.name, &p.raw),
        answer: reply,
        unobserved: typed(cfg.name, &p.unobserved, Unobserved::new()),
        observed: typed(
            cfg.name,
            &p.observed,
            Protocol::provider(Observer::new(rdtsc())),
        ),
        channels: [p.raw.channel, p.unobserved.channel, p.observed.channel].map(Channel::new),
    }
}

impl Handler for Server {
    fn notified(&mut self, channels: ChannelSet) {
        let [raw, unobserved, observed] = self.channels;
        if channels.contains(raw) {
            let reply = self.answer;
            serve(&mut self.raw, raw, |_| reply);
        }
        if channels.contains(unobserved) {
            serve(&mut self.unobserved, unobserved, answer);
        }
        if channels.contains(observed) {
            serve(&mut self.observed, observed, answer);
        }
    }
}

microkit::protection_domain!(init);
