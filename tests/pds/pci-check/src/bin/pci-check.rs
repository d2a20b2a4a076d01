//! The pci PD's test, standing where the RTL8139 and OHCI drivers stand in
//! system.xml (tests/systems/pci.xml has no driver of its own): finds
//! both devices through the pci PD, prints their BARs and interrupt lines,
//! checks them against the resources system.xml gave this PD, enables
//! memory decoding and bus mastering, makes sure the pci PD refuses it a
//! function that is not its own, and meets an absent device the way a
//! driver would. Ends the run.
#![no_std]
#![no_main]

use microkit::{ChannelSet, Handler, debug_println};
use pci_client::{Decode, Device, PciError, Ppc};
use pd_config::{Bdf, DeviceRegion, Irq};

pd_config::program!("pci-check");

/// The PIIX3 ISA bridge: on QEMU's pc machine, and nobody's in this system.
const NOT_MINE: Bdf = Bdf {
    bus: 0,
    dev: 1,
    func: 0,
};

struct Check;

fn device(name: &str, f: pd_config::PciFunction) -> Option<Device<Ppc>> {
    match pci_client::open(f) {
        Ok(d) => {
            debug_println!("pci-check: {name} at {}: {}", d.bdf(), d.info());
            for i in 0..6 {
                if let Some(bar) = d.bar(i) {
                    debug_println!("pci-check: {name} BAR{i}: {bar}");
                }
            }
            let irq = d.interrupt();
            debug_println!(
                "pci-check: {name} interrupt line {} pin {:?}",
                irq.line,
                irq.pin
            );
            Some(d)
        }
        Err(e) => {
            debug_println!("pci-check: FAILED: {name}: {e}");
            None
        }
    }
}

/// Checks `dev`'s memory BAR `bar` and interrupt against system.xml's, and
/// turns on memory decoding and bus mastering.
fn resources(name: &str, dev: &mut Device<Ppc>, bar: u8, regs: &DeviceRegion, irq: &Irq) -> bool {
    let mut ok = true;
    match dev.check_mmio(bar, regs) {
        Ok(off) => {
            debug_println!("pci-check: {name} BAR{bar} matches its device region (offset {off:#x})")
        }
        Err(e) => {
            debug_println!("pci-check: FAILED: {e}");
            ok = false;
        }
    }
    match dev.check_irq(irq) {
        Ok(()) => debug_println!("pci-check: {name} interrupt matches its irq"),
        Err(e) => {
            debug_println!("pci-check: FAILED: {e}");
            ok = false;
        }
    }
    let on = Decode {
        io: false,
        memory: true,
        bus_master: true,
    };
    match dev.enable(on).and_then(|_| dev.read_config16(0x04)) {
        Ok(cmd) if cmd & 0b110 == 0b110 => {
            debug_println!(
                "pci-check: {name} memory decoding and bus mastering on (command {cmd:#06x})"
            )
        }
        other => {
            debug_println!("pci-check: FAILED: {name} command register: {other:?}");
            ok = false;
        }
    }
    ok
}

fn init() -> Check {
    let cfg = config::load();
    let mut ok = true;
    if let Some(mut nic) = device("rtl8139", cfg.pci.nic) {
        ok &= resources("rtl8139", &mut nic, 1, &cfg.regions.nic_regs, &cfg.irqs.nic);
        match nic.check_ioports(0, &cfg.ioports.nic_ports) {
            Ok(()) => debug_println!("pci-check: rtl8139 BAR0 matches its ioport range"),
            Err(e) => {
                debug_println!("pci-check: FAILED: {e}");
                ok = false;
            }
        }
        match nic.read_other(NOT_MINE, 0) {
            Err(PciError::Refused { status, .. }) => {
                debug_println!("pci-check: {NOT_MINE} is not mine: refused ({status:?})")
            }
            other => {
                debug_println!("pci-check: FAILED: reading {NOT_MINE} gave {other:?}");
                ok = false;
            }
        }
    } else {
        ok = false;
    }
    if let Some(mut usb) = device("ohci", cfg.pci.usb) {
        ok &= resources("ohci", &mut usb, 0, &cfg.regions.usb_regs, &cfg.irqs.usb);
    } else {
        ok = false;
    }
    if let Some(f) = cfg.pci.missing {
        match pci_client::open(f) {
            Err(e @ PciError::Absent { .. }) => {
                debug_println!("pci-check: {e}; that driver would stop here, the others go on")
            }
            other => {
                debug_println!("pci-check: FAILED: {}: {:?}", f.bdf, other.err());
                ok = false;
            }
        }
    }
    if ok {
        debug_println!("pci-check: all checks passed; ending the run");
        microkit::debug_exit(cfg.ioports.debug_exit).success();
    } else {
        microkit::debug_exit(cfg.ioports.debug_exit).failure();
    }
    Check
}

impl Handler for Check {
    fn notified(&mut self, _: ChannelSet) {}
}

microkit::protection_domain!(init);
