//! This PD's side of the monitor's supervision (see `pd_layout::recovery`):
//! the progress counter its handler budget is watched by, and what the
//! monitor says about this instance. The monitor maps the recovery page in
//! every PD before it starts.

use pd_layout::RECOVERY_VADDR;
use pd_layout::recovery::{BUDGET_MS, BUDGETED, FLAGS, INCARNATION, PROGRESS, RESTARTABLE};

fn word(i: usize) -> *mut u64 {
    (RECOVERY_VADDR as *mut u64).wrapping_add(i)
}

/// One more on the progress counter: called right before the PD blocks for
/// its next event and right after it wakes, so the count is odd while an
/// event is handled.
#[inline(always)]
pub(crate) fn step() {
    // SAFETY: the monitor maps the recovery page read-write at
    // RECOVERY_VADDR in every PD for its life; this PD's one thread is the
    // only writer of the word (the monitor reads it). Volatile: the monitor
    // reads it from another address space.
    unsafe {
        let p = word(PROGRESS);
        p.write_volatile(p.read_volatile().wrapping_add(1));
    }
}

fn read(i: usize) -> u64 {
    // SAFETY: as in step(); these words are the monitor's, read only.
    unsafe { word(i).read_volatile() }
}

/// Which instance of the PD this is: 1 for the first, one more per restart.
pub fn incarnation() -> u64 {
    read(INCARNATION)
}

/// Whether the monitor restarts this PD when it fails; a restartable PD
/// may make protocol violations fatal.
pub fn restartable() -> bool {
    read(FLAGS) & RESTARTABLE != 0
}

/// The handler budget the monitor holds this PD to, in milliseconds.
pub fn budget_ms() -> Option<u64> {
    (read(FLAGS) & BUDGETED != 0).then(|| read(BUDGET_MS))
}
