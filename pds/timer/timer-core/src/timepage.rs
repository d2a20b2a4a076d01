//! The time page: a page the timer PD writes and every other PD maps
//! read-only, carrying the TSC-to-nanoseconds [`Conversion`] so that reading
//! the time is an `rdtsc` and a multiply, with no IPC.
//!
//! # Layout (little-endian, 48 bytes at the start of the page)
//!
//! | offset | field      | type | meaning                                        |
//! |--------|------------|------|------------------------------------------------|
//! | 0      | `seq`      | u32  | seqlock sequence; odd while the writer updates |
//! | 4      | `magic`    | u32  | [`MAGIC`] once published, 0 before             |
//! | 8      | `tsc_base` | u64  | [`Conversion::tsc_base`]                        |
//! | 16     | `ns_base`  | u64  | [`Conversion::ns_base`]                         |
//! | 24     | `mult`     | u64  | [`Conversion::mult`]                            |
//! | 32     | `shift`    | u32  | [`Conversion::shift`]                           |
//! | 36     | reserved   | u32  | zero                                            |
//! | 40     | `tsc_hz`   | u64  | [`Conversion::tsc_hz`]                          |
//!
//! # Seqlock protocol
//!
//! The writer makes `seq` odd, stores the fields, then makes `seq` even
//! again with release ordering. A reader loads `seq` (acquire), skips the
//! attempt if it is odd, loads the fields, and accepts them only if `seq` is
//! unchanged afterwards (acquire fence, then load). Every field is an atomic,
//! so a torn or hostile page yields wrong numbers, never undefined
//! behaviour, and the reader validates what it accepted. A writer that
//! stalls or dies with `seq` odd cannot hang a reader: after
//! [`MAX_READ_ATTEMPTS`] attempts the reader returns [`ReadError::Busy`],
//! and the caller decides whether to yield and retry or to fail.

use core::fmt;
use core::hint::spin_loop;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::clock::Conversion;

/// The `magic` value of a published page: "TIME" in ASCII.
pub const MAGIC: u32 = u32::from_le_bytes(*b"TIME");

/// How many times a reader tries for a stable copy before giving up. An
/// update is a handful of stores, so a live writer is never in the way for
/// more than a few attempts.
pub const MAX_READ_ATTEMPTS: u32 = 1000;

/// The shared layout; see the module doc.
#[repr(C)]
pub struct TimePage {
    seq: AtomicU32,
    magic: AtomicU32,
    tsc_base: AtomicU64,
    ns_base: AtomicU64,
    mult: AtomicU64,
    shift: AtomicU32,
    reserved: AtomicU32,
    tsc_hz: AtomicU64,
}

// The layout is an interface between separately built PDs: pin it.
const _: () = {
    assert!(size_of::<TimePage>() == 48);
    assert!(offset_of!(TimePage, seq) == 0);
    assert!(offset_of!(TimePage, magic) == 4);
    assert!(offset_of!(TimePage, tsc_base) == 8);
    assert!(offset_of!(TimePage, ns_base) == 16);
    assert!(offset_of!(TimePage, mult) == 24);
    assert!(offset_of!(TimePage, shift) == 32);
    assert!(offset_of!(TimePage, reserved) == 36);
    assert!(offset_of!(TimePage, tsc_hz) == 40);
};

impl Default for TimePage {
    fn default() -> Self {
        Self::new()
    }
}

impl TimePage {
    /// An unpublished page, as a freshly zeroed frame is.
    pub const fn new() -> Self {
        TimePage {
            seq: AtomicU32::new(0),
            magic: AtomicU32::new(0),
            tsc_base: AtomicU64::new(0),
            ns_base: AtomicU64::new(0),
            mult: AtomicU64::new(0),
            shift: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            tsc_hz: AtomicU64::new(0),
        }
    }
}

/// Why a reader got no conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The writer has not published yet (`magic` is 0).
    NotPublished,
    /// Every one of `attempts` attempts found the sequence odd or changing:
    /// the writer is mid-update, stalled or dead.
    Busy {
        /// The attempts made.
        attempts: u32,
    },
    /// A stable copy was read but it is not a time page (wrong `magic`) or
    /// holds an unusable conversion (`mult` 0 or `shift` above 64).
    Corrupt {
        /// The `magic` read.
        magic: u32,
        /// The `mult` read.
        mult: u64,
        /// The `shift` read.
        shift: u32,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReadError::NotPublished => f.write_str("time page: not yet published by the timer PD"),
            ReadError::Busy { attempts } => write!(
                f,
                "time page: sequence odd or changing on all {attempts} read attempts \
                 (writer stalled mid-update?)"
            ),
            ReadError::Corrupt { magic, mult, shift } => write!(
                f,
                "time page: corrupt (magic {magic:#010x}, expected {MAGIC:#010x}; mult {mult}; \
                 shift {shift}, at most 64)"
            ),
        }
    }
}

/// The timer PD's handle on the page.
pub struct TimePageWriter {
    page: *const TimePage,
}

impl TimePageWriter {
    /// # Safety
    ///
    /// `page` must be aligned, valid for reads and writes of
    /// `size_of::<TimePage>()` bytes for as long as the writer is used, and
    /// no other writer may exist for that page. Readers in other address
    /// spaces may read it concurrently: every access is atomic.
    pub unsafe fn new(page: *const TimePage) -> Self {
        TimePageWriter { page }
    }

    fn page(&self) -> &TimePage {
        // SAFETY: `new`'s contract keeps the page valid and aligned; the
        // fields are atomics, so a shared reference permits the writes.
        unsafe { &*self.page }
    }

    /// Publishes `conversion`. To keep time monotonic across a change, the
    /// new conversion's (`tsc_base`, `ns_base`) should be a point of the old
    /// one taken at the current TSC.
    pub fn publish(&mut self, conversion: &Conversion) {
        let p = self.page();
        // `seq` is even unless a previous incarnation of the writer died
        // mid-update; either way `begin` is odd and `begin + 1` even.
        let begin = p.seq.load(Ordering::Relaxed) | 1;
        p.seq.store(begin, Ordering::Relaxed);
        // Orders the odd sequence before the field stores, so a reader that
        // sees any new field also sees the sequence change.
        fence(Ordering::Release);
        p.tsc_base.store(conversion.tsc_base, Ordering::Relaxed);
        p.ns_base.store(conversion.ns_base, Ordering::Relaxed);
        p.mult.store(conversion.mult, Ordering::Relaxed);
        p.shift.store(conversion.shift, Ordering::Relaxed);
        p.tsc_hz.store(conversion.tsc_hz, Ordering::Relaxed);
        p.magic.store(MAGIC, Ordering::Relaxed);
        p.seq.store(begin.wrapping_add(1), Ordering::Release);
    }
}

/// A PD's read-only handle on the page.
pub struct TimePageReader {
    page: *const TimePage,
}

impl TimePageReader {
    /// # Safety
    ///
    /// `page` must be aligned and valid for reads of
    /// `size_of::<TimePage>()` bytes for as long as the reader is used. The
    /// mapping may be read-only (the reader only loads, and atomic loads of
    /// up to 8 bytes are plain loads on x86_64) and another address space
    /// may write it at any time with any contents.
    pub unsafe fn new(page: *const TimePage) -> Self {
        TimePageReader { page }
    }

    fn page(&self) -> &TimePage {
        // SAFETY: `new`'s contract keeps the page valid and aligned; every
        // field is an atomic, so concurrent writes by the peer are allowed.
        unsafe { &*self.page }
    }

    /// A consistent copy of the published conversion.
    #[inline]
    pub fn read(&self) -> Result<Conversion, ReadError> {
        let p = self.page();
        for _ in 0..MAX_READ_ATTEMPTS {
            let before = p.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                spin_loop();
                continue;
            }
            let magic = p.magic.load(Ordering::Relaxed);
            let conversion = Conversion {
                tsc_base: p.tsc_base.load(Ordering::Relaxed),
                ns_base: p.ns_base.load(Ordering::Relaxed),
                mult: p.mult.load(Ordering::Relaxed),
                shift: p.shift.load(Ordering::Relaxed),
                tsc_hz: p.tsc_hz.load(Ordering::Relaxed),
            };
            // Keeps the field loads before the re-check of the sequence.
            fence(Ordering::Acquire);
            if p.seq.load(Ordering::Relaxed) != before {
                spin_loop();
                continue;
            }
            return match magic {
                0 => Err(ReadError::NotPublished),
                MAGIC if conversion.is_valid() => Ok(conversion),
                _ => Err(ReadError::Corrupt {
                    magic,
                    mult: conversion.mult,
                    shift: conversion.shift,
                }),
            };
        }
        Err(ReadError::Busy {
            attempts: MAX_READ_ATTEMPTS,
        })
    }

    /// Monotonic nanoseconds now, from one TSC reading taken by `read_tsc`
    /// after a consistent copy of the conversion was obtained.
    pub fn now_ns(&self, read_tsc: impl Fn() -> u64) -> Result<u64, ReadError> {
        let conversion = self.read()?;
        Ok(conversion.tsc_to_ns(read_tsc()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn conversion(hz: u64, tsc_base: u64, ns_base: u64) -> Conversion {
        Conversion::new(hz, tsc_base, ns_base).unwrap()
    }

    #[test]
    fn unpublished_page_reports_not_published() {
        let page = TimePage::new();
        // SAFETY: `page` outlives the reader.
        let reader = unsafe { TimePageReader::new(&page) };
        assert_eq!(reader.read(), Err(ReadError::NotPublished));
        assert_eq!(reader.now_ns(|| 5), Err(ReadError::NotPublished));
    }

    #[test]
    fn published_conversion_reads_back_and_gives_the_time() {
        let page = TimePage::new();
        // SAFETY: `page` outlives both handles and has one writer.
        let (mut writer, reader) =
            unsafe { (TimePageWriter::new(&page), TimePageReader::new(&page)) };
        let c = conversion(2_500_000_000, 1_000, 7);
        writer.publish(&c);
        assert_eq!(reader.read(), Ok(c));
        assert_eq!(reader.now_ns(|| 1_000 + 2_500_000_000), Ok(1_000_000_007));
        assert_eq!(page.seq.load(Ordering::Relaxed), 2);
        let c2 = conversion(3_000_000_000, 2_000, 9);
        writer.publish(&c2);
        assert_eq!(reader.read(), Ok(c2));
        assert_eq!(page.seq.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn writer_recovers_from_a_predecessor_that_died_mid_update() {
        let page = TimePage::new();
        page.seq.store(7, Ordering::Relaxed);
        // SAFETY: `page` outlives both handles and has one writer.
        let (mut writer, reader) =
            unsafe { (TimePageWriter::new(&page), TimePageReader::new(&page)) };
        assert_eq!(
            reader.read(),
            Err(ReadError::Busy {
                attempts: MAX_READ_ATTEMPTS
            })
        );
        let c = conversion(1_000_000_000, 0, 0);
        writer.publish(&c);
        assert_eq!(page.seq.load(Ordering::Relaxed), 8);
        assert_eq!(reader.read(), Ok(c));
    }

    #[test]
    fn stuck_odd_sequence_returns_busy_after_the_bound() {
        let page = TimePage::new();
        // SAFETY: `page` outlives both handles and has one writer.
        let (mut writer, reader) =
            unsafe { (TimePageWriter::new(&page), TimePageReader::new(&page)) };
        writer.publish(&conversion(2_000_000_000, 0, 0));
        page.seq.fetch_add(1, Ordering::Relaxed);
        let err = reader.now_ns(|| 0).unwrap_err();
        assert_eq!(
            err,
            ReadError::Busy {
                attempts: MAX_READ_ATTEMPTS
            }
        );
        assert!(err.to_string().contains("1000 read attempts"));
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let page = TimePage::new();
        // SAFETY: `page` outlives both handles and has one writer.
        let (mut writer, reader) =
            unsafe { (TimePageWriter::new(&page), TimePageReader::new(&page)) };
        writer.publish(&conversion(2_000_000_000, 0, 0));
        page.shift.store(200, Ordering::Relaxed);
        assert!(matches!(
            reader.read(),
            Err(ReadError::Corrupt { shift: 200, .. })
        ));
        writer.publish(&conversion(2_000_000_000, 0, 0));
        page.magic.store(0xdead_beef, Ordering::Relaxed);
        let err = reader.read().unwrap_err();
        assert!(matches!(
            err,
            ReadError::Corrupt {
                magic: 0xdead_beef,
                ..
            }
        ));
        assert!(err.to_string().contains("0xdeadbeef"));
    }

    /// Every field of version `k` derives from `k`, so a reader can tell a
    /// torn copy (fields from two versions) from a consistent one.
    fn version(k: u64) -> Conversion {
        Conversion {
            tsc_base: k,
            ns_base: k.wrapping_mul(3),
            mult: k.wrapping_mul(5) | 1,
            shift: (k % 65) as u32,
            tsc_hz: k.wrapping_mul(7),
        }
    }

    #[test]
    fn concurrent_readers_only_see_consistent_copies() {
        let page = TimePage::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: `page` outlives the scope; this is the only writer.
                let mut writer = unsafe { TimePageWriter::new(&page) };
                for k in 1..=200_000u64 {
                    writer.publish(&version(k));
                }
                done.store(true, Ordering::Release);
            });
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        // SAFETY: `page` outlives the scope.
                        let reader = unsafe { TimePageReader::new(&page) };
                        let (mut last, mut seen, mut busy) = (0u64, 0u64, 0u64);
                        loop {
                            let finished = done.load(Ordering::Acquire);
                            match reader.read() {
                                Ok(c) => {
                                    let k = c.tsc_base;
                                    assert_eq!(c, version(k), "torn copy");
                                    assert!(k >= last, "went back from version {last} to {k}");
                                    last = k;
                                    seen += 1;
                                }
                                Err(ReadError::Busy { .. }) => busy += 1,
                                Err(ReadError::NotPublished) => {}
                                Err(e) => panic!("{e}"),
                            }
                            if finished {
                                return (last, seen, busy);
                            }
                        }
                    })
                })
                .collect();
            for r in readers {
                let (last, seen, _busy) = r.join().unwrap();
                assert_eq!(last, 200_000, "the final version was read");
                assert!(seen > 0);
            }
        });
    }
}
