//! Bindings to the seL4 5.0.0 kernel for user-level Rust, on x86_64 and on
//! 32-bit ARM (ARMv7-A).
//!
//! This crate is the lowest layer of the project: the system calls
//! ([`syscall`]), message info and the IPC buffer ([`MessageInfo`],
//! [`ipc_buffer`]), typed capabilities whose methods are the kernel
//! invocations ([`cap`]), the root task's boot information ([`bootinfo`]),
//! and debug printing. Everything that depends on the kernel configuration
//! (invocation labels, object types, error codes, syscall numbers, constants
//! and the bootinfo layout) is generated at build time by `build.rs` from the
//! kernel's interface files and config; see the modules re-exported below.
//! What depends on the architecture by hand (the instruction and registers
//! of a system call, the register context, page and interrupt invocations)
//! is one module per architecture, `arch/x86_64.rs` and `arch/aarch32.rs`;
//! the rest is the same code for both, with arguments and results as `u64`
//! and the IPC buffer in machine words ([`Word`]).
#![cfg_attr(not(test), no_std)]

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
pub use generated::{
    BOARD, Error, consts, fault_mr, fault_tag, init_cap, label, layout, object_type, sys,
    vm_attributes,
};

#[cfg_attr(target_arch = "x86_64", path = "arch/x86_64.rs")]
#[cfg_attr(target_arch = "arm", path = "arch/aarch32.rs")]
mod arch;
pub use arch::Word;
#[cfg(target_arch = "x86_64")]
pub use arch::uart_put_char;

pub mod bootinfo;
pub mod cap;
pub mod debug;
pub mod ipc_buffer;
mod message;
pub mod syscall;

pub use debug::{DebugWriter, debug_put_char, set_console, set_mirror};
pub use message::MessageInfo;

/// Result of a kernel invocation.
pub type Result<T> = core::result::Result<T, Error>;

/// Size of a small page (4 KiB).
pub const PAGE_SIZE: usize = 1 << consts::PageBits;
/// Bits of a word: the depth that resolves a CPtr from the CSpace root.
pub const WORD_BITS: u8 = consts::WordBits as u8;
