//! The monitor: the root task of every system image. For now it reports what
//! the kernel handed over (bootinfo), checks that invocations work, and ends
//! the run through QEMU's isa-debug-exit device so the exit status tells a
//! test what happened.
#![no_std]
#![no_main]

use sel4::bootinfo::BootInfo;
use sel4::cap::{Cap, Rights, Slot, kind};
use sel4::{debug_println, init_cap, object_type};

/// isa-debug-exit: a write of v makes QEMU exit with status 2v+1.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Written on success (QEMU status 33) and failure (status 35).
const EXIT_SUCCESS: u8 = 0x10;
const EXIT_FAILURE: u8 = 0x11;

const IO_PORTS: Cap<kind::IoPort> = Cap::from_cptr(init_cap::CapIOPort);
const ROOT_CNODE: Cap<kind::CNode> = Cap::from_cptr(init_cap::CapInitThreadCNode);

fn exit(code: u8) -> ! {
    // The write does not return when QEMU has the device; without it, stop
    // here rather than run on.
    let _ = IO_PORTS.out8(DEBUG_EXIT_PORT, code);
    loop {
        sel4::syscall::yield_now();
    }
}

fn exit_failure() -> ! {
    exit(EXIT_FAILURE)
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

/// Exercises the bindings against the kernel: retype, signal, poll, and a
/// frame address query. Returns what failed.
fn self_test(bi: &BootInfo) -> Result<(), &'static str> {
    if bi.tsc_mhz() == 0 {
        return Err("bootinfo reports no TSC frequency");
    }
    let ram = bi
        .untypeds()
        .filter(|u| !u.is_device && u.size_bits >= sel4::consts::NotificationBits as u8)
        .min_by_key(|u| u.size_bits)
        .ok_or("no RAM untyped")?;
    let slot = bi.empty().start;
    if bi.empty().len() < 2 {
        return Err("no free slot");
    }
    let ut: Cap<kind::Untyped> = Cap::from_cptr(ram.cptr);
    ut.retype(
        object_type::NotificationObject,
        0,
        Slot::new(ROOT_CNODE, 0, 0),
        slot,
        1,
    )
    .map_err(|_| "retype of a notification failed")?;
    let ntfn: Cap<kind::Notification> = Cap::from_cptr(slot);
    if ntfn.poll() != 0 {
        return Err("fresh notification already signalled");
    }
    // Signals carry the sender cap's badge bits: mint a badged sender.
    const BADGE: u64 = 1 << 63 | 0b101;
    let sender = slot + 1;
    ROOT_CNODE
        .mint(
            sender,
            64,
            Slot::new(ROOT_CNODE, slot, 64),
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
    if ut
        .retype(
            object_type::NotificationObject,
            0,
            Slot::new(ROOT_CNODE, 0, 0),
            slot,
            1,
        )
        .is_ok()
    {
        return Err("retype into an occupied slot succeeded");
    }
    let ipc: Cap<kind::Page> = Cap::from_cptr(init_cap::CapInitThreadIPCBuffer);
    let paddr = ipc.address().map_err(|_| "X86PageGetAddress failed")?;
    if paddr == 0 || paddr % sel4::PAGE_SIZE as u64 != 0 {
        return Err("IPC buffer frame has a bad physical address");
    }
    debug_println!("  IPC buffer frame at paddr {paddr:#x}");
    Ok(())
}

fn main(bi: &BootInfo<'static>) -> ! {
    sel4_start::set_panic_exit(exit_failure);
    debug_println!("monitor: started");
    report(bi);
    match self_test(bi) {
        Ok(()) => {
            debug_println!("monitor: self-test passed");
            exit(EXIT_SUCCESS)
        }
        Err(what) => {
            debug_println!("monitor: self-test FAILED: {what}");
            exit(EXIT_FAILURE)
        }
    }
}

sel4_start::root_task!(main);
