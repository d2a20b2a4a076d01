//! TSC calibration against the HPET, and conversions between TSC ticks,
//! nanoseconds and HPET ticks.
//!
//! Monotonic time is `Conversion::tsc_to_ns(rdtsc())`: nanoseconds since
//! the TSC was last reset, computed as
//! `ns_base + ((tsc - tsc_base) * mult) >> shift` with a 128-bit product,
//! which cannot overflow for any `u64` TSC value; the sum saturates instead
//! of wrapping (a `u64` TSC itself lasts 100 years at frequencies
//! up to 5.8 GHz). `shift` is the largest value up to 64 that keeps `mult`
//! in a `u64`, and `mult` is rounded up, so it exceeds the exact
//! `1e9 * 2^shift / tsc_hz` by less than one part in `mult`: at most 5.5e-18
//! relative for any frequency up to [`MAX_TSC_HZ`] (100 GHz), 5.5e-19 up to
//! 10 GHz. The result is therefore never below `floor(tsc * 1e9 / tsc_hz)`
//! and, after 100 years of uptime (3.2e18 ns), at most 18 ns above it (2 ns
//! up to 10 GHz). The map `tsc -> ns` is a floor of a linear function with
//! a non-negative slope, hence monotonic.

use core::fmt;

/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;
/// Femtoseconds per nanosecond: the HPET states its period in femtoseconds.
pub const FS_PER_NS: u64 = 1_000_000;
/// The lowest TSC frequency accepted (1 MHz); anything lower is a bad sample.
pub const MIN_TSC_HZ: u64 = 1_000_000;
/// The highest TSC frequency accepted (100 GHz); it bounds the error above.
pub const MAX_TSC_HZ: u64 = 100_000_000_000;
/// The fewest HPET ticks a calibration interval may span. One tick of
/// quantisation over this many is 100 ppm; calibrate over about 10 ms
/// (1,000,000 ticks of QEMU's 10 ns HPET) for 1 ppm.
pub const MIN_CALIBRATION_TICKS: u64 = 10_000;
/// The HPET specification caps the counter period at 100 ns.
pub const MAX_HPET_PERIOD_FS: u32 = 100_000_000;

/// A TSC reading and an HPET main-counter reading taken back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The TSC value.
    pub tsc: u64,
    /// The HPET main counter value.
    pub hpet_ticks: u64,
}

/// Why the calibration samples give no usable TSC frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// The HPET period is zero or above the specification's 100 ns.
    BadHpetPeriod {
        /// The period in femtoseconds, as read from the capabilities register.
        period_fs: u32,
    },
    /// The second sample is not later than the first on both counters.
    NotIncreasing {
        /// The earlier sample.
        first: Sample,
        /// The later sample.
        second: Sample,
    },
    /// The samples span too few HPET ticks for a precise rate.
    TooShort {
        /// The HPET ticks between the samples.
        hpet_ticks: u64,
    },
    /// The resulting frequency is outside [`MIN_TSC_HZ`]..=[`MAX_TSC_HZ`].
    OutOfRange {
        /// The computed frequency.
        tsc_hz: u64,
    },
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CalibrationError::BadHpetPeriod { period_fs } => write!(
                f,
                "HPET counter period {period_fs} fs is outside 1..={MAX_HPET_PERIOD_FS} fs"
            ),
            CalibrationError::NotIncreasing { first, second } => write!(
                f,
                "TSC calibration samples do not increase: tsc {} -> {}, hpet {} -> {}",
                first.tsc, second.tsc, first.hpet_ticks, second.hpet_ticks
            ),
            CalibrationError::TooShort { hpet_ticks } => write!(
                f,
                "TSC calibration spans {hpet_ticks} HPET ticks, fewer than {MIN_CALIBRATION_TICKS}"
            ),
            CalibrationError::OutOfRange { tsc_hz } => write!(
                f,
                "calibrated TSC frequency {tsc_hz} Hz is outside {MIN_TSC_HZ}..={MAX_TSC_HZ} Hz"
            ),
        }
    }
}

/// The measured TSC frequency and the HPET time base it was measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    conversion: Conversion,
    last: Sample,
    hpet_period_fs: u32,
}

impl Calibration {
    /// Derives the TSC frequency from two samples taken `first` then
    /// `second`, rounded to the nearest hertz.
    pub fn from_samples(
        first: Sample,
        second: Sample,
        hpet_period_fs: u32,
    ) -> Result<Self, CalibrationError> {
        if hpet_period_fs == 0 || hpet_period_fs > MAX_HPET_PERIOD_FS {
            return Err(CalibrationError::BadHpetPeriod {
                period_fs: hpet_period_fs,
            });
        }
        if second.tsc <= first.tsc || second.hpet_ticks <= first.hpet_ticks {
            return Err(CalibrationError::NotIncreasing { first, second });
        }
        let hpet_ticks = second.hpet_ticks - first.hpet_ticks;
        if hpet_ticks < MIN_CALIBRATION_TICKS {
            return Err(CalibrationError::TooShort { hpet_ticks });
        }
        let tsc_ticks = u128::from(second.tsc - first.tsc);
        // Elapsed femtoseconds; below 2^96, and tsc_ticks * 1e15 below 2^114.
        let elapsed_fs = u128::from(hpet_ticks) * u128::from(hpet_period_fs);
        let fs_per_s = u128::from(NS_PER_S) * u128::from(FS_PER_NS);
        let hz = (tsc_ticks * fs_per_s + elapsed_fs / 2) / elapsed_fs;
        let tsc_hz = u64::try_from(hz).unwrap_or(u64::MAX);
        let conversion =
            Conversion::new(tsc_hz, 0, 0).map_err(|_| CalibrationError::OutOfRange { tsc_hz })?;
        Ok(Calibration {
            conversion,
            last: second,
            hpet_period_fs,
        })
    }

    /// The measured TSC frequency in hertz.
    pub fn tsc_hz(&self) -> u64 {
        self.conversion.tsc_hz
    }

    /// Cross-checks against the TSC frequency seL4 reports in bootinfo.
    /// seL4 truncates its own measurement to whole MHz, so the bootinfo
    /// value stands for the interval `[mhz, mhz + 1)` MHz; the check passes
    /// when the measured frequency lies within `tolerance_ppm` (of the
    /// measured frequency) of that interval.
    pub fn check(
        &self,
        bootinfo_tsc_mhz: u32,
        tolerance_ppm: u32,
    ) -> Result<(), FrequencyMismatch> {
        let measured = self.tsc_hz();
        let low = u64::from(bootinfo_tsc_mhz) * 1_000_000;
        let high = low + 1_000_000;
        let off_hz = if measured < low {
            low - measured
        } else {
            measured.saturating_sub(high)
        };
        let off_ppm = u128::from(off_hz) * 1_000_000 / u128::from(measured);
        if off_ppm <= u128::from(tolerance_ppm) {
            Ok(())
        } else {
            Err(FrequencyMismatch {
                measured_hz: measured,
                bootinfo_tsc_mhz,
                off_ppm: u64::try_from(off_ppm).unwrap_or(u64::MAX),
                tolerance_ppm,
            })
        }
    }

    /// The TSC-to-nanoseconds conversion with the time origin at TSC zero.
    pub fn conversion(&self) -> Conversion {
        self.conversion
    }

    /// The calibration's second sample, as a [`Reading`]: where
    /// [`wait_for`] measures the HPET's rate against the TSC clock from.
    pub fn anchor(&self) -> Reading {
        Reading {
            ns: self.conversion.tsc_to_ns(self.last.tsc),
            ticks: self.last.hpet_ticks,
        }
    }
}

/// The calibrated TSC frequency disagrees with bootinfo's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrequencyMismatch {
    /// The frequency measured against the HPET.
    pub measured_hz: u64,
    /// The frequency seL4 put in bootinfo, in whole MHz.
    pub bootinfo_tsc_mhz: u32,
    /// How far the measurement lies outside bootinfo's MHz interval.
    pub off_ppm: u64,
    /// The tolerance that was exceeded.
    pub tolerance_ppm: u32,
}

impl fmt::Display for FrequencyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TSC frequency mismatch: measured {} Hz against the HPET, bootinfo says {} MHz; \
             {} ppm apart, tolerance {} ppm",
            self.measured_hz, self.bootinfo_tsc_mhz, self.off_ppm, self.tolerance_ppm
        )
    }
}

/// Why a [`Conversion`] cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrequencyOutOfRange {
    /// The rejected frequency.
    pub tsc_hz: u64,
}

impl fmt::Display for FrequencyOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TSC frequency {} Hz is outside {MIN_TSC_HZ}..={MAX_TSC_HZ} Hz",
            self.tsc_hz
        )
    }
}

/// TSC ticks to nanoseconds as `ns_base + ((tsc - tsc_base) * mult) >> shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conversion {
    /// The TSC value at which the conversion yields `ns_base`.
    pub tsc_base: u64,
    /// Nanoseconds at `tsc_base`.
    pub ns_base: u64,
    /// Nanoseconds per TSC tick, scaled by `2^shift`.
    pub mult: u64,
    /// The binary point of `mult`, at most 64.
    pub shift: u32,
    /// The TSC frequency `mult` was derived from, for readers that want it.
    pub tsc_hz: u64,
}

impl Conversion {
    /// A conversion that [`is_valid`](Self::is_valid) rejects.
    pub const INVALID: Conversion = Conversion {
        tsc_base: 0,
        ns_base: 0,
        mult: 0,
        shift: 0,
        tsc_hz: 0,
    };

    /// The conversion for a TSC running at `tsc_hz` that reads `tsc_base` at
    /// `ns_base` nanoseconds.
    pub fn new(tsc_hz: u64, tsc_base: u64, ns_base: u64) -> Result<Self, FrequencyOutOfRange> {
        if !(MIN_TSC_HZ..=MAX_TSC_HZ).contains(&tsc_hz) {
            return Err(FrequencyOutOfRange { tsc_hz });
        }
        let hz = u128::from(tsc_hz);
        let mut shift = 64;
        loop {
            // Rounding up keeps exact quotients exact (a whole second of
            // ticks is a whole 1e9 ns) instead of one below.
            let mult = (u128::from(NS_PER_S) << shift).div_ceil(hz);
            if let Ok(mult) = u64::try_from(mult) {
                return Ok(Conversion {
                    tsc_base,
                    ns_base,
                    mult,
                    shift,
                    tsc_hz,
                });
            }
            // 1e9 / 1 MHz = 1000 < 2^10, so shift 54 always fits: no underflow.
            shift -= 1;
        }
    }

    /// Whether the fields make sense; a reader of a shared page checks this
    /// before trusting a peer's values.
    pub fn is_valid(&self) -> bool {
        self.mult != 0 && self.shift <= 64
    }

    /// Nanoseconds at TSC value `tsc`; TSC values before `tsc_base` map to
    /// `ns_base`, and the result saturates instead of wrapping.
    #[inline]
    pub fn tsc_to_ns(&self, tsc: u64) -> u64 {
        let delta = u128::from(tsc.saturating_sub(self.tsc_base));
        let scaled = (delta * u128::from(self.mult)) >> self.shift.min(127);
        self.ns_base
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// The first TSC value at which [`tsc_to_ns`](Self::tsc_to_ns) reaches
    /// `ns`: waiting for it never ends early. Saturates at `u64::MAX`.
    pub fn ns_to_tsc(&self, ns: u64) -> u64 {
        if ns <= self.ns_base || self.mult == 0 {
            return self.tsc_base;
        }
        let delta = u128::from(ns - self.ns_base) << self.shift.min(64);
        let ticks = delta.div_ceil(u128::from(self.mult));
        self.tsc_base
            .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
    }
}

/// Deadlines in TSC nanoseconds to HPET counter values at the HPET's
/// nominal period, from one anchor (a TSC clock reading and an HPET
/// counter reading taken together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HpetMap {
    ns_anchor: u64,
    ticks_anchor: u64,
    period_fs: u32,
}

impl HpetMap {
    /// A map in which the HPET counter read `ticks_anchor` at `ns_anchor`.
    pub fn new(ns_anchor: u64, ticks_anchor: u64, period_fs: u32) -> Self {
        HpetMap {
            ns_anchor,
            ticks_anchor,
            period_fs,
        }
    }

    /// The first HPET counter value at or after `deadline_ns`. Deadlines
    /// before the anchor map to the anchor, which is already in the past.
    pub fn ticks_for_deadline(&self, deadline_ns: u64) -> u64 {
        let Some(delta_ns) = deadline_ns.checked_sub(self.ns_anchor) else {
            return self.ticks_anchor;
        };
        let fs = u128::from(delta_ns) * u128::from(FS_PER_NS);
        let ticks = fs.div_ceil(u128::from(self.period_fs.max(1)));
        self.ticks_anchor
            .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
    }
}

/// The TSC clock (nanoseconds) and the HPET counter, read back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub ns: u64,
    pub ticks: u64,
}

/// How the timer PD waits for its earliest deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// On the TSC clock, spinning: the deadline is that close (or past).
    Spin,
    /// For an interrupt at this HPET counter value.
    Arm(u64),
}

/// The shortest stretch of TSC clock over which [`wait_for`] trusts the
/// HPET's rate it measures (the calibration's own span); below it the
/// nominal period is used.
pub const RATE_BASELINE_NS: u64 = 10_000_000;

/// How to wait for `deadline_ns` (TSC clock nanoseconds) at reading `now`:
/// spinning if it is at most `spin_ns` away, else an interrupt at the HPET
/// counter value that the time left takes from `now`, at the rate the
/// HPET counted against the TSC clock since `anchor` (the calibration's
/// reading).
///
/// The TSC's rate is known to its 10 ms calibration, which under TCG on a
/// loaded host is a thousand ppm off: at the nominal period, from the
/// calibration's anchor, the HPET reached a deadline's value tens of
/// milliseconds before the TSC clock after a minute, and the timer PD,
/// above all of its clients, spun out the gap before every deadline and
/// starved them. From `now`, at the rate measured over the whole uptime,
/// the interrupt comes within the readings' skew of the deadline, which
/// the PD spins out.
pub fn wait_for(
    deadline_ns: u64,
    now: Reading,
    anchor: Reading,
    period_fs: u32,
    spin_ns: u64,
) -> Wait {
    let left = deadline_ns.saturating_sub(now.ns);
    if left <= spin_ns {
        return Wait::Spin;
    }
    let span_ns = now.ns.saturating_sub(anchor.ns);
    match now.ticks.checked_sub(anchor.ticks) {
        Some(span_ticks) if span_ns >= RATE_BASELINE_NS && span_ticks > 0 => {
            let ticks = (u128::from(left) * u128::from(span_ticks)).div_ceil(u128::from(span_ns));
            Wait::Arm(
                now.ticks
                    .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX)),
            )
        }
        _ => Wait::Arm(HpetMap::new(now.ns, now.ticks, period_fs).ticks_for_deadline(deadline_ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    const QEMU_PERIOD_FS: u32 = 10_000_000;
    /// 100 years of 365.25 days.
    const HUNDRED_YEARS_NS: u64 = 3_155_760_000_000_000_000;

    /// Samples for a TSC at `tsc_hz` against a 100 MHz HPET over `ms`.
    fn samples(tsc_hz: u64, ms: u64) -> (Sample, Sample) {
        let first = Sample {
            tsc: 123_456_789,
            hpet_ticks: 42_000,
        };
        let second = Sample {
            tsc: first.tsc + tsc_hz / 1000 * ms,
            hpet_ticks: first.hpet_ticks + 100_000 * ms,
        };
        (first, second)
    }

    #[test]
    fn calibrates_a_2_5_ghz_tsc_against_a_100_mhz_hpet() {
        let (a, b) = samples(2_500_000_000, 10);
        let cal = Calibration::from_samples(a, b, QEMU_PERIOD_FS).unwrap();
        assert_eq!(cal.tsc_hz(), 2_500_000_000);
        // One HPET tick of jitter over 10 ms moves the result by 1 ppm at most.
        let jittered = Sample {
            hpet_ticks: b.hpet_ticks + 1,
            ..b
        };
        let cal = Calibration::from_samples(a, jittered, QEMU_PERIOD_FS).unwrap();
        assert!(cal.tsc_hz().abs_diff(2_500_000_000) <= 2_500);
        assert!(cal.tsc_hz() < 2_500_000_000);
    }

    #[test]
    fn calibration_rejects_bad_samples() {
        let (a, b) = samples(2_500_000_000, 10);
        assert_eq!(
            Calibration::from_samples(b, a, QEMU_PERIOD_FS),
            Err(CalibrationError::NotIncreasing {
                first: b,
                second: a
            })
        );
        assert_eq!(
            Calibration::from_samples(a, b, 0),
            Err(CalibrationError::BadHpetPeriod { period_fs: 0 })
        );
        let short = Sample {
            tsc: a.tsc + 1000,
            hpet_ticks: a.hpet_ticks + 50,
        };
        let err = Calibration::from_samples(a, short, QEMU_PERIOD_FS).unwrap_err();
        assert_eq!(err, CalibrationError::TooShort { hpet_ticks: 50 });
        assert!(err.to_string().contains("50 HPET ticks"));
        let frozen_tsc = Sample {
            tsc: a.tsc + 1,
            hpet_ticks: b.hpet_ticks,
        };
        assert_eq!(
            Calibration::from_samples(a, frozen_tsc, QEMU_PERIOD_FS),
            Err(CalibrationError::OutOfRange { tsc_hz: 100 })
        );
    }

    #[test]
    fn bootinfo_cross_check() {
        let (a, b) = samples(2_500_300_000, 10);
        let cal = Calibration::from_samples(a, b, QEMU_PERIOD_FS).unwrap();
        // Truncated to 2500 MHz by seL4: inside the interval, passes at 0 ppm.
        assert_eq!(cal.check(2500, 0), Ok(()));
        // 2501 MHz is 700 kHz above: 279 ppm.
        assert_eq!(cal.check(2501, 300), Ok(()));
        let err = cal.check(2501, 200).unwrap_err();
        assert_eq!(err.off_ppm, 279);
        assert_eq!(
            err.to_string(),
            "TSC frequency mismatch: measured 2500300000 Hz against the HPET, bootinfo says \
             2501 MHz; 279 ppm apart, tolerance 200 ppm"
        );
        // Far off, and the zero that a missing bootinfo field would give.
        assert!(cal.check(2400, 1000).is_err());
        assert_eq!(cal.check(0, 1000).unwrap_err().off_ppm, 999_600);
    }

    /// The exact quotient the mult/shift form approximates.
    fn exact_ns(tsc: u64, hz: u64) -> u128 {
        u128::from(tsc) * u128::from(NS_PER_S) / u128::from(hz)
    }

    #[test]
    fn tsc_to_ns_error_stays_within_the_documented_bound_for_100_years() {
        for hz in [
            MIN_TSC_HZ,
            999_999_937,
            1_000_000_000,
            2_500_000_000,
            3_333_333_333,
            5_000_000_000,
            MAX_TSC_HZ,
        ] {
            let c = Conversion::new(hz, 0, 0).unwrap();
            assert!(c.shift <= 64 && c.mult != 0);
            let tsc_100y =
                u64::try_from(u128::from(HUNDRED_YEARS_NS) * u128::from(hz) / 1_000_000_000)
                    .unwrap_or(u64::MAX);
            for tsc in [0, 1, hz, hz * 3600, tsc_100y / 7, tsc_100y] {
                let got = u128::from(c.tsc_to_ns(tsc));
                let want = exact_ns(tsc, hz);
                let bound = if hz <= 10_000_000_000 { 2 } else { 18 };
                assert!(
                    want <= got && got - want <= bound,
                    "hz {hz} tsc {tsc}: {got} vs {want}"
                );
            }
            // The u64 TSC at 2.5 and 5 GHz covers 100 years without saturating.
            if hz <= 5_000_000_000 {
                assert!(c.tsc_to_ns(tsc_100y) >= HUNDRED_YEARS_NS - 10);
            }
            // Never a wrap-around at the very end of the TSC range.
            assert!(c.tsc_to_ns(u64::MAX) >= c.tsc_to_ns(u64::MAX - 1));
        }
    }

    #[test]
    fn tsc_to_ns_is_monotonic_and_ns_to_tsc_is_the_exact_inverse() {
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let hz = MIN_TSC_HZ + rng.below(MAX_TSC_HZ - MIN_TSC_HZ);
            let base_tsc = rng.below(1 << 40);
            let base_ns = rng.below(1 << 50);
            let c = Conversion::new(hz, base_tsc, base_ns).unwrap();
            let t = base_tsc + rng.below(1 << 62);
            assert!(c.tsc_to_ns(t) <= c.tsc_to_ns(t + 1 + rng.below(1000)));
            // Within 100 years and within what a u64 TSC can count to.
            let span = HUNDRED_YEARS_NS.min(c.tsc_to_ns(u64::MAX / 2) - base_ns);
            let ns = base_ns + rng.below(span);
            let tsc = c.ns_to_tsc(ns);
            assert!(c.tsc_to_ns(tsc) >= ns, "hz {hz}: ns_to_tsc({ns}) is early");
            assert!(
                c.tsc_to_ns(tsc - 1) < ns,
                "hz {hz}: ns_to_tsc({ns}) is not the first"
            );
        }
    }

    #[test]
    fn conversion_edges() {
        let c = Conversion::new(2_500_000_000, 1_000, 5_000).unwrap();
        assert_eq!(c.tsc_to_ns(0), 5_000);
        assert_eq!(c.tsc_to_ns(1_000), 5_000);
        assert_eq!(c.tsc_to_ns(1_000 + 2_500), 6_000);
        assert_eq!(c.ns_to_tsc(0), 1_000);
        assert_eq!(c.ns_to_tsc(6_000), 3_500);
        assert_eq!(c.ns_to_tsc(u64::MAX), u64::MAX);
        assert_eq!(
            Conversion::new(10, 0, 0),
            Err(FrequencyOutOfRange { tsc_hz: 10 })
        );
        assert!(!Conversion::INVALID.is_valid());
        assert!(c.is_valid());
    }

    #[test]
    fn hpet_deadlines_round_up_and_never_fall_before_the_anchor() {
        let (a, b) = samples(2_500_000_000, 10);
        let cal = Calibration::from_samples(a, b, QEMU_PERIOD_FS).unwrap();
        let anchor_ns = cal.conversion().tsc_to_ns(b.tsc);
        let map = HpetMap::new(anchor_ns, b.hpet_ticks, QEMU_PERIOD_FS);
        assert_eq!(map.ticks_for_deadline(anchor_ns), b.hpet_ticks);
        assert_eq!(map.ticks_for_deadline(anchor_ns + 1), b.hpet_ticks + 1);
        assert_eq!(map.ticks_for_deadline(anchor_ns + 10), b.hpet_ticks + 1);
        assert_eq!(map.ticks_for_deadline(anchor_ns + 11), b.hpet_ticks + 2);
        assert_eq!(
            map.ticks_for_deadline(anchor_ns + 1_000_000),
            b.hpet_ticks + 100_000
        );
        assert_eq!(map.ticks_for_deadline(0), b.hpet_ticks);
        assert_eq!(
            HpetMap::new(0, 5, QEMU_PERIOD_FS).ticks_for_deadline(u64::MAX),
            5 + u64::MAX.div_ceil(10)
        );
    }

    /// A TSC clock 1600 ppm slow against the HPET (a calibration on a loaded
    /// TCG host), a minute after the calibration: a deadline 5 ms away is
    /// already behind the HPET at the nominal period from the calibration's
    /// anchor, and 5 ms of TSC clock ahead of it at the measured rate.
    #[test]
    fn the_comparator_follows_the_hpet_rate_measured_since_the_calibration() {
        const SPIN_NS: u64 = 20_000;
        let anchor = Reading {
            ns: 0,
            ticks: 1_000,
        };
        // 60 s of HPET (100 MHz) are 59.904 s of the slow TSC clock.
        let now = Reading {
            ns: 59_904_000_000,
            ticks: 1_000 + 6_000_000_000,
        };
        let deadline = now.ns + 5_000_000;
        let nominal = HpetMap::new(anchor.ns, anchor.ticks, QEMU_PERIOD_FS);
        assert!(nominal.ticks_for_deadline(deadline) < now.ticks);
        // 5 ms of the slow clock are 5.008 ms of HPET, rounded up.
        assert_eq!(
            wait_for(deadline, now, anchor, QEMU_PERIOD_FS, SPIN_NS),
            Wait::Arm(now.ticks + 500_802)
        );
        // Close or past deadlines are spun for, whatever the HPET reads.
        let spin = |d| wait_for(d, now, anchor, QEMU_PERIOD_FS, SPIN_NS);
        assert_eq!(spin(now.ns + SPIN_NS), Wait::Spin);
        assert_eq!(spin(now.ns - 1), Wait::Spin);
        // Too soon after the calibration to measure: the nominal period.
        let early = Reading {
            ns: 5_000_000,
            ticks: 1_000 + 600_000,
        };
        assert_eq!(
            wait_for(early.ns + 1_000_000, early, anchor, QEMU_PERIOD_FS, SPIN_NS),
            Wait::Arm(early.ticks + 100_000)
        );
        // An HPET that went backwards is not measured from.
        let back = Reading {
            ns: 59_904_000_000,
            ticks: 10,
        };
        assert_eq!(
            wait_for(back.ns + 1_000_000, back, anchor, QEMU_PERIOD_FS, SPIN_NS),
            Wait::Arm(10 + 100_000)
        );
    }
}
