//! Register descriptors: offset, width (the integer type), field set and
//! access, so that a driver writes `bus.read(ISR)` or
//! `bus.write(CR, Cmd::RST::SET)` and the compiler rejects a field of
//! another register or a write to a read-only one.

use core::marker::PhantomData;

use tock_registers::fields::{Field, FieldValue};
use tock_registers::{LocalRegisterCopy, RegisterLongName, UIntLike};

use crate::{Bus, Width};

/// A register's integer type: one bus access of its width.
pub trait Int: UIntLike + sealed::Sealed + 'static {
    const WIDTH: Width;
    fn read_from<B: Bus + ?Sized>(bus: &mut B, offset: usize) -> Self;
    fn write_to<B: Bus + ?Sized>(self, bus: &mut B, offset: usize);
    /// Zero-extended, for logs and hooks that handle every width alike.
    fn to_u32(self) -> u32;
    /// Truncated to the width.
    fn from_u32(value: u32) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

macro_rules! int {
    ($t:ty, $width:ident, $read:ident, $write:ident) => {
        impl Int for $t {
            const WIDTH: Width = Width::$width;
            fn read_from<B: Bus + ?Sized>(bus: &mut B, offset: usize) -> Self {
                bus.$read(offset)
            }
            fn write_to<B: Bus + ?Sized>(self, bus: &mut B, offset: usize) {
                bus.$write(offset, self)
            }
            fn to_u32(self) -> u32 {
                u32::from(self)
            }
            fn from_u32(value: u32) -> Self {
                value as $t
            }
        }
    };
}

int!(u8, W8, read8, write8);
int!(u16, W16, read16, write16);
int!(u32, W32, read32, write32);

/// What a register allows: [`ReadOnly`], [`WriteOnly`] or [`ReadWrite`].
pub trait Access: sealed_access::Sealed {}
/// A register that may be read.
pub trait Readable: Access {}
/// A register that may be written.
pub trait Writable: Access {}

mod sealed_access {
    pub trait Sealed {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::WriteOnly {}
    impl Sealed for super::ReadWrite {}
}

#[derive(Clone, Copy, Debug)]
pub struct ReadOnly;
#[derive(Clone, Copy, Debug)]
pub struct WriteOnly;
#[derive(Clone, Copy, Debug)]
pub struct ReadWrite;

impl Access for ReadOnly {}
impl Access for WriteOnly {}
impl Access for ReadWrite {}
impl Readable for ReadOnly {}
impl Readable for ReadWrite {}
impl Writable for WriteOnly {}
impl Writable for ReadWrite {}

/// A register at a byte offset from the device's base, `T` wide, with the
/// fields of `R` (a `register_bitfields!` register, or `()` for a plain
/// value such as a counter or an address) and access `A`.
pub struct Register<T: Int, R: RegisterLongName = (), A: Access = ReadWrite> {
    offset: usize,
    _marker: PhantomData<(T, R, A)>,
}

// Derives would demand `T: Clone` etc. of the markers' parameters.
impl<T: Int, R: RegisterLongName, A: Access> Clone for Register<T, R, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Int, R: RegisterLongName, A: Access> Copy for Register<T, R, A> {}

impl<T: Int, R: RegisterLongName, A: Access> core::fmt::Debug for Register<T, R, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Register({:#x}, {} bytes)",
            self.offset,
            T::WIDTH.bytes()
        )
    }
}

impl<T: Int, R: RegisterLongName, A: Access> Register<T, R, A> {
    pub const fn new(offset: usize) -> Self {
        Register {
            offset,
            _marker: PhantomData,
        }
    }
    pub const fn offset(self) -> usize {
        self.offset
    }
    pub const fn width(self) -> Width {
        T::WIDTH
    }
}

/// `count` registers of one kind, `stride` bytes apart from `base` (per-timer
/// or per-port register blocks).
pub struct RegisterArray<T: Int, R: RegisterLongName = (), A: Access = ReadWrite> {
    base: usize,
    stride: usize,
    count: usize,
    _marker: PhantomData<(T, R, A)>,
}

impl<T: Int, R: RegisterLongName, A: Access> Clone for RegisterArray<T, R, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Int, R: RegisterLongName, A: Access> Copy for RegisterArray<T, R, A> {}

impl<T: Int, R: RegisterLongName, A: Access> RegisterArray<T, R, A> {
    pub const fn new(base: usize, stride: usize, count: usize) -> Self {
        RegisterArray {
            base,
            stride,
            count,
            _marker: PhantomData,
        }
    }
    pub const fn len(self) -> usize {
        self.count
    }
    pub const fn is_empty(self) -> bool {
        self.count == 0
    }
    /// Register `n`; an index past the array is a driver bug and panics.
    #[track_caller]
    pub const fn at(self, n: usize) -> Register<T, R, A> {
        assert!(n < self.count, "hwio: register array index out of range");
        Register::new(self.base + n * self.stride)
    }
}

/// Typed register access on any [`Bus`].
pub trait Registers: Bus {
    /// Reads `reg` once; fields are then taken from the local copy.
    fn read<T: Int, R: RegisterLongName, A: Readable>(
        &mut self,
        reg: Register<T, R, A>,
    ) -> LocalRegisterCopy<T, R> {
        LocalRegisterCopy::new(T::read_from(self, reg.offset))
    }
    /// Reads `reg` as a plain value.
    fn get<T: Int, R: RegisterLongName, A: Readable>(&mut self, reg: Register<T, R, A>) -> T {
        T::read_from(self, reg.offset)
    }
    /// Reads one field of `reg`.
    fn read_field<T: Int, R: RegisterLongName, A: Readable>(
        &mut self,
        reg: Register<T, R, A>,
        field: Field<T, R>,
    ) -> T {
        field.read(T::read_from(self, reg.offset))
    }
    /// Whether any bit of `field` is set in `reg`.
    fn is_set<T: Int, R: RegisterLongName, A: Readable>(
        &mut self,
        reg: Register<T, R, A>,
        field: Field<T, R>,
    ) -> bool {
        field.is_set(T::read_from(self, reg.offset))
    }
    /// Writes `value` (fields combined with `+`); bits of no field named
    /// are written as 0.
    fn write<T: Int, R: RegisterLongName, A: Writable>(
        &mut self,
        reg: Register<T, R, A>,
        value: FieldValue<T, R>,
    ) {
        value.value.write_to(self, reg.offset)
    }
    /// Writes a plain value, or a local copy's `get()`.
    fn set<T: Int, R: RegisterLongName, A: Writable>(&mut self, reg: Register<T, R, A>, value: T) {
        value.write_to(self, reg.offset)
    }
    /// Read-modify-write: the fields named change, the other bits keep what
    /// was read.
    fn modify<T: Int, R: RegisterLongName, A: Readable + Writable>(
        &mut self,
        reg: Register<T, R, A>,
        value: FieldValue<T, R>,
    ) {
        let old = T::read_from(self, reg.offset);
        value.modify(old).write_to(self, reg.offset)
    }
}

impl<B: Bus + ?Sized> Registers for B {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBus;

    const TIMER_CMP: RegisterArray<u32> = RegisterArray::new(0x108, 0x20, 3);

    #[test]
    fn array_elements_are_stride_apart() {
        assert_eq!(TIMER_CMP.at(0).offset(), 0x108);
        assert_eq!(TIMER_CMP.at(2).offset(), 0x148);
        assert_eq!(TIMER_CMP.at(1).width(), Width::W32);
        let mut bus = FakeBus::new("hpet", 0x400);
        bus.set(TIMER_CMP.at(1), 7);
        assert_eq!(bus.peek(Register::<u32>::new(0x128)), 7);
    }

    #[test]
    #[should_panic(expected = "register array index out of range")]
    fn an_index_past_the_array_panics() {
        let _ = TIMER_CMP.at(3);
    }
}
