//! Start code shared by the project's seL4 user programs: the memory
//! functions the compiler emits calls to (there is no libc), the panic
//! handler, and the root task's entry point ([`root_task!`]).
//!
//! Programs are `no_std`/`no_main` binaries linked with `.cargo/sel4.toml`
//! (static, no start files, no libc).
#![no_std]

use core::arch::asm;
use core::panic::PanicInfo;

pub use sel4;

// The compiler lowers copies and fills to calls of these functions, so they
// must not be written as loops it could lower back into the same calls:
// string instructions cannot be, and the comparisons read through
// `read_volatile`, which it never turns into `memcmp`.

/// # Safety
/// As C's `memcpy`: `n` bytes valid at both, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; the direction flag is clear
    // per the SysV ABI.
    unsafe {
        asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// As C's `memmove`: `n` bytes valid at both; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: dst is below src or past its end: a forward copy never
        // overwrites bytes it has still to read.
        unsafe { memcpy(dst, src, n) }
    } else {
        // SAFETY: dst overlaps the tail of src: copy backwards from the last
        // byte (direction flag set, and cleared again as the ABI requires).
        unsafe {
            asm!("std", "rep movsb", "cld",
                inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, inout("rcx") n => _,
                options(nostack));
        }
        dst
    }
}

/// # Safety
/// As C's `memset`: `n` bytes valid at `dst`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range.
    unsafe {
        asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") c as u8, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// As C's `memcmp`: `n` bytes readable at both.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within both ranges per the caller.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// As `memcmp`, only equality is reported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt `core` even though nothing unwinds (panic=abort).
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

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
    // An invalid instruction: the kernel turns it into a UserException fault
    // for this thread's fault handler, which names the thread and its ip.
    // SAFETY: ud2 touches no memory; the thread never resumes past it.
    unsafe { asm!("ud2", options(noreturn)) }
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

/// Called by the entry assembly with the bootinfo pointer from rdi.
///
/// # Safety
/// Only the root task's `_start` may call it, once, with the kernel's pointer.
#[doc(hidden)]
// The entry assembly passes `main` in rsi: a Rust fn pointer is one
// pointer-sized value, so the C ABI carries it unchanged.
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
