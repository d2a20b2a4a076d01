//! The system log ring: one shared memory region into which every PD's
//! debug print appends whole lines, and from which the console PD reads them
//! to show on the screen. A multi-producer, single-consumer byte log.
//!
//! Why a ring in shared memory: the kernel prints only on COM1 and gives no
//! way to read its console back, and a PC without a serial port would show
//! nothing. Each PD's runtime (the `microkit` crate) therefore mirrors what
//! it prints into this region when system.xml maps it there (setvar
//! `dingo_log_vaddr`), and the console PD reads it. Writers never block and
//! never wait for the reader: a reader that falls behind loses the oldest
//! bytes, counted, and nothing else.
//!
//! # Layout (a region of [`REGION_SIZE`] bytes, zero-filled = empty)
//!
//! ```text
//!  offset  size             meaning
//!       0  u64              head: bytes reserved by all writers so far
//!      64  u16 * CAPACITY   slot p % CAPACITY = (lap tag of p) << 8 | byte p
//! ```
//!
//! A writer reserves a whole line at once (`fetch_add` on the head), so
//! lines of different PDs never interleave, then stores each byte with the
//! lap tag of its position. The tag is what commits a byte: the reader takes
//! byte `p` only when its slot carries `p`'s tag, so a reserved byte not
//! yet stored (its writer was preempted between reserving and storing) is
//! recognised and waited for. Tags run 1..=255, so zero-filled memory never
//! looks committed. A position is ambiguous only 255 laps later, and the
//! reader never lets itself fall more than one lap behind the head.
//!
//! # The writers are not trusted
//!
//! Every writer can scribble anywhere in the region. The reader keeps its
//! position to itself, computes every slot index from it modulo the
//! capacity, and survives any head value: a head that went backwards is
//! counted as corrupt and resynchronised, one that ran ahead by more than
//! the capacity costs the bytes in between (counted as lost), and a byte
//! that stays uncommitted for [`STALL_POLLS`] polls (a writer died between
//! reserving and storing, or a scribbled slot) is skipped and counted as
//! torn. No input makes the reader panic, loop without bound, or read
//! outside the region.
#![cfg_attr(not(test), no_std)]

use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};

/// The region's size in system.xml (`size="0x4000"`).
pub const REGION_SIZE: usize = 0x4000;
const HEADER: usize = 64;
/// Bytes of log the ring holds.
pub const CAPACITY: usize = (REGION_SIZE - HEADER) / 2;
/// Polls that find a reserved byte uncommitted; the last of them skips it
/// (and the uncommitted bytes after it).
pub const STALL_POLLS: u32 = 3;

/// The shared region, as both sides see it.
#[repr(C)]
pub struct Region {
    head: AtomicU64,
    _header: [u64; HEADER / 8 - 1],
    slots: [AtomicU16; CAPACITY],
}

const _: () = assert!(core::mem::size_of::<Region>() == REGION_SIZE);

impl Region {
    /// An empty ring (as zero-filled memory is).
    pub const fn new() -> Self {
        Region {
            head: AtomicU64::new(0),
            _header: [0; HEADER / 8 - 1],
            slots: [const { AtomicU16::new(0) }; CAPACITY],
        }
    }

    /// The region mapped at `vaddr`.
    ///
    /// # Safety
    ///
    /// `vaddr` must be 8-byte aligned, mapped (read-write for writers,
    /// readable for a reader that writes nothing) for [`REGION_SIZE`]
    /// bytes for the rest of the program, and touched by others only
    /// through this type's operations or not at all; scribbles are survived,
    /// not prevented.
    pub unsafe fn at(vaddr: usize) -> &'static Region {
        // SAFETY: per the caller; every field is an atomic or padding, so
        // any bit pattern another PD leaves there is a valid value.
        unsafe { &*(vaddr as *const Region) }
    }

    /// Appends `line` (a whole line, its newline included, or any bytes that
    /// belong together); more than [`CAPACITY`] bytes are cut to that.
    pub fn write(&self, line: &[u8]) {
        let line = &line[..line.len().min(CAPACITY)];
        let start = self.head.fetch_add(line.len() as u64, Ordering::AcqRel);
        for (i, &b) in line.iter().enumerate() {
            let p = start.wrapping_add(i as u64);
            self.slot(p).store(slot_value(p, b), Ordering::Release);
        }
    }

    fn slot(&self, p: u64) -> &AtomicU16 {
        &self.slots[(p % CAPACITY as u64) as usize]
    }
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::new()
    }
}

/// The lap tag of position `p`: 1..=255, never 0.
fn tag(p: u64) -> u8 {
    ((p / CAPACITY as u64) % 255) as u8 + 1
}

fn slot_value(p: u64, b: u8) -> u16 {
    (tag(p) as u16) << 8 | b as u16
}

/// What the reader has had to drop, for its owner to report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Bytes overwritten before they were read (the reader fell a lap behind).
    pub lost: u64,
    /// Reserved bytes skipped because they never became committed.
    pub torn: u64,
    /// Times the head was found behind the reader (a writer scribbled on it).
    pub corrupt: u64,
    /// Places where bytes were skipped, for any of those reasons.
    pub gaps: u64,
}

/// The one reader of a ring (the console PD).
#[derive(Debug)]
pub struct Reader {
    pos: u64,
    stall: Option<(u64, u32)>,
    patience: u32,
    /// After a loss, the rest of the cut line is dropped too: what the
    /// reader hands on always starts at a line's start.
    resync: bool,
    /// The last byte handed on was not a newline.
    mid_line: bool,
    losses: Losses,
}

impl Reader {
    /// A reader from the start of the log that gives up on an uncommitted
    /// byte after [`STALL_POLLS`] polls.
    pub const fn new() -> Self {
        Self::with_patience(STALL_POLLS)
    }

    /// A reader that gives up on an uncommitted byte after `polls` polls
    /// (at least one). Patience is counted in polls, so it must suit the
    /// polling period: a writer is only ever held up between reserving and
    /// storing by preemption.
    pub const fn with_patience(polls: u32) -> Self {
        Reader {
            pos: 0,
            stall: None,
            patience: if polls == 0 { 1 } else { polls },
            resync: false,
            mid_line: false,
            losses: Losses {
                lost: 0,
                torn: 0,
                corrupt: 0,
                gaps: 0,
            },
        }
    }

    pub fn losses(&self) -> Losses {
        self.losses
    }

    /// Hands every committed byte since the last poll to `sink`, oldest
    /// first; looks at no more than [`CAPACITY`] slots per call. Returns how
    /// many bytes it handed over. Output always starts at a line's start,
    /// and a line cut short by a loss is ended with a newline there.
    pub fn poll(&mut self, ring: &Region, mut sink: impl FnMut(u8)) -> usize {
        let mut head = ring.head.load(Ordering::Acquire);
        if head < self.pos {
            self.losses.corrupt += 1;
            self.pos = head;
            self.gap(&mut sink);
        }
        let mut delivered = 0;
        for _ in 0..CAPACITY {
            if self.pos >= head {
                break;
            }
            if head - self.pos > CAPACITY as u64 {
                // Writers lapped us: the oldest bytes are gone.
                let behind = head - CAPACITY as u64;
                self.losses.lost += behind - self.pos;
                self.pos = behind;
                self.gap(&mut sink);
            }
            let v = ring.slot(self.pos).load(Ordering::Acquire);
            if (v >> 8) as u8 == tag(self.pos) {
                let b = v as u8;
                self.pos += 1;
                self.stall = None;
                if self.resync {
                    self.losses.lost += 1;
                    self.resync = b != b'\n';
                } else {
                    sink(b);
                    self.mid_line = b != b'\n';
                    delivered += 1;
                }
                continue;
            }
            // Reserved, not stored yet, or overwritten since the head was read.
            let now = ring.head.load(Ordering::Acquire);
            if now < self.pos {
                self.losses.corrupt += 1;
                self.pos = now;
                self.gap(&mut sink);
                break;
            }
            if now - self.pos > CAPACITY as u64 {
                head = now;
                continue;
            }
            let polls = match self.stall {
                Some((at, polls)) if at == self.pos => polls + 1,
                _ => 1,
            };
            if polls < self.patience {
                self.stall = Some((self.pos, polls));
                break;
            }
            // Give up on this byte and every uncommitted one after it: they
            // cost one stall, not one each.
            while self.pos < now
                && (ring.slot(self.pos).load(Ordering::Acquire) >> 8) as u8 != tag(self.pos)
            {
                self.losses.torn += 1;
                self.pos += 1;
            }
            self.gap(&mut sink);
        }
        delivered
    }

    /// Bytes were skipped: end a line cut short, drop the rest of the line
    /// the reader now stands in.
    fn gap(&mut self, sink: &mut impl FnMut(u8)) {
        self.losses.gaps += 1;
        self.stall = None;
        self.resync = true;
        if self.mid_line {
            sink(b'\n');
            self.mid_line = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn boxed() -> Box<Region> {
        Box::new(Region::new())
    }

    fn read_all(r: &mut Reader, ring: &Region) -> Vec<u8> {
        let mut out = Vec::new();
        r.poll(ring, |b| out.push(b));
        out
    }

    /// Reserves `n` bytes without storing them, as a preempted writer would.
    fn reserve(ring: &Region, n: u64) -> u64 {
        ring.head.fetch_add(n, Ordering::AcqRel)
    }

    #[test]
    fn lines_come_out_in_order() {
        let ring = boxed();
        let mut r = Reader::new();
        assert!(read_all(&mut r, &ring).is_empty());
        ring.write(b"producer: hello\n");
        ring.write(b"consumer: hi\n");
        assert_eq!(read_all(&mut r, &ring), b"producer: hello\nconsumer: hi\n");
        assert!(read_all(&mut r, &ring).is_empty());
        assert_eq!(r.losses(), Losses::default());
    }

    #[test]
    fn zeroed_memory_is_empty_not_committed() {
        let ring = boxed();
        // A head moved by a reservation only: nothing is committed yet.
        reserve(&ring, 5);
        let mut r = Reader::new();
        assert!(read_all(&mut r, &ring).is_empty());
    }

    #[test]
    fn a_preempted_writer_is_waited_for_then_read_in_order() {
        let ring = boxed();
        let mut r = Reader::new();
        let start = reserve(&ring, 3); // writer A reserved "ab\n", preempted
        ring.write(b"B\n"); // writer B committed after it
        assert!(read_all(&mut r, &ring).is_empty(), "A's bytes come first");
        for (i, &b) in b"ab\n".iter().enumerate() {
            let p = start + i as u64;
            ring.slot(p).store(slot_value(p, b), Ordering::Release);
        }
        assert_eq!(read_all(&mut r, &ring), b"ab\nB\n");
        assert_eq!(r.losses().torn, 0);
    }

    #[test]
    fn a_writer_that_never_stores_is_skipped_after_the_stall_limit() {
        let ring = boxed();
        let mut r = Reader::new();
        reserve(&ring, 4); // a writer that died after reserving
        ring.write(b"ok\n");
        for _ in 0..STALL_POLLS - 1 {
            assert!(read_all(&mut r, &ring).is_empty());
        }
        // The next poll gives up on all four bytes. What follows them is
        // dropped up to a line end (the dead writer's line had none), then
        // lines come whole.
        assert!(read_all(&mut r, &ring).is_empty());
        assert_eq!(r.losses().torn, 4);
        ring.write(b"next\n");
        assert_eq!(read_all(&mut r, &ring), b"next\n");
    }

    #[test]
    fn a_reader_a_lap_behind_loses_the_oldest_bytes() {
        let ring = boxed();
        let mut r = Reader::new();
        let mut line = [b'x'; 100];
        line[99] = b'\n';
        let lines = CAPACITY / 100 + 5;
        for _ in 0..lines {
            ring.write(&line);
        }
        // The cut line is dropped up to its end: output starts at a line.
        let out = read_all(&mut r, &ring);
        assert!(
            !out.is_empty() && out.len().is_multiple_of(100),
            "{} bytes",
            out.len()
        );
        assert!(out.chunks(100).all(|l| l == line));
        assert_eq!(r.losses().lost + out.len() as u64, (lines * 100) as u64);
        ring.write(b"new\n");
        assert_eq!(read_all(&mut r, &ring), b"new\n");
    }

    #[test]
    fn a_line_cut_by_a_loss_is_ended_there() {
        let ring = boxed();
        let mut r = Reader::new();
        ring.write(b"partial");
        assert_eq!(read_all(&mut r, &ring), b"partial");
        for _ in 0..CAPACITY / 10 + 1 {
            ring.write(b"123456789\n");
        }
        let out = read_all(&mut r, &ring);
        assert_eq!(out[0], b'\n', "the cut line is ended first");
        assert!(out[1..].chunks(10).all(|l| l == b"123456789\n"));
        assert_eq!(r.losses().gaps, 1);
    }

    #[test]
    fn a_line_longer_than_the_ring_is_cut() {
        let ring = boxed();
        let mut r = Reader::new();
        ring.write(&vec![b'y'; CAPACITY + 10]);
        assert_eq!(read_all(&mut r, &ring).len(), CAPACITY);
        assert_eq!(r.losses(), Losses::default());
    }

    #[test]
    fn a_head_scribbled_backwards_or_far_ahead_is_survived() {
        let ring = boxed();
        let mut r = Reader::new();
        ring.write(b"one\n");
        assert_eq!(read_all(&mut r, &ring), b"one\n");
        ring.head.store(1, Ordering::Release);
        assert!(read_all(&mut r, &ring).is_empty());
        assert_eq!(r.losses().corrupt, 1);
        // The reader resynchronises at the next line end: the first line
        // written from the scribbled head is dropped, later ones come whole.
        ring.write(b"ne\ntwo\n");
        assert_eq!(read_all(&mut r, &ring), b"two\n");

        ring.head.store(u64::MAX / 2, Ordering::Release);
        // A lap of slots none of which is committed at those positions:
        // skipped as lost and torn within a few polls.
        for _ in 0..STALL_POLLS {
            assert_eq!(r.poll(&ring, |_| ()), 0);
        }
        assert!(r.losses().lost > 0);
        assert_eq!(r.losses().torn, CAPACITY as u64);
        ring.write(b"cut\nthree\n");
        assert_eq!(read_all(&mut r, &ring), b"three\n");
    }

    #[test]
    fn concurrent_writers_keep_their_lines_whole() {
        let ring = Arc::new(Region::new());
        let writers: Vec<_> = (0..4u8)
            .map(|w| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let line =
                            format!("writer {w} line {i:03} {}\n", "z".repeat(i as usize % 40));
                        ring.write(line.as_bytes());
                    }
                })
            })
            .collect();
        // Host threads can be descheduled for any time between reserving
        // and storing, so this reader waits for ever.
        let mut r = Reader::with_patience(u32::MAX);
        let mut text = Vec::new();
        while writers.iter().any(|w| !w.is_finished()) {
            r.poll(&ring, |b| text.push(b));
        }
        writers.into_iter().for_each(|w| w.join().unwrap());
        for _ in 0..STALL_POLLS {
            r.poll(&ring, |b| text.push(b));
        }
        let text = String::from_utf8(text).unwrap();
        let whole =
            |w: usize, i: u32| format!("writer {w} line {i:03} {}", "z".repeat(i as usize % 40));
        let (mut next, mut seen, mut cut) = ([0u32; 4], 0, 0);
        for line in text.lines() {
            let Some((w, i)) = line
                .strip_prefix("writer ")
                .and_then(|l| Some((l.get(..1)?.parse().ok()?, l.get(7..10)?.parse().ok()?)))
            else {
                // Cut before its number: only a gap can do that.
                cut += 1;
                continue;
            };
            if line != whole(w, i) {
                assert!(whole(w, i).starts_with(line), "mangled line {line:?}");
                cut += 1;
            }
            // Within a writer, order holds; losses only skip lines.
            assert!(i >= next[w], "writer {w}: line {i} after {}", next[w]);
            next[w] = i + 1;
            seen += 1;
        }
        let losses = r.losses();
        assert_eq!(losses.torn, 0);
        assert!(cut as u64 <= losses.gaps, "{cut} cut lines, {losses:?}");
        assert!(seen > 0);
        if losses.gaps == 0 {
            assert_eq!(seen, 800);
        }
    }
}
