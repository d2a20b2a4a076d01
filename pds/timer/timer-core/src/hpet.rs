//! The HPET (IA-PC High Precision Event Timer, specification 1.0a): typed
//! registers and a one-shot driver for timer 0.
//!
//! The driver touches the device only through [`Regs`], 32-bit reads and
//! writes at byte offsets from the HPET base, which the timer PD implements
//! with volatile MMIO and the tests with a fake. Only 32-bit accesses are
//! used because the specification allows them everywhere and QEMU before
//! 9.x rejects 64-bit ones.
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

/// Register offsets and bitfields, named as in the specification.
pub mod regs {
    /// General Capabilities and ID (read-only, 64 bits).
    pub const GENERAL_CAPS: usize = 0x000;
    /// General Configuration.
    pub const GENERAL_CONFIG: usize = 0x010;
    /// General Interrupt Status: bit N is timer N's level-triggered interrupt;
    /// writing 1 clears it.
    pub const INTERRUPT_STATUS: usize = 0x020;
    /// Main Counter Value (64 bits).
    pub const MAIN_COUNTER: usize = 0x0f0;
    /// Distance between the register blocks of consecutive timers.
    pub const TIMER_STRIDE: usize = 0x20;
    /// Size of the register block to map.
    pub const MMIO_SIZE: usize = 0x400;
    /// Where firmware places the HPET on QEMU's `pc` and `q35` machines (see
    /// the ACPI HPET table on other platforms).
    pub const QEMU_BASE_ADDRESS: u64 = 0xfed0_0000;
    /// The specification's upper bound on the counter period: 100 ns.
    pub const MAX_PERIOD_FS: u32 = 0x05f5_e100;

    /// Timer `n`'s Configuration and Capability register.
    pub const fn timer_config(n: usize) -> usize {
        0x100 + n * TIMER_STRIDE
    }

    /// Timer `n`'s Comparator Value register.
    pub const fn timer_comparator(n: usize) -> usize {
        0x108 + n * TIMER_STRIDE
    }

    /// Timer `n`'s FSB Interrupt Route register.
    pub const fn timer_fsb_route(n: usize) -> usize {
        0x110 + n * TIMER_STRIDE
    }

    const fn with_bit(bits: u64, mask: u64, on: bool) -> u64 {
        if on { bits | mask } else { bits & !mask }
    }

    /// General Capabilities and ID.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GeneralCaps(pub u64);

    impl GeneralCaps {
        /// `COUNT_SIZE_CAP`: the main counter is 64 bits wide.
        pub const COUNT_SIZE_CAP: u64 = 1 << 13;
        /// `LEG_RT_CAP`: legacy replacement routing is supported.
        pub const LEG_RT_CAP: u64 = 1 << 15;

        /// `REV_ID`.
        pub const fn rev_id(self) -> u8 {
            self.0 as u8
        }
        /// Number of timers (`NUM_TIM_CAP` + 1).
        pub const fn num_timers(self) -> u8 {
            ((self.0 >> 8) & 0x1f) as u8 + 1
        }
        /// `COUNT_SIZE_CAP`.
        pub const fn counter_64bit(self) -> bool {
            self.0 & Self::COUNT_SIZE_CAP != 0
        }
        /// `LEG_RT_CAP`.
        pub const fn legacy_route_capable(self) -> bool {
            self.0 & Self::LEG_RT_CAP != 0
        }
        /// `VENDOR_ID`.
        pub const fn vendor_id(self) -> u16 {
            (self.0 >> 16) as u16
        }
        /// `COUNTER_CLK_PERIOD`: femtoseconds per counter tick.
        pub const fn period_fs(self) -> u32 {
            (self.0 >> 32) as u32
        }
    }

    /// General Configuration.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GeneralConfig(pub u64);

    impl GeneralConfig {
        /// `ENABLE_CNF`: the main counter runs and timers may interrupt.
        pub const ENABLE_CNF: u64 = 1 << 0;
        /// `LEG_RT_CNF`: timer 0 replaces the PIT (IOAPIC pin 2), timer 1
        /// the RTC (IOAPIC pin 8).
        pub const LEG_RT_CNF: u64 = 1 << 1;

        /// `ENABLE_CNF`.
        pub const fn enabled(self) -> bool {
            self.0 & Self::ENABLE_CNF != 0
        }
        /// `LEG_RT_CNF`.
        pub const fn legacy_route(self) -> bool {
            self.0 & Self::LEG_RT_CNF != 0
        }
        /// With `ENABLE_CNF` set or cleared.
        pub const fn with_enabled(self, on: bool) -> Self {
            GeneralConfig(with_bit(self.0, Self::ENABLE_CNF, on))
        }
        /// With `LEG_RT_CNF` set or cleared.
        pub const fn with_legacy_route(self, on: bool) -> Self {
            GeneralConfig(with_bit(self.0, Self::LEG_RT_CNF, on))
        }
    }

    /// Timer N Configuration and Capability.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TimerConfig(pub u64);

    impl TimerConfig {
        /// `Tn_INT_TYPE_CNF`: 1 = level-triggered, 0 = edge-triggered.
        pub const INT_TYPE_CNF: u64 = 1 << 1;
        /// `Tn_INT_ENB_CNF`: the timer may interrupt.
        pub const INT_ENB_CNF: u64 = 1 << 2;
        /// `Tn_TYPE_CNF`: periodic mode.
        pub const TYPE_CNF: u64 = 1 << 3;
        /// `Tn_PER_INT_CAP`: periodic mode is supported.
        pub const PER_INT_CAP: u64 = 1 << 4;
        /// `Tn_SIZE_CAP`: the comparator is 64 bits wide.
        pub const SIZE_CAP: u64 = 1 << 5;
        /// `Tn_VAL_SET_CNF`: the next comparator write sets the periodic
        /// accumulator.
        pub const VAL_SET_CNF: u64 = 1 << 6;
        /// `Tn_32MODE_CNF`: run a 64-bit timer as a 32-bit one.
        pub const MODE32_CNF: u64 = 1 << 8;
        /// Position of `Tn_INT_ROUTE_CNF` (5 bits).
        pub const INT_ROUTE_SHIFT: u32 = 9;
        /// `Tn_INT_ROUTE_CNF` in place.
        pub const INT_ROUTE_MASK: u64 = 0x1f << Self::INT_ROUTE_SHIFT;
        /// `Tn_FSB_EN_CNF`: deliver by FSB (MSI) message instead of a pin.
        pub const FSB_EN_CNF: u64 = 1 << 14;
        /// `Tn_FSB_INT_DEL_CAP`: FSB delivery is supported.
        pub const FSB_INT_DEL_CAP: u64 = 1 << 15;

        /// `Tn_INT_TYPE_CNF`.
        pub const fn level_triggered(self) -> bool {
            self.0 & Self::INT_TYPE_CNF != 0
        }
        /// `Tn_INT_ENB_CNF`.
        pub const fn interrupt_enabled(self) -> bool {
            self.0 & Self::INT_ENB_CNF != 0
        }
        /// `Tn_TYPE_CNF`.
        pub const fn periodic(self) -> bool {
            self.0 & Self::TYPE_CNF != 0
        }
        /// `Tn_PER_INT_CAP`.
        pub const fn periodic_capable(self) -> bool {
            self.0 & Self::PER_INT_CAP != 0
        }
        /// `Tn_SIZE_CAP`.
        pub const fn comparator_64bit(self) -> bool {
            self.0 & Self::SIZE_CAP != 0
        }
        /// `Tn_32MODE_CNF`.
        pub const fn mode_32bit(self) -> bool {
            self.0 & Self::MODE32_CNF != 0
        }
        /// `Tn_INT_ROUTE_CNF`: the IOAPIC input the timer drives.
        pub const fn route(self) -> u8 {
            ((self.0 & Self::INT_ROUTE_MASK) >> Self::INT_ROUTE_SHIFT) as u8
        }
        /// `Tn_FSB_EN_CNF`.
        pub const fn fsb_enabled(self) -> bool {
            self.0 & Self::FSB_EN_CNF != 0
        }
        /// `Tn_FSB_INT_DEL_CAP`.
        pub const fn fsb_capable(self) -> bool {
            self.0 & Self::FSB_INT_DEL_CAP != 0
        }
        /// `Tn_INT_ROUTE_CAP`: bit N set means IOAPIC input N is allowed.
        pub const fn route_cap(self) -> u32 {
            (self.0 >> 32) as u32
        }
        /// With `Tn_INT_TYPE_CNF` set (level) or cleared (edge).
        pub const fn with_level_triggered(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::INT_TYPE_CNF, on))
        }
        /// With `Tn_INT_ENB_CNF` set or cleared.
        pub const fn with_interrupt_enabled(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::INT_ENB_CNF, on))
        }
        /// With `Tn_TYPE_CNF` set (periodic) or cleared (one-shot).
        pub const fn with_periodic(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::TYPE_CNF, on))
        }
        /// With `Tn_VAL_SET_CNF` set or cleared.
        pub const fn with_value_set(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::VAL_SET_CNF, on))
        }
        /// With `Tn_32MODE_CNF` set or cleared.
        pub const fn with_mode_32bit(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::MODE32_CNF, on))
        }
        /// With `Tn_FSB_EN_CNF` set or cleared.
        pub const fn with_fsb_enabled(self, on: bool) -> Self {
            TimerConfig(with_bit(self.0, Self::FSB_EN_CNF, on))
        }
        /// With `Tn_INT_ROUTE_CNF` = `pin` (only its low 5 bits count).
        pub const fn with_route(self, pin: u8) -> Self {
            TimerConfig(
                (self.0 & !Self::INT_ROUTE_MASK) | ((pin as u64 & 0x1f) << Self::INT_ROUTE_SHIFT),
            )
        }
    }
}

use regs::{GeneralCaps, GeneralConfig, TimerConfig};

/// 32-bit access to the HPET's registers at byte offsets from its base.
/// The timer PD implements it with volatile MMIO on an uncached mapping.
pub trait Regs {
    /// Reads the 32-bit register at `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: usize, value: u32);
}

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
pub struct Hpet<R: Regs> {
    regs: R,
    period_fs: u32,
    trigger: Trigger,
    ioapic_pin: u8,
    /// Timer 0's configuration low half with `Tn_INT_ENB_CNF` clear.
    config_low: u32,
    /// Whether `Tn_INT_ENB_CNF` is set.
    enabled: bool,
    /// The comparator value last written, `None` until the first arm.
    comparator: Option<u64>,
}

const TIMER0_BIT: u32 = 1;

impl<R: Regs> Hpet<R> {
    /// Takes over the HPET: checks its capabilities, configures timer 0 as a
    /// non-periodic 64-bit timer on the chosen route with its interrupt
    /// disabled until the first [`arm`](Self::arm), and starts the counter.
    pub fn init(mut regs: R, config: Config) -> Result<Self, InitError> {
        let caps = GeneralCaps(read64(&mut regs, regs::GENERAL_CAPS));
        let period_fs = caps.period_fs();
        if period_fs == 0 || period_fs > regs::MAX_PERIOD_FS {
            return Err(InitError::BadPeriod { period_fs });
        }
        if !caps.counter_64bit() {
            return Err(InitError::Counter32Bit);
        }
        let timer = TimerConfig(read64(&mut regs, regs::timer_config(0)));
        if !timer.comparator_64bit() {
            return Err(InitError::Comparator32Bit);
        }
        let (route_bits, ioapic_pin, legacy) = match config.route {
            Route::IoApic(pin) => {
                let allowed = timer.route_cap();
                if pin >= 32 || allowed & (1 << pin) == 0 {
                    return Err(InitError::RouteNotAllowed { pin, allowed });
                }
                (pin, pin, false)
            }
            Route::LegacyReplacement => {
                if !caps.legacy_route_capable() {
                    return Err(InitError::NoLegacyReplacement);
                }
                // The route field is ignored under LEG_RT_CNF; keep it.
                (timer.route(), 2, true)
            }
        };

        // Stop the counter and all interrupts while reconfiguring.
        let general = GeneralConfig(u64::from(regs.read32(regs::GENERAL_CONFIG)))
            .with_enabled(false)
            .with_legacy_route(false);
        regs.write32(regs::GENERAL_CONFIG, general.0 as u32);

        let timer = timer
            .with_periodic(false)
            .with_value_set(false)
            .with_mode_32bit(false)
            .with_fsb_enabled(false)
            .with_interrupt_enabled(false)
            .with_level_triggered(config.trigger == Trigger::Level)
            .with_route(route_bits);
        let config_low = timer.0 as u32;
        regs.write32(regs::timer_config(0), config_low);
        // A level interrupt left over from firmware must not fire on enable.
        regs.write32(regs::INTERRUPT_STATUS, TIMER0_BIT);

        let general = general.with_enabled(true).with_legacy_route(legacy);
        regs.write32(regs::GENERAL_CONFIG, general.0 as u32);

        Ok(Hpet {
            regs,
            period_fs,
            trigger: config.trigger,
            ioapic_pin,
            config_low,
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
        let hi = self.regs.read32(regs::MAIN_COUNTER + 4);
        let lo = self.regs.read32(regs::MAIN_COUNTER);
        let hi2 = self.regs.read32(regs::MAIN_COUNTER + 4);
        if hi == hi2 {
            join(hi, lo)
        } else {
            // The low half wrapped in between; a low half read after `hi2`
            // belongs to `hi2` (the next wrap is 2^32 ticks away).
            join(hi2, self.regs.read32(regs::MAIN_COUNTER))
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
            self.regs.write32(regs::timer_comparator(0), lo);
        } else {
            // Two writes pass through a half-updated comparator, which could
            // match (or, on QEMU, count as past) and fire spuriously: keep
            // the interrupt off until both halves are in place.
            if self.enabled {
                self.regs.write32(regs::timer_config(0), self.config_low);
            }
            self.regs.write32(regs::timer_comparator(0), lo);
            self.regs.write32(regs::timer_comparator(0) + 4, hi);
            if self.trigger == Trigger::Level {
                // A match of the half-written value may have set the status.
                self.regs.write32(regs::INTERRUPT_STATUS, TIMER0_BIT);
            }
            self.regs.write32(
                regs::timer_config(0),
                self.config_low | TimerConfig::INT_ENB_CNF as u32,
            );
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
            self.regs.write32(regs::timer_config(0), self.config_low);
            self.enabled = false;
        }
    }

    /// Acknowledges timer 0's interrupt at the HPET, before the IRQ is
    /// acknowledged at seL4: for a level-triggered timer this clears the
    /// status bit and so releases the line; edge-triggered needs nothing.
    pub fn ack(&mut self) {
        if self.trigger == Trigger::Level {
            self.regs.write32(regs::INTERRUPT_STATUS, TIMER0_BIT);
        }
    }
}

fn join(hi: u32, lo: u32) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A register that does not change while read (capabilities, config).
fn read64<R: Regs>(regs: &mut R, offset: usize) -> u64 {
    let lo = regs.read32(offset);
    join(regs.read32(offset + 4), lo)
}

#[cfg(test)]
mod tests;
