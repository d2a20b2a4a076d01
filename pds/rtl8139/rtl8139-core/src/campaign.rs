//! The fault campaign's schedule (the PD's `campaign` param): which fault
//! each of the driver's instances gets, and when. Faults are numbered
//! 1..=N over the whole campaign, the four classes in turn; a fault that
//! the driver survives by itself (noise from the device, which its
//! validation notices and recovers from) is followed by the next fault in
//! the same instance, every other one ends the instance, and the next
//! instance takes the next fault. The schedule is a pure function of the
//! fault number, so a fresh instance (its memory zeroed) knows where the
//! campaign stands from its incarnation alone.

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A write through a wild pointer.
    Crash,
    /// An endless loop in the handler: only the monitor's budget check
    /// ends it.
    Hang,
    /// A message the protocol's state forbids (enableComplete while
    /// enabled): the PD's own observer refuses it, fatally.
    Violation,
    /// Garbage from the device for one event: reads return what
    /// [`Garbage`] says.
    Garbage(Garbage),
}

/// What the device returns during a [`Class::Garbage`] event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// Every register reads all ones, as from a device gone from the bus:
    /// the driver sees its status read 0xffff, and fails so that the
    /// monitor restarts it (a fresh instance probes the device again).
    AllOnes,
    /// Every register reads noise from this seed: the driver's checks
    /// (impossible status bits, a write offset outside the ring) notice
    /// it, and it recovers by itself.
    Noise { seed: u32 },
}

impl Class {
    /// Whether the driver's instance ends with this fault.
    pub fn ends_instance(self) -> bool {
        !matches!(self, Class::Garbage(Garbage::Noise { .. }))
    }

    pub fn describe(self) -> &'static str {
        match self {
            Class::Crash => "a wild write",
            Class::Hang => "spinning in the handler",
            Class::Violation => "enableComplete while enabled",
            Class::Garbage(Garbage::AllOnes) => "garbage from the device (all ones)",
            Class::Garbage(Garbage::Noise { .. }) => "garbage from the device (noise)",
        }
    }
}

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

/// Frames the driver receives (since its start or its previous fault)
/// before fault `k`: 8 to 64, varying from fault to fault.
pub fn frames_before(k: u64) -> u64 {
    8 + k * 37 % 57
}

/// The first fault of the driver's `incarnation`-th instance in a campaign
/// of `faults`, or None once the campaign is over.
pub fn first_fault(incarnation: u64, faults: u64) -> Option<u64> {
    let mut ended = 0;
    for k in 1..=faults {
        if ended + 1 == incarnation {
            return Some(k);
        }
        if fault(k).ends_instance() {
            ended += 1;
        }
    }
    None
}

/// The instances a campaign of `faults` ends: the restarts it causes.
pub fn instances_ended(faults: u64) -> u64 {
    (1..=faults).filter(|&k| fault(k).ends_instance()).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(first_fault(1, 100), Some(1));
        assert_eq!(first_fault(7, 100), Some(7));
        assert_eq!(first_fault(8, 100), Some(8));
        assert_eq!(first_fault(9, 100), Some(10));
        assert_eq!(instances_ended(100), 88);
        assert_eq!(instances_ended(1000), 875);
        // The instance after the last one ended runs without faults.
        assert_eq!(first_fault(89, 100), None);
        assert_eq!(first_fault(88, 100), Some(100));
        assert_eq!(first_fault(1, 0), None);
    }

    #[test]
    fn fault_spacing_varies_within_bounds() {
        let gaps: Vec<u64> = (1..=1000).map(frames_before).collect();
        assert!(gaps.iter().all(|g| (8..=64).contains(g)));
        assert!(gaps.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn no_noise_seed_of_a_campaign_starts_with_a_gone_status() {
        // The status register is the first read of an event; all ones
        // there would end the instance, which the schedule assumes noise
        // never does.
        use hwio::Registers;
        use hwio::garbage::{Pattern, Select};
        let plan = hwio::Garbage::new();
        let mut bus = hwio::Corrupting::new(hwio::fake::FakeBus::new("nic", 0x100), &plan);
        for k in 1..=1000 {
            if let Class::Garbage(Garbage::Noise { seed }) = fault(k) {
                plan.arm(Pattern::Noise { seed }, Select::All);
                assert_ne!(bus.get(crate::regs::ISR), 0xffff, "fault {k}");
                plan.disarm();
            }
        }
    }
}
