//! Device access from a PD: reads the HPET's capability register through a
//! `phys_addr` memory region (hwio MMIO, with timer-core's HPET register
//! definitions), then takes three PIT interrupts through an IOAPIC line,
//! programming the PIT through its I/O ports (hwio port I/O) and
//! acknowledging each interrupt, and reports to the supervisor.
#![no_std]
#![no_main]

use microkit::hwio::{Mmio, Register, Registers, WriteOnly, register_bitfields};
use microkit::{Channel, ChannelSet, Handler, IoPort, Ports, debug_println, setvar};
use timer_core::hpet::regs::{
    COUNTER_PERIOD, CounterPeriod, GENERAL_CAPS, GeneralCaps, INTEL_VENDOR_ID, MMIO_SIZE,
};

const PIT_IRQ: Channel = Channel::new(5);
const SUPERVISOR: Channel = Channel::new(0);

setvar!(hpet_vaddr);

register_bitfields![u8,
    /// 8254 mode/command register.
    PitCommand [
        BCD OFFSET(0) NUMBITS(1) [],
        MODE OFFSET(1) NUMBITS(3) [InterruptOnTerminalCount = 0, RateGenerator = 2],
        ACCESS OFFSET(4) NUMBITS(2) [LowThenHigh = 3],
        CHANNEL OFFSET(6) NUMBITS(2) [Channel0 = 0],
    ],
];

/// The PIT's ports (system.xml: `<ioport id="0" addr="0x40" size="4"/>`).
const PIT_BASE: u16 = 0x40;
const PIT_SIZE: u16 = 4;
const PIT_CHANNEL0: Register<u8, (), WriteOnly> = Register::new(0);
const PIT_COMMAND: Register<u8, PitCommand::Register, WriteOnly> = Register::new(3);
/// The PIT counts at 1.193182 MHz: 11932 counts are 10 ms.
const COUNT_10MS: u16 = 11932;
const TICKS: u32 = 3;

struct Ticker {
    pit: Ports,
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
    // SAFETY: system.xml maps the HPET's register page (uncached, read-write,
    // 4 KiB) at `hpet_vaddr` for good; this PD only reads it.
    let mut hpet = unsafe { Mmio::new("hpet", hpet_vaddr.get() as usize, MMIO_SIZE) };
    let vendor = hpet.read_field(GENERAL_CAPS, GeneralCaps::VENDOR_ID);
    let period_fs = hpet.read_field(COUNTER_PERIOD, CounterPeriod::COUNTER_CLK_PERIOD);
    debug_println!("ticker: HPET vendor {vendor:#x}, counter period {period_fs} fs");
    if vendor != INTEL_VENDOR_ID || period_fs == 0 {
        debug_println!("ticker: FAILED: not an HPET at the mapped address");
    }
    let mut pit = IoPort::new(0).ports("pit", PIT_BASE, PIT_SIZE);
    arm(&mut pit);
    Ticker { pit, ticks: 0 }
}

impl Handler for Ticker {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(PIT_IRQ) {
            return;
        }
        self.ticks += 1;
        debug_println!("ticker: PIT interrupt {} on {PIT_IRQ}", self.ticks);
        if PIT_IRQ.irq_ack().is_err() {
            debug_println!("ticker: FAILED: IRQ ack refused");
        }
        if self.ticks < TICKS {
            arm(&mut self.pit);
        } else {
            SUPERVISOR.notify();
        }
    }
}

microkit::protection_domain!(init);
