//! QEMU's isa-debug-exit device, the way a test run ends: writing `v` to
//! its port makes QEMU exit with status `2v + 1`. The machine has it at
//! port 0xf4 (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`, see
//! qemu/qemu.py); tests/run.py decodes the two codes below.

use crate::{Bus, Register, Registers, WriteOnly};

/// The device's port base and size (system.xml: `<ioport addr="0xf4" size="4"/>`).
pub const BASE: u16 = 0xf4;
pub const SIZE: u16 = 4;

/// The exit register: a byte written here ends the run.
pub const EXIT: Register<u8, (), WriteOnly> = Register::new(0);

/// A run's outcome and the byte that reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// QEMU exit status 33.
    Success = 0x10,
    /// QEMU exit status 35.
    Failure = 0x11,
}

impl Code {
    /// QEMU's exit status for this code.
    pub const fn status(self) -> i32 {
        2 * self as i32 + 1
    }
}

/// The device on a bus over its ports.
pub struct DebugExit<B: Bus>(B);

impl<B: Bus> DebugExit<B> {
    pub fn new(bus: B) -> Self {
        DebugExit(bus)
    }
    /// Ends the run with `code`. Returns only where the device is absent
    /// (QEMU without it, or real hardware): the caller decides what then.
    pub fn exit(&mut self, code: Code) {
        self.0.set(EXIT, code as u8);
    }
    pub fn success(&mut self) {
        self.exit(Code::Success)
    }
    pub fn failure(&mut self) {
        self.exit(Code::Failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeBus, Op};

    #[test]
    fn codes_are_written_as_one_byte_to_the_exit_register() {
        let bus = FakeBus::new("debug-exit", SIZE.into());
        let mut dev = DebugExit::new(bus.clone());
        dev.success();
        dev.failure();
        assert_eq!(bus.writes(EXIT), [0x10, 0x11]);
        assert!(bus.log().iter().all(|a| a.op == Op::Write));
        assert_eq!((Code::Success.status(), Code::Failure.status()), (33, 35));
    }
}
