//! A bus over an x86 I/O port range.

use core::fmt::Debug;

use crate::{Bus, Width, check_bounds};

/// The port instructions, as the platform performs them. On seL4 they are
/// invocations of an I/O port capability (the `sel4` crate implements this
/// for its `IoPort` capability): a kernel call each, which the kernel
/// refuses for a port outside the capability's range.
pub trait PortBackend {
    type Error: Debug;
    fn in8(&mut self, port: u16) -> Result<u8, Self::Error>;
    fn in16(&mut self, port: u16) -> Result<u16, Self::Error>;
    fn in32(&mut self, port: u16) -> Result<u32, Self::Error>;
    fn out8(&mut self, port: u16, value: u8) -> Result<(), Self::Error>;
    fn out16(&mut self, port: u16, value: u16) -> Result<(), Self::Error>;
    fn out32(&mut self, port: u16, value: u32) -> Result<(), Self::Error>;
}

/// A device's I/O ports as a bus: offset `o` is port `base + o`, for offsets
/// below `size` (base and size as in system.xml's `<ioport addr size>`).
///
/// Every access is a kernel call on seL4, so this is the slow path: prefer
/// the device's MMIO BAR ([`crate::Mmio`]) where it has one. An offset
/// outside the range panics (a driver bug); so does a port the kernel
/// refuses, because then the capability and the configuration disagree.
pub struct PortIo<P: PortBackend> {
    name: &'static str,
    backend: P,
    base: u16,
    size: u16,
}

impl<P: PortBackend> PortIo<P> {
    /// Ports `base..base + size` through `backend`, named `name` in panics.
    #[track_caller]
    pub fn new(name: &'static str, backend: P, base: u16, size: u16) -> Self {
        assert!(
            u32::from(base) + u32::from(size) <= 0x1_0000,
            "hwio: port range '{name}' {base:#x}+{size:#x} goes past port 0xffff"
        );
        PortIo {
            name,
            backend,
            base,
            size,
        }
    }

    pub fn base(&self) -> u16 {
        self.base
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    #[track_caller]
    fn port(&self, offset: usize, width: Width) -> u16 {
        check_bounds(
            "port range",
            self.name,
            offset,
            width,
            usize::from(self.size),
        );
        // Fits: offset < size and base + size <= 0x10000.
        self.base + offset as u16
    }

    #[track_caller]
    fn done<T>(&self, port: u16, width: Width, result: Result<T, P::Error>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => panic!(
                "hwio: {}-byte access to port {port:#x} of range '{}' ({:#x}+{:#x}) refused: {e:?} \
                 (the I/O port capability does not cover the configured range)",
                width.bytes(),
                self.name,
                self.base,
                self.size
            ),
        }
    }
}

macro_rules! access {
    ($read:ident, $in:ident, $write:ident, $out:ident, $t:ty, $width:ident) => {
        #[track_caller]
        fn $read(&mut self, offset: usize) -> $t {
            let port = self.port(offset, Width::$width);
            let r = self.backend.$in(port);
            self.done(port, Width::$width, r)
        }
        #[track_caller]
        fn $write(&mut self, offset: usize, value: $t) {
            let port = self.port(offset, Width::$width);
            let r = self.backend.$out(port, value);
            self.done(port, Width::$width, r)
        }
    };
}

impl<P: PortBackend> Bus for PortIo<P> {
    access!(read8, in8, write8, out8, u8, W8);
    access!(read16, in16, write16, out16, u16, W16);
    access!(read32, in32, write32, out32, u32, W32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Register, Registers, WriteOnly};

    /// The kernel's side: an I/O port capability for ports `lo..hi` that
    /// records each instruction.
    struct Cap {
        lo: u16,
        hi: u16,
        log: Vec<(u16, &'static str, u32)>,
    }

    impl Cap {
        fn check(&mut self, port: u16, bytes: u16, op: &'static str, v: u32) -> Result<(), u16> {
            self.log.push((port, op, v));
            if port >= self.lo && port + bytes <= self.hi {
                Ok(())
            } else {
                Err(port)
            }
        }
    }

    impl PortBackend for Cap {
        type Error = u16;
        fn in8(&mut self, port: u16) -> Result<u8, u16> {
            self.check(port, 1, "in8", 0).map(|()| 0x5a)
        }
        fn in16(&mut self, port: u16) -> Result<u16, u16> {
            self.check(port, 2, "in16", 0).map(|()| 0x5a5a)
        }
        fn in32(&mut self, port: u16) -> Result<u32, u16> {
            self.check(port, 4, "in32", 0).map(|()| 0x5a5a_5a5a)
        }
        fn out8(&mut self, port: u16, v: u8) -> Result<(), u16> {
            self.check(port, 1, "out8", v.into())
        }
        fn out16(&mut self, port: u16, v: u16) -> Result<(), u16> {
            self.check(port, 2, "out16", v.into())
        }
        fn out32(&mut self, port: u16, v: u32) -> Result<(), u16> {
            self.check(port, 4, "out32", v)
        }
    }

    fn pit(lo: u16, hi: u16) -> PortIo<Cap> {
        let cap = Cap {
            lo,
            hi,
            log: Vec::new(),
        };
        PortIo::new("pit", cap, 0x40, 4)
    }

    #[test]
    fn offsets_become_base_plus_offset() {
        const COMMAND: Register<u8, (), WriteOnly> = Register::new(3);
        let mut bus = pit(0x40, 0x44);
        bus.set(COMMAND, 0x30);
        assert_eq!(bus.read8(0), 0x5a);
        bus.write16(1, 0xbeef);
        assert_eq!(
            bus.backend.log,
            [
                (0x43, "out8", 0x30),
                (0x40, "in8", 0),
                (0x41, "out16", 0xbeef)
            ]
        );
    }

    #[test]
    #[should_panic(
        expected = "hwio: 2-byte access at offset 0x3 is outside port range 'pit' of 0x4 bytes"
    )]
    fn offset_past_the_range_panics_before_any_kernel_call() {
        let mut bus = pit(0x40, 0x44);
        bus.read16(3);
    }

    #[test]
    #[should_panic(
        expected = "hwio: 1-byte access to port 0x43 of range 'pit' (0x40+0x4) refused: 67"
    )]
    fn a_refused_port_names_the_range() {
        let mut bus = pit(0x40, 0x43);
        bus.write8(3, 0);
    }

    #[test]
    #[should_panic(expected = "port range 'wide' 0xfff0+0x20 goes past port 0xffff")]
    fn a_range_past_the_last_port_is_refused() {
        let cap = Cap {
            lo: 0,
            hi: 0,
            log: Vec::new(),
        };
        PortIo::new("wide", cap, 0xfff0, 0x20);
    }
}
