//! Start code shared by the project's seL4 user programs: the memory
//! functions the compiler emits calls to (there is no libc), the panic
//! handler, and the root task's entry point ([`root_task!`]).
//!
//! Programs are `no_std`/`no_main` binaries linked with `.cargo/sel4.toml`
//! (static, no start files, no libc). What differs per architecture is the
//! entry assembly and the instruction a panic ends with; on 32-bit ARM the
//! memory functions come from `compiler_builtins` (built with its `mem`
//! feature alongside `core`), on x86_64 from here, since the prebuilt
//! `core` there expects them from the program.
#![no_std]

use core::panic::PanicInfo;

pub use sel4;

#[cfg(target_arch = "x86_64")]
mod mem;

/// Referenced by the prebuilt `core` even though nothing unwinds (panic=abort).
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// The ARM EHABI personality routine that unwind-table entries name, here
/// too without anything to unwind (panic=abort).
#[cfg(target_arch = "arm")]
#[unsafe(no_mangle)]
pub extern "C" fn __aeabi_unwind_cpp_pr0() {}

static PANIC_EXIT: spin::Once<fn() -> !> = spin::Once::new();

/// Makes a panic end with `exit` instead of the default (a fault, which the
/// fault handler reports). The root task has no fault handler, so it uses
/// this to end the run with a failure status. The first registration
/// stays.
pub fn set_panic_exit(exit: fn() -> !) {
    PANIC_EXIT.call_once(|| exit);
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    sel4::debug_println!("panic: {info}");
    if let Some(exit) = PANIC_EXIT.get() {
        exit();
    }
    invalid_instruction()
}

/// An invalid instruction: the kernel turns it into a UserException fault
/// for this thread's fault handler, which names the thread and its ip.
pub fn invalid_instruction() -> ! {
    // SAFETY: the instruction touches no memory; the thread never resumes
    // past it.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("ud2", options(noreturn));
        #[cfg(target_arch = "arm")]
        core::arch::asm!("udf #0", options(noreturn));
    }
}

/// Bytes of stack for the root task (the kernel gives it none).
pub const ROOT_STACK_SIZE: usize = 256 * 1024;

#[doc(hidden)]
#[repr(C, align(4096))]
pub struct RootStack(pub core::cell::UnsafeCell<[u8; ROOT_STACK_SIZE]>);
// SAFETY: only the root task's single thread uses it, and only as its stack.
unsafe impl Sync for RootStack {}

#[doc(hidden)]
pub static ROOT_STACK: RootStack = RootStack(core::cell::UnsafeCell::new([0; ROOT_STACK_SIZE]));

/// Called by the entry assembly with the bootinfo pointer the kernel put
/// in rdi (x86_64) or r0 (ARM).
///
/// # Safety
/// Only the root task's `_start` may call it, once, with the kernel's pointer.
#[doc(hidden)]
// The entry assembly passes `main` as the second argument (rsi, r1): a Rust
// fn pointer is one pointer-sized value, so the C ABI carries it unchanged.
#[allow(improper_ctypes_definitions)]
pub unsafe extern "C" fn root_entry(
    bootinfo: *const u8,
    main: fn(&sel4::bootinfo::BootInfo<'static>) -> !,
) -> ! {
    // SAFETY: the kernel passes the bootinfo frame's address, mapped for good.
    let bi = match unsafe { sel4::bootinfo::BootInfo::from_ptr(bootinfo) } {
        Ok(bi) => bi,
        Err(e) => panic!("bad bootinfo: {e}"),
    };
    // SAFETY: bootinfo names the root task's IPC buffer, mapped by the kernel.
    unsafe { sel4::ipc_buffer::set_ipc_buffer(bi.ipc_buffer() as *mut _) };
    main(&bi)
}

/// Declares the root task: `root_task!(main)` with `fn main(&BootInfo) -> !`.
/// It provides `_start`, which sets up the stack and calls `main`.
#[cfg(target_arch = "x86_64")]
#[macro_export]
macro_rules! root_task {
    ($main:path) => {
        core::arch::global_asm!(
            ".globl _start",
            "_start:",
            "lea rsp, [rip + {stack} + {size}]",
            "lea rsi, [rip + {main}]",
            "call {entry}",
            "ud2",
            stack = sym $crate::ROOT_STACK,
            size = const $crate::ROOT_STACK_SIZE,
            main = sym $main,
            entry = sym $crate::root_entry,
        );
    };
}

/// Declares the root task: `root_task!(main)` with `fn main(&BootInfo) -> !`.
/// It provides `_start`, which sets up the stack and calls `main`; r0
/// (bootinfo) passes through untouched.
#[cfg(target_arch = "arm")]
#[macro_export]
macro_rules! root_task {
    ($main:path) => {
        core::arch::global_asm!(
            ".globl _start",
            "_start:",
            "movw r2, #:lower16:{stack}",
            "movt r2, #:upper16:{stack}",
            "add sp, r2, #{size}",
            "movw r1, #:lower16:{main}",
            "movt r1, #:upper16:{main}",
            "bl {entry}",
            "udf #0",
            stack = sym $crate::ROOT_STACK,
            size = const $crate::ROOT_STACK_SIZE,
            main = sym $main,
            entry = sym $crate::root_entry,
        );
    };
}
