//! A deliberately broken Ethernet driver: it starts and enables like a
//! real one, then reports `txPacketDone` for a buffer the net PD never
//! sent, writing the message straight into the port's ring past its own
//! observer. The net PD's observer must catch the lie and name the PD, the
//! port and the protocol state; the boot test checks that report. Runs
//! below the net PD's priority, so the net PD handles each message before
//! this PD goes on; it ends the run after the lie.
#![no_std]
#![no_main]

use dingo_pd::microkit::{self, Channel, debug_println};
use dingo_protocols::{ethernet_controller as eth, lifecycle};
use dingo_rt::port::Port;
use dingo_rt::ring::Arm;
use tingu_rt::Message;

pd_config::program!("eth-liar");

/// A buffer offset no client ever sent.
const NEVER_SENT: u32 = 0x7000;

fn push<M: Message>(port: &mut Port<64>, msg: M) {
    let mut slot = [0u8; 64];
    msg.encode(&mut slot);
    if port.tx.push(&slot).is_err() {
        panic!("eth-liar: port ring full");
    }
    Channel::new(port.channel).notify();
}

fn pop<M: Message>(port: &mut Port<64>) -> Option<M> {
    let (slot, _) = port.rx.pop().ok()??;
    M::decode(&slot).ok()
}

fn main() -> ! {
    let cfg = config::load();
    let mut lc = dingo_pd::port(cfg.name, &cfg.ports.lc);
    let mut ethp = dingo_pd::port(cfg.name, &cfg.ports.eth);
    // Builds of the same protocols: they publish the genuine hashes, as
    // typed ports would, and then write past their observers.
    lc.tx.publish_tag(lifecycle::HASH);
    ethp.tx.publish_tag(eth::HASH);
    let mut enabled = false;
    loop {
        if let Some(lifecycle::Msg::Start) = pop(&mut lc) {
            push(&mut lc, lifecycle::Msg::StartComplete);
        }
        while let Some(msg) = pop::<eth::Msg>(&mut ethp) {
            if msg == eth::Msg::Enable {
                push(
                    &mut ethp,
                    eth::Msg::MacAddress {
                        mac: 0x5254_0012_3456,
                    },
                );
                push(&mut ethp, eth::Msg::EnableComplete);
                push(&mut ethp, eth::Msg::LinkChange { up: true });
                enabled = true;
            }
        }
        if enabled {
            let lie = eth::Msg::TxPacketDone { buf: NEVER_SENT };
            debug_println!("eth-liar: sending {lie} for a buffer never sent, past my own observer");
            push(&mut ethp, lie);
            debug_println!("eth-liar: done; ending the run");
            microkit::debug_exit(cfg.ioports.debug_exit).success();
        }
        // Ask the net PD for a notification, then sleep unless a message
        // came meanwhile.
        let retry = [lc.rx.prepare_sleep(), ethp.rx.prepare_sleep()]
            .iter()
            .any(|a| matches!(a, Ok(Arm::Retry)));
        if !retry {
            microkit::wait();
        }
    }
}

microkit::entry!(main);
