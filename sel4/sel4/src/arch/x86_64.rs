//! seL4 on x86_64: the `syscall` ABI, the register context, page and
//! paging-structure invocations, IOAPIC/MSI interrupts and I/O ports.
//!
//! ABI (seL4 5.0.0, `syscall` instruction): rdx = syscall number, rdi = cap
//! in / badge out, rsi = message info, r10 r8 r9 r15 = message registers 0..3.
//! The kernel clobbers rcx and r11 and does not preserve rsp (`sysret` leaves
//! it zero), so rsp is parked in r12, which the kernel restores from the
//! thread's saved context like every other general-purpose register.

use crate::cap::{Cap, Rights, Slot, kind};
use crate::syscall::Mrs;
use crate::{Error, Result, label};
use core::arch::asm;

/// A machine word: what a register and an IPC buffer slot hold.
pub type Word = u64;

/// The capability kind of a thread's top-level paging structure.
pub type VSpaceKind = kind::Pml4;

#[inline(always)]
pub(crate) fn syscall(nr: isize, cap: u64, info: u64, mrs: &mut Mrs) -> (u64, u64) {
    let (badge, info_out);
    // SAFETY: the asm follows the kernel's ABI (module doc). It touches no
    // Rust-visible memory except through the kernel writing this thread's IPC
    // buffer, which the implicit memory clobber covers; rsp is restored from
    // r12 before the block ends.
    unsafe {
        asm!(
            "mov r12, rsp",
            "syscall",
            "mov rsp, r12",
            inout("rdx") nr as u64 => _,
            inout("rdi") cap => badge,
            inout("rsi") info => info_out,
            inout("r10") mrs[0],
            inout("r8") mrs[1],
            inout("r9") mrs[2],
            inout("r15") mrs[3],
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    (badge, info_out)
}

/// CNode guard data for `mint`: `guard_size` bits of value `guard`
/// skipped before the CNode's own index bits (the kernel's
/// `cnode_capdata`: guard in bits 8..26, its size in bits 2..8).
pub const fn cnode_guard(guard: u64, guard_size: u64) -> u64 {
    (guard & ((1 << 18) - 1)) << 8 | (guard_size & 0x3f) << 2
}

/// Registers written by [`Cap<Tcb>::write_registers`](crate::cap::Cap::write_registers)
/// (`seL4_UserContext`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub tls_base: u64,
}

impl UserContext {
    pub(crate) const WORDS: usize = core::mem::size_of::<Self>() / 8;

    /// A thread that starts at `entry` with its stack pointer at `sp`.
    pub fn start(entry: u64, sp: u64) -> Self {
        Self {
            rip: entry,
            rsp: sp,
            ..Default::default()
        }
    }

    pub(crate) fn words(&self) -> [u64; Self::WORDS] {
        [
            self.rip,
            self.rsp,
            self.rflags,
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.tls_base,
        ]
    }
}

/// x86 page attributes (`seL4_X86_VMAttributes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmAttributes(u64);

impl VmAttributes {
    pub const DEFAULT: Self = Self(crate::vm_attributes::X86_Default_VMAttributes);
    pub const CACHE_DISABLED: Self = Self(crate::vm_attributes::X86_CacheDisabled);
    /// seL4 5.0.0 on x86_64 never sets the no-execute bit: data pages stay
    /// executable whatever is asked.
    pub const fn no_execute(self) -> Self {
        self
    }
    pub const fn word(self) -> u64 {
        self.0
    }
}

impl Cap<kind::Page> {
    pub fn map(
        self,
        vspace: Cap<VSpaceKind>,
        vaddr: u64,
        rights: Rights,
        attr: VmAttributes,
    ) -> Result<()> {
        self.invoke(
            label::X86PageMap,
            &[vaddr, rights.word(), attr.word()],
            &[vspace.cptr()],
        )
        .map(drop)
    }
    pub fn unmap(self) -> Result<()> {
        self.invoke(label::X86PageUnmap, &[], &[]).map(drop)
    }
    /// Physical address of the frame.
    pub fn address(self) -> Result<u64> {
        self.invoke(label::X86PageGetAddress, &[], &[])
            .map(|m| m[0])
    }
    /// Makes instructions written into the frame through a data mapping
    /// visible to instruction fetch. x86 keeps its caches coherent: nothing
    /// to do.
    pub fn unify_instruction(self, _bytes: u64) -> Result<()> {
        Ok(())
    }
}

impl Cap<kind::LargePage> {
    pub fn map(
        self,
        vspace: Cap<VSpaceKind>,
        vaddr: u64,
        rights: Rights,
        attr: VmAttributes,
    ) -> Result<()> {
        self.cast::<kind::Page>().map(vspace, vaddr, rights, attr)
    }
}

macro_rules! paging_structure {
    ($kind:ident, $label:ident) => {
        impl Cap<kind::$kind> {
            /// Maps this paging structure into `vspace` to cover `vaddr`.
            pub fn map(
                self,
                vspace: Cap<VSpaceKind>,
                vaddr: u64,
                attr: VmAttributes,
            ) -> Result<()> {
                self.invoke(label::$label, &[vaddr, attr.word()], &[vspace.cptr()])
                    .map(drop)
            }
        }
    };
}
paging_structure!(PageTable, X86PageTableMap);
paging_structure!(PageDirectory, X86PageDirectoryMap);
paging_structure!(Pdpt, X86PDPTMap);

impl Cap<kind::AsidControl> {
    /// Turns a 4 KiB `untyped` into an ASID pool placed at `dest`.
    pub fn make_pool(self, untyped: Cap<kind::Untyped>, dest: Slot) -> Result<()> {
        let args = [dest.index, dest.depth as u64];
        self.invoke(
            label::X86ASIDControlMakePool,
            &args,
            &[untyped.cptr(), dest.root.cptr()],
        )
        .map(drop)
    }
}

impl Cap<kind::AsidPool> {
    pub fn assign(self, vspace: Cap<VSpaceKind>) -> Result<()> {
        self.invoke(label::X86ASIDPoolAssign, &[], &[vspace.cptr()])
            .map(drop)
    }
}

/// Trigger mode and polarity of an IOAPIC interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoapicLine {
    pub ioapic: u64,
    pub pin: u64,
    pub level_triggered: bool,
    pub active_low: bool,
}

impl Cap<kind::IrqControl> {
    /// Creates at `dest` a handler for an IOAPIC line delivered as user
    /// vector `vector` (IDT vector `vector + 0x30`).
    pub fn get_ioapic(self, dest: Slot, line: IoapicLine, vector: u64) -> Result<()> {
        let args = [
            dest.index,
            dest.depth as u64,
            line.ioapic,
            line.pin,
            line.level_triggered as u64,
            line.active_low as u64,
            vector,
        ];
        self.invoke(
            label::X86IRQIssueIRQHandlerIOAPIC,
            &args,
            &[dest.root.cptr()],
        )
        .map(drop)
    }
    /// Creates at `dest` a handler for an MSI of PCI device `bus:dev.func`.
    pub fn get_msi(self, dest: Slot, pci: (u64, u64, u64), handle: u64, vector: u64) -> Result<()> {
        let args = [
            dest.index,
            dest.depth as u64,
            pci.0,
            pci.1,
            pci.2,
            handle,
            vector,
        ];
        self.invoke(label::X86IRQIssueIRQHandlerMSI, &args, &[dest.root.cptr()])
            .map(drop)
    }
}

impl Cap<kind::IoPort> {
    pub fn out8(self, port: u16, value: u8) -> Result<()> {
        self.invoke(label::X86IOPortOut8, &[port as u64, value as u64], &[])
            .map(drop)
    }
    pub fn out16(self, port: u16, value: u16) -> Result<()> {
        self.invoke(label::X86IOPortOut16, &[port as u64, value as u64], &[])
            .map(drop)
    }
    pub fn out32(self, port: u16, value: u32) -> Result<()> {
        self.invoke(label::X86IOPortOut32, &[port as u64, value as u64], &[])
            .map(drop)
    }
    pub fn in8(self, port: u16) -> Result<u8> {
        self.invoke(label::X86IOPortIn8, &[port as u64], &[])
            .map(|m| m[0] as u8)
    }
    pub fn in16(self, port: u16) -> Result<u16> {
        self.invoke(label::X86IOPortIn16, &[port as u64], &[])
            .map(|m| m[0] as u16)
    }
    pub fn in32(self, port: u16) -> Result<u32> {
        self.invoke(label::X86IOPortIn32, &[port as u64], &[])
            .map(|m| m[0] as u32)
    }
}

/// hwio's port instructions are invocations of this capability, so a
/// `hwio::PortIo` over it is a device's port range as a typed bus.
impl hwio::PortBackend for Cap<kind::IoPort> {
    type Error = Error;
    fn in8(&mut self, port: u16) -> Result<u8> {
        Cap::in8(*self, port)
    }
    fn in16(&mut self, port: u16) -> Result<u16> {
        Cap::in16(*self, port)
    }
    fn in32(&mut self, port: u16) -> Result<u32> {
        Cap::in32(*self, port)
    }
    fn out8(&mut self, port: u16, value: u8) -> Result<()> {
        Cap::out8(*self, port, value)
    }
    fn out16(&mut self, port: u16, value: u16) -> Result<()> {
        Cap::out16(*self, port, value)
    }
    fn out32(&mut self, port: u16, value: u32) -> Result<()> {
        Cap::out32(*self, port, value)
    }
}

/// Mint data that narrows an I/O port cap to `first..=last`.
pub const fn ioport_range(first: u16, last: u16) -> u64 {
    (first as u64) << 16 | last as u64
}

/// 16550 UART registers (offsets from the base port) used for output.
const UART_THR: u16 = 0;
const UART_LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Writes `c` to the 16550 UART at `base` (COM1 is 0x3f8) through `ports`.
pub fn uart_put_char(ports: Cap<kind::IoPort>, base: u16, c: u8) {
    // Bounded wait for room: a missing or stuck UART must not hang us.
    for _ in 0..10_000 {
        match ports.in8(base + UART_LSR) {
            Ok(lsr) if lsr & LSR_THR_EMPTY == 0 => continue,
            _ => break,
        }
    }
    let _ = ports.out8(base + UART_THR, c);
}
