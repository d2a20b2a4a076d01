//! Answers the port client: on the raw port every slot with a
//! pre-encoded answer, on the typed port each message through its
//! observer (the EthernetController provider side).
#![no_std]
#![no_main]

use bench::{port, raw_drain, raw_send};
use dingo_pd::ConsoleReporter;
use dingo_protocols::ethernet_controller::{Msg, Observer};
use dingo_rt::ring::NotifyPeer;
use dingo_rt::typed::{Protocol, Supervisor, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{Channel, ChannelSet, Handler};
use tingu_rt::Message;

pd_config::program!("port-server");

static REPORTER: ConsoleReporter = ConsoleReporter;

struct Server {
    raw: dingo_rt::port::Port<64>,
    raw_channel: Channel,
    answer: [u8; 64],
    typed: TypedPort<'static, Protocol<Observer>>,
    typed_channel: Channel,
}

fn init() -> Server {
    let cfg = config::load();
    let mut answer = [0; 64];
    Msg::TxPacketDone { buf: 0 }.encode(&mut answer);
    let typed = TypedPort::new(
        port(cfg.name, &cfg.ports.typed),
        Protocol::provider(Observer::new(rdtsc())),
        Supervisor::fatal(&REPORTER),
        cfg.name,
        cfg.ports.typed.role,
    );
    Server {
        raw: port(cfg.name, &cfg.ports.raw),
        raw_channel: Channel::new(cfg.ports.raw.channel),
        answer,
        typed,
        typed_channel: Channel::new(cfg.ports.typed.channel),
    }
}

impl Handler for Server {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.raw_channel) {
            let mut n = 0;
            raw_drain(&mut self.raw, |_| n += 1);
            for _ in 0..n {
                raw_send(&mut self.raw, self.raw_channel, &self.answer);
            }
        }
        if channels.contains(self.typed_channel) {
            loop {
                while let Ok(Some(msg)) = self.typed.try_recv(rdtsc()) {
                    let answer = match msg {
                        Msg::Enable => Msg::EnableComplete,
                        Msg::TxPacket { buf, .. } => Msg::TxPacketDone { buf },
                        _ => continue,
                    };
                    let _ = self.typed.try_send(&answer, rdtsc());
                }
                if self.typed.take_notify() == NotifyPeer::Yes {
                    self.typed_channel.notify();
                }
                match self.typed.prepare_recv_sleep() {
                    Ok(dingo_rt::ring::Arm::Retry) => continue,
                    _ => break,
                }
            }
        }
    }
}

microkit::protection_domain!(init);
