//! The monitor: the root task of every system image. It reports what the
//! kernel handed over (bootinfo) and checks that invocations work; then it
//! builds the system its embedded boot plan describes (see the `boot-plan`
//! crate; `system-builder` embeds the plan), starts the PDs, and serves as
//! the fault handler of all of them: it reports every fault, and stops,
//! restarts or gives up on the PD as its restart policy says, and it holds
//! PDs to their handler budgets (see `supervise`). Without a plan it ends the run through
//! QEMU's isa-debug-exit device (semihosting on ARM), so the exit status
//! tells a test what happened; with one, the PD that owns the debug-exit
//! port ends it.
#![no_std]
#![no_main]

extern crate alloc;

#[cfg(target_arch = "x86_64")]
mod bench;
mod error;
mod fault;
mod heap;
mod resources;
mod supervise;
mod system;
#[cfg(target_arch = "x86_64")]
mod tick;
mod vspace;

use boot_plan::Plan;
use hwio::debug_exit::Code;
use resources::{Object, ROOT_CNODE, Resources};
use sel4::bootinfo::BootInfo;
use sel4::cap::{Cap, Rights, Slot, kind};
use sel4::{WORD_BITS, debug_println, init_cap};
use vspace::VSpace;

// Where system-builder put the encoded plan in this image, patched into the
// file. `.data` keeps them file-backed and `mut` writable (an immutable
// static in `.data` lands in a read-only segment on ARM); reads are
// volatile so the compiler cannot fold the build-time zeros.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data")]
#[used]
static mut DINGO_PLAN_VADDR: u64 = 0;
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data")]
#[used]
static mut DINGO_PLAN_SIZE: u64 = 0;

fn embedded_plan() -> Option<&'static [u8]> {
    // SAFETY: plain reads of our own statics (volatile: patched after linking).
    let (vaddr, size) = unsafe {
        (
            core::ptr::read_volatile(&raw const DINGO_PLAN_VADDR),
            core::ptr::read_volatile(&raw const DINGO_PLAN_SIZE),
        )
    };
    // SAFETY: system-builder placed `size` bytes at `vaddr` in a loadable
    // segment of this image, which the kernel mapped with the rest of it.
    (size != 0).then(|| unsafe { core::slice::from_raw_parts(vaddr as *const u8, size as usize) })
}

#[cfg(target_arch = "x86_64")]
const IO_PORTS: Cap<kind::IoPort> = Cap::from_cptr(init_cap::CapIOPort);
/// The first serial port, the console on kernels without printing.
#[cfg(target_arch = "x86_64")]
const COM1: u16 = 0x3f8;

fn exit(code: Code) -> ! {
    // The write does not return when QEMU has the device; without it, stop
    // here rather than run on. The root task's capability covers every
    // port, so the kernel cannot refuse it (a refusal would panic, and a
    // panic ends here again).
    #[cfg(target_arch = "x86_64")]
    hwio::debug_exit::DebugExit::new(hwio::PortIo::new(
        "debug-exit",
        IO_PORTS,
        hwio::debug_exit::BASE,
        hwio::debug_exit::SIZE,
    ))
    .exit(code);
    #[cfg(target_arch = "arm")]
    hwio::semihosting::exit(code);
    loop {
        sel4::syscall::yield_now();
    }
}

fn exit_failure() -> ! {
    exit(Code::Failure)
}

/// A byte count in the largest binary unit it reaches, e.g. "508.4 MiB".
struct Size(u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut u = 0;
        while u + 1 < units.len() && self.0 >= 1 << (10 * (u + 1)) {
            u += 1;
        }
        let whole = self.0 >> (10 * u);
        let tenths = ((self.0 - (whole << (10 * u))) * 10) >> (10 * u);
        if tenths == 0 {
            write!(f, "{whole} {}", units[u])
        } else {
            write!(f, "{whole}.{tenths} {}", units[u])
        }
    }
}

fn report(bi: &BootInfo) {
    debug_println!("monitor: bootinfo");
    debug_println!(
        "  node {} of {}, root CNode 2^{} slots",
        bi.node_id(),
        bi.num_nodes(),
        bi.cnode_size_bits()
    );
    let empty = bi.empty();
    debug_println!(
        "  free slots: {} ({}..{})",
        empty.len(),
        empty.start,
        empty.end
    );
    #[cfg(target_arch = "x86_64")]
    debug_println!("  TSC frequency: {} MHz", bi.tsc_mhz());
    debug_println!("  IOMMU page-table levels: {}", bi.num_iopt_levels());
    for device in [false, true] {
        let (mut count, mut total) = (0u64, 0u64);
        let mut by_bits = [0u32; 64];
        for ut in bi.untypeds().filter(|u| u.is_device == device) {
            count += 1;
            total += ut.size();
            by_bits[ut.size_bits as usize % 64] += 1;
        }
        let kind = if device { "device" } else { "RAM" };
        debug_println!("  untyped {kind}: {count} caps, {} in all", Size(total));
        sel4::debug_print!("   ");
        for (bits, n) in by_bits.iter().enumerate().filter(|(_, n)| **n > 0) {
            sel4::debug_print!(" {n}x{}", Size(1 << bits));
        }
        debug_println!();
    }
}

/// Exercises the bindings against the kernel: retype, mint, signal, poll,
/// and a frame address query. Returns what failed.
fn self_test(bi: &BootInfo, res: &mut Resources) -> Result<(), &'static str> {
    if cfg!(target_arch = "x86_64") && bi.tsc_mhz() == 0 {
        return Err("bootinfo reports no TSC frequency");
    }
    let slot = res
        .alloc(Object::NOTIFICATION)
        .map_err(|_| "retype of a notification failed")?;
    let ntfn: Cap<kind::Notification> = Cap::from_cptr(slot);
    if ntfn.poll() != 0 {
        return Err("fresh notification already signalled");
    }
    // Signals carry the sender cap's badge bits: mint a badged sender, with
    // the highest badge bit the architecture has (64-bit notification
    // badges on x86_64, 28-bit ones on 32-bit ARM).
    #[cfg(target_arch = "x86_64")]
    const BADGE: u64 = 1 << 63 | 0b101;
    #[cfg(target_arch = "arm")]
    const BADGE: u64 = 1 << 27 | 0b101;
    let sender = res.slots(1).map_err(|_| "no free slot")?;
    ROOT_CNODE
        .mint(
            sender,
            WORD_BITS,
            Slot::new(ROOT_CNODE, slot, WORD_BITS),
            Rights::ALL,
            BADGE,
        )
        .map_err(|_| "mint of a badged notification cap failed")?;
    Cap::<kind::Notification>::from_cptr(sender).signal();
    if ntfn.poll() != BADGE {
        return Err("signal through the badged cap did not deliver its badge");
    }
    if ntfn.poll() != 0 {
        return Err("poll did not clear the notification");
    }
    // A kernel error must come back as an error, not as success.
    debug_println!("  retype into an occupied slot (the kernel reports the expected error):");
    let ut = bi
        .untypeds()
        .find(|u| !u.is_device)
        .ok_or("no RAM untyped")?;
    let occupied = Cap::<kind::Untyped>::from_cptr(ut.cptr).retype(
        sel4::object_type::NotificationObject,
        0,
        Slot::new(ROOT_CNODE, 0, 0),
        slot,
        1,
    );
    if occupied.is_ok() {
        return Err("retype into an occupied slot succeeded");
    }
    let ipc: Cap<kind::Page> = Cap::from_cptr(init_cap::CapInitThreadIPCBuffer);
    let paddr = ipc
        .address()
        .map_err(|_| "the IPC buffer frame's address query failed")?;
    if paddr == 0 || paddr % sel4::PAGE_SIZE as u64 != 0 {
        return Err("IPC buffer frame has a bad physical address");
    }
    debug_println!("  IPC buffer frame at paddr {paddr:#x}");
    Ok(())
}

/// Builds and starts the planned system, then handles faults for ever.
fn run_system(plan: &Plan, res: &mut Resources, bi: &BootInfo) -> ! {
    let mut own = VSpace::new(Cap::from_cptr(init_cap::CapInitThreadVSpace));
    if plan.monitor_bench {
        #[cfg(target_arch = "x86_64")]
        if let Err(e) = bench::run(res, &mut own, bi.cnode_size_bits()) {
            debug_println!("monitor: benchmark failed: {e}");
            exit(Code::Failure)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            debug_println!("monitor: the raw kernel baseline counts TSC cycles: x86_64 only");
            exit(Code::Failure)
        }
    }
    let mut system = match system::build(plan, res, &mut own, bi.tsc_mhz()) {
        Ok(s) => s,
        Err(e) => {
            debug_println!("monitor: cannot build the system: {e}");
            exit(Code::Failure)
        }
    };
    sel4::debug_print!("monitor: built {} PDs:", system.pds.len());
    for pd in &system.pds {
        sel4::debug_print!(" {} (priority {})", pd.name, pd.priority);
    }
    debug_println!();
    debug_println!(
        "monitor: {} regions; {} free slots and {} RAM left, {} of heap used",
        plan.regions.len(),
        res.free_slots(),
        Size(res.free_ram()),
        Size(heap::used() as u64)
    );
    let tick = match start_tick(plan, &system, res, &mut own) {
        Ok(t) => t,
        Err(e) => {
            debug_println!("monitor: cannot start its clock: {e}");
            exit(Code::Failure)
        }
    };
    let mut sup = match supervise::Supervisor::new(plan, &system, res, tick, bi.tsc_mhz()) {
        Ok(s) => s,
        Err(e) => {
            debug_println!("monitor: cannot set up supervision: {e}");
            exit(Code::Failure)
        }
    };
    if let Err(e) = system.start(plan) {
        debug_println!("monitor: cannot start the PDs: {e}");
        exit(Code::Failure)
    }
    // The receive info carries a mark the kernel overwrites for a message
    // (a fault) and leaves for a notification (a tick), as in the PD
    // runtime: fault badges and the tick's badge could otherwise meet.
    let mark = sel4::MessageInfo::new(0, 0b111, 0, 0);
    loop {
        let msg = sel4::syscall::recv_marked(system.fault_ep.cptr(), mark);
        if msg.info.caps_unwrapped() == 0b111 && msg.info.extra_caps() == 0 {
            sup.tick(&mut system, &mut own, res);
            continue;
        }
        let i = (msg.badge as usize).wrapping_sub(1);
        if i < system.pds.len() {
            sup.fault(&mut system, i, &msg, &mut own, res);
        } else {
            debug_println!(
                "monitor: message with unknown badge {:#x} ignored",
                msg.badge
            );
        }
    }
}

/// The monitor's clock, if the plan has one (x86_64: HPET timer 1).
fn start_tick(
    plan: &Plan,
    system: &system::System,
    res: &mut Resources,
    own: &mut VSpace,
) -> Result<Option<supervise::Clock>, error::SetupError> {
    let Some(t) = &plan.tick else {
        return Ok(None);
    };
    #[cfg(target_arch = "x86_64")]
    return tick::Tick::start(t, system, res, own).map(Some);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (t, system, res, own);
        error::fail("a monitor clock (HPET) in a plan for a board without one")
    }
}

fn main(bi: &BootInfo<'static>) -> ! {
    sel4_start::set_panic_exit(exit_failure);
    // Kernels built without printing (release) get the COM1 UART instead.
    #[cfg(target_arch = "x86_64")]
    sel4::set_console(|c| sel4::uart_put_char(IO_PORTS, COM1, c));
    debug_println!("monitor: started on {}", sel4::BOARD);
    report(bi);
    let mut res = Resources::new(bi);
    if let Err(what) = self_test(bi, &mut res) {
        debug_println!("monitor: self-test FAILED: {what}");
        exit(Code::Failure)
    }
    debug_println!("monitor: self-test passed");
    let Some(bytes) = embedded_plan() else {
        debug_println!("monitor: no system plan in this image; done");
        exit(Code::Success)
    };
    match Plan::decode(bytes) {
        Ok(plan) => run_system(&plan, &mut res, bi),
        Err(e) => {
            debug_println!("monitor: {e}");
            exit(Code::Failure)
        }
    }
}

sel4_start::root_task!(main);
