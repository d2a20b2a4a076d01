//! Device access from a PD: reads the HPET's capability register through a
//! `phys_addr` memory region (hwio MMIO, with timer-core's HPET register
//! definitions), then takes three PIT interrupts through an IOAPIC line,
//! programming the PIT through its I/O ports (hwio port I/O) and
//! acknowledging each interrupt, and reports to the supervisor.
#![no_std]
#![no_main]

use microkit::hwio::{Register, Registers, WriteOnly, register_bitfields};
use microkit::{Channel, ChannelSet, Handler, IoPort, Ports, debug_println};
use timer_core::hpet::regs::{
    COUNTER_PERIOD, CounterPeriod, GENERAL_CAPS, GeneralCaps, INTEL_VENDOR_ID,
};

pd_config::program!("ticker");

register_bitfields![u8,
    /// 8254 mode/command register.
    PitCommand [
        BCD OFFSET(0) NUMBITS(1) [],
        MODE OFFSET(1) NUMBITS(3) [InterruptOnTerminalCount = 0, RateGenerator = 2],
        ACCESS OFFSET(4) NUMBITS(2) [LowThenHigh = 3],
        CHANNEL OFFSET(6) NUMBITS(2) [Channel0 = 0],
    ],
];

/// The PIT's registers, as offsets from its first port.
const PIT_CHANNEL0: Register<u8, (), WriteOnly> = Register::new(0);
const PIT_COMMAND: Register<u8, PitCommand::Register, WriteOnly> = Register::new(3);
/// The PIT counts at 1.193182 MHz: 11932 counts are 10 ms.
const COUNT_10MS: u16 = 11932;
const TICKS: u32 = 3;

struct Ticker {
    pit: Ports,
    irq: Channel,
    supervisor: Channel,
    ticks: u32,
}

fn arm(pit: &mut Ports) {
    let [lo, hi] = COUNT_10MS.to_le_bytes();
    pit.write(
        PIT_COMMAND,
        PitCommand::CHANNEL::Channel0
            + PitCommand::ACCESS::LowThenHigh
            + PitCommand::MODE::InterruptOnTerminalCount,
    );
    pit.set(PIT_CHANNEL0, lo);
    pit.set(PIT_CHANNEL0, hi);
}

fn init() -> Ticker {
    let cfg = config::load();
    let mut hpet = cfg.regions.hpet.mmio("hpet");
    let vendor = hpet.read_field(GENERAL_CAPS, GeneralCaps::VENDOR_ID);
    let period_fs = hpet.read_field(COUNTER_PERIOD, CounterPeriod::COUNTER_CLK_PERIOD);
    debug_println!("ticker: HPET vendor {vendor:#x}, counter period {period_fs} fs");
    if vendor != INTEL_VENDOR_ID || period_fs == 0 {
        debug_println!("ticker: FAILED: not an HPET at the mapped address");
    }
    let mut pit = IoPort::bus(cfg.ioports.pit, "pit");
    arm(&mut pit);
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
            arm(&mut self.pit);
        } else {
            self.supervisor.notify();
        }
    }
}

microkit::protection_domain!(init);
