//! The fault campaign as rtl8139 takes it: the shared schedule
//! (kit/fault-campaign), counted in frames received, and which faults end
//! the driver's instance here: all but noise from the device, which its
//! validation notices and recovers from.

pub use fault_campaign::{Class, Garbage, events_before as frames_before, fault};

/// How rtl8139 meets each class.
pub trait Effect {
    /// Whether the driver's instance ends with this fault.
    fn ends_instance(self) -> bool;
    fn describe(self) -> &'static str;
}

impl Effect for Class {
    fn ends_instance(self) -> bool {
        !matches!(self, Class::Garbage(Garbage::Noise { .. }))
    }

    /// For [`Class::Garbage`]: one interrupt's worth of register reads.
    /// All ones is a device gone from the bus (the driver sees its status
    /// read 0xffff and fails, so that the monitor restarts it); noise is
    /// noticed by its checks (impossible status bits, a write offset
    /// outside the ring), and it recovers by itself.
    fn describe(self) -> &'static str {
        match self {
            Class::Crash => "a wild write",
            Class::Hang => "spinning in the handler",
            Class::Violation => "enableComplete while enabled",
            Class::Garbage(Garbage::AllOnes) => "garbage from the device (all ones)",
            Class::Garbage(Garbage::Noise { .. }) => "garbage from the device (noise)",
        }
    }
}

fn ends(c: Class) -> bool {
    c.ends_instance()
}

/// The first fault of the driver's `incarnation`-th instance in a campaign
/// of `faults`, or None once the campaign is over.
pub fn first_fault(incarnation: u64, faults: u64) -> Option<u64> {
    fault_campaign::first_fault(incarnation, faults, ends)
}

/// The instances a campaign of `faults` ends: the restarts it causes.
pub fn instances_ended(faults: u64) -> u64 {
    fault_campaign::instances_ended(faults, ends)
}

/// Whether the instance whose first fault is `first` reads garbage.
pub fn instance_reads_garbage(first: u64, faults: u64) -> bool {
    fault_campaign::instance_reads_garbage(first, faults, ends)
}

#[cfg(test)]
mod tests {
    use super::*;

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
