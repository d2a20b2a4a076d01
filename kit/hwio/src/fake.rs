//! A fake device bus for host tests of driver cores.
//!
//! [`FakeBus`] is a register file in ordinary memory (little-endian, like
//! the devices it stands in for), shared by the driver under test and the
//! test itself: clone the handle, hand one clone to the driver, keep one.
//! Without hooks a register reads back what was last written. Hooks per
//! register model the device:
//!
//! - [`FakeBus::on_read`]: the value the driver reads, from the stored one
//!   (a counter that advances, read-to-clear bits);
//! - [`FakeBus::on_write`]: what a write does (write-1-to-clear, a command
//!   that resets other registers); the hook stores nothing unless it does;
//! - [`FakeBus::write_1_to_clear`], [`FakeBus::ignore_writes`],
//!   [`FakeBus::script_reads`]: the common cases.
//!
//! Hooks see the register file as [`Memory`]; a device with more state
//! keeps it in an `Rc<RefCell<..>>` its hooks share with the test. A hook
//! must not call the bus itself (the bus is busy while its hook runs; that
//! panics with a `RefCell` borrow error).
//!
//! Every access is logged ([`FakeBus::log`], [`FakeBus::writes`]). For
//! fault injection, [`FakeBus::corrupt_reads`] installs one function that
//! sees every read after the hooks and may replace the value the driver
//! gets; the register file keeps the true value, and the log marks the
//! access as corrupted.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::vec::Vec;

use tock_registers::{LocalRegisterCopy, RegisterLongName};

use crate::{Access as AccessKind, Bus, Int, Register, Width, check_bounds};

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// One logged access. `value` is what the driver read (after hooks and
/// corruption) or wrote, zero-extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub op: Op,
    pub offset: usize,
    pub width: Width,
    pub value: u32,
    /// The corruption hook replaced the value read.
    pub corrupted: bool,
}

/// The register file behind a [`FakeBus`], as hooks and tests see it: no
/// hooks, no log, no access rules.
pub struct Memory {
    bytes: Vec<u8>,
}

impl Memory {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// The stored value at `offset`, `width` wide, zero-extended.
    pub fn load(&self, offset: usize, width: Width) -> u32 {
        let mut v = [0u8; 4];
        v[..width.bytes()].copy_from_slice(&self.bytes[offset..offset + width.bytes()]);
        u32::from_le_bytes(v)
    }
    /// Stores the low `width` bytes of `value` at `offset`.
    pub fn store(&mut self, offset: usize, width: Width, value: u32) {
        self.bytes[offset..offset + width.bytes()]
            .copy_from_slice(&value.to_le_bytes()[..width.bytes()]);
    }
    pub fn get<T: Int, R: RegisterLongName, A: AccessKind>(&self, reg: Register<T, R, A>) -> T {
        T::from_u32(self.load(reg.offset(), T::WIDTH))
    }
    pub fn set<T: Int, R: RegisterLongName, A: AccessKind>(
        &mut self,
        reg: Register<T, R, A>,
        value: T,
    ) {
        self.store(reg.offset(), T::WIDTH, value.to_u32())
    }
    /// The stored value as a local copy, to check fields.
    pub fn read<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
    ) -> LocalRegisterCopy<T, R> {
        LocalRegisterCopy::new(self.get(reg))
    }
}

type ReadHook = Box<dyn FnMut(&mut Memory, u32) -> u32>;
type WriteHook = Box<dyn FnMut(&mut Memory, u32)>;
type Corrupt = Box<dyn FnMut(&Access) -> Option<u32>>;

struct Inner {
    name: &'static str,
    mem: Memory,
    read_hooks: BTreeMap<usize, (Width, ReadHook)>,
    write_hooks: BTreeMap<usize, (Width, WriteHook)>,
    corrupt: Option<Corrupt>,
    log: Vec<Access>,
}

/// A memory-backed device bus with hooks and an access log; clones share
/// one device.
#[derive(Clone)]
pub struct FakeBus(Rc<RefCell<Inner>>);

#[track_caller]
fn check_width(name: &str, offset: usize, width: Width, hooked: Width) {
    assert!(
        width == hooked,
        "fake bus '{name}': {}-byte access at offset {offset:#x}, but the register there is {} bytes",
        width.bytes(),
        hooked.bytes()
    );
}

fn mask(width: Width) -> u32 {
    match width {
        Width::W8 => 0xff,
        Width::W16 => 0xffff,
        Width::W32 => u32::MAX,
    }
}

impl FakeBus {
    /// A device of `size` bytes of registers, all zero.
    pub fn new(name: &'static str, size: usize) -> Self {
        FakeBus(Rc::new(RefCell::new(Inner {
            name,
            mem: Memory {
                bytes: vec![0; size],
            },
            read_hooks: BTreeMap::new(),
            write_hooks: BTreeMap::new(),
            corrupt: None,
            log: Vec::new(),
        })))
    }

    /// Reads of `reg` return `hook(memory, stored value)`; replaces an
    /// earlier read hook of the register.
    pub fn on_read<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
        mut hook: impl FnMut(&mut Memory, T) -> T + 'static,
    ) {
        let hook: ReadHook = Box::new(move |m, v| hook(m, T::from_u32(v)).to_u32());
        self.0
            .borrow_mut()
            .read_hooks
            .insert(reg.offset(), (T::WIDTH, hook));
    }

    /// Writes to `reg` call `hook(memory, value written)` instead of storing
    /// the value; replaces an earlier write hook of the register.
    pub fn on_write<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
        mut hook: impl FnMut(&mut Memory, T) + 'static,
    ) {
        let hook: WriteHook = Box::new(move |m, v| hook(m, T::from_u32(v)));
        self.0
            .borrow_mut()
            .write_hooks
            .insert(reg.offset(), (T::WIDTH, hook));
    }

    /// `reg` is write-1-to-clear: each 1 written clears that bit.
    pub fn write_1_to_clear<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
    ) {
        let (offset, width) = (reg.offset(), T::WIDTH);
        self.on_write(reg, move |m, v| {
            let old = m.load(offset, width);
            m.store(offset, width, old & !v.to_u32());
        });
    }

    /// Writes to `reg` change nothing (a read-only register); they are
    /// still logged.
    pub fn ignore_writes<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
    ) {
        self.on_write(reg, |_, _| {});
    }

    /// Reads of `reg` return `values` in turn, then the stored value.
    pub fn script_reads<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
        values: impl IntoIterator<Item = T, IntoIter: 'static>,
    ) {
        let mut values = values.into_iter();
        self.on_read(reg, move |_, stored| values.next().unwrap_or(stored));
    }

    /// Fault injection: `f` sees every read (with the value the driver
    /// would get) and may return a replacement, truncated to the access
    /// width. The register file is not changed. One function at a time:
    /// it replaces an earlier one.
    pub fn corrupt_reads(&self, f: impl FnMut(&Access) -> Option<u32> + 'static) {
        self.0.borrow_mut().corrupt = Some(Box::new(f));
    }

    /// Removes the [`corrupt_reads`](Self::corrupt_reads) function.
    pub fn stop_corrupting(&self) {
        self.0.borrow_mut().corrupt = None;
    }

    /// Device-side read of `reg`: no hooks, not logged.
    pub fn peek<T: Int, R: RegisterLongName, A: AccessKind>(&self, reg: Register<T, R, A>) -> T {
        self.0.borrow().mem.get(reg)
    }

    /// Device-side write of `reg`: no hooks, not logged.
    pub fn poke<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
        value: T,
    ) {
        self.0.borrow_mut().mem.set(reg, value)
    }

    /// Runs `f` on the register file (device-side, not logged).
    pub fn with_memory<X>(&self, f: impl FnOnce(&mut Memory) -> X) -> X {
        f(&mut self.0.borrow_mut().mem)
    }

    /// Every access so far, oldest first.
    pub fn log(&self) -> Vec<Access> {
        self.0.borrow().log.clone()
    }

    /// Number of accesses so far.
    pub fn log_len(&self) -> usize {
        self.0.borrow().log.len()
    }

    /// The log so far, emptied.
    pub fn take_log(&self) -> Vec<Access> {
        std::mem::take(&mut self.0.borrow_mut().log)
    }

    /// The values written to `reg` so far, oldest first.
    pub fn writes<T: Int, R: RegisterLongName, A: AccessKind>(
        &self,
        reg: Register<T, R, A>,
    ) -> Vec<T> {
        self.0
            .borrow()
            .log
            .iter()
            .filter(|a| a.op == Op::Write && a.offset == reg.offset() && a.width == T::WIDTH)
            .map(|a| T::from_u32(a.value))
            .collect()
    }

    #[track_caller]
    fn access_read(&self, offset: usize, width: Width) -> u32 {
        let mut inner = self.0.borrow_mut();
        let Inner {
            name,
            mem,
            read_hooks,
            corrupt,
            log,
            ..
        } = &mut *inner;
        check_bounds("fake bus", name, offset, width, mem.len());
        let stored = mem.load(offset, width);
        let mut value = match read_hooks.get_mut(&offset) {
            Some((hooked, hook)) => {
                check_width(name, offset, width, *hooked);
                hook(mem, stored) & mask(width)
            }
            None => stored,
        };
        let mut access = Access {
            op: Op::Read,
            offset,
            width,
            value,
            corrupted: false,
        };
        if let Some(replacement) = corrupt.as_mut().and_then(|f| f(&access)) {
            value = replacement & mask(width);
            access.value = value;
            access.corrupted = true;
        }
        log.push(access);
        value
    }

    #[track_caller]
    fn access_write(&self, offset: usize, width: Width, value: u32) {
        let mut inner = self.0.borrow_mut();
        let Inner {
            name,
            mem,
            write_hooks,
            log,
            ..
        } = &mut *inner;
        check_bounds("fake bus", name, offset, width, mem.len());
        log.push(Access {
            op: Op::Write,
            offset,
            width,
            value,
            corrupted: false,
        });
        match write_hooks.get_mut(&offset) {
            Some((hooked, hook)) => {
                check_width(name, offset, width, *hooked);
                hook(mem, value)
            }
            None => mem.store(offset, width, value),
        }
    }
}

impl Bus for FakeBus {
    #[track_caller]
    fn read8(&mut self, offset: usize) -> u8 {
        self.access_read(offset, Width::W8) as u8
    }
    #[track_caller]
    fn read16(&mut self, offset: usize) -> u16 {
        self.access_read(offset, Width::W16) as u16
    }
    #[track_caller]
    fn read32(&mut self, offset: usize) -> u32 {
        self.access_read(offset, Width::W32)
    }
    #[track_caller]
    fn write8(&mut self, offset: usize, value: u8) {
        self.access_write(offset, Width::W8, value.into())
    }
    #[track_caller]
    fn write16(&mut self, offset: usize, value: u16) {
        self.access_write(offset, Width::W16, value.into())
    }
    #[track_caller]
    fn write32(&mut self, offset: usize, value: u32) {
        self.access_write(offset, Width::W32, value)
    }
}

#[cfg(test)]
mod tests;
