//! Typed hardware access, the bottom of the driver kit: every driver core
//! talks to its device through a [`Bus`] (8/16/32-bit reads and writes at
//! byte offsets) and typed register descriptors ([`Register`]), never
//! through raw pointers, bare offsets or hand-written shifts and masks.
//!
//! - [`Mmio`] is a bus over a mapped device region, every access volatile
//!   and bounds-checked against the region's size.
//! - [`PortIo`] is a bus over an x86 I/O port range (base + offset). On
//!   seL4 each port access is a kernel call (an `X86IOPort` invocation on
//!   the PD's capability), so it costs a system call round trip where an
//!   MMIO access costs one uncached load or store: prefer a device's MMIO
//!   BAR when it has one. The kernel call itself sits behind
//!   [`PortBackend`], which the `sel4` crate implements for its I/O port
//!   capability; hwio stays free of seL4 and builds and tests on the host.
//! - Register fields are defined with tock-registers'
//!   [`register_bitfields!`]; a [`Register`] names a register's offset, width
//!   (its integer type), field set and access, and [`Registers`] gives every
//!   bus `read`, `write`, `modify`, `get` and `set` on such descriptors.
//! - `FakeBus` (feature `fake`) is a memory-backed register file with
//!   per-register hooks, an access log and a read-corruption hook, so a
//!   driver core runs in `cargo test` against a scripted device.
//! - [`Window`] is a bus over part of another, for a register block whose
//!   place the device says at run time (an MSI-X table, a virtio structure).
//! - [`Corrupting`] is the same kind of hook on a real bus, for fault
//!   injection in a running system: while its [`Garbage`] plan is armed,
//!   reads of chosen registers return all ones or noise.
//! - [`tsc::rdtsc`] is the one wrapper of the CPU's time-stamp counter and
//!   [`debug_exit`] the one definition of QEMU's isa-debug-exit device;
//!   `semihosting` ends a run the same way on ARM.
//!
//! An access outside a region is a bug in the driver, not a device
//! condition: it panics with the offset, width and region size.
#![cfg_attr(not(any(test, feature = "fake")), no_std)]

pub mod debug_exit;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod garbage;
mod mmio;
mod port;
mod reg;
#[cfg(target_arch = "arm")]
pub mod semihosting;
pub mod tsc;
mod window;

pub use garbage::{Corrupting, Garbage};
pub use mmio::Mmio;
pub use port::{PortBackend, PortIo};
pub use reg::{
    Access, Int, ReadOnly, ReadWrite, Readable, Register, RegisterArray, Registers, Writable,
    WriteOnly,
};
pub use tock_registers::fields::{Field, FieldValue};
pub use tock_registers::{LocalRegisterCopy, RegisterLongName, register_bitfields};
pub use window::Window;

/// The width of one bus access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Width {
    W8,
    W16,
    W32,
}

impl Width {
    /// Bytes moved by one access of this width.
    pub const fn bytes(self) -> usize {
        match self {
            Width::W8 => 1,
            Width::W16 => 2,
            Width::W32 => 4,
        }
    }
}

/// Register access at byte offsets from a device's base. Reads take
/// `&mut self` because device reads have side effects (read-to-clear,
/// FIFOs): a driver owns its bus exclusively.
pub trait Bus {
    fn read8(&mut self, offset: usize) -> u8;
    fn read16(&mut self, offset: usize) -> u16;
    fn read32(&mut self, offset: usize) -> u32;
    fn write8(&mut self, offset: usize, value: u8);
    fn write16(&mut self, offset: usize, value: u16);
    fn write32(&mut self, offset: usize, value: u32);
}

impl<B: Bus + ?Sized> Bus for &mut B {
    fn read8(&mut self, offset: usize) -> u8 {
        (**self).read8(offset)
    }
    fn read16(&mut self, offset: usize) -> u16 {
        (**self).read16(offset)
    }
    fn read32(&mut self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write8(&mut self, offset: usize, value: u8) {
        (**self).write8(offset, value)
    }
    fn write16(&mut self, offset: usize, value: u16) {
        (**self).write16(offset, value)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}

/// Panics for an access outside `[0, size)`: shared by the buses so that
/// the message is the same everywhere.
#[track_caller]
fn check_bounds(kind: &str, name: &str, offset: usize, width: Width, size: usize) {
    let bytes = width.bytes();
    let inside = offset.checked_add(bytes).is_some_and(|end| end <= size);
    assert!(
        inside,
        "hwio: {bytes}-byte access at offset {offset:#x} is outside {kind} '{name}' of {size:#x} bytes"
    );
}
