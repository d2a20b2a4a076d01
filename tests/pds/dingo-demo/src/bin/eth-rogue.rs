//! A misbehaving client: it writes a transmit request straight into the
//! port's ring before enabling the controller, bypassing its own observer,
//! the way a buggy or hostile peer would. The controller's observer must
//! catch it; this PD then ends the run (the boot test checks the reports).
#![no_std]
#![no_main]

use dingo_demo::TX_BUF;
use dingo_pd::microkit::{self, Channel, ChannelSet, Handler, debug_println};
use dingo_protocols::ethernet_controller::{self, Msg};
use tingu_rt::Message;

pd_config::program!("eth-rogue");

struct Rogue;

fn init() -> Rogue {
    let cfg = config::load();
    let mut eth = dingo_pd::port(cfg.name, &cfg.ports.eth);
    // A build of the same protocol (so it publishes the genuine hash, as a
    // typed port would) that writes past its observer.
    eth.tx.publish_tag(ethernet_controller::HASH);
    let mut slot = [0u8; 64];
    let msg = Msg::TxPacket {
        buf: TX_BUF,
        len: 60,
    };
    msg.encode(&mut slot);
    debug_println!("eth-rogue: sending {msg} before enable, past my own observer");
    let _ = eth.tx.push(&slot);
    // The controller has the higher priority: it runs, judges and stops
    // before this PD continues.
    Channel::new(cfg.ports.eth.channel).notify();
    debug_println!("eth-rogue: done; ending the run");
    microkit::debug_exit(cfg.ioports.debug_exit).success();
    Rogue
}

impl Handler for Rogue {
    fn notified(&mut self, _: ChannelSet) {}
}

dingo_pd::microkit::protection_domain!(init);
