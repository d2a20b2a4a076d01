//! The thread's IPC buffer: message registers beyond the four passed in
//! registers, extra caps, and the receive slot for caps sent to us.

use crate::consts;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Number of message registers.
pub const MSG_MAX_LENGTH: usize = consts::MsgMaxLength;
/// Number of extra caps an invocation can carry.
pub const MSG_MAX_EXTRA_CAPS: usize = consts::MsgMaxExtraCaps;
/// Message registers passed in CPU registers (r10, r8, r9, r15).
pub const REGISTER_MRS: usize = 4;

/// `seL4_IPCBuffer`: the kernel reads and writes it during IPC.
#[repr(C)]
pub struct IpcBuffer {
    pub tag: u64,
    pub msg: [u64; MSG_MAX_LENGTH],
    pub user_data: u64,
    pub caps_or_badges: [u64; MSG_MAX_EXTRA_CAPS],
    pub receive_cnode: u64,
    pub receive_index: u64,
    pub receive_depth: u64,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;
    use core::mem::{offset_of, size_of};

    #[test]
    fn matches_the_kernel_layout() {
        assert_eq!(size_of::<IpcBuffer>(), layout::IPCBUF_SIZE);
        assert_eq!(offset_of!(IpcBuffer, msg), layout::IPCBUF_MSG);
        assert_eq!(offset_of!(IpcBuffer, user_data), layout::IPCBUF_USER_DATA);
        assert_eq!(
            offset_of!(IpcBuffer, caps_or_badges),
            layout::IPCBUF_CAPS_OR_BADGES
        );
        assert_eq!(
            offset_of!(IpcBuffer, receive_cnode),
            layout::IPCBUF_RECEIVE_CNODE
        );
    }
}
