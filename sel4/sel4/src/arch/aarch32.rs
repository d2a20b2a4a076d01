//! seL4 on 32-bit ARM (ARMv7-A): the `swi` ABI, the register context, page
//! and page-table invocations, and GIC interrupts.
//!
//! ABI (seL4 5.0.0, `swi #0`): r7 = syscall number, r0 = cap in / badge
//! out, r1 = message info, r2 r3 r4 r5 = message registers 0..3. The kernel
//! saves and restores every other register of the thread. Words are 32
//! bits: the bindings' `u64` arguments are truncated to a word where they
//! enter a register, as libsel4's `seL4_Word` parameters would.

use crate::cap::{Cap, Rights, Slot, kind};
use crate::syscall::Mrs;
use crate::{Result, label};
use core::arch::asm;

/// A machine word: what a register and an IPC buffer slot hold.
pub type Word = u32;

/// The capability kind of a thread's top-level paging structure: on
/// 32-bit ARM a 16 KiB page directory.
pub type VSpaceKind = kind::PageDirectory;

#[inline(always)]
pub(crate) fn syscall(nr: isize, cap: u64, info: u64, mrs: &mut Mrs) -> (u64, u64) {
    let (mut r0, mut r1) = (cap as Word, info as Word);
    let [mut r2, mut r3, mut r4, mut r5] = mrs.map(|m| m as Word);
    // SAFETY: the asm follows the kernel's ABI (module doc). It touches no
    // Rust-visible memory except through the kernel writing this thread's IPC
    // buffer, which the implicit memory clobber covers.
    unsafe {
        asm!(
            "swi #0",
            inout("r0") r0,
            inout("r1") r1,
            inout("r2") r2,
            inout("r3") r3,
            inout("r4") r4,
            inout("r5") r5,
            in("r7") nr as Word,
            options(nostack),
        );
    }
    *mrs = [r2, r3, r4, r5].map(u64::from);
    (r0.into(), r1.into())
}

/// CNode guard data for `mint`: `guard_size` bits of value `guard`
/// skipped before the CNode's own index bits (the kernel's 32-bit
/// `cnode_capdata`: guard in bits 8..26, its size in bits 3..8).
pub const fn cnode_guard(guard: u64, guard_size: u64) -> u64 {
    (guard & ((1 << 18) - 1)) << 8 | (guard_size & 0x1f) << 3
}

/// Registers written by [`Cap<Tcb>::write_registers`](crate::cap::Cap::write_registers)
/// (`seL4_UserContext`, in the kernel's order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    pub pc: u32,
    pub sp: u32,
    /// The kernel forces user mode whatever the mode bits say.
    pub cpsr: u32,
    pub r0: u32,
    pub r1: u32,
    pub r8: u32,
    pub r9: u32,
    pub r10: u32,
    pub r11: u32,
    pub r12: u32,
    pub r2: u32,
    pub r3: u32,
    pub r4: u32,
    pub r5: u32,
    pub r6: u32,
    pub r7: u32,
    pub r14: u32,
}

impl UserContext {
    pub(crate) const WORDS: usize = core::mem::size_of::<Self>() / 4;

    /// A thread that starts at `entry` with its stack pointer at `sp`.
    pub fn start(entry: u64, sp: u64) -> Self {
        Self {
            pc: entry as u32,
            sp: sp as u32,
            ..Default::default()
        }
    }

    pub(crate) fn words(&self) -> [u64; Self::WORDS] {
        [
            self.pc, self.sp, self.cpsr, self.r0, self.r1, self.r8, self.r9, self.r10, self.r11,
            self.r12, self.r2, self.r3, self.r4, self.r5, self.r6, self.r7, self.r14,
        ]
        .map(u64::from)
    }
}

/// ARM page attributes (`seL4_ARM_VMAttributes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmAttributes(u64);

impl VmAttributes {
    /// Cacheable (and parity, which the Cortex-A9 ignores).
    pub const DEFAULT: Self = Self(crate::vm_attributes::ARM_Default_VMAttributes);
    /// Uncached, as device registers must be mapped.
    pub const CACHE_DISABLED: Self = Self(0);
    /// The same, never executable (the page table's XN bit).
    pub const fn no_execute(self) -> Self {
        Self(self.0 | crate::vm_attributes::ARM_ExecuteNever)
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
            label::ARMPageMap,
            &[vaddr, rights.word(), attr.word()],
            &[vspace.cptr()],
        )
        .map(drop)
    }
    pub fn unmap(self) -> Result<()> {
        self.invoke(label::ARMPageUnmap, &[], &[]).map(drop)
    }
    /// Physical address of the frame.
    pub fn address(self) -> Result<u64> {
        self.invoke(label::ARMPageGetAddress, &[], &[])
            .map(|m| m[0])
    }
    /// Makes instructions written into the first `bytes` of the frame
    /// through a data mapping visible to instruction fetch: the kernel
    /// cleans them from the data cache to the point of unification and
    /// invalidates the instruction cache.
    pub fn unify_instruction(self, bytes: u64) -> Result<()> {
        self.invoke(label::ARMPageUnify_Instruction, &[0, bytes], &[])
            .map(drop)
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

impl Cap<kind::PageTable> {
    /// Maps this page table (1 MiB of address space) into `vspace` to
    /// cover `vaddr`.
    pub fn map(self, vspace: Cap<VSpaceKind>, vaddr: u64, attr: VmAttributes) -> Result<()> {
        self.invoke(
            label::ARMPageTableMap,
            &[vaddr, attr.word()],
            &[vspace.cptr()],
        )
        .map(drop)
    }
}

impl Cap<kind::AsidControl> {
    /// Turns a 4 KiB `untyped` into an ASID pool placed at `dest`.
    pub fn make_pool(self, untyped: Cap<kind::Untyped>, dest: Slot) -> Result<()> {
        let args = [dest.index, dest.depth as u64];
        self.invoke(
            label::ARMASIDControlMakePool,
            &args,
            &[untyped.cptr(), dest.root.cptr()],
        )
        .map(drop)
    }
}

impl Cap<kind::AsidPool> {
    pub fn assign(self, vspace: Cap<VSpaceKind>) -> Result<()> {
        self.invoke(label::ARMASIDPoolAssign, &[], &[vspace.cptr()])
            .map(drop)
    }
}

impl Cap<kind::IrqControl> {
    /// Creates at `dest` a handler for GIC interrupt `irq` (its interrupt
    /// ID: 32 and up are the SoC's shared peripheral interrupts). This
    /// kernel configures every shared interrupt level-triggered.
    pub fn get(self, dest: Slot, irq: u64) -> Result<()> {
        let args = [irq, dest.index, dest.depth as u64];
        self.invoke(label::IRQIssueIRQHandler, &args, &[dest.root.cptr()])
            .map(drop)
    }
}
