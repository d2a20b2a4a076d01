//! The fault campaign's schedule (a driver PD's `campaign` param), shared
//! by the drivers that inject faults into themselves (rtl8139,
//! usb-storage): which fault each of the driver's instances gets, and
//! when. Faults are numbered 1..=N over the whole campaign, the four
//! classes in turn; a fault that the driver survives by itself (which ones
//! it does is the driver's to say: the `ends` functions below) is followed
//! by the next fault in the same instance, every other one ends the
//! instance, and the next instance takes the next fault. The schedule is a
//! pure function of the fault number, so a fresh instance (its memory
//! zeroed) knows where the campaign stands from its incarnation alone.
//! Each driver counts its own events (frames received, commands done)
//! between faults.
#![no_std]

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A write through a wild pointer.
    Crash,
    /// An endless loop in the handler: only the monitor's budget check
    /// ends it.
    Hang,
    /// A message the protocol's state forbids: the PD's own observer
    /// refuses it, fatally.
    Violation,
    /// Garbage from the device for one event, of the kind [`Garbage`] says.
    Garbage(Garbage),
}

/// The garbage of a [`Class::Garbage`] fault: what the driver reads from
/// the device is replaced by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// All ones, as from a device gone from the bus.
    AllOnes,
    /// Noise from this seed.
    Noise { seed: u32 },
}

/// Which faults end a driver's instance (it fails and is restarted) rather
/// than being survived by the driver itself.
pub type Ends = fn(Class) -> bool;

/// Fault `k` (1-based) of a campaign.
pub fn fault(k: u64) -> Class {
    match (k - 1) % 4 {
        0 => Class::Crash,
        1 => Class::Hang,
        2 => Class::Violation,
        // The garbage faults alternate between the two kinds.
        _ if ((k - 1) / 4).is_multiple_of(2) => Class::Garbage(Garbage::AllOnes),
        _ => Class::Garbage(Garbage::Noise {
            seed: (k as u32).wrapping_mul(0x9e37_79b9),
        }),
    }
}

/// The driver's events (since its start or its previous fault) before
/// fault `k`: 8 to 64, varying from fault to fault.
pub fn events_before(k: u64) -> u64 {
    8 + k * 37 % 57
}

/// The first fault of the driver's `incarnation`-th instance in a campaign
/// of `faults`, or None once the campaign is over.
pub fn first_fault(incarnation: u64, faults: u64, ends: Ends) -> Option<u64> {
    let mut ended = 0;
    for k in 1..=faults {
        if ended + 1 == incarnation {
            return Some(k);
        }
        if ends(fault(k)) {
            ended += 1;
        }
    }
    None
}

/// The instances a campaign of `faults` ends: the restarts it causes.
pub fn instances_ended(faults: u64, ends: Ends) -> u64 {
    (1..=faults).filter(|&k| ends(fault(k))).count() as u64
}

/// Whether any fault the instance starting at fault `first` gets (up to
/// the first that ends it) is garbage: a driver may build its device
/// access for injection only then.
pub fn instance_reads_garbage(first: u64, faults: u64, ends: Ends) -> bool {
    for k in first..=faults {
        let class = fault(k);
        if matches!(class, Class::Garbage(_)) {
            return true;
        }
        if ends(class) {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// rtl8139's: noise is survived, everything else ends the instance.
    fn noise_survived(c: Class) -> bool {
        !matches!(c, Class::Garbage(Garbage::Noise { .. }))
    }

    /// usb-storage's: every garbage fault is survived.
    fn garbage_survived(c: Class) -> bool {
        !matches!(c, Class::Garbage(_))
    }

    #[test]
    fn the_classes_take_turns_and_garbage_alternates() {
        let classes: Vec<Class> = (1..=8).map(fault).collect();
        assert_eq!(classes[0], Class::Crash);
        assert_eq!(classes[1], Class::Hang);
        assert_eq!(classes[2], Class::Violation);
        assert_eq!(classes[3], Class::Garbage(Garbage::AllOnes));
        assert_eq!(classes[4], Class::Crash);
        assert!(matches!(classes[7], Class::Garbage(Garbage::Noise { .. })));
        let per = |f: fn(&Class) -> bool| (1..=1000).map(fault).filter(f).count();
        assert_eq!(per(|c| *c == Class::Crash), 250);
        assert_eq!(per(|c| matches!(c, Class::Garbage(_))), 250);
        assert_eq!(per(|c| *c == Class::Garbage(Garbage::AllOnes)), 125);
    }

    #[test]
    fn each_instance_starts_where_the_last_one_ended() {
        // Faults 1-7 end instances 1-7; fault 8 (noise) does not, so
        // instance 8 takes faults 8 and 9.
        let ends: Ends = noise_survived;
        assert_eq!(first_fault(1, 100, ends), Some(1));
        assert_eq!(first_fault(7, 100, ends), Some(7));
        assert_eq!(first_fault(8, 100, ends), Some(8));
        assert_eq!(first_fault(9, 100, ends), Some(10));
        assert_eq!(instances_ended(100, ends), 88);
        assert_eq!(instances_ended(1000, ends), 875);
        // The instance after the last one ended runs without faults.
        assert_eq!(first_fault(89, 100, ends), None);
        assert_eq!(first_fault(88, 100, ends), Some(100));
        assert_eq!(first_fault(1, 0, ends), None);
    }

    #[test]
    fn a_driver_that_survives_all_garbage_gets_two_faults_in_one_instance() {
        let ends: Ends = garbage_survived;
        // Instance 3 takes the violation (3), which ends it; instance 4
        // takes garbage (4) and the next crash (5).
        assert_eq!(first_fault(3, 8, ends), Some(3));
        assert_eq!(first_fault(4, 8, ends), Some(4));
        assert_eq!(first_fault(5, 8, ends), Some(6));
        assert_eq!(instances_ended(4, ends), 3);
        assert_eq!(instances_ended(1000, ends), 750);
        assert!(instance_reads_garbage(4, 8, ends));
        assert!(!instance_reads_garbage(1, 8, ends));
        assert!(!instance_reads_garbage(6, 8, ends), "6 and 7 end theirs");
        assert!(instance_reads_garbage(8, 8, ends));
    }

    #[test]
    fn fault_spacing_varies_within_bounds() {
        let gaps: Vec<u64> = (1..=1000).map(events_before).collect();
        assert!(gaps.iter().all(|g| (8..=64).contains(g)));
        assert!(gaps.windows(2).any(|w| w[0] != w[1]));
    }
}
