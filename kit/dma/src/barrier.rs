//! Ordering between the CPU and a device that reads or writes memory.
//!
//! On x86-64 the CPU side is already ordered for coherent DMA on
//! write-back memory: stores become visible in program order (TSO), loads
//! are not reordered with older loads, and a store to an uncached MMIO
//! register is not passed by the write-back stores before it. The
//! remaining hazard is the compiler, which may move ordinary memory
//! accesses across the volatile ones that talk to the device; every
//! function here therefore is at least a compiler fence. (Write-combining
//! mappings or non-temporal stores would need `sfence`; this kit uses
//! neither.) [`DmaBuf`](crate::DmaBuf)'s accessors are all volatile, and
//! volatile accesses keep their order among themselves, so these barriers
//! matter where a driver mixes in ordinary memory or reads a device's
//! status before its data.
//!
//! On 32-bit ARM DMA memory is mapped strongly-ordered (see the crate's
//! doc), which orders every access to it and to device registers in
//! hardware; the compiler fence is again what remains.

use core::sync::atomic::{Ordering, compiler_fence, fence};

/// Before handing memory to the device (setting a descriptor's ownership
/// bit, writing a doorbell or tail register): every earlier write to the
/// descriptor and its buffer is visible to the device first. Linux's
/// `dma_wmb()`; on x86 a compiler fence.
#[inline]
pub fn publish() {
    compiler_fence(Ordering::Release);
}

/// After seeing that the device is done (an ownership bit cleared, a
/// status or done-queue entry written) and before reading the rest: no
/// read of the descriptor or buffer happens before that check. Linux's
/// `dma_rmb()`; on x86 a compiler fence.
#[inline]
pub fn acquire() {
    compiler_fence(Ordering::Acquire);
}

/// A write that must be visible before a later read of other memory (x86
/// may let a load pass an older store to a different address): for
/// example, a flag the device polls is set, then memory the device writes
/// in response is read. `mfence` on x86, Linux's `mb()`.
#[inline]
pub fn full() {
    fence(Ordering::SeqCst);
}
