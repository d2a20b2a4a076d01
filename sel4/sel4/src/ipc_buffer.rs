//! The thread's IPC buffer: message registers beyond the four passed in
//! registers, extra caps, and the receive slot for caps sent to us.

use crate::{Word, consts};
use core::sync::atomic::{AtomicPtr, Ordering};

/// Number of message registers.
pub const MSG_MAX_LENGTH: usize = consts::MsgMaxLength;
/// Number of extra caps an invocation can carry.
pub const MSG_MAX_EXTRA_CAPS: usize = consts::MsgMaxExtraCaps;
/// Message registers passed in CPU registers (x86_64: r10, r8, r9, r15;
/// ARM: r2 to r5).
pub const REGISTER_MRS: usize = 4;

/// `seL4_IPCBuffer`: the kernel reads and writes it during IPC. Its slots
/// are machine words; the accessors take and give `u64`, as the rest of
/// the bindings do (a value wider than a word is truncated, as a C
/// `seL4_Word` would be).
#[repr(C)]
pub struct IpcBuffer {
    pub tag: Word,
    pub msg: [Word; MSG_MAX_LENGTH],
    pub user_data: Word,
    pub caps_or_badges: [Word; MSG_MAX_EXTRA_CAPS],
    pub receive_cnode: Word,
    pub receive_index: Word,
    pub receive_depth: Word,
}

impl IpcBuffer {
    /// Message register `i`.
    // A word is a u64 on x86_64 (no conversion), a u32 on ARM.
    #[allow(clippy::useless_conversion)]
    pub fn msg(&self, i: usize) -> u64 {
        self.msg[i].into()
    }
    #[inline]
    pub fn set_msg(&mut self, i: usize, value: u64) {
        self.msg[i] = value as Word;
    }
    /// Extra cap (or, received, badge) `i`.
    #[allow(clippy::useless_conversion)]
    pub fn cap(&self, i: usize) -> u64 {
        self.caps_or_badges[i].into()
    }
    pub fn set_cap(&mut self, i: usize, cptr: u64) {
        self.caps_or_badges[i] = cptr as Word;
    }
}

// The kernel's layout, checked at compile time on every target.
const _: () = {
    use crate::layout;
    use core::mem::{offset_of, size_of};
    assert!(size_of::<IpcBuffer>() == layout::IPCBUF_SIZE);
    assert!(offset_of!(IpcBuffer, msg) == layout::IPCBUF_MSG);
    assert!(offset_of!(IpcBuffer, user_data) == layout::IPCBUF_USER_DATA);
    assert!(offset_of!(IpcBuffer, caps_or_badges) == layout::IPCBUF_CAPS_OR_BADGES);
    assert!(offset_of!(IpcBuffer, receive_cnode) == layout::IPCBUF_RECEIVE_CNODE);
    assert!(Word::BITS as usize == consts::WordBits);
};

static IPC_BUFFER: AtomicPtr<IpcBuffer> = AtomicPtr::new(core::ptr::null_mut());

/// Registers this thread's IPC buffer.
///
/// # Safety
/// `buffer` must be this thread's IPC buffer as configured in its TCB, mapped
/// writable for as long as the program runs, and not accessed otherwise.
pub unsafe fn set_ipc_buffer(buffer: *mut IpcBuffer) {
    IPC_BUFFER.store(buffer, Ordering::Relaxed);
}

/// Runs `f` with the IPC buffer. Panics if none was registered: every
/// program's start code registers one before user code runs.
pub fn with_ipc_buffer<R>(f: impl FnOnce(&mut IpcBuffer) -> R) -> R {
    let p = IPC_BUFFER.load(Ordering::Relaxed);
    assert!(!p.is_null(), "IPC buffer not registered");
    // SAFETY: set_ipc_buffer's contract makes `p` valid and exclusively ours;
    // each PD is single-threaded and `f` cannot re-enter (no syscall from
    // this crate runs inside `f`), so this is the only live reference.
    f(unsafe { &mut *p })
}
