//! The monitor's heap: a bump allocator over a static arena. The monitor
//! decodes the plan and builds the system once at boot and frees nothing
//! worth reusing, so freeing is a no-op.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

const HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: the arena is only handed out in disjoint pieces by `Bump::alloc`.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);

struct Bump;

// SAFETY: every allocation is a fresh, suitably aligned range of the arena
// that no other allocation overlaps (the offset only grows, by CAS).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = ARENA.0.get() as usize;
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match USED.compare_exchange(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static GLOBAL: Bump = Bump;

/// Bytes of heap in use.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}
