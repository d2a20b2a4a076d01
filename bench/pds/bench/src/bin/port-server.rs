//! Answers the port client: on the raw port every slot with a
//! pre-encoded answer, on the typed port each message through its
//! observer (the EthernetController provider side).
#![no_std]
#![no_main]

use bench::{RAW, TYPED, port, raw_drain, raw_send};
use dingo_pd::ConsoleReporter;
use dingo_protocols::ethernet_controller::{Msg, Observer};
use dingo_rt::port::Side;
use dingo_rt::ring::NotifyPeer;
use dingo_rt::typed::{Protocol, Supervisor, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{ChannelSet, Handler, setvar};
use tingu_rt::Message;

setvar!(raw_port_vaddr, typed_port_vaddr);

static REPORTER: ConsoleReporter = ConsoleReporter;

struct Server {
    raw: dingo_rt::port::Port<64>,
    answer: [u8; 64],
    typed: TypedPort<'static, Protocol<Observer>>,
}

fn init() -> Server {
    let mut answer = [0; 64];
    Msg::TxPacketDone { buf: 0 }.encode(&mut answer);
    Server {
        raw: port(raw_port_vaddr.get(), Side::A, RAW),
        answer,
        typed: TypedPort::new(
            port(typed_port_vaddr.get(), Side::A, TYPED),
            Protocol::provider(Observer::new(rdtsc())),
            Supervisor::fatal(&REPORTER),
            "port-server",
            "eth",
        ),
    }
}

impl Handler for Server {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(RAW) {
            let mut n = 0;
            raw_drain(&mut self.raw, |_| n += 1);
            for _ in 0..n {
                raw_send(&mut self.raw, RAW, &self.answer);
            }
        }
        if channels.contains(TYPED) {
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
                    TYPED.notify();
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
