//! The seL4 system calls. The instruction and the registers that carry
//! the arguments are the architecture's (`crate::arch`); what each call
//! means is the same everywhere.

use crate::MessageInfo;
use crate::arch::syscall;
use crate::sys;

/// The four message registers passed in CPU registers.
pub type Mrs = [u64; 4];

/// What a receiving system call returns.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub info: MessageInfo,
    pub badge: u64,
    pub mrs: Mrs,
}

/// Blocking send to an endpoint, or signal to a notification.
pub fn send(cap: u64, info: MessageInfo, mut mrs: Mrs) {
    syscall(sys::Send, cap, info.word(), &mut mrs);
}

/// Send that gives up instead of blocking.
pub fn nb_send(cap: u64, info: MessageInfo, mut mrs: Mrs) {
    syscall(sys::NBSend, cap, info.word(), &mut mrs);
}

/// Signals a notification.
pub fn signal(cap: u64) {
    send(cap, MessageInfo::new(0, 0, 0, 0), [0; 4]);
}

/// Send, then wait for the reply (also: invoke a kernel object).
pub fn call(cap: u64, info: MessageInfo, mut mrs: Mrs) -> Received {
    let (badge, info) = syscall(sys::Call, cap, info.word(), &mut mrs);
    Received {
        info: MessageInfo::from_word(info),
        badge,
        mrs,
    }
}

/// Blocking receive on an endpoint or notification.
pub fn recv(cap: u64) -> Received {
    let mut mrs = [0; 4];
    let (badge, info) = syscall(sys::Recv, cap, 0, &mut mrs);
    Received {
        info: MessageInfo::from_word(info),
        badge,
        mrs,
    }
}

/// Blocking receive that passes `info` in the message-info register. The
/// kernel overwrites it when an IPC message arrives and leaves it when a
/// notification (bound to this thread) arrives instead, which tells the two
/// apart even where endpoint badges are too narrow to do so.
pub fn recv_marked(cap: u64, info: MessageInfo) -> Received {
    let mut mrs = [0; 4];
    let (badge, info) = syscall(sys::Recv, cap, info.word(), &mut mrs);
    Received {
        info: MessageInfo::from_word(info),
        badge,
        mrs,
    }
}

/// Receive that returns at once; a zero badge and info mean nothing was there.
pub fn nb_recv(cap: u64) -> Received {
    let mut mrs = [0; 4];
    let (badge, info) = syscall(sys::NBRecv, cap, 0, &mut mrs);
    Received {
        info: MessageInfo::from_word(info),
        badge,
        mrs,
    }
}

/// Replies to the last caller, then receives on `cap`.
pub fn reply_recv(cap: u64, info: MessageInfo, mut mrs: Mrs) -> Received {
    let (badge, info) = syscall(sys::ReplyRecv, cap, info.word(), &mut mrs);
    Received {
        info: MessageInfo::from_word(info),
        badge,
        mrs,
    }
}

/// Replies to the last caller.
pub fn reply(info: MessageInfo, mut mrs: Mrs) {
    syscall(sys::Reply, 0, info.word(), &mut mrs);
}

/// Gives up the rest of the time slice.
pub fn yield_now() {
    syscall(sys::Yield, 0, 0, &mut [0; 4]);
}

/// Prints one byte on the kernel's serial console (debug kernels only).
#[cfg(sel4_printing)]
pub fn debug_put_char(c: u8) {
    syscall(sys::DebugPutChar, c as u64, 0, &mut [0; 4]);
}

/// Stops the whole system (debug kernels only).
#[cfg(sel4_printing)]
pub fn debug_halt() -> ! {
    syscall(sys::DebugHalt, 0, 0, &mut [0; 4]);
    unreachable!("seL4_DebugHalt returned")
}
