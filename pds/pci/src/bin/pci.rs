//! The pci PD: the one owner of PCI configuration space (ports
//! 0xCF8-0xCFF; only one PD can hold them, so drivers cannot probe the bus
//! themselves). At start it probes each driver's function, as the wiring
//! file assigns them, and says what it found; then it answers the drivers'
//! protected procedure calls (pci-core's `wire` protocol), each driver
//! reaching its own function only. Refusals are printed with the driver,
//! the function it owns and what it asked. The monitor calls it too, on a
//! channel id no driver has, to quiesce the functions of a driver it is
//! about to restart (bus mastering off, so no DMA lands in memory being
//! handed back); no driver can make that call.
//!
//! It is a synchronous Microkit handler, the second PD shape: it only
//! serves protected procedure calls, which dingo-rt's executor does not
//! receive, and it has no ports, timeouts or devices of its own to wait
//! on.
#![no_std]
#![no_main]

use microkit::layout::cspace::MONITOR_CALLER;
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, IoPort, Ports, debug_println, mr, set_mr};
use pci_core::config::Mechanism1;
use pci_core::server::Server;
use pci_core::wire::{MRS, QUIESCE};

pd_config::program!("pci");

struct Pci {
    server: Server<Mechanism1<Ports>>,
}

fn init() -> Pci {
    let cfg = config::load();
    let ports = IoPort::bus(cfg.ioports.config, "pci-config");
    let server = Server::new(
        Mechanism1::new(ports),
        cfg.pci_service.drivers.iter().copied(),
        |event| debug_println!("pci: {event}"),
    );
    debug_println!(
        "pci: serving {} function(s) to their drivers",
        server.clients().len()
    );
    Pci { server }
}

impl Handler for Pci {
    fn notified(&mut self, _: ChannelSet) {}

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        if channel.index() == MONITOR_CALLER {
            return self.monitor(msg);
        }
        let args: [u64; MRS] =
            core::array::from_fn(|i| if i < msg.length() as usize { mr(i) } else { 0 });
        let (status, out, event) = self.server.handle(channel.index(), msg.label(), &args);
        if let Some(e) = event {
            debug_println!("pci: {e}");
        }
        for (i, v) in out.iter().enumerate() {
            set_mr(i, *v);
        }
        MessageInfo::new(status as u64, 0, 0, MRS as u64)
    }
}

impl Pci {
    /// The monitor's call: only the monitor holds an endpoint cap with its
    /// badge.
    fn monitor(&mut self, msg: MessageInfo) -> MessageInfo {
        if msg.label() != QUIESCE || msg.length() < 1 {
            debug_println!(
                "pci: refused a malformed call from the monitor (label {})",
                msg.label()
            );
            return MessageInfo::new(pci_core::wire::Status::BadRequest as u64, 0, 0, 0);
        }
        let channel = u8::try_from(mr(0)).unwrap_or(u8::MAX);
        let n = self.server.quiesce(channel, |e| debug_println!("pci: {e}"));
        set_mr(0, n as u64);
        MessageInfo::new(pci_core::wire::Status::Ok as u64, 0, 0, 1)
    }
}

microkit::protection_domain!(init);
