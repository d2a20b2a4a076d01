//! Garbage from the device, for fault injection on the real bus: a
//! [`Corrupting`] bus wraps any [`Bus`] (an [`Mmio`](crate::Mmio) region,
//! say) and, while its [`Garbage`] plan is armed, replaces the values read
//! from the chosen registers with all ones (what a PCI read returns from a
//! device that fell off the bus) or noise. Writes always go through.
//!
//! A driver that is not being injected into is built over the bare bus, so
//! the wrapper costs nothing then: the PD decides once, at start-up, which
//! bus type its driver core is instantiated with (pds/rtl8139 does). While
//! the plan is disarmed a corrupting bus costs one flag test per read.

use core::cell::Cell;

use crate::{Bus, Width};

/// What a corrupted read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Every bit set, at the access's width.
    AllOnes,
    /// Pseudo-random values (xorshift32), reproducible from the seed.
    Noise { seed: u32 },
}

/// Which reads an armed plan corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// Every register.
    All,
    /// Reads at these byte offsets (up to [`MAX_CHOSEN`]); a read of
    /// another register is left alone.
    Only([Option<usize>; MAX_CHOSEN]),
}

/// How many registers [`Select::Only`] names at most.
pub const MAX_CHOSEN: usize = 4;

impl Select {
    /// The registers at `offsets` (the first [`MAX_CHOSEN`] of them).
    pub fn only(offsets: &[usize]) -> Self {
        let mut chosen = [None; MAX_CHOSEN];
        for (slot, &o) in chosen.iter_mut().zip(offsets) {
            *slot = Some(o);
        }
        Select::Only(chosen)
    }

    fn covers(&self, offset: usize) -> bool {
        match self {
            Select::All => true,
            Select::Only(chosen) => chosen.contains(&Some(offset)),
        }
    }
}

/// A corruption plan, shared by the driver (which arms it around the
/// events it injects into) and the [`Corrupting`] bus under its core.
pub struct Garbage {
    armed: Cell<Option<(Pattern, Select)>>,
    state: Cell<u32>,
    corrupted: Cell<u32>,
}

impl Default for Garbage {
    fn default() -> Self {
        Self::new()
    }
}

impl Garbage {
    pub const fn new() -> Self {
        Garbage {
            armed: Cell::new(None),
            state: Cell::new(0),
            corrupted: Cell::new(0),
        }
    }

    /// From now on, reads of the registers `select` names return
    /// `pattern`, until [`Garbage::disarm`]. Resets the count of corrupted
    /// reads.
    pub fn arm(&self, pattern: Pattern, select: Select) {
        if let Pattern::Noise { seed } = pattern {
            // xorshift32 never leaves 0.
            self.state.set(seed.max(1));
        }
        self.corrupted.set(0);
        self.armed.set(Some((pattern, select)));
    }

    /// Reads are true again. Returns how many reads were corrupted since
    /// [`Garbage::arm`].
    pub fn disarm(&self) -> u32 {
        self.armed.set(None);
        self.corrupted.get()
    }

    pub fn is_armed(&self) -> bool {
        self.armed.get().is_some()
    }

    /// The value the driver gets for a read of `true_value` at `offset`.
    #[inline]
    fn filter(&self, offset: usize, width: Width, true_value: u32) -> u32 {
        let Some((pattern, select)) = self.armed.get() else {
            return true_value;
        };
        if !select.covers(offset) {
            return true_value;
        }
        self.corrupted.set(self.corrupted.get() + 1);
        let mask = match width {
            Width::W8 => 0xff,
            Width::W16 => 0xffff,
            Width::W32 => u32::MAX,
        };
        match pattern {
            Pattern::AllOnes => mask,
            Pattern::Noise { .. } => {
                let mut x = self.state.get();
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.state.set(x);
                x & mask
            }
        }
    }
}

/// A bus whose reads pass through a [`Garbage`] plan.
pub struct Corrupting<'a, B: Bus> {
    bus: B,
    plan: &'a Garbage,
}

impl<'a, B: Bus> Corrupting<'a, B> {
    pub fn new(bus: B, plan: &'a Garbage) -> Self {
        Corrupting { bus, plan }
    }

    pub fn plan(&self) -> &'a Garbage {
        self.plan
    }
}

impl<B: Bus> Bus for Corrupting<'_, B> {
    #[track_caller]
    fn read8(&mut self, offset: usize) -> u8 {
        let v = self.bus.read8(offset);
        self.plan.filter(offset, Width::W8, v.into()) as u8
    }
    #[track_caller]
    fn read16(&mut self, offset: usize) -> u16 {
        let v = self.bus.read16(offset);
        self.plan.filter(offset, Width::W16, v.into()) as u16
    }
    #[track_caller]
    fn read32(&mut self, offset: usize) -> u32 {
        let v = self.bus.read32(offset);
        self.plan.filter(offset, Width::W32, v)
    }
    #[track_caller]
    fn write8(&mut self, offset: usize, value: u8) {
        self.bus.write8(offset, value)
    }
    #[track_caller]
    fn write16(&mut self, offset: usize, value: u16) {
        self.bus.write16(offset, value)
    }
    #[track_caller]
    fn write32(&mut self, offset: usize, value: u32) {
        self.bus.write32(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBus;
    use crate::{Mmio, Register, Registers};

    const STATUS: Register<u16> = Register::new(0x3e);
    const WRITE_PTR: Register<u16> = Register::new(0x3a);
    const ID: Register<u8> = Register::new(0x0);

    #[test]
    fn disarmed_reads_are_true_and_writes_always_pass() {
        let fake = FakeBus::new("nic", 0x100);
        let plan = Garbage::new();
        let mut bus = Corrupting::new(fake.clone(), &plan);
        bus.set(STATUS, 0x0005);
        assert_eq!(bus.get(STATUS), 0x0005);
        plan.arm(Pattern::AllOnes, Select::All);
        bus.set(STATUS, 0x0001);
        assert_eq!(fake.peek(STATUS), 0x0001, "writes reach the device");
        assert_eq!(plan.disarm(), 0);
        assert_eq!(bus.get(STATUS), 0x0001);
    }

    #[test]
    fn all_ones_at_each_width_on_the_chosen_registers_only() {
        let fake = FakeBus::new("nic", 0x100);
        let plan = Garbage::new();
        let mut bus = Corrupting::new(fake.clone(), &plan);
        bus.set(STATUS, 0x0004);
        bus.set(WRITE_PTR, 0x0100);
        bus.set(ID, 0x12);
        plan.arm(
            Pattern::AllOnes,
            Select::only(&[STATUS.offset(), ID.offset()]),
        );
        assert_eq!(bus.get(STATUS), 0xffff);
        assert_eq!(bus.get(ID), 0xff);
        assert_eq!(bus.get(WRITE_PTR), 0x0100, "not chosen");
        assert_eq!(
            bus.read32(0x3c),
            0x0004_0000,
            "another width, another offset"
        );
        assert_eq!(fake.peek(STATUS), 0x0004, "the device keeps the true value");
        assert_eq!(plan.disarm(), 2);
        assert_eq!(bus.get(STATUS), 0x0004);
    }

    #[test]
    fn noise_is_reproducible_from_its_seed_and_varies() {
        let plan = Garbage::new();
        let mut bus = Corrupting::new(FakeBus::new("nic", 0x100), &plan);
        let mut draw = |seed| {
            plan.arm(Pattern::Noise { seed }, Select::All);
            let v: [u16; 4] = core::array::from_fn(|_| bus.get(STATUS));
            plan.disarm();
            v
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a.windows(2).any(|w| w[0] != w[1]), "{a:?}");
        // Seed 0 would stick at 0 in xorshift.
        assert_ne!(draw(0), [0; 4]);
    }

    #[test]
    fn wraps_a_real_mmio_region() {
        let mem: &'static mut [u64] = vec![0u64; 32].leak();
        mem[7] = 0x0000_0000_0000_0001 << 48; // 0x3e: status 1
        // SAFETY: the buffer is leaked, so it lives for the test's life.
        let mmio = unsafe { Mmio::new("test", mem.as_mut_ptr() as usize, 0x100) };
        let plan = Garbage::new();
        let mut bus = Corrupting::new(mmio, &plan);
        assert_eq!(bus.get(STATUS), 1);
        plan.arm(Pattern::AllOnes, Select::only(&[STATUS.offset()]));
        assert_eq!(bus.get(STATUS), 0xffff);
        plan.disarm();
        assert_eq!(bus.get(STATUS), 1);
    }
}
