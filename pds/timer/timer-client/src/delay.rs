//! embedded-hal's `DelayNs`, both kinds, on the timer.
//!
//! - [`SpinDelay`] (`embedded_hal::delay::DelayNs`) spins on a clock, the
//!   time page's in a PD: no kernel call, but the PD does nothing else
//!   meanwhile. For the microseconds a device wants between two register
//!   accesses, or for start-up code that has no executor.
//! - [`Delay`] (`embedded_hal_async::delay::DelayNs`) is a sleep on the
//!   PD's executor: the task yields, other tasks and ports keep running,
//!   and with timer-client's [`TimerPlatform`](crate::platform::TimerPlatform)
//!   the wake-up is a Timer request to the timer PD. What a driver waiting
//!   milliseconds (a PHY reset, a USB port reset) should use.
//!
//! Both end at or after the requested time, never before.

use core::hint::spin_loop;
use core::time::Duration;

use dingo_rt::executor::{Executor, Platform};

use crate::clock::TimeReader;

/// A blocking delay that spins until `clock` (monotonic ns) has moved on
/// by the requested time.
pub struct SpinDelay<C: FnMut() -> u64> {
    clock: C,
}

impl<C: FnMut() -> u64> SpinDelay<C> {
    pub fn new(clock: C) -> Self {
        SpinDelay { clock }
    }
}

/// A spinning delay on the time page.
pub fn spin_delay(time: &TimeReader) -> SpinDelay<impl FnMut() -> u64 + '_> {
    SpinDelay::new(move || time.now_ns())
}

impl<C: FnMut() -> u64> embedded_hal::delay::DelayNs for SpinDelay<C> {
    fn delay_ns(&mut self, ns: u32) {
        let end = (self.clock)().saturating_add(u64::from(ns));
        while (self.clock)() < end {
            spin_loop();
        }
    }
}

/// An async delay: a sleep on the executor `ex`.
pub struct Delay<'x, 'a, P: Platform, const N: usize> {
    ex: &'x Executor<'a, P, N>,
}

impl<'x, 'a, P: Platform, const N: usize> Delay<'x, 'a, P, N> {
    pub fn new(ex: &'x Executor<'a, P, N>) -> Self {
        Delay { ex }
    }
}

impl<P: Platform, const N: usize> embedded_hal_async::delay::DelayNs for Delay<'_, '_, P, N> {
    async fn delay_ns(&mut self, ns: u32) {
        self.ex.sleep(Duration::from_nanos(ns.into())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use embedded_hal::delay::DelayNs;

    #[test]
    fn spinning_ends_at_or_after_the_time_asked_for() {
        // A clock that moves 300 ns per reading.
        let now = Cell::new(1_000u64);
        let reads = Cell::new(0u32);
        let mut delay = SpinDelay::new(|| {
            reads.set(reads.get() + 1);
            now.set(now.get() + 300);
            now.get()
        });
        delay.delay_ns(1_000);
        assert!(now.get() >= 1_300 + 1_000, "ended at {}", now.get());
        assert_eq!(reads.get(), 5, "start, then 4 readings to pass 1 us");
        let before = now.get();
        delay.delay_us(2);
        assert!(now.get() >= before + 300 + 2_000);
        // Zero waits for nothing beyond the first reading's check.
        reads.set(0);
        delay.delay_ns(0);
        assert_eq!(reads.get(), 2);
    }
}
