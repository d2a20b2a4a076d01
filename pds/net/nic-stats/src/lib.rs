//! A NIC driver's counters, published on a page the network stack PD
//! maps read-only, so that the status page can show the driver's drops by
//! reason whatever the driver is. The page holds a sequence word, a count
//! and up to [`MAX_ENTRIES`] entries of a name (up to 24 bytes) and a
//! value; the driver writes names once and values as they change, under a
//! seqlock (odd while writing), and the reader retries a torn copy a few
//! times and then gives up. The reader trusts nothing: names are cut at
//! their length, the count is clamped. A driver that publishes on every
//! wake-up uses [`Writer::publish_hot`]: the counters that change with
//! every frame are written alone, and the seqlocked copy of all of them
//! only when any other changed.
#![cfg_attr(not(test), no_std)]

use core::sync::atomic::{Ordering, fence};

/// Bytes a page needs.
pub const PAGE_BYTES: usize = 0x1000;
/// Entries that fit after the header.
pub const MAX_ENTRIES: usize = (PAGE_BYTES - HEADER) / ENTRY;
/// Longest name kept.
pub const NAME_BYTES: usize = 24;

const HEADER: usize = 16;
const ENTRY: usize = NAME_BYTES + 8;
const READ_TRIES: usize = 8;

/// The positions of the counters that change with every frame, for
/// [`Writer::publish_hot`]; positions past 63 cannot be hot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hot(u64);

impl Hot {
    pub const fn of(positions: &[usize]) -> Hot {
        let mut mask = 0;
        let mut i = 0;
        while i < positions.len() {
            if positions[i] < 64 {
                mask |= 1 << positions[i];
            }
            i += 1;
        }
        Hot(mask)
    }

    #[inline]
    pub const fn contains(self, position: usize) -> bool {
        position < 64 && (self.0 >> position) & 1 == 1
    }
}

/// The driver's end.
pub struct Writer {
    base: *mut u64,
    count: usize,
    /// The sum of the values outside `hot` at the last
    /// [`publish_hot`](Writer::publish_hot); `None` before the first.
    cold_sum: Option<u64>,
}

/// The stack's end.
pub struct Reader {
    base: *const u64,
}

fn word(base: *const u64, i: usize) -> u64 {
    // SAFETY: callers keep i below PAGE_BYTES / 8, inside the page their
    // constructor's contract makes readable; volatile, the peer writes it.
    unsafe { base.add(i).read_volatile() }
}

impl Writer {
    /// Publishes counters named `names` (in this order) on the page at
    /// `base`, all zero.
    ///
    /// # Safety
    /// `base` is page-aligned and stays mapped read-write for
    /// [`PAGE_BYTES`] bytes; this PD is the page's only writer.
    pub unsafe fn new(base: *mut u8, names: &[&str]) -> Self {
        let w = Writer {
            base: base.cast(),
            count: names.len().min(MAX_ENTRIES),
            cold_sum: None,
        };
        w.put(0, 1);
        w.put(1, w.count as u64);
        for (i, name) in names.iter().take(w.count).enumerate() {
            let mut bytes = [0u8; NAME_BYTES];
            let n = name.len().min(NAME_BYTES);
            bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
            for (j, chunk) in bytes.chunks_exact(8).enumerate() {
                w.put(
                    entry(i) + j,
                    u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])),
                );
            }
            w.put(entry(i) + NAME_BYTES / 8, 0);
        }
        fence(Ordering::Release);
        w.put(0, 2);
        w
    }

    fn put(&self, i: usize, v: u64) {
        // SAFETY: every index used is below PAGE_BYTES / 8 (entries are
        // clamped to MAX_ENTRIES), inside the page new's contract gives.
        unsafe { self.base.add(i).write_volatile(v) }
    }

    /// Writes value `i` alone (one aligned word, never torn), outside the
    /// seqlock.
    #[inline]
    fn set(&mut self, i: usize, v: u64) {
        if i < self.count {
            self.put(entry(i) + NAME_BYTES / 8, v);
        }
    }

    /// Writes the values of counters (they only ever grow), in the order
    /// of the names, as cheaply as it can: while only those in `hot`
    /// changed since the last call, each of them alone (one word, as
    /// [`set`](Self::set)); otherwise all of them under the seqlock.
    /// Since counters only grow, the sum of the other values changes
    /// exactly when any of them does. A reader's consistent copy may then
    /// hold hot values of different moments, each one exact. Values past
    /// the names are ignored.
    ///
    /// Inline, and over an array: with a constant `hot` the sum unrolls
    /// into adds of the cold values alone, and the stores visit the hot
    /// positions alone (as a call over a slice, summing and filtering all
    /// of them cost the rtl8139 driver about 190 instructions per
    /// wake-up; now about 100).
    #[inline]
    pub fn publish_hot<const N: usize>(&mut self, values: &[u64; N], hot: Hot) {
        let mut cold = 0u64;
        for (i, v) in values.iter().enumerate() {
            if !hot.contains(i) {
                cold = cold.wrapping_add(*v);
            }
        }
        if self.cold_sum != Some(cold) {
            self.publish(values);
            self.cold_sum = Some(cold);
            return;
        }
        // Over the hot positions alone: a loop of volatile stores does
        // not unroll.
        let mut left = hot.0;
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            left &= left - 1;
            if let Some(v) = values.get(i) {
                self.set(i, *v);
            }
        }
    }

    /// Writes the values, in the order of the names.
    pub fn publish(&mut self, values: &[u64]) {
        let seq = word(self.base, 0);
        self.put(0, seq | 1);
        fence(Ordering::Release);
        for (i, v) in values.iter().take(self.count).enumerate() {
            self.put(entry(i) + NAME_BYTES / 8, *v);
        }
        fence(Ordering::Release);
        self.put(0, (seq | 1) + 1);
    }
}

fn entry(i: usize) -> usize {
    (HEADER + i * ENTRY) / 8
}

impl Reader {
    /// # Safety
    /// `base` stays mapped readable for [`PAGE_BYTES`] bytes.
    pub unsafe fn new(base: *const u8) -> Self {
        Reader { base: base.cast() }
    }

    /// Calls `f` with each name and value of one consistent copy; false if
    /// no consistent copy could be read (the writer kept writing, or never
    /// published).
    pub fn read(&self, mut f: impl FnMut(&str, u64)) -> bool {
        let mut copy = [([0u8; NAME_BYTES], 0u64); MAX_ENTRIES];
        for _ in 0..READ_TRIES {
            let seq = word(self.base, 0);
            if seq == 0 || seq & 1 == 1 {
                continue;
            }
            fence(Ordering::Acquire);
            let count = (word(self.base, 1) as usize).min(MAX_ENTRIES);
            for (i, slot) in copy.iter_mut().take(count).enumerate() {
                for j in 0..NAME_BYTES / 8 {
                    slot.0[j * 8..j * 8 + 8]
                        .copy_from_slice(&word(self.base, entry(i) + j).to_le_bytes());
                }
                slot.1 = word(self.base, entry(i) + NAME_BYTES / 8);
            }
            fence(Ordering::Acquire);
            if word(self.base, 0) != seq {
                continue;
            }
            for (name, value) in &copy[..count] {
                let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
                let name = core::str::from_utf8(&name[..len]).unwrap_or("?");
                f(name, *value);
            }
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_what_the_writer_published() {
        let page = vec![0u64; PAGE_BYTES / 8].leak();
        let base = page.as_mut_ptr().cast::<u8>();
        // SAFETY: a leaked page-sized buffer; this test is its only user.
        let mut w = unsafe { Writer::new(base, &["rx_frames", "a_name_longer_than_24_bytes!"]) };
        // SAFETY: as above.
        let r = unsafe { Reader::new(base) };
        w.publish(&[7, 9]);
        let mut got = Vec::new();
        assert!(r.read(|n, v| got.push((n.to_string(), v))));
        assert_eq!(
            got,
            [
                ("rx_frames".to_string(), 7),
                ("a_name_longer_than_24_by".to_string(), 9)
            ]
        );
        // A writer caught mid-update is not read.
        page[0] |= 1;
        assert!(!r.read(|_, _| {}));
    }

    fn values(r: &Reader) -> Vec<u64> {
        let mut got = Vec::new();
        assert!(r.read(|_, v| got.push(v)));
        got
    }

    #[test]
    fn publish_hot_writes_every_change_and_takes_the_seqlock_only_for_cold_ones() {
        let page = vec![0u64; PAGE_BYTES / 8].leak();
        let base = page.as_mut_ptr().cast::<u8>();
        // SAFETY: a leaked page-sized buffer; this test is its only user.
        let mut w = unsafe { Writer::new(base, &["frames", "drops", "bytes"]) };
        // SAFETY: as above.
        let r = unsafe { Reader::new(base) };
        let hot = Hot::of(&[0, 2]);
        let seq = |p: &[u64]| p[0];
        w.publish_hot(&[1, 0, 60], hot);
        assert_eq!(values(&r), [1, 0, 60]);
        let s = seq(page);
        // Only hot values changed: written alone, the seqlock untouched.
        w.publish_hot(&[2, 0, 120], hot);
        assert_eq!(values(&r), [2, 0, 120]);
        assert_eq!(seq(page), s);
        // A cold one changed: everything under the seqlock.
        w.publish_hot(&[3, 1, 180], hot);
        assert_eq!(values(&r), [3, 1, 180]);
        assert_eq!(seq(page), s + 2);
        // Hot and cold changes that would cancel out in one sum still
        // show, since the hot ones are left out of it.
        w.publish_hot(&[4, 2, 180], hot);
        assert_eq!(values(&r), [4, 2, 180]);
        // Positions beyond the names are ignored.
        w.publish_hot(&[5, 2, 200, 9], Hot::of(&[0, 2, 3, 7, 64]));
        assert_eq!(values(&r), [5, 2, 200]);
    }

    #[test]
    fn a_garbage_page_yields_no_overrun() {
        let page = vec![u64::MAX - 1; PAGE_BYTES / 8].leak();
        // SAFETY: a leaked page-sized buffer.
        let r = unsafe { Reader::new(page.as_ptr().cast()) };
        let mut n = 0;
        assert!(r.read(|name, _| {
            assert_eq!(name, "?");
            n += 1
        }));
        assert_eq!(n, MAX_ENTRIES);
    }
}
