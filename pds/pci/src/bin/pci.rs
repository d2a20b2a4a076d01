//! The pci PD: the one owner of PCI configuration space (ports
//! 0xCF8-0xCFF; only one PD can hold them, so drivers cannot probe the bus
//! themselves). At start it probes each driver's function, as the wiring
//! file assigns them, and says what it found; then it answers the drivers'
//! protected procedure calls (pci-core's `wire` protocol), each driver
//! reaching its own function only. Refusals are printed with the driver,
//! the function it owns and what it asked.
//!
//! It is a synchronous Microkit handler, the second PD shape: it only
//! serves protected procedure calls, which dingo-rt's executor does not
//! receive, and it has no ports, timeouts or devices of its own to wait
//! on.
#![no_std]
#![no_main]

use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, IoPort, Ports, debug_println, mr, set_mr};
use pci_core::config::Mechanism1;
use pci_core::server::Server;
use pci_core::wire::MRS;

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

microkit::protection_domain!(init);
