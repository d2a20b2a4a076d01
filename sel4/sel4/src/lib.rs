//! Bindings to the seL4 5.0.0 kernel (x86_64) for user-level Rust.
//!
//! This crate is the lowest layer of the project: the `syscall` ABI
//! ([`syscall`]), message info and the IPC buffer ([`MessageInfo`],
//! [`ipc_buffer`]), typed capabilities whose methods are the kernel
//! invocations ([`cap`]), the root task's boot information ([`bootinfo`]),
//! and debug printing. Everything that depends on the kernel configuration
//! (invocation labels, object types, error codes, syscall numbers, constants
//! and the bootinfo layout) is generated at build time by `build.rs` from the
//! kernel's interface files and config; see the modules re-exported below.
#![cfg_attr(not(test), no_std)]

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
pub use generated::{
    Error, consts, fault_mr, fault_tag, init_cap, label, layout, object_type, sys, vm_attributes,
};

pub mod bootinfo;
pub mod cap;
pub mod debug;
pub mod ipc_buffer;
mod message;
pub mod syscall;

pub use debug::{DebugWriter, debug_put_char, set_console, set_mirror, uart_put_char};
pub use message::MessageInfo;

/// Result of a kernel invocation.
pub type Result<T> = core::result::Result<T, Error>;

/// Size of a small page (4 KiB).
pub const PAGE_SIZE: usize = 1 << consts::PageBits;
