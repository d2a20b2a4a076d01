//! The schedule checker: what the controller would walk, compared with
//! what the driver believes, in debug builds after every change.
//!
//! It checks that no list has a cycle; that each list holds exactly the
//! driver's EDs of its kind, in order, except EDs being unlinked (which
//! may still be reachable or already gone); that every ED's TD queue runs
//! from its head to its tail placeholder through TDs of that endpoint
//! (a suffix of the driver's queue: the controller may have retired the
//! first ones already) and that the tail is the endpoint's placeholder.

use core::fmt;

use hwio::Bus;
use usb_core::kind;

use crate::desc::{EdFlags, POINTER_MASK};
use crate::hcd::{MAX_ENDPOINTS, Ohci, POOL, Phase, Slot};
use crate::regs::{HC_BULK_HEAD_ED, HC_CONTROL_HEAD_ED};
use hwio::LocalRegisterCopy;

/// A schedule that the controller must not be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A list or queue visits a descriptor twice.
    Cycle { list: &'static str, at: u32 },
    /// A pointer that names no descriptor of the pool, or the wrong kind.
    BadPointer { list: &'static str, at: u32 },
    /// A list lacks an ED the driver has on it, or has them out of order.
    Unreachable { list: &'static str, ep: u16 },
    /// An ED is on a list it does not belong to.
    Stray { list: &'static str, at: u32 },
    /// An ED's tail is not its placeholder TD.
    Tail { ep: u16 },
    /// An ED's TD queue is not a suffix of the driver's queue.
    Queue { ep: u16 },
    /// An ED that the driver does not skip has its skip bit set.
    Skipped { ep: u16 },
    /// The descriptor and transfer counts kept as they change differ from
    /// a walk of the pool and the transfer table.
    Counts,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::Cycle { list, at } => write!(f, "{list}: cycle at {at:#x}"),
            Violation::BadPointer { list, at } => {
                write!(f, "{list}: {at:#x} is not a descriptor of the right kind")
            }
            Violation::Unreachable { list, ep } => {
                write!(f, "{list}: endpoint {ep} is not where the driver put it")
            }
            Violation::Stray { list, at } => write!(f, "{list}: ED {at:#x} does not belong here"),
            Violation::Tail { ep } => write!(f, "endpoint {ep}: tail is not its placeholder TD"),
            Violation::Queue { ep } => {
                write!(f, "endpoint {ep}: TD queue differs from the driver's")
            }
            Violation::Skipped { ep } => write!(f, "endpoint {ep}: skipped without a reason"),
            Violation::Counts => f.write_str(
                "descriptor or transfer counts differ from the pool and the transfer table",
            ),
        }
    }
}

/// Whether the controller retired a TD: its condition code is no longer
/// NotAccessed (the driver queues every TD with 0xF there).
fn retired(td: &crate::desc::Td) -> bool {
    LocalRegisterCopy::<u32, crate::desc::TdFlags::Register>::new(td.flags)
        .read(crate::desc::TdFlags::CC)
        < 0xe
}

impl<B: Bus> Ohci<B> {
    /// Checks the whole schedule (see the module doc).
    pub fn check_schedule(&mut self) -> Result<(), Violation> {
        let control = self.bus_get(HC_CONTROL_HEAD_ED) & POINTER_MASK;
        let bulk = self.bus_get(HC_BULK_HEAD_ED) & POINTER_MASK;
        let control_list = self.control.clone();
        let bulk_list = self.bulk.clone();
        self.check_list("control list", control, &control_list, kind::CONTROL)?;
        self.check_list("bulk list", bulk, &bulk_list, kind::BULK)?;
        self.check_periodic()?;
        if crate::hcd::SlotCounts::of(&self.slots) != self.held
            || self.xfers.iter().flatten().count() != self.usage().transfers
        {
            return Err(Violation::Counts);
        }
        for i in 0..MAX_ENDPOINTS {
            self.check_queue_settled(i)?;
        }
        Ok(())
    }

    /// The controller runs while the checker looks: a TD it retires in
    /// between moves the ED's head and rewrites the TD's next pointer
    /// (into its done list). A queue that looks wrong is looked at again
    /// while the head keeps moving; a real fault stays put.
    fn check_queue_settled(&self, i: usize) -> Result<(), Violation> {
        let mut last = Ok(());
        for _ in 0..8 {
            let Some(e) = self.eps[i] else { return Ok(()) };
            let before = self.read_ed(e.ed).head;
            last = self.check_queue(i);
            if last.is_ok() || self.read_ed(e.ed).head == before {
                return last;
            }
        }
        last
    }

    fn check_list(
        &self,
        list: &'static str,
        head: u32,
        expected: &[u8],
        k: u8,
    ) -> Result<(), Violation> {
        let mut seen = [false; POOL];
        let mut p = head;
        let mut want = expected.iter().peekable();
        while p != 0 {
            let s = self
                .slot_of(p)
                .ok_or(Violation::BadPointer { list, at: p })?;
            if core::mem::replace(&mut seen[usize::from(s)], true) {
                return Err(Violation::Cycle { list, at: p });
            }
            let Slot::Ed { ep } = self.slots[usize::from(s)] else {
                return Err(Violation::BadPointer { list, at: p });
            };
            let e = self.eps[usize::from(ep)].ok_or(Violation::Stray { list, at: p })?;
            if e.spec.kind != k {
                return Err(Violation::Stray { list, at: p });
            }
            if want.peek() == Some(&&ep) {
                want.next();
            } else if !matches!(e.phase, Phase::Unlinking { close: true, .. }) {
                return Err(Violation::Unreachable { list, ep: e.handle });
            }
            p = self.read_ed(s).next & POINTER_MASK;
        }
        if let Some(&&ep) = want.peek() {
            let handle = self.eps[usize::from(ep)].map_or(0, |e| e.handle);
            return Err(Violation::Unreachable { list, ep: handle });
        }
        Ok(())
    }

    fn check_periodic(&self) -> Result<(), Violation> {
        let list = "periodic list";
        for slot in 0..32 {
            let mut seen = [false; POOL];
            let mut p = self.slot_paddr(self.nodes[slot + 31]);
            let mut level = 32u32;
            let mut nodes_seen = 0;
            while p != 0 {
                let s = self
                    .slot_of(p)
                    .ok_or(Violation::BadPointer { list, at: p })?;
                if core::mem::replace(&mut seen[usize::from(s)], true) {
                    return Err(Violation::Cycle { list, at: p });
                }
                match self.slots[usize::from(s)] {
                    Slot::Node => {
                        let expect = self.nodes[(level as usize - 1) + slot % level as usize];
                        if s != expect {
                            return Err(Violation::BadPointer { list, at: p });
                        }
                        nodes_seen += 1;
                        level /= 2;
                    }
                    Slot::Ed { ep } => {
                        let e =
                            self.eps[usize::from(ep)].ok_or(Violation::Stray { list, at: p })?;
                        if e.spec.kind != kind::INTERRUPT {
                            return Err(Violation::Stray { list, at: p });
                        }
                    }
                    _ => return Err(Violation::BadPointer { list, at: p }),
                }
                p = self.read_ed(s).next & POINTER_MASK;
            }
            if nodes_seen != 6 {
                return Err(Violation::BadPointer { list, at: 0 });
            }
        }
        // Every interrupt ED that is not being closed hangs under its node.
        for e in self.eps.iter().flatten() {
            if e.spec.kind != kind::INTERRUPT
                || matches!(e.phase, Phase::Unlinking { close: true, .. })
            {
                continue;
            }
            let mut p = self.read_ed(self.nodes[usize::from(e.node)]).next & POINTER_MASK;
            let target = self.slot_paddr(e.ed);
            let mut found = false;
            for _ in 0..=MAX_ENDPOINTS {
                if p == target {
                    found = true;
                    break;
                }
                match self.slot_of(p) {
                    Some(s) if matches!(self.slots[usize::from(s)], Slot::Ed { .. }) => {
                        p = self.read_ed(s).next & POINTER_MASK;
                    }
                    _ => break,
                }
            }
            if !found {
                return Err(Violation::Unreachable { list, ep: e.handle });
            }
        }
        Ok(())
    }

    fn check_queue(&self, i: usize) -> Result<(), Violation> {
        let Some(e) = self.eps[i] else { return Ok(()) };
        let ed = self.read_ed(e.ed);
        let skipped = LocalRegisterCopy::<u32, EdFlags::Register>::new(ed.flags).is_set(EdFlags::K);
        if skipped && e.phase == Phase::Active {
            return Err(Violation::Skipped { ep: e.handle });
        }
        if ed.tail & POINTER_MASK != self.slot_paddr(e.placeholder) {
            return Err(Violation::Tail { ep: e.handle });
        }
        if !matches!(self.slots[usize::from(e.placeholder)], Slot::Placeholder { ep } if usize::from(ep) == i)
        {
            return Err(Violation::Tail { ep: e.handle });
        }
        // Walk the hardware queue; it must be the tail end of the driver's.
        let mut driver = [0u16; POOL];
        let mut n = 0;
        let mut s = e.first;
        while s != crate::hcd::none() {
            if n == POOL {
                return Err(Violation::Cycle {
                    list: "TD queue",
                    at: self.slot_paddr(s),
                });
            }
            driver[n] = s;
            n += 1;
            s = match self.slots[usize::from(s)] {
                Slot::Td { next, .. } => next,
                _ => return Err(Violation::Queue { ep: e.handle }),
            };
        }
        let head = match self.slot_of(ed.head & POINTER_MASK) {
            Some(s) => s,
            None => return Err(Violation::Queue { ep: e.handle }),
        };
        let start = if head == e.placeholder {
            n
        } else {
            match driver[..n].iter().position(|&d| d == head) {
                Some(k) => k,
                None => return Err(Violation::Queue { ep: e.handle }),
            }
        };
        // The TDs the controller passed must be retired (their condition
        // code set); the driver takes them from the done queue later.
        if driver[..start].iter().any(|&d| !retired(&self.read_td(d))) {
            return Err(Violation::Queue { ep: e.handle });
        }
        // From the head on, each TD not yet retired links to the driver's
        // next one (a retired TD's link belongs to the done list now).
        for (k, &d) in driver[start..n].iter().enumerate() {
            let td = self.read_td(d);
            if retired(&td) {
                continue;
            }
            let want = match driver.get(start + k + 1).filter(|_| start + k + 1 < n) {
                Some(&next) => self.slot_paddr(next),
                None => self.slot_paddr(e.placeholder),
            };
            if td.next & POINTER_MASK != want {
                return Err(Violation::Queue { ep: e.handle });
            }
        }
        Ok(())
    }
}
