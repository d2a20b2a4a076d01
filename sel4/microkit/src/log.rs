//! This PD's prints, mirrored into the system log ring (the `log-ring`
//! crate) when system.xml maps the ring here with
//! `setvar_vaddr="dingo_log_vaddr"`; the console PD shows the ring on the
//! screen. Bytes are collected into whole lines first, so that one line
//! goes into the ring in one piece and never interleaves with another PD's.

use core::cell::UnsafeCell;
use log_ring::Region;

crate::setvar!(dingo_log_vaddr);

/// Longer lines go into the ring in pieces of this size.
const LINE: usize = 160;

struct Line {
    bytes: [u8; LINE],
    len: usize,
}

struct Mirror(UnsafeCell<Option<(&'static Region, Line)>>);

// SAFETY: a PD has one thread, and the mirror is not re-entered: a ring
// write prints nothing.
unsafe impl Sync for Mirror {}

static MIRROR: Mirror = Mirror(UnsafeCell::new(None));

/// Starts mirroring, if the ring is mapped; called once before `main`.
pub(crate) fn attach() {
    let vaddr = dingo_log_vaddr.get();
    if vaddr == 0 {
        return;
    }
    // SAFETY: system.xml maps the log region (log_ring::REGION_SIZE bytes,
    // read-write, page aligned) at dingo_log_vaddr for the PD's lifetime.
    let ring = unsafe { Region::at(vaddr as usize) };
    // SAFETY: before the mirror is registered nothing else touches MIRROR.
    unsafe {
        *MIRROR.0.get() = Some((
            ring,
            Line {
                bytes: [0; LINE],
                len: 0,
            },
        ));
    }
    sel4::set_mirror(put);
}

fn put(b: u8) {
    // SAFETY: see `Mirror`'s Sync: no other reference to it is live.
    let Some((ring, line)) = (unsafe { &mut *MIRROR.0.get() }) else {
        return;
    };
    line.bytes[line.len] = b;
    line.len += 1;
    if b == b'\n' || line.len == LINE {
        ring.write(&line.bytes[..line.len]);
        line.len = 0;
    }
}
