//! Typed capabilities. A [`Cap<T>`] is a capability pointer (CPtr) into the
//! caller's CSpace tagged with the kind of object it names; the kernel
//! invocations on that kind of object are its methods. Arguments are
//! marshalled as libsel4's stub generator does: in declaration order, each
//! aligned to its own size, caps travelling as extra caps.

use crate::ipc_buffer::{MSG_MAX_EXTRA_CAPS, MSG_MAX_LENGTH, REGISTER_MRS, with_ipc_buffer};
use crate::syscall::{self, Mrs};
use crate::{Error, MessageInfo, Result, label};
use core::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
pub use crate::arch::{IoapicLine, ioport_range};
pub use crate::arch::{UserContext, VSpaceKind, VmAttributes, cnode_guard};

/// Kinds of kernel objects a capability can name.
pub mod kind {
    macro_rules! kinds {
        ($($(#[$m:meta])* $name:ident),* $(,)?) => {
            $($(#[$m])* #[derive(Clone, Copy, Debug, PartialEq, Eq)] pub struct $name;)*
        };
    }
    kinds! {
        /// Untyped memory, retyped into other objects.
        Untyped,
        /// A table of capability slots.
        CNode,
        /// A thread control block.
        Tcb,
        Endpoint,
        Notification,
        /// A 4 KiB frame.
        Page,
        /// A large frame: 2 MiB on x86_64, 64 KiB on 32-bit ARM.
        LargePage,
        PageTable,
        /// The x86 page directory; on 32-bit ARM the top-level structure.
        PageDirectory,
        Pdpt,
        /// The x86_64 top-level paging structure: a thread's VSpace.
        Pml4,
        AsidControl,
        AsidPool,
        IrqControl,
        IrqHandler,
        /// A range of x86 I/O ports.
        IoPort,
        IoSpace,
        /// Any kind; for slots whose contents vary.
        Unknown,
    }
}

/// A capability to an object of kind `K`.
#[derive(Debug, PartialEq, Eq)]
pub struct Cap<K> {
    cptr: u64,
    kind: PhantomData<K>,
}

impl<K> Clone for Cap<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Cap<K> {}

impl<K> Cap<K> {
    /// Names slot `cptr` of the caller's CSpace as holding a `K` cap. Nothing
    /// is checked here: a wrong kind makes invocations fail with an error.
    pub const fn from_cptr(cptr: u64) -> Self {
        Self {
            cptr,
            kind: PhantomData,
        }
    }
    pub const fn cptr(self) -> u64 {
        self.cptr
    }
    /// Reinterprets the slot as holding another kind of cap.
    pub const fn cast<L>(self) -> Cap<L> {
        Cap::from_cptr(self.cptr)
    }
}

/// Access rights of a capability (`seL4_CapRights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights(u64);

impl Rights {
    pub const NONE: Self = Self(0);
    pub const WRITE: Self = Self(1 << 0);
    pub const READ: Self = Self(1 << 1);
    pub const GRANT: Self = Self(1 << 2);
    pub const ALL: Self = Self(0b111);
    pub const READ_WRITE: Self = Self(0b011);
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    pub const fn word(self) -> u64 {
        self.0
    }
}

/// A slot addressed relative to a CNode: `index` resolved with `depth` bits
/// from `root` (depth [`WORD_BITS`](crate::WORD_BITS) from the CSpace root
/// names any slot by its CPtr).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub root: Cap<kind::CNode>,
    pub index: u64,
    pub depth: u8,
}

impl Slot {
    pub const fn new(root: Cap<kind::CNode>, index: u64, depth: u8) -> Self {
        Self { root, index, depth }
    }
}

/// Invokes `cptr` with `label`, word arguments `args` and extra caps `caps`.
/// Returns the reply's register message registers; longer replies are in the
/// IPC buffer.
pub fn invoke(cptr: u64, label: u64, args: &[u64], caps: &[u64]) -> Result<Mrs> {
    assert!(args.len() <= MSG_MAX_LENGTH && caps.len() <= MSG_MAX_EXTRA_CAPS);
    let mut mrs = [0; REGISTER_MRS];
    let n = args.len().min(REGISTER_MRS);
    mrs[..n].copy_from_slice(&args[..n]);
    if args.len() > REGISTER_MRS || !caps.is_empty() {
        with_ipc_buffer(|b| {
            for (i, &a) in args.iter().enumerate().skip(n) {
                b.set_msg(i, a);
            }
            for (i, &c) in caps.iter().enumerate() {
                b.set_cap(i, c);
            }
        });
    }
    let info = MessageInfo::new(label, 0, caps.len() as u64, args.len() as u64);
    let reply = syscall::call(cptr, info, mrs);
    match Error::from_code(reply.info.label()) {
        None => Ok(reply.mrs),
        Some(e) => Err(e),
    }
}

impl<K> Cap<K> {
    pub(crate) fn invoke(self, label: u64, args: &[u64], caps: &[u64]) -> Result<Mrs> {
        invoke(self.cptr, label, args, caps)
    }
}

impl Cap<kind::Untyped> {
    /// Makes `count` objects of `object_type` (and `size_bits` for variable
    /// sized ones) into consecutive slots from `dest_offset` of the CNode that
    /// `dest.index`/`dest.depth` name from `dest.root`.
    pub fn retype(
        self,
        object_type: u64,
        size_bits: u64,
        dest: Slot,
        dest_offset: u64,
        count: u64,
    ) -> Result<()> {
        let args = [
            object_type,
            size_bits,
            dest.index,
            dest.depth as u64,
            dest_offset,
            count,
        ];
        self.invoke(label::UntypedRetype, &args, &[dest.root.cptr])
            .map(drop)
    }
}

impl Cap<kind::CNode> {
    /// Copies `src` into `dest` (a slot of this CNode) with `rights`.
    pub fn copy(self, dest_index: u64, dest_depth: u8, src: Slot, rights: Rights) -> Result<()> {
        let args = [
            dest_index,
            dest_depth as u64,
            src.index,
            src.depth as u64,
            rights.word(),
        ];
        self.invoke(label::CNodeCopy, &args, &[src.root.cptr])
            .map(drop)
    }
    /// Like [`copy`](Self::copy), setting the badge (endpoints,
    /// notifications) or guard (CNodes) or port range (I/O ports) to `data`.
    pub fn mint(
        self,
        dest_index: u64,
        dest_depth: u8,
        src: Slot,
        rights: Rights,
        data: u64,
    ) -> Result<()> {
        let args = [
            dest_index,
            dest_depth as u64,
            src.index,
            src.depth as u64,
            rights.word(),
            data,
        ];
        self.invoke(label::CNodeMint, &args, &[src.root.cptr])
            .map(drop)
    }
    pub fn delete(self, index: u64, depth: u8) -> Result<()> {
        self.invoke(label::CNodeDelete, &[index, depth as u64], &[])
            .map(drop)
    }
    /// Deletes every capability derived from the one in the slot (for an
    /// untyped: every object retyped from it, which makes it whole again).
    pub fn revoke(self, index: u64, depth: u8) -> Result<()> {
        self.invoke(label::CNodeRevoke, &[index, depth as u64], &[])
            .map(drop)
    }
}

/// Arguments of [`Cap<Tcb>::configure`].
#[derive(Clone, Copy, Debug)]
pub struct TcbConfig {
    /// CPtr, in the thread's own CSpace, of the endpoint its faults go to.
    pub fault_ep: u64,
    pub priority: u8,
    pub cspace: Cap<kind::CNode>,
    /// Guard for the CSpace root ([`cnode_guard`]).
    pub cspace_data: u64,
    pub vspace: Cap<VSpaceKind>,
    pub ipc_buffer_vaddr: u64,
    pub ipc_buffer: Cap<kind::Page>,
}

impl Cap<kind::Tcb> {
    pub fn configure(self, c: &TcbConfig) -> Result<()> {
        // seL4_PrioProps: prio in bits 0..8, maximum controlled priority in 8..16.
        let prio = c.priority as u64 | (c.priority as u64) << 8;
        let args = [c.fault_ep, prio, c.cspace_data, 0, c.ipc_buffer_vaddr];
        let caps = [c.cspace.cptr, c.vspace.cptr, c.ipc_buffer.cptr];
        self.invoke(label::TCBConfigure, &args, &caps).map(drop)
    }
    pub fn set_priority(self, priority: u8) -> Result<()> {
        self.invoke(label::TCBSetPriority, &[priority as u64], &[])
            .map(drop)
    }
    pub fn write_registers(self, resume: bool, regs: &UserContext) -> Result<()> {
        let mut args = [0; 2 + UserContext::WORDS];
        args[0] = resume as u64; // arch_flags (bits 8..16) stay 0
        args[1] = UserContext::WORDS as u64;
        args[2..].copy_from_slice(&regs.words());
        self.invoke(label::TCBWriteRegisters, &args, &[]).map(drop)
    }
    pub fn resume(self) -> Result<()> {
        self.invoke(label::TCBResume, &[], &[]).map(drop)
    }
    pub fn suspend(self) -> Result<()> {
        self.invoke(label::TCBSuspend, &[], &[]).map(drop)
    }
    pub fn bind_notification(self, ntfn: Cap<kind::Notification>) -> Result<()> {
        self.invoke(label::TCBBindNotification, &[], &[ntfn.cptr])
            .map(drop)
    }
}

impl Cap<kind::Notification> {
    pub fn signal(self) {
        syscall::signal(self.cptr);
    }
    /// Blocks until signalled; returns the accumulated badge bits.
    pub fn wait(self) -> u64 {
        syscall::recv(self.cptr).badge
    }
    /// Returns the accumulated badge bits, 0 if none, without blocking.
    pub fn poll(self) -> u64 {
        syscall::nb_recv(self.cptr).badge
    }
}

impl Cap<kind::IrqHandler> {
    /// Unmasks the line for the next interrupt (new handlers start masked).
    pub fn ack(self) -> Result<()> {
        self.invoke(label::IRQAckIRQ, &[], &[]).map(drop)
    }
    /// Delivers interrupts as signals on `ntfn`, with that cap's badge.
    pub fn set_notification(self, ntfn: Cap<kind::Notification>) -> Result<()> {
        self.invoke(label::IRQSetIRQHandler, &[], &[ntfn.cptr])
            .map(drop)
    }
}
