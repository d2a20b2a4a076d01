//! The memory functions for x86_64 programs. The compiler lowers copies
//! and fills to calls of these functions, so they must not be written as
//! loops it could lower back into the same calls: string instructions
//! cannot be, and the comparisons read through `read_volatile`, which it
//! never turns into `memcmp`.
//!
//! Copies (`shared_copy`'s) and fills move eight bytes per iteration
//! (`rep movsq`, `rep stosq`) and the remaining bytes one at a time:
//! QEMU's TCG executes a `rep` string instruction one iteration at a
//! time, so a byte-wise `rep movsb` costs an instruction per byte (the net
//! bench measured 1,510 instructions for zeroing one 1,518-byte frame).

use core::arch::asm;

/// # Safety
/// As C's `memcpy`: `n` bytes valid at both, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's guarantees are shared_copy's contract; its copy
    // is string instructions, never a call back into memcpy.
    unsafe { shared_copy::copy(dst, src, n) };
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
    let byte = u64::from(c as u8);
    // SAFETY: the caller guarantees the range; as in memcpy, quadwords
    // then the tail bytes cover exactly the n bytes.
    unsafe {
        asm!("rep stosq", "mov rcx, {tail}", "rep stosb",
            tail = in(reg) n & 7,
            inout("rdi") dst => _, inout("rcx") n >> 3 => _, in("rax") byte * 0x0101_0101_0101_0101,
            options(nostack, preserves_flags));
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
