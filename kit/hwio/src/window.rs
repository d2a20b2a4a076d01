//! A bus over part of another, for register blocks whose place a device
//! says at run time (an MSI-X table at a BAR offset from config space, a
//! virtio structure named by its capability): the block's registers are
//! then typed descriptors at their offsets in the block, like any other.

use crate::{Bus, Width, check_bounds};

/// `size` bytes of `bus` from `base`: offset 0 here is `base` there.
/// Every access must lie inside the window (a driver bug panics with the
/// offset, width and size, as on [`Mmio`](crate::Mmio)); the caller checks
/// once that the window lies inside the bus.
pub struct Window<B: Bus> {
    bus: B,
    name: &'static str,
    base: usize,
    size: usize,
}

impl<B: Bus> Window<B> {
    pub fn new(bus: B, name: &'static str, base: usize, size: usize) -> Self {
        Window {
            bus,
            name,
            base,
            size,
        }
    }

    #[track_caller]
    fn at(&self, offset: usize, width: Width) -> usize {
        check_bounds("window", self.name, offset, width, self.size);
        self.base + offset
    }
}

impl<B: Bus> Bus for Window<B> {
    fn read8(&mut self, offset: usize) -> u8 {
        let at = self.at(offset, Width::W8);
        self.bus.read8(at)
    }
    fn read16(&mut self, offset: usize) -> u16 {
        let at = self.at(offset, Width::W16);
        self.bus.read16(at)
    }
    fn read32(&mut self, offset: usize) -> u32 {
        let at = self.at(offset, Width::W32);
        self.bus.read32(at)
    }
    fn write8(&mut self, offset: usize, value: u8) {
        let at = self.at(offset, Width::W8);
        self.bus.write8(at, value)
    }
    fn write16(&mut self, offset: usize, value: u16) {
        let at = self.at(offset, Width::W16);
        self.bus.write16(at, value)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        let at = self.at(offset, Width::W32);
        self.bus.write32(at, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBus;

    #[test]
    fn offsets_are_the_windows_and_stay_inside_it() {
        let bus = FakeBus::new("bar", 0x100);
        let mut w = Window::new(bus.clone(), "table", 0x40, 0x20);
        w.write32(0x1c, 0xdead_beef);
        assert_eq!(bus.clone().read32(0x5c), 0xdead_beef);
        assert_eq!(w.read32(0x1c), 0xdead_beef);
        let outside = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.read32(0x1e)));
        assert!(outside.is_err(), "a read past the window's end must panic");
    }
}
