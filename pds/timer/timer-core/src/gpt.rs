//! The i.MX6 General Purpose Timer (i.MX 6Dual/6Quad reference manual,
//! chapter 30): typed registers, the 32-bit counter extended to 64 bits,
//! and a one-shot driver on output compare 1.
//!
//! The GPT is the time base of the i.MX6 boards, as the TSC and the HPET
//! are of the PC: a free-running counter, here at 3 MHz (the 24 MHz
//! crystal through the GPT's divide-by-8, Linux's choice on these chips),
//! read by every PD through a read-only mapping of the GPT's page; the
//! timer PD publishes the conversion on the time page as on x86 (see the
//! crate doc). The counter is 32 bits and wraps every 1431.6 s, so readers
//! [`extend`] it around a recent 64-bit value: the time page's base for
//! clients, the last reading for the timer PD. Both stay right while less
//! than 2^32 ticks separate them, which the timer PD guarantees by
//! re-publishing the base every [`REBASE_TICKS`] on output compare 2.
//!
//! # What QEMU's model does (hw/timer/imx_gpt.c, hw/misc/imx6_ccm.c, 7.2)
//!
//! - `CLKSRC` 101 is "reference clock / 8", 3 MHz; the prescaler for it
//!   (`PRESCALER24M`) and `EN_24M` are ignored (CR bits 10..14 read back
//!   0). Real i.MX6 chips need `EN_24M` and `PRESCALER24M` = 7 for the
//!   same 3 MHz; this driver writes both, so both run at 3 MHz.
//! - An output compare interrupts when the counter reaches its value from
//!   below; a value the counter has already passed fires only after the
//!   next wrap. Real hardware matches on equality, the same in effect:
//!   [`Gpt::arm`] re-reads the counter and reports a deadline it passed.
//! - Status bits are write-1-to-clear; the interrupt line is high while
//!   a status bit and its enable are both set.

use core::fmt;

use hwio::{Bus, Registers};

pub mod regs {
    use hwio::{ReadOnly, ReadWrite, Register, register_bitfields};

    register_bitfields![u32,
        pub Control [
            EN OFFSET(0) NUMBITS(1) [],
            /// Enabling resets the counter to 0.
            ENMOD OFFSET(1) NUMBITS(1) [],
            DBGEN OFFSET(2) NUMBITS(1) [],
            WAITEN OFFSET(3) NUMBITS(1) [],
            DOZEEN OFFSET(4) NUMBITS(1) [],
            STOPEN OFFSET(5) NUMBITS(1) [],
            CLKSRC OFFSET(6) NUMBITS(3) [
                None = 0,
                Peripheral = 1,
                HighFrequency = 2,
                External = 3,
                LowFrequency = 4,
                /// The 24 MHz crystal, through PRESCALER24M.
                Crystal = 5
            ],
            /// Free-run: compares do not restart the counter.
            FRR OFFSET(9) NUMBITS(1) [],
            /// The crystal input on (i.MX6 revisions after 1.0).
            EN_24M OFFSET(10) NUMBITS(1) [],
            /// Software reset; clears itself.
            SWR OFFSET(15) NUMBITS(1) [],
        ],
        pub Prescaler [
            PRESCALER OFFSET(0) NUMBITS(12) [],
            PRESCALER24M OFFSET(12) NUMBITS(4) [],
        ],
        /// Status (write 1 to clear) and the matching interrupt enables.
        pub Status [
            OF1 OFFSET(0) NUMBITS(1) [],
            OF2 OFFSET(1) NUMBITS(1) [],
            OF3 OFFSET(2) NUMBITS(1) [],
            IF1 OFFSET(3) NUMBITS(1) [],
            IF2 OFFSET(4) NUMBITS(1) [],
            ROV OFFSET(5) NUMBITS(1) [],
        ],
    ];

    pub const CR: Register<u32, Control::Register, ReadWrite> = Register::new(0x00);
    pub const PR: Register<u32, Prescaler::Register, ReadWrite> = Register::new(0x04);
    pub const SR: Register<u32, Status::Register, ReadWrite> = Register::new(0x08);
    pub const IR: Register<u32, Status::Register, ReadWrite> = Register::new(0x0c);
    pub const OCR1: Register<u32, (), ReadWrite> = Register::new(0x10);
    pub const OCR2: Register<u32, (), ReadWrite> = Register::new(0x14);
    pub const CNT: Register<u32, (), ReadOnly> = Register::new(0x24);

    /// Bytes of register space.
    pub const MMIO_SIZE: usize = 0x28;
    /// The GPT of the i.MX6, and its interrupt (GIC SPI 55).
    pub const PADDR: u64 = 0x0209_8000;
    pub const IRQ: u32 = 87;
}

use regs::{CNT, CR, Control, IR, OCR1, OCR2, PR, Prescaler, SR, Status};

/// Counter ticks per second: 24 MHz / 8.
pub const HZ: u64 = 3_000_000;
/// How often the 64-bit base must move on: half the wrap period (about
/// 716 s), so that readers extending around it never see 2^32 ticks.
pub const REBASE_TICKS: u32 = 1 << 31;

/// The 64-bit counter value whose low half is `count`, at or after `base`
/// (right while the counter is less than 2^32 ticks past `base`).
pub const fn extend(count: u32, base: u64) -> u64 {
    base.wrapping_add(count.wrapping_sub(base as u32) as u64)
}

/// Why [`Gpt::init`] refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The counter did not move while the driver watched it: no clock, or
    /// the mapping is not the GPT.
    Stopped { count: u32 },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::Stopped { count } => write!(
                f,
                "GPT counter stuck at {count:#x} after enabling it (is the mapping really the GPT, with its clock on?)"
            ),
        }
    }
}

/// What [`Gpt::arm`] found after programming the compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum ArmOutcome {
    /// The counter is still before the deadline: the interrupt will come.
    Armed,
    /// The deadline lies beyond what one compare reaches; an interrupt
    /// comes at the returned counter value, short of it, to arm again.
    ArmedShort { at: u64 },
    /// The counter had already reached the deadline when re-read: the
    /// compare would fire only after a wrap. Deliver what is due now.
    FireNow { now: u64 },
}

/// Why the GPT interrupted, from its status (cleared on reading).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Output compare 1: a deadline.
    pub compare: bool,
    /// Output compare 2: time to move the published base on.
    pub rebase: bool,
    /// Status bits no enabled source explains (counted by the driver).
    pub unexpected: u32,
}

/// How many status reads the driver rejected as inexplicable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub unexpected_status: u64,
    /// Counter readings below the previous one by less than a wrap: a
    /// device that went back, not forward. The reading is not used.
    pub backwards: u64,
}

/// Polls of the counter [`Gpt::init`] spends waiting for it to move.
pub const START_SPINS: u32 = 1_000_000;

/// A one-shot driver for the GPT.
pub struct Gpt<B: Bus> {
    bus: B,
    /// The last 64-bit reading.
    last: u64,
    /// The compare value last written (64-bit), `None` while disarmed.
    armed: Option<u64>,
    counters: Counters,
}

impl<B: Bus> Gpt<B> {
    /// Takes over the GPT: resets it, runs it free from 0 at [`HZ`], with
    /// no interrupt but the rebase (output compare 2) enabled, and checks
    /// that the counter moves.
    pub fn init(mut bus: B) -> Result<Self, InitError> {
        bus.write(CR, Control::SWR::SET);
        for _ in 0..START_SPINS {
            if !bus.is_set(CR, Control::SWR) {
                break;
            }
        }
        bus.set(IR, 0);
        bus.write(
            PR,
            Prescaler::PRESCALER.val(0) + Prescaler::PRESCALER24M.val(7),
        );
        let mode = Control::CLKSRC::Crystal
            + Control::EN_24M::SET
            + Control::FRR::SET
            + Control::ENMOD::SET
            + Control::WAITEN::SET;
        bus.write(CR, mode);
        bus.set(SR, 0x3f);
        bus.write(CR, mode + Control::EN::SET);
        let first = bus.get(CNT);
        let mut moved = false;
        for _ in 0..START_SPINS {
            if bus.get(CNT) != first {
                moved = true;
                break;
            }
            core::hint::spin_loop();
        }
        if !moved {
            return Err(InitError::Stopped { count: first });
        }
        let mut gpt = Gpt {
            bus,
            last: 0,
            armed: None,
            counters: Counters::default(),
        };
        gpt.last = extend(gpt.bus.get(CNT), 0);
        gpt.arm_rebase();
        Ok(gpt)
    }

    /// The counter, extended to 64 bits. Must be read at least once per
    /// wrap (the rebase interrupt sees to it).
    pub fn now(&mut self) -> u64 {
        let now = extend(self.bus.get(CNT), self.last);
        // Readings are never more than a rebase interval (plus scheduling
        // delays) apart; one three quarters of a wrap "ahead" is one
        // behind: the device went back. Keep the last reading rather than
        // jump ahead.
        if now - self.last > u64::from(REBASE_TICKS) + u64::from(REBASE_TICKS / 2) {
            self.counters.backwards += 1;
            return self.last;
        }
        self.last = now;
        now
    }

    /// The next rebase interrupt, half a wrap from now.
    pub fn arm_rebase(&mut self) {
        let at = self.now().wrapping_add(u64::from(REBASE_TICKS));
        self.bus.set(OCR2, at as u32);
        self.bus.modify(IR, Status::OF2::SET);
    }

    /// Interrupts when the counter reaches `deadline` (extended ticks), or,
    /// if that is further than half a wrap, at half a wrap to arm again.
    pub fn arm(&mut self, deadline: u64) -> ArmOutcome {
        let now = self.now();
        if deadline <= now {
            self.disarm();
            return ArmOutcome::FireNow { now };
        }
        let reach = now + u64::from(REBASE_TICKS);
        let at = deadline.min(reach);
        self.bus.set(OCR1, at as u32);
        self.bus.set(SR, Status::OF1::SET.value);
        self.bus.modify(IR, Status::OF1::SET);
        self.armed = Some(at);
        // The compare fires when the counter reaches it from below; a
        // counter that got there while we wrote it will not come back.
        let after = self.now();
        if after >= at {
            self.disarm();
            return if at == deadline {
                ArmOutcome::FireNow { now: after }
            } else {
                ArmOutcome::ArmedShort { at }
            };
        }
        if at == deadline {
            ArmOutcome::Armed
        } else {
            ArmOutcome::ArmedShort { at }
        }
    }

    /// No deadline interrupt until the next [`arm`](Self::arm).
    pub fn disarm(&mut self) {
        self.bus.modify(IR, Status::OF1::CLEAR);
        self.bus.set(SR, Status::OF1::SET.value);
        self.armed = None;
    }

    /// The compare value armed, if any.
    pub fn armed(&self) -> Option<u64> {
        self.armed
    }

    /// Reads and clears the status: what the interrupt was for. Bits that
    /// no enabled source explains are counted and cleared too.
    pub fn take_events(&mut self) -> Events {
        let status = self.bus.read(SR);
        let enabled = self.bus.read(IR);
        self.bus.set(SR, status.get());
        let compare = status.is_set(Status::OF1) && enabled.is_set(Status::OF1);
        let rebase = status.is_set(Status::OF2) && enabled.is_set(Status::OF2);
        let unexpected = status.get() & !enabled.get();
        if unexpected != 0 {
            self.counters.unexpected_status += 1;
        }
        if compare {
            self.armed = None;
        }
        Events {
            compare,
            rebase,
            unexpected,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }
}

#[cfg(test)]
mod tests;
