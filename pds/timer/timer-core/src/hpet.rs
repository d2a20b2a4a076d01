//! The HPET (IA-PC High Precision Event Timer, specification 1.0a): typed
//! registers and a one-shot driver for timer 0.
//!
//! The driver touches the device only through an hwio [`Bus`] and the
//! typed registers of [`regs`]: the timer PD's bus is hwio's MMIO over the
//! uncached mapping, the tests' is hwio's fake device. Only 32-bit accesses
//! are used because the specification allows them everywhere and QEMU
//! before 9.x rejects 64-bit ones.
//!
//! # What QEMU's model does (hw/timer/hpet.c, hw/i386/pc_piix.c)
//!
//! - Period 10 ns (`COUNTER_CLK_PERIOD` = 10,000,000 fs, a 100 MHz counter),
//!   64-bit main counter (`COUNT_SIZE_CAP`), `LEG_RT_CAP` set, vendor 0x8086,
//!   3 timers by default, all 64-bit capable (`Tn_SIZE_CAP`) and
//!   periodic-capable, no FSB delivery unless the `msi` property is set.
//! - Timer interrupt route capability: the `pc` (i440fx) machine sets
//!   `hpet-intcap` to 0x4, so **IOAPIC pin 2 is the only allowed route**;
//!   `q35` allows 0x00ff0104 (pins 2, 8 and 16 to 23).
//! - ISA IRQ 0 (the PIT) also arrives on IOAPIC pin 2 in QEMU. Unless
//!   `LEG_RT_CNF` is set, the PIT's ticks therefore share the pin with
//!   timer 0; seL4 leaves the PIT running in rate-generator mode after its
//!   boot-time TSC measurement (a tick every 50 ms). Setting `LEG_RT_CNF`
//!   ([`Route::LegacyReplacement`]) gates the PIT's output off and puts
//!   timer 0 on IOAPIC pin 2 by itself, which is what an idle system with
//!   no interrupts needs.
//! - Up to QEMU 8.x a comparator is compared as a signed 64-bit distance
//!   from the counter (a value more than 2^63 ticks ahead counts as past
//!   and fires at once) and a comparator in the past fires immediately; in
//!   32-bit mode (`Tn_32MODE_CNF`) only the low halves are compared and a
//!   one-shot timer also interrupts when the counter's low half wraps.
//!   Real hardware may instead match on equality only, so a comparator
//!   written after the counter passed it never fires. This driver uses
//!   64-bit mode and handles both behaviours in [`Hpet::arm`].
//! - A level-triggered timer sets its bit in the interrupt status register
//!   and holds its line until software writes 1 to that bit; edge-triggered
//!   timers pulse and leave the status bit clear.

use core::fmt;

use hwio::{Bus, LocalRegisterCopy, Registers};

/// Register definitions, named as in the specification. Every register is
/// accessed as 32 bits; the 64-bit ones are pairs of halves.
pub mod regs {
    use hwio::{ReadOnly, ReadWrite, Register, RegisterArray, register_bitfields};

    register_bitfields![u32,
        /// General Capabilities and ID, low half.
        pub GeneralCaps [
            REV_ID OFFSET(0) NUMBITS(8) [],
            /// Number of timers minus one.
            NUM_TIM_CAP OFFSET(8) NUMBITS(5) [],
            /// The main counter is 64 bits wide.
            COUNT_SIZE_CAP OFFSET(13) NUMBITS(1) [],
            /// Legacy replacement routing is supported.
            LEG_RT_CAP OFFSET(15) NUMBITS(1) [],
            VENDOR_ID OFFSET(16) NUMBITS(16) [],
        ],
        /// General Capabilities and ID, high half.
        pub CounterPeriod [
            /// Femtoseconds per counter tick.
            COUNTER_CLK_PERIOD OFFSET(0) NUMBITS(32) [],
        ],
        pub GeneralConfig [
            /// The main counter runs and timers may interrupt.
            ENABLE_CNF OFFSET(0) NUMBITS(1) [],
            /// Timer 0 replaces the PIT (IOAPIC pin 2), timer 1 the RTC
            /// (IOAPIC pin 8).
            LEG_RT_CNF OFFSET(1) NUMBITS(1) [],
        ],
        /// General Interrupt Status: a timer's level-triggered interrupt;
        /// writing 1 clears it.
        pub InterruptStatus [
            T0_INT_STS OFFSET(0) NUMBITS(1) [],
            T1_INT_STS OFFSET(1) NUMBITS(1) [],
            T2_INT_STS OFFSET(2) NUMBITS(1) [],
        ],
        /// Timer N Configuration and Capability, low half.
        pub TimerConfig [
            INT_TYPE_CNF OFFSET(1) NUMBITS(1) [Edge = 0, Level = 1],
            INT_ENB_CNF OFFSET(2) NUMBITS(1) [],
            /// Periodic mode.
            TYPE_CNF OFFSET(3) NUMBITS(1) [OneShot = 0, Periodic = 1],
            /// Periodic mode is supported.
            PER_INT_CAP OFFSET(4) NUMBITS(1) [],
            /// The comparator is 64 bits wide.
            SIZE_CAP OFFSET(5) NUMBITS(1) [],
            /// The next comparator write sets the periodic accumulator.
            VAL_SET_CNF OFFSET(6) NUMBITS(1) [],
            /// Run a 64-bit timer as a 32-bit one.
            MODE32_CNF OFFSET(8) NUMBITS(1) [],
            /// The IOAPIC input the timer drives.
            INT_ROUTE_CNF OFFSET(9) NUMBITS(5) [],
            /// Deliver by FSB (MSI) message instead of a pin.
            FSB_EN_CNF OFFSET(14) NUMBITS(1) [],
            FSB_INT_DEL_CAP OFFSET(15) NUMBITS(1) [],
        ],
        /// Timer N Configuration and Capability, high half.
        pub TimerRouteCap [
            /// Bit N set: IOAPIC input N is allowed.
            INT_ROUTE_CAP OFFSET(0) NUMBITS(32) [],
        ],
    ];

    pub const GENERAL_CAPS: Register<u32, GeneralCaps::Register, ReadOnly> = Register::new(0x000);
    pub const COUNTER_PERIOD: Register<u32, CounterPeriod::Register, ReadOnly> =
        Register::new(0x004);
    pub const GENERAL_CONFIG: Register<u32, GeneralConfig::Register> = Register::new(0x010);
    pub const INTERRUPT_STATUS: Register<u32, InterruptStatus::Register> = Register::new(0x020);
    /// Main Counter Value, low and high halves.
    pub const MAIN_COUNTER_LO: Register<u32> = Register::new(0x0f0);
    pub const MAIN_COUNTER_HI: Register<u32> = Register::new(0x0f4);

    /// Timer blocks that fit the 1 KiB register space.
    pub const TIMERS: usize = (MMIO_SIZE - 0x100) / TIMER_STRIDE;
    /// Distance between the register blocks of consecutive timers.
    pub const TIMER_STRIDE: usize = 0x20;
    pub const TIMER_CONFIG: RegisterArray<u32, TimerConfig::Register> =
        RegisterArray::new(0x100, TIMER_STRIDE, TIMERS);
    pub const TIMER_ROUTE_CAP: RegisterArray<u32, TimerRouteCap::Register, ReadOnly> =
        RegisterArray::new(0x104, TIMER_STRIDE, TIMERS);
    /// Timer N Comparator Value, low and high halves.
    pub const TIMER_COMPARATOR_LO: RegisterArray<u32, (), ReadWrite> =
        RegisterArray::new(0x108, TIMER_STRIDE, TIMERS);
    pub const TIMER_COMPARATOR_HI: RegisterArray<u32, (), ReadWrite> =
        RegisterArray::new(0x10c, TIMER_STRIDE, TIMERS);

    /// Size of the register block to map.
    pub const MMIO_SIZE: usize = 0x400;
    /// Where firmware places the HPET on QEMU's `pc` and `q35` machines (see
    /// the ACPI HPET table on other platforms).
    pub const QEMU_BASE_ADDRESS: u64 = 0xfed0_0000;
    /// The specification's upper bound on the counter period: 100 ns.
    pub const MAX_PERIOD_FS: u32 = 0x05f5_e100;
    /// Intel's vendor id, which QEMU's model reports.
    pub const INTEL_VENDOR_ID: u32 = 0x8086;
}

use regs::{
    COUNTER_PERIOD, GENERAL_CAPS, GENERAL_CONFIG, GeneralCaps, GeneralConfig, INTERRUPT_STATUS,
    InterruptStatus, MAIN_COUNTER_HI, MAIN_COUNTER_LO, TIMER_COMPARATOR_HI, TIMER_COMPARATOR_LO,
    TIMER_CONFIG, TIMER_ROUTE_CAP, TimerConfig,
};

/// Where timer 0's interrupt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `Tn_INT_ROUTE_CNF` = this IOAPIC input; it must be set in the timer's
    /// `Tn_INT_ROUTE_CAP`.
    IoApic(u8),
    /// `LEG_RT_CNF`: timer 0 takes the PIT's place on IOAPIC pin 2 and the
    /// PIT's own interrupt is cut off. The choice for QEMU's `pc` machine.
    LegacyReplacement,
}

/// How timer 0 signals, matching the IOAPIC pin's setting in system.xml.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A pulse per expiry; nothing to acknowledge at the HPET.
    Edge,
    /// The line stays asserted until [`Hpet::ack`] clears the status bit.
    Level,
}

/// The driver's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Timer 0's interrupt route.
    pub route: Route,
    /// Timer 0's trigger mode.
    pub trigger: Trigger,
}

/// Why [`Hpet::init`] refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// `COUNTER_CLK_PERIOD` is zero or above the specification's 100 ns,
    /// which usually means the mapping does not point at an HPET.
    BadPeriod {
        /// The period read, in femtoseconds.
        period_fs: u32,
    },
    /// The main counter is 32 bits wide (`COUNT_SIZE_CAP` clear); it would
    /// wrap every few minutes and this driver does not extend it.
    Counter32Bit,
    /// Timer 0's comparator is 32 bits wide (`Tn_SIZE_CAP` clear).
    Comparator32Bit,
    /// The requested IOAPIC input is not in timer 0's `Tn_INT_ROUTE_CAP`.
    RouteNotAllowed {
        /// The requested IOAPIC input.
        pin: u8,
        /// `Tn_INT_ROUTE_CAP`: bit N set means input N is allowed.
        allowed: u32,
    },
    /// Legacy replacement routing was requested but `LEG_RT_CAP` is clear.
    NoLegacyReplacement,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::BadPeriod { period_fs } => write!(
                f,
                "HPET general capabilities: counter period {period_fs} fs is outside 1..={} fs \
                 (is the mapping really the HPET?)",
                regs::MAX_PERIOD_FS
            ),
            InitError::Counter32Bit => {
                f.write_str("HPET general capabilities: the main counter is only 32 bits wide")
            }
            InitError::Comparator32Bit => {
                f.write_str("HPET timer 0 capabilities: the comparator is only 32 bits wide")
            }
            InitError::RouteNotAllowed { pin, allowed } => {
                write!(
                    f,
                    "HPET timer 0 cannot interrupt on IOAPIC pin {pin}: Tn_INT_ROUTE_CAP is \
                     {allowed:#010x}"
                )?;
                if allowed == 0 {
                    f.write_str(" (no pin allowed)")
                } else {
                    f.write_str(" (allowed pins:")?;
                    for bit in 0..32 {
                        if allowed & (1 << bit) != 0 {
                            write!(f, " {bit}")?;
                        }
                    }
                    f.write_str(")")
                }
            }
            InitError::NoLegacyReplacement => f.write_str(
                "HPET general capabilities: legacy replacement routing (LEG_RT_CAP) is not supported",
            ),
        }
    }
}

/// What [`Hpet::arm`] found after programming the comparator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum ArmOutcome {
    /// The counter is still before the deadline: the interrupt will come.
    Armed,
    /// The counter had already reached the deadline when re-read, so the
    /// interrupt may never come: deliver what is due now. (On hardware that
    /// does fire late matches, an interrupt may follow as well; it then
    /// finds nothing due.)
    FireNow {
        /// The counter value that was re-read.
        now_ticks: u64,
    },
}

/// A one-shot driver for HPET timer 0.
pub struct Hpet<B: Bus> {
    bus: B,
    period_fs: u32,
    trigger: Trigger,
    ioapic_pin: u8,
    /// Timer 0's configuration with `Tn_INT_ENB_CNF` clear.
    config: LocalRegisterCopy<u32, TimerConfig::Register>,
    /// Whether `Tn_INT_ENB_CNF` is set.
    enabled: bool,
    /// The comparator value last written, `None` until the first arm.
    comparator: Option<u64>,
}

impl<B: Bus> Hpet<B> {
    /// Takes over the HPET: checks its capabilities, configures timer 0 as a
    /// non-periodic 64-bit timer on the chosen route with its interrupt
    /// disabled until the first [`arm`](Self::arm), and starts the counter.
    pub fn init(mut bus: B, config: Config) -> Result<Self, InitError> {
        let caps = bus.read(GENERAL_CAPS);
        let period_fs = bus.get(COUNTER_PERIOD);
        if period_fs == 0 || period_fs > regs::MAX_PERIOD_FS {
            return Err(InitError::BadPeriod { period_fs });
        }
        if !caps.is_set(GeneralCaps::COUNT_SIZE_CAP) {
            return Err(InitError::Counter32Bit);
        }
        let mut timer = bus.read(TIMER_CONFIG.at(0));
        if !timer.is_set(TimerConfig::SIZE_CAP) {
            return Err(InitError::Comparator32Bit);
        }
        let (route_bits, ioapic_pin, legacy) = match config.route {
            Route::IoApic(pin) => {
                let allowed = bus.get(TIMER_ROUTE_CAP.at(0));
                if pin >= 32 || allowed & (1 << pin) == 0 {
                    return Err(InitError::RouteNotAllowed { pin, allowed });
                }
                (u32::from(pin), pin, false)
            }
            Route::LegacyReplacement => {
                if !caps.is_set(GeneralCaps::LEG_RT_CAP) {
                    return Err(InitError::NoLegacyReplacement);
                }
                // The route field is ignored under LEG_RT_CNF; keep it.
                (timer.read(TimerConfig::INT_ROUTE_CNF), 2, true)
            }
        };

        // Stop the counter and all interrupts while reconfiguring.
        bus.modify(
            GENERAL_CONFIG,
            GeneralConfig::ENABLE_CNF::CLEAR + GeneralConfig::LEG_RT_CNF::CLEAR,
        );

        let trigger = match config.trigger {
            Trigger::Edge => TimerConfig::INT_TYPE_CNF::Edge,
            Trigger::Level => TimerConfig::INT_TYPE_CNF::Level,
        };
        timer.modify(
            TimerConfig::TYPE_CNF::OneShot
                + TimerConfig::VAL_SET_CNF::CLEAR
                + TimerConfig::MODE32_CNF::CLEAR
                + TimerConfig::FSB_EN_CNF::CLEAR
                + TimerConfig::INT_ENB_CNF::CLEAR
                + trigger
                + TimerConfig::INT_ROUTE_CNF.val(route_bits),
        );
        bus.set(TIMER_CONFIG.at(0), timer.get());
        // A level interrupt left over from firmware must not fire on enable.
        bus.write(INTERRUPT_STATUS, InterruptStatus::T0_INT_STS::SET);

        let legacy = if legacy {
            GeneralConfig::LEG_RT_CNF::SET
        } else {
            GeneralConfig::LEG_RT_CNF::CLEAR
        };
        bus.modify(GENERAL_CONFIG, GeneralConfig::ENABLE_CNF::SET + legacy);

        Ok(Hpet {
            bus,
            period_fs,
            trigger: config.trigger,
            ioapic_pin,
            config: timer,
            enabled: false,
            comparator: None,
        })
    }

    /// Femtoseconds per counter tick.
    pub fn period_fs(&self) -> u32 {
        self.period_fs
    }

    /// The IOAPIC input timer 0 interrupts on; system.xml must declare the
    /// timer PD's IRQ on this pin.
    pub fn ioapic_pin(&self) -> u8 {
        self.ioapic_pin
    }

    /// The main counter. Read as two halves; a carry between them is caught
    /// by reading the high half twice.
    pub fn now_ticks(&mut self) -> u64 {
        let hi = self.bus.get(MAIN_COUNTER_HI);
        let lo = self.bus.get(MAIN_COUNTER_LO);
        let hi2 = self.bus.get(MAIN_COUNTER_HI);
        if hi == hi2 {
            join(hi, lo)
        } else {
            // The low half wrapped in between; a low half read after `hi2`
            // belongs to `hi2` (the next wrap is 2^32 ticks away).
            join(hi2, self.bus.get(MAIN_COUNTER_LO))
        }
    }

    /// Programs a one-shot interrupt at counter value `deadline_ticks` and
    /// reports whether the counter had already reached it afterwards, in
    /// which case the caller must deliver at once: a comparator written too
    /// late may never match. Never loses a deadline: either the counter is
    /// still before it with the interrupt armed, or `FireNow` is returned.
    ///
    /// A deadline far beyond the counter (more than 2^63 ticks, or on QEMU
    /// up to 8.x more than about 58 years of 10 ns ticks) may interrupt
    /// early; the caller compares with the clock before delivering anyway.
    pub fn arm(&mut self, deadline_ticks: u64) -> ArmOutcome {
        let hi = (deadline_ticks >> 32) as u32;
        let lo = deadline_ticks as u32;
        let same_high = self.comparator.is_some_and(|c| (c >> 32) as u32 == hi);
        if self.enabled && same_high {
            // One 32-bit write changes the comparator atomically.
            self.bus.set(TIMER_COMPARATOR_LO.at(0), lo);
        } else {
            // Two writes pass through a half-updated comparator, which could
            // match (or, on QEMU, count as past) and fire spuriously: keep
            // the interrupt off until both halves are in place.
            if self.enabled {
                self.bus.set(TIMER_CONFIG.at(0), self.config.get());
            }
            self.bus.set(TIMER_COMPARATOR_LO.at(0), lo);
            self.bus.set(TIMER_COMPARATOR_HI.at(0), hi);
            if self.trigger == Trigger::Level {
                // A match of the half-written value may have set the status.
                self.bus
                    .write(INTERRUPT_STATUS, InterruptStatus::T0_INT_STS::SET);
            }
            let mut on = self.config;
            on.modify(TimerConfig::INT_ENB_CNF::SET);
            self.bus.set(TIMER_CONFIG.at(0), on.get());
            self.enabled = true;
        }
        self.comparator = Some(deadline_ticks);
        let now_ticks = self.now_ticks();
        if now_ticks >= deadline_ticks {
            ArmOutcome::FireNow { now_ticks }
        } else {
            ArmOutcome::Armed
        }
    }

    /// Turns timer 0's interrupt off: nothing is pending.
    pub fn disarm(&mut self) {
        if self.enabled {
            self.bus.set(TIMER_CONFIG.at(0), self.config.get());
            self.enabled = false;
        }
    }

    /// Acknowledges timer 0's interrupt at the HPET, before the IRQ is
    /// acknowledged at seL4: for a level-triggered timer this clears the
    /// status bit and so releases the line; edge-triggered needs nothing.
    pub fn ack(&mut self) {
        if self.trigger == Trigger::Level {
            self.bus
                .write(INTERRUPT_STATUS, InterruptStatus::T0_INT_STS::SET);
        }
    }
}

fn join(hi: u32, lo: u32) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cfg(test)]
mod tests;
