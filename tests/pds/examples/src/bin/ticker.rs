//! Device access from a PD: reads the HPET's capability register through a
//! `phys_addr` memory region, then takes three PIT interrupts through an
//! IOAPIC line, acknowledging each, and reports to the supervisor.
#![no_std]
#![no_main]

use microkit::{Channel, ChannelSet, Handler, IoPort, debug_println};

pd_config::program!("ticker");

/// HPET General Capabilities and ID register (offset 0): vendor id in bits
/// 16..32, main counter period in femtoseconds in bits 32..64.
const HPET_GCAP_ID: u64 = 0x0;
const INTEL_VENDOR_ID: u64 = 0x8086;

/// 8254 PIT: offsets of the channel 0 data port and the mode/command port
/// from the PIT's first port.
const PIT_CHANNEL0: u16 = 0;
const PIT_COMMAND: u16 = 3;
/// Command byte fields: channel (bits 6-7), access mode (4-5), operating
/// mode (1-3), BCD (0). Channel 0, mode 0 (interrupt on terminal count) and
/// binary counting are all zero, leaving "low then high byte" access.
const PIT_ACCESS_LOHI: u8 = 0b11 << 4;
const PIT_CH0_LOHI_MODE0: u8 = PIT_ACCESS_LOHI;
/// The PIT counts at 1.193182 MHz: 11932 counts are 10 ms.
const COUNT_10MS: u16 = 11932;
const TICKS: u32 = 3;

struct Ticker {
    pit: pd_config::IoPorts,
    irq: Channel,
    supervisor: Channel,
    ticks: u32,
}

fn arm(pit: pd_config::IoPorts) {
    let [lo, hi] = COUNT_10MS.to_le_bytes();
    for (port, value) in [
        (PIT_COMMAND, PIT_CH0_LOHI_MODE0),
        (PIT_CHANNEL0, lo),
        (PIT_CHANNEL0, hi),
    ] {
        if IoPort::of(pit).out8(pit.base + port, value).is_err() {
            debug_println!("ticker: FAILED: PIT port {port:#x} refused");
        }
    }
}

fn init() -> Ticker {
    let cfg = config::load();
    let hpet = cfg.regions.hpet;
    // SAFETY: system-builder checked that the HPET's register page is
    // mapped uncached here, at least 4 KiB, so offset 0 is inside it.
    let gcap = unsafe { ((hpet.vaddr as u64 + HPET_GCAP_ID) as *const u64).read_volatile() };
    let (vendor, period_fs) = ((gcap >> 16) & 0xffff, gcap >> 32);
    debug_println!("ticker: HPET vendor {vendor:#x}, counter period {period_fs} fs");
    if vendor != INTEL_VENDOR_ID || period_fs == 0 {
        debug_println!("ticker: FAILED: not an HPET at the mapped address");
    }
    let pit = cfg.ioports.pit;
    arm(pit);
    Ticker {
        pit,
        irq: cfg.irqs.pit.into(),
        supervisor: cfg.channels.supervisor.into(),
        ticks: 0,
    }
}

impl Handler for Ticker {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(self.irq) {
            return;
        }
        self.ticks += 1;
        debug_println!("ticker: PIT interrupt {} on {}", self.ticks, self.irq);
        if self.irq.irq_ack().is_err() {
            debug_println!("ticker: FAILED: IRQ ack refused");
        }
        if self.ticks < TICKS {
            arm(self.pit);
        } else {
            self.supervisor.notify();
        }
    }
}

microkit::protection_domain!(init);
