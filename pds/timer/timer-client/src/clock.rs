//! Time without IPC: the time page region shared by the timer PD.
//!
//! The region (one page; the timer PD maps it read-write, every other PD
//! read-only) holds timer-core's seqlocked [`TimePage`] at offset 0 and, at
//! [`IRQ_COUNT_OFFSET`], a 64-bit count of the interrupts the timer PD has
//! taken. A PD reads the conversion and turns its own reading of the
//! board's counter ([`Counter`]: `rdtsc` on x86_64, the GPT's counter
//! register on the i.MX6) into nanoseconds; the count lets tests check
//! that an idle system takes no timer interrupts without asking the timer
//! PD.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicU64, Ordering};

use timer_core::clock::Conversion;
use timer_core::timepage::{ReadError, TimePage, TimePageReader, TimePageWriter};

/// Where the interrupt count lives in the time page region: past the
/// 48-byte [`TimePage`], on its own cache line.
pub const IRQ_COUNT_OFFSET: usize = 64;

/// Bytes of the region the layout uses; the region itself is a page.
pub const REGION_BYTES: usize = IRQ_COUNT_OFFSET + 8;

const _: () = assert!(core::mem::size_of::<TimePage>() <= IRQ_COUNT_OFFSET);

/// How many times [`TimeReader::wait_published`] looks at the page before
/// giving up. The timer PD runs at a higher priority and publishes before
/// it first blocks, so on one CPU the first look succeeds.
pub const PUBLISH_SPINS: u32 = 10_000_000;

#[cfg(target_arch = "x86_64")]
pub use hwio::tsc::rdtsc;

/// The free-running counter the time page's conversion applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The x86 time-stamp counter (`rdtsc`), 64 bits.
    #[cfg(target_arch = "x86_64")]
    Tsc,
    /// The i.MX6 GPT's 32-bit counter register at this address (in a
    /// mapping of the GPT's registers; read-only is enough), extended to
    /// 64 bits around the time page's base ([`timer_core::gpt::extend`]),
    /// which the timer PD moves on every half wrap.
    Gpt(*const u32),
}

impl Counter {
    /// The GPT's counter in a mapping of its registers at `vaddr`.
    pub fn gpt(vaddr: usize) -> Counter {
        Counter::Gpt((vaddr + timer_core::gpt::regs::CNT.offset()) as *const u32)
    }

    /// The counter, extended if need be around `base`.
    ///
    /// # Safety
    ///
    /// For [`Counter::Gpt`], the address must be mapped and readable for
    /// as long as the counter is used.
    unsafe fn read(self, base: u64) -> u64 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Counter::Tsc => {
                let _ = base;
                rdtsc()
            }
            // SAFETY: the caller's contract; a device register, read once.
            Counter::Gpt(reg) => timer_core::gpt::extend(unsafe { reg.read_volatile() }, base),
        }
    }
}

/// A board whose user code has no counter of its own, and a system that
/// gave the PD none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoCounter;

impl core::fmt::Display for NoCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "no counter region: on this board the time page converts the GPT's counter, \
             which system.xml must map read-only (region role `counter`)"
        )
    }
}

/// A PD's read-only view of the time page region.
pub struct TimeReader {
    page: TimePageReader,
    irq_count: *const AtomicU64,
    counter: Counter,
}

impl TimeReader {
    /// The reader of the pc's time page, whose counter is the TSC.
    ///
    /// # Safety
    ///
    /// `base` must be page-aligned and readable for [`REGION_BYTES`] bytes
    /// for as long as the reader is used (system.xml maps the region there,
    /// read-only is enough). The timer PD may write it at any time.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn new(base: *const u8) -> Self {
        // SAFETY: the caller's contract.
        unsafe { Self::with_counter(base, Counter::Tsc) }
    }

    /// The reader of this board's time page, for PDs whose source serves
    /// every board: the TSC on x86_64 (`counter` is not needed there), the
    /// GPT's counter register in the read-only mapping of the GPT's page
    /// at `counter` on the i.MX6.
    ///
    /// # Safety
    ///
    /// As for [`new`](Self::new); on the i.MX6 `counter` is the address
    /// of the GPT's page, mapped readable for as long as the reader is
    /// used.
    pub unsafe fn for_board(base: *const u8, counter: Option<usize>) -> Result<Self, NoCounter> {
        #[cfg(target_arch = "x86_64")]
        {
            let _ = counter;
            // SAFETY: the caller's contract.
            Ok(unsafe { Self::new(base) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        match counter {
            // SAFETY: the caller's contract.
            Some(gpt) => Ok(unsafe { Self::with_counter(base, Counter::gpt(gpt)) }),
            None => Err(NoCounter),
        }
    }

    /// The reader of a time page whose conversion applies to `counter`.
    ///
    /// # Safety
    ///
    /// As for [`new`](Self::new), and the counter's contract
    /// ([`Counter::Gpt`]: its register stays mapped and readable).
    pub unsafe fn with_counter(base: *const u8, counter: Counter) -> Self {
        TimeReader {
            // SAFETY: the caller's contract covers the page at `base`.
            page: unsafe { TimePageReader::new(base.cast()) },
            irq_count: base.wrapping_add(IRQ_COUNT_OFFSET).cast(),
            counter,
        }
    }

    fn count(&self, c: &Conversion) -> u64 {
        // SAFETY: `with_counter`'s contract keeps the counter readable.
        unsafe { self.counter.read(c.tsc_base) }
    }

    /// The published conversion, waiting (spinning) while the timer PD has
    /// not published yet or is mid-update.
    #[inline]
    pub fn wait_published(&self) -> Result<Conversion, ReadError> {
        let mut last = ReadError::NotPublished;
        for _ in 0..PUBLISH_SPINS {
            match self.page.read() {
                Ok(c) => return Ok(c),
                Err(e @ ReadError::Corrupt { .. }) => return Err(e),
                Err(e) => last = e,
            }
            spin_loop();
        }
        Err(last)
    }

    /// Monotonic nanoseconds now. A page that stays unusable (the timer PD
    /// never published, died mid-update, or the page is corrupt) leaves a
    /// PD without time, which it cannot run without: that panics, naming
    /// the problem, and the monitor reports the PD.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        match self.wait_published() {
            Ok(c) => c.tsc_to_ns(self.count(&c)),
            Err(e) => panic!("{e}"),
        }
    }

    /// Monotonic nanoseconds now, or `None` while the timer PD has not
    /// published (or is mid-update): for the timer PD's own executor,
    /// which starts before the first publication.
    pub fn try_now_ns(&self) -> Option<u64> {
        self.page.read().ok().map(|c| c.tsc_to_ns(self.count(&c)))
    }

    /// The board's counter now, in its own ticks (the TSC's on x86_64,
    /// the GPT's 3 MHz ones extended to 64 bits on the i.MX6), without
    /// waiting for the time page: for busy-time accounting and seeds,
    /// where nanoseconds are not needed.
    pub fn ticks(&self) -> u64 {
        let base = self.page.read().map_or(0, |c| c.tsc_base);
        // SAFETY: `with_counter`'s contract keeps the counter readable.
        unsafe { self.counter.read(base) }
    }

    /// The timer PD's interrupt count so far.
    pub fn irq_count(&self) -> u64 {
        // SAFETY: `new`'s contract keeps the word mapped and aligned; it is
        // an atomic, so the writer's concurrent stores are fine.
        unsafe { &*self.irq_count }.load(Ordering::Acquire)
    }
}

/// The timer PD's read-write view of the time page region.
pub struct TimeWriter {
    page: TimePageWriter,
    irq_count: *const AtomicU64,
}

impl TimeWriter {
    /// # Safety
    ///
    /// `base` must be page-aligned, readable and writable for
    /// [`REGION_BYTES`] bytes for as long as the writer is used, and no
    /// other writer may exist for the region.
    pub unsafe fn new(base: *mut u8) -> Self {
        TimeWriter {
            // SAFETY: the caller's contract covers the page at `base`.
            page: unsafe { TimePageWriter::new(base.cast_const().cast()) },
            irq_count: base.wrapping_add(IRQ_COUNT_OFFSET).cast_const().cast(),
        }
    }

    /// Publishes the conversion every PD turns TSC readings into time with.
    pub fn publish(&mut self, conversion: &Conversion) {
        self.page.publish(conversion);
    }

    /// Publishes the interrupt count.
    pub fn set_irq_count(&mut self, count: u64) {
        // SAFETY: `new`'s contract keeps the word mapped and aligned.
        unsafe { &*self.irq_count }.store(count, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    #[test]
    fn the_boards_reader_counts_in_the_boards_ticks() {
        let page = Box::new(Page([0; 4096]));
        // SAFETY: the page outlives the reader and is aligned; on the
        // host (x86_64) the counter is the TSC.
        let reader = unsafe { TimeReader::for_board(page.0.as_ptr(), None) }.unwrap();
        let a = reader.ticks();
        let b = reader.ticks();
        assert!(b > a, "the TSC moves on: {a} then {b}");
    }

    #[test]
    fn a_gpt_reader_extends_the_counter_around_the_pages_base() {
        let page = Box::new(Page([0; 4096]));
        let gpt = Box::new(Page([0; 4096]));
        let counter = (gpt.0.as_ptr() as usize + timer_core::gpt::regs::CNT.offset()) as *mut u32;
        // SAFETY: the GPT page stands in for the registers; aligned.
        unsafe { counter.write_volatile(1234) };
        // SAFETY: both pages outlive the reader.
        let reader = unsafe {
            TimeReader::with_counter(page.0.as_ptr(), Counter::gpt(gpt.0.as_ptr() as usize))
        };
        assert_eq!(reader.ticks(), 1234, "unpublished: base 0");
    }

    #[test]
    fn reader_sees_what_the_writer_publishes() {
        let mut page = Box::new(Page([0; 4096]));
        let base = page.0.as_mut_ptr();
        // SAFETY: the page outlives both views and is aligned.
        let (mut writer, reader) = unsafe { (TimeWriter::new(base), TimeReader::new(base)) };
        assert_eq!(reader.irq_count(), 0);
        let conv = Conversion::new(2_000_000_000, 0, 0).unwrap();
        writer.publish(&conv);
        writer.set_irq_count(7);
        assert_eq!(reader.wait_published(), Ok(conv));
        assert_eq!(reader.irq_count(), 7);
        // Time is the TSC through the conversion, and it does not go back.
        let a = reader.now_ns();
        let b = reader.now_ns();
        assert!(b >= a);
        assert!(a >= conv.tsc_to_ns(rdtsc().saturating_sub(1_000_000_000_000)));
        // The count does not disturb the seqlocked page.
        writer.set_irq_count(u64::MAX);
        assert_eq!(reader.wait_published(), Ok(conv));
    }

    #[test]
    fn a_gpt_counter_is_extended_around_the_published_base() {
        let mut page = Box::new(Page([0; 4096]));
        let base = page.0.as_mut_ptr();
        let counter = Box::new(0x0000_0010u32);
        // SAFETY: the page and the counter outlive both views.
        let (mut writer, reader) = unsafe {
            (
                TimeWriter::new(base),
                TimeReader::with_counter(base, Counter::Gpt(&*counter)),
            )
        };
        // 3 MHz; the base is 2^32 + 0x10 - 0x20 ticks: the counter's low
        // half has wrapped since.
        let conv = Conversion::new(3_000_000, 0xffff_fff0, 1_000).unwrap();
        writer.publish(&conv);
        // 0x20 ticks past the base at 3 MHz: 10.67 us, floored.
        assert_eq!(reader.now_ns(), 1_000 + 10_666);
    }

    #[test]
    fn corrupt_page_is_reported_at_once() {
        let mut page = Box::new(Page([0; 4096]));
        page.0[4..8].copy_from_slice(b"JUNK");
        // SAFETY: the page outlives the reader and is aligned.
        let reader = unsafe { TimeReader::new(page.0.as_ptr()) };
        assert!(matches!(
            reader.wait_published(),
            Err(ReadError::Corrupt { .. })
        ));
    }
}
