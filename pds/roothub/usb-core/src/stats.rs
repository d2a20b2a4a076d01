//! A driver's counters on a page a test PD reads: descriptors, transfers,
//! addresses and buffers in use, and the events it counted. Leak checks in
//! the hot-plug test read them after the devices settle. One writer (the
//! driver), any number of readers; each counter is a word of its own,
//! written whole, so a reader sees each value as it was at some moment.

use core::sync::atomic::{AtomicU64, Ordering};

/// Word 0 holds this in its upper half once the page is written; the lower
/// half is the number of counters.
pub const MAGIC: u64 = 0x5553_4253 << 32;
/// Counters a page holds at most (a page of 512 words has room for more;
/// this keeps the names table short).
pub const MAX: usize = 32;

/// The writer's end.
pub struct Writer {
    words: *const AtomicU64,
    count: usize,
}

impl Writer {
    /// # Safety
    ///
    /// `base` is 8-aligned and writable for `(MAX + 1) * 8` bytes for the
    /// writer's life; no one else writes it.
    pub unsafe fn new(base: *mut u8, count: usize) -> Self {
        let count = count.min(MAX);
        let w = Writer {
            words: base.cast(),
            count,
        };
        w.word(0).store(MAGIC | count as u64, Ordering::Release);
        w
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: i <= MAX, inside the page (new's contract); AtomicU64 is
        // valid for any bits.
        unsafe { &*self.words.add(i) }
    }

    /// Sets counter `i` (ignored past the count).
    pub fn set(&self, i: usize, v: u64) {
        if i < self.count {
            self.word(1 + i).store(v, Ordering::Relaxed);
        }
    }
}

/// The reader's end.
pub struct Reader {
    words: *const AtomicU64,
}

impl Reader {
    /// # Safety
    ///
    /// `base` is 8-aligned and readable for `(MAX + 1) * 8` bytes for the
    /// reader's life.
    pub unsafe fn new(base: *const u8) -> Self {
        Reader { words: base.cast() }
    }

    fn word(&self, i: usize) -> u64 {
        // SAFETY: i <= MAX, inside the page (new's contract).
        unsafe { &*self.words.add(i) }.load(Ordering::Acquire)
    }

    /// The counters, or `None` before the writer started.
    pub fn counters(&self, out: &mut [u64; MAX]) -> Option<usize> {
        let head = self.word(0);
        if head & !0xffff_ffff != MAGIC {
            return None;
        }
        let n = ((head & 0xffff_ffff) as usize).min(MAX);
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = self.word(1 + i);
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_and_an_unwritten_page_reads_as_none() {
        let mut page = std::vec![0u64; MAX + 1];
        let base = page.as_mut_ptr().cast::<u8>();
        // SAFETY: the vector is the page, alive for the test.
        let r = unsafe { Reader::new(base) };
        let mut out = [0; MAX];
        assert_eq!(r.counters(&mut out), None);
        let w = unsafe { Writer::new(base, 3) };
        w.set(0, 7);
        w.set(2, 9);
        w.set(5, 1);
        assert_eq!(r.counters(&mut out), Some(3));
        assert_eq!(out[..3], [7, 0, 9]);
    }
}
