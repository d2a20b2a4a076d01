//! What the monitor does when a PD fails, and how it notices a PD that
//! hangs.
//!
//! # Failures
//!
//! A PD fails when it faults (the kernel sends the fault to the monitor;
//! a protocol violation under the fatal policy ends in a panic, a fault
//! too) or overruns its handler budget. The monitor then, in order:
//!
//! 1. stops it (suspends its thread);
//! 2. quiesces its devices: a protected call to the pci PD turns bus
//!    mastering off for each PCI function the PD drives, so no DMA lands
//!    in memory about to be zeroed and handed to a new instance;
//! 3. applies the PD's restart policy: without one the PD stays stopped;
//!    with one it counts the failure, gives up (and says so) once the
//!    policy's limit of failures within its window is reached, and
//!    otherwise restarts it after a backoff that doubles with each
//!    failure in the window, up to the policy's maximum.
//!
//! A restart deletes everything of the old instance that came from the
//! PD's pool (TCB, CSpace, address space, image, stack), zeroes the
//! regions only it maps, builds it again from the plan's pristine image,
//! acknowledges its IRQs (one the old instance never acknowledged would
//! stay masked), tells it its incarnation on its recovery page and starts
//! it. Shared regions, its notification and endpoint and its IRQ handlers
//! stay, so its peers' caps stay valid; its ports' session handshake
//! (dingo-rt) does the rest.
//!
//! # Bounded handler time
//!
//! seL4 5.0.0 without MCS has no budgets: a PD that loops in a handler
//! keeps its core (below the priorities above it) for ever. The PD's
//! runtime counts on its recovery page: one more when it starts handling
//! an event, one more when it goes back to wait, so the count is odd while
//! a handler runs. The monitor, at the highest priority, looks at the
//! count of every budgeted PD on each tick of its own clock (HPET timer 1,
//! every half of the smallest budget, at most 10 ms): an odd count seen
//! unchanged for the PD's budget means one event has taken longer than
//! the budget. The time is measured from the first tick that saw the
//! count, which is at most one period after the handler started, so an
//! overrun is found within the budget plus two periods, at most twice the
//! budget, and a handler within its budget is never taken for one. The
//! start-up, up to the first wait, gets [`STARTUP_BUDGETS`] budgets. It is
//! wall time: a PD preempted by higher priorities meanwhile is charged for
//! it, so budgets must allow for them.

use crate::error::{Context, Setup};
use crate::fault;
use crate::heap;
use crate::resources::{ROOT_CNODE, Resources};
use crate::system::System;
use crate::vspace::VSpace;
use alloc::vec::Vec;
use boot_plan::Plan;
use boot_plan::layout::{cspace, monitor_call, recovery};
use sel4::MessageInfo;
use sel4::cap::{Rights, Slot};
use sel4::syscall::Received;
use sel4::{WORD_BITS, debug_println};

/// A PD's start-up (up to its first wait: progress count 1) is one event
/// too, but it does more than a handler (a driver resets its device and
/// asks the pci PD for its function): it gets this many budgets.
const STARTUP_BUDGETS: u64 = 10;

/// Where a PD stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Failed; restarted at `at` (TSC).
    Down {
        at: u64,
    },
    /// Failed without a policy, or given up on: stays stopped.
    Stopped,
}

struct Watch {
    state: State,
    incarnation: u64,
    /// Failures within the policy's window (TSC), oldest first.
    failures: Vec<u64>,
    failed_at: u64,
    /// The progress count last seen, and when it was first seen.
    seen: u64,
    seen_at: u64,
}

/// Why a PD failed (reported when it happened).
#[derive(Clone, Copy)]
enum Failure {
    Fault,
    Overrun,
}

pub struct Supervisor<'p, 'a> {
    plan: &'p Plan<'a>,
    watch: Vec<Watch>,
    /// Badged endpoint caps the monitor calls servers with: (server, cap).
    servers: Vec<(u32, u64)>,
    tsc_per_ms: u64,
    tick: Option<Clock>,
}

/// The monitor's clock, where the board has one.
#[cfg(target_arch = "x86_64")]
pub type Clock = crate::tick::Tick;
/// No clock on this board: no budgets, no backoff (system-builder refuses
/// both).
#[cfg(not(target_arch = "x86_64"))]
pub enum Clock {}

#[cfg(not(target_arch = "x86_64"))]
impl Clock {
    fn ticked(&mut self) -> Setup<()> {
        match *self {}
    }
}

/// The monitor's time: the TSC where there is one. On a board without it
/// (32-bit ARM) time stands still: no budgets or backoff are planned
/// there, and every failure counts towards the limit.
fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    return hwio::tsc::rdtsc();
    #[cfg(not(target_arch = "x86_64"))]
    0
}

impl<'p, 'a> Supervisor<'p, 'a> {
    pub fn new(
        plan: &'p Plan<'a>,
        system: &System,
        res: &mut Resources,
        tick: Option<Clock>,
        tsc_mhz: u64,
    ) -> Setup<Self> {
        let mut servers: Vec<(u32, u64)> = Vec::new();
        for q in plan.pds.iter().flat_map(|p| &p.recovery.quiesce) {
            if servers.iter().any(|(s, _)| *s == q.server) {
                continue;
            }
            let Some(ep) = system.pds[q.server as usize].kept.ep else {
                // The plan names a server that serves no calls: the
                // quiesce is reported as impossible when it is needed.
                continue;
            };
            let cap = res.slots(1)?;
            ROOT_CNODE
                .mint(
                    cap,
                    WORD_BITS,
                    Slot::new(ROOT_CNODE, ep, WORD_BITS),
                    Rights::WRITE.union(Rights::GRANT),
                    cspace::BADGE_PPC | u64::from(cspace::MONITOR_CALLER),
                )
                .ctx("mint the monitor's cap to a server")?;
            servers.push((q.server, cap));
        }
        let watch = plan
            .pds
            .iter()
            .map(|p| Watch {
                state: State::Running,
                incarnation: 1,
                failures: Vec::with_capacity(
                    p.recovery.restart.map_or(0, |r| r.limit.min(64) as usize),
                ),
                failed_at: 0,
                seen: 0,
                seen_at: 0,
            })
            .collect();
        Ok(Supervisor {
            plan,
            watch,
            servers,
            tsc_per_ms: (tsc_mhz * 1000).max(1),
            tick,
        })
    }

    /// A fault message from PD `i`.
    pub fn fault(
        &mut self,
        system: &mut System,
        i: usize,
        msg: &Received,
        own: &mut VSpace,
        res: &mut Resources,
    ) {
        if self.watch[i].state != State::Running {
            // A stale message of an instance already stopped.
            return;
        }
        fault::report(&system.pds[i], msg);
        self.fail(system, i, Failure::Fault, own, res);
    }

    /// A tick: budgets are checked, restarts whose backoff is over done.
    pub fn tick(&mut self, system: &mut System, own: &mut VSpace, res: &mut Resources) {
        if let Some(t) = &mut self.tick
            && let Err(e) = t.ticked()
        {
            debug_println!("monitor: the tick: {e}");
        }
        let now = rdtsc();
        for i in 0..self.watch.len() {
            match self.watch[i].state {
                State::Running => {
                    let Some(budget_ms) = self.plan.pds[i].recovery.budget_ms else {
                        continue;
                    };
                    let count = system.pds[i].recovery_word(recovery::PROGRESS);
                    let w = &mut self.watch[i];
                    if count & 1 == 0 || count != w.seen {
                        w.seen = count;
                        w.seen_at = now;
                        continue;
                    }
                    let busy_ms = (now - w.seen_at) / self.tsc_per_ms;
                    let (limit, what) = if count == 1 {
                        (u64::from(budget_ms) * STARTUP_BUDGETS, "its start-up")
                    } else {
                        (u64::from(budget_ms), "one event")
                    };
                    if busy_ms >= limit {
                        debug_println!(
                            "monitor: OVERRUN in PD '{}': {what} has taken at least {busy_ms} ms, its handler budget being {budget_ms} ms (progress count {count}) at tsc {now}",
                            system.pds[i].name
                        );
                        self.fail(system, i, Failure::Overrun, own, res);
                    }
                }
                State::Down { at } if now >= at => self.restart(system, i, own, res),
                State::Down { .. } | State::Stopped => {}
            }
        }
    }

    /// Steps 1 to 3 of the module doc.
    fn fail(
        &mut self,
        system: &mut System,
        i: usize,
        why: Failure,
        own: &mut VSpace,
        res: &mut Resources,
    ) {
        let now = rdtsc();
        let name = system.pds[i].name;
        if let Err(e) = system.pds[i].tcb.suspend() {
            debug_println!("monitor: cannot stop PD '{name}': {e:?}");
        }
        self.quiesce(system, i);
        let cause = match why {
            Failure::Fault => "a fault",
            Failure::Overrun => "a handler overrun",
        };
        let w = &mut self.watch[i];
        w.failed_at = now;
        let Some(policy) = self.plan.pds[i].recovery.restart else {
            w.state = State::Stopped;
            debug_println!("monitor: PD '{name}' stopped; the other PDs keep running");
            return;
        };
        let window = u64::from(policy.window_ms) * self.tsc_per_ms;
        w.failures.retain(|&t| now - t < window);
        w.failures.push(now);
        let n = w.failures.len() as u32;
        if n >= policy.limit {
            w.state = State::Stopped;
            debug_println!(
                "monitor: giving up on PD '{name}': {n} failures within {} ms (its restart policy's limit); it stays stopped, the other PDs keep running",
                policy.window_ms
            );
            return;
        }
        let backoff_ms = policy
            .backoff_ms
            .checked_shl(n - 1)
            .unwrap_or(u32::MAX)
            .min(policy.max_backoff_ms);
        w.state = State::Down {
            at: now + u64::from(backoff_ms) * self.tsc_per_ms,
        };
        debug_println!(
            "monitor: PD '{name}' failed ({cause}) at tsc {now}; failure {n} of {} allowed within {} ms; restarting it in {backoff_ms} ms",
            policy.limit - 1,
            policy.window_ms
        );
        if backoff_ms == 0 {
            self.restart(system, i, own, res);
        }
    }

    /// Turns off bus mastering of PD `i`'s PCI functions, through the
    /// servers that serve them.
    fn quiesce(&self, system: &System, i: usize) {
        for q in &self.plan.pds[i].recovery.quiesce {
            let server = system.pds[q.server as usize].name;
            let cap = self.servers.iter().find(|(s, _)| *s == q.server);
            match (cap, self.watch[q.server as usize].state) {
                (Some(&(_, cap)), State::Running) => {
                    let info = MessageInfo::new(monitor_call::QUIESCE, 0, 0, 1);
                    let reply = sel4::syscall::call(cap, info, [u64::from(q.channel), 0, 0, 0]);
                    if reply.info.label() != 0 {
                        debug_println!(
                            "monitor: '{server}' refused to quiesce the devices of '{}' (status {})",
                            system.pds[i].name,
                            reply.info.label()
                        );
                    }
                }
                _ => debug_println!(
                    "monitor: cannot quiesce the devices of '{}': '{server}', which serves them, is not running",
                    system.pds[i].name
                ),
            }
        }
    }

    /// Builds PD `i` again and starts it.
    fn restart(&mut self, system: &mut System, i: usize, own: &mut VSpace, res: &mut Resources) {
        let name = system.pds[i].name;
        let incarnation = self.watch[i].incarnation + 1;
        let rebuilt = system
            .teardown(self.plan, i, own, res)
            .and_then(|()| system.restart(self.plan, i, incarnation, own, res));
        let now = rdtsc();
        let w = &mut self.watch[i];
        match rebuilt {
            Ok(()) => {
                w.incarnation = incarnation;
                w.state = State::Running;
                w.seen = 1;
                w.seen_at = now;
                let down_us = (now - w.failed_at) * 1000 / self.tsc_per_ms;
                let (bytes, of, slots, of_slots) = system.pds[i]
                    .pool
                    .as_ref()
                    .map_or((0, 0, 0, 0), |p| p.usage());
                debug_println!(
                    "monitor: restarted PD '{name}' as incarnation {incarnation} at tsc {now}, {down_us} us after it failed ({} KiB of {} KiB and {slots} of {of_slots} slots of its pool; {} of monitor heap)",
                    bytes >> 10,
                    of >> 10,
                    heap::used()
                );
            }
            Err(e) => {
                w.state = State::Stopped;
                debug_println!(
                    "monitor: cannot restart PD '{name}': {e}; it stays stopped, the other PDs keep running"
                );
            }
        }
    }
}
