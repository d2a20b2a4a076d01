//! Builds the system a boot plan describes, with Microkit's semantics: per
//! PD a VSpace, a CSpace in libmicrokit's layout, a TCB, an IPC buffer, a
//! stack with an unmapped guard page, its ELF segments and its recovery
//! page; system-wide the memory regions, notifications, endpoints, IRQ
//! handlers and I/O ports. The PDs are created stopped; [`System::start`]
//! resumes them all.
//!
//! What a PD's peers hold caps to (its notification and endpoint, its IRQ
//! handlers, the regions it maps, its recovery page) is made once. The rest
//! is made by [`System::construct`] from the plan's pristine image, out of
//! the PD's own pool when it has a restart policy, so that a restart can
//! delete it all ([`System::teardown`]) and construct it again.

use crate::error::{Context, Setup, fail};
use crate::resources::{Object, ROOT_CNODE, Resources};
use crate::vspace::VSpace;
use alloc::vec::Vec;
use boot_plan::layout::{self, cspace, recovery};
use boot_plan::{IrqSource, Perms, Plan, SetvarValue};
use sel4::cap::{self, Cap, Rights, Slot, TcbConfig, UserContext, VmAttributes, kind};
use sel4::{WORD_BITS, init_cap};

/// Where the monitor maps frames of its own: a 4 KiB frame to fill it (PD
/// images) or to zero it; a large frame to zero it; the PDs' recovery
/// pages, one after the other; the HPET's registers (x86_64). Far from its image,
/// inside the user address space.
#[cfg(target_arch = "x86_64")]
mod window {
    pub const SCRATCH: u64 = 1 << 39;
    pub const SCRATCH_LARGE: u64 = SCRATCH + (1 << 30);
    pub const RECOVERY: u64 = SCRATCH + (2 << 30);
    pub const HPET: u64 = SCRATCH + (3 << 30);
}
#[cfg(target_arch = "arm")]
mod window {
    pub const SCRATCH: u64 = 0xa000_0000;
    pub const SCRATCH_LARGE: u64 = 0xa100_0000;
    pub const RECOVERY: u64 = 0xa200_0000;
}
#[cfg(target_arch = "x86_64")]
pub use window::HPET as HPET_WINDOW;
use window::{RECOVERY, SCRATCH, SCRATCH_LARGE};

const PAGE: u64 = sel4::PAGE_SIZE as u64;

const IRQ_CONTROL: Cap<kind::IrqControl> = Cap::from_cptr(init_cap::CapIRQControl);
const ASID_POOL: Cap<kind::AsidPool> = Cap::from_cptr(init_cap::CapInitThreadASIDPool);

/// What of a PD outlives its instances: the objects peers hold caps to.
pub struct Kept {
    pub ntfn: u64,
    pub ep: Option<u64>,
    /// (channel id, the monitor's handler cap).
    pub irqs: Vec<(u8, u64)>,
    /// The recovery page's frame, and where the monitor sees it.
    pub recovery_frame: u64,
    pub recovery: *mut u64,
}

/// A PD and what the monitor keeps of it.
pub struct PdHandle<'a> {
    pub name: &'a str,
    pub priority: u8,
    pub stack_size: u64,
    pub tcb: Cap<kind::Tcb>,
    pub kept: Kept,
    /// The PD's own resources when it may be restarted.
    pub pool: Option<Resources>,
    vspace: VSpace,
}

impl PdHandle<'_> {
    /// Word `i` of the PD's recovery page.
    pub fn recovery_word(&self, i: usize) -> u64 {
        assert!(i < recovery::WORDS);
        // SAFETY: the monitor maps the page at `recovery` for its whole
        // run; i is inside the page. Volatile: the PD writes it.
        unsafe { self.kept.recovery.add(i).read_volatile() }
    }

    pub fn set_recovery_word(&self, i: usize, value: u64) {
        assert!(i < recovery::WORDS);
        // SAFETY: as in recovery_word.
        unsafe { self.kept.recovery.add(i).write_volatile(value) }
    }
}

pub struct System<'a> {
    pub pds: Vec<PdHandle<'a>>,
    /// Badge `i + 1` identifies PD `i` in fault messages.
    pub fault_ep: Cap<kind::Endpoint>,
    /// Each region's first frame cap and physical address.
    regions: Vec<(u64, u64)>,
    tsc_mhz: u64,
    /// A slot of the monitor's for a frame cap copy being zeroed.
    zero_slot: u64,
}

impl System<'_> {
    /// Starts every PD, as incarnation 1, busy starting up.
    pub fn start(&self, plan: &Plan) -> Setup<()> {
        for (pd, p) in self.pds.iter().zip(&plan.pds) {
            write_recovery(pd, p, 1);
            pd.tcb.resume().ctx("resume a PD")?;
        }
        Ok(())
    }

    /// Deletes everything of PD `i`'s instance that came from its pool,
    /// and zeroes the regions only it maps: nothing of the old instance is
    /// left but the shared regions and what peers hold caps to.
    pub fn teardown(
        &mut self,
        plan: &Plan,
        i: usize,
        own: &mut VSpace,
        main: &mut Resources,
    ) -> Setup<()> {
        let pd = &mut self.pds[i];
        pd.tcb.suspend().ctx("suspend a failed PD")?;
        let Some(pool) = pd.pool.as_mut() else {
            return fail("teardown of a PD without a pool");
        };
        pool.reset()?;
        pd.vspace.clear();
        for &r in &plan.pds[i].recovery.zero {
            self.zero_region(plan, r as usize, own, main)?;
        }
        Ok(())
    }

    /// Writes zeros over every frame of region `r`.
    fn zero_region(
        &self,
        plan: &Plan,
        r: usize,
        own: &mut VSpace,
        main: &mut Resources,
    ) -> Setup<()> {
        let region = &plan.regions[r];
        let (first, _) = self.regions[r];
        let large = region.page_bits != 12;
        let (at, size) = if large {
            (SCRATCH_LARGE, 1u64 << region.page_bits)
        } else {
            (SCRATCH, PAGE)
        };
        for f in 0..region.size / size {
            ROOT_CNODE
                .copy(self.zero_slot, WORD_BITS, slot(first + f), Rights::ALL)
                .ctx("copy a frame cap to zero it")?;
            own.map(
                main,
                self.zero_slot,
                at,
                large,
                Rights::READ_WRITE,
                VmAttributes::DEFAULT,
            )?;
            // SAFETY: the frame is mapped writable at `at` for `size` bytes
            // in the monitor; the PD that maps it is stopped and its device
            // quiesced, so nothing else writes it meanwhile.
            unsafe { core::ptr::write_bytes(at as *mut u8, 0, size as usize) };
            Cap::<kind::Page>::from_cptr(self.zero_slot)
                .unmap()
                .ctx("unmap a zeroed frame")?;
            ROOT_CNODE
                .delete(self.zero_slot, WORD_BITS)
                .ctx("delete a zeroed frame's copy")?;
        }
        Ok(())
    }

    /// Builds PD `i` again after [`teardown`](Self::teardown) and starts
    /// it as `incarnation`.
    pub fn restart(
        &mut self,
        plan: &Plan,
        i: usize,
        incarnation: u64,
        own: &mut VSpace,
        main: &mut Resources,
    ) -> Setup<()> {
        let mut pool = self.pds[i].pool.take();
        let built = self.construct(plan, i, own, main, pool.as_mut());
        self.pds[i].pool = pool;
        built?;
        let pd = &self.pds[i];
        // An interrupt the old instance took but never acknowledged would
        // stay masked for ever.
        for &(_, handler) in &pd.kept.irqs {
            Cap::<kind::IrqHandler>::from_cptr(handler)
                .ack()
                .ctx("unmask a restarted PD's IRQ")?;
        }
        write_recovery(pd, &plan.pds[i], incarnation);
        pd.tcb.resume().ctx("resume a restarted PD")
    }

    /// Makes PD `i`'s instance from the plan: address space, image, stack,
    /// IPC buffer, maps, CSpace, TCB; from `pool` if given, else from
    /// `main`. The TCB is left stopped.
    fn construct(
        &mut self,
        plan: &Plan,
        i: usize,
        own: &mut VSpace,
        main: &mut Resources,
        mut pool: Option<&mut Resources>,
    ) -> Setup<()> {
        let pd = &plan.pds[i];
        macro_rules! res {
            () => {
                match pool.as_deref_mut() {
                    Some(p) => p,
                    None => &mut *main,
                }
            };
        }
        let root = Cap::<cap::VSpaceKind>::from_cptr(res!().alloc(Object::VSPACE)?);
        ASID_POOL.assign(root).ctx("assign an ASID")?;
        let cnode = Cap::<kind::CNode>::from_cptr(res!().alloc(Object::cnode(cspace::SIZE_BITS))?);
        let tcb = Cap::<kind::Tcb>::from_cptr(res!().alloc(Object::TCB)?);
        let ipc_buffer = res!().alloc(Object::PAGE)?;
        let mut vspace = core::mem::replace(&mut self.pds[i].vspace, VSpace::new(root));
        vspace.reset(root);

        // Program segments, with setvars patched in.
        for seg in &pd.segments {
            let start = seg.vaddr & !(PAGE - 1);
            let end = (seg.vaddr + seg.mem_size).next_multiple_of(PAGE);
            for page in (start..end).step_by(PAGE as usize) {
                let frame = res!().alloc(Object::PAGE)?;
                own.map(
                    main,
                    frame,
                    SCRATCH,
                    false,
                    Rights::READ_WRITE,
                    VmAttributes::DEFAULT,
                )?;
                let lo = page.max(seg.vaddr);
                let hi = (page + PAGE).min(seg.vaddr + seg.data.len() as u64);
                if lo < hi {
                    let src = &seg.data[(lo - seg.vaddr) as usize..(hi - seg.vaddr) as usize];
                    // SAFETY: SCRATCH maps this fresh 4 KiB frame writable in
                    // the monitor; lo - page + src.len() <= PAGE.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            src.as_ptr(),
                            (SCRATCH + lo - page) as *mut u8,
                            src.len(),
                        )
                    };
                }
                for sv in pd
                    .setvars
                    .iter()
                    .filter(|s| (page..page + PAGE).contains(&s.vaddr))
                {
                    if sv.vaddr + 8 > page + PAGE {
                        return fail("setvar symbol straddles a page");
                    }
                    let value = match sv.value {
                        SetvarValue::Word(w) => w,
                        SetvarValue::RegionPaddr(r) => self.regions[r as usize].1,
                        SetvarValue::BootInfoTscMhz => self.tsc_mhz,
                    };
                    // SAFETY: as above; the 8 bytes lie inside the page.
                    unsafe { ((SCRATCH + sv.vaddr - page) as *mut u64).write_unaligned(value) };
                }
                let frame_cap = Cap::<kind::Page>::from_cptr(frame);
                if seg.perms.execute {
                    // Code was written through the data cache (ARM keeps
                    // the instruction cache apart); while the frame is
                    // still mapped here.
                    frame_cap
                        .unify_instruction(PAGE)
                        .ctx("make a PD's code visible to instruction fetch")?;
                }
                frame_cap.unmap().ctx("unmap the scratch page")?;
                vspace.map(
                    res!(),
                    frame,
                    page,
                    false,
                    rights(seg.perms),
                    attributes(seg.perms, VmAttributes::DEFAULT),
                )?;
            }
        }

        vspace.map(
            res!(),
            ipc_buffer,
            layout::IPC_BUFFER_VADDR,
            false,
            Rights::READ_WRITE,
            VmAttributes::DEFAULT.no_execute(),
        )?;
        let recovery_copy = res!().slots(1)?;
        ROOT_CNODE
            .copy(
                recovery_copy,
                WORD_BITS,
                slot(self.pds[i].kept.recovery_frame),
                Rights::ALL,
            )
            .ctx("copy a recovery page cap")?;
        vspace.map(
            res!(),
            recovery_copy,
            layout::RECOVERY_VADDR,
            false,
            Rights::READ_WRITE,
            VmAttributes::DEFAULT.no_execute(),
        )?;
        let pages = pd.stack_size / PAGE;
        let stack = res!().alloc_n(Object::PAGE, pages)?;
        for p in 0..pages {
            let vaddr = layout::STACK_TOP - pd.stack_size + p * PAGE;
            vspace.map(
                res!(),
                stack + p,
                vaddr,
                false,
                Rights::READ_WRITE,
                VmAttributes::DEFAULT.no_execute(),
            )?;
        }

        for m in &pd.maps {
            let region = &plan.regions[m.region as usize];
            let (first, _) = self.regions[m.region as usize];
            let page_size = 1u64 << region.page_bits;
            let attr = attributes(
                m.perms,
                if m.cached {
                    VmAttributes::DEFAULT
                } else {
                    VmAttributes::CACHE_DISABLED
                },
            );
            for f in 0..region.size / page_size {
                // A frame cap maps once: every mapping gets its own copy.
                let copy = res!().slots(1)?;
                ROOT_CNODE
                    .copy(copy, WORD_BITS, slot(first + f), Rights::ALL)
                    .ctx("copy a frame cap")?;
                let large = region.page_bits != 12;
                vspace.map(
                    res!(),
                    copy,
                    m.vaddr + f * page_size,
                    large,
                    rights(m.perms),
                    attr,
                )?;
            }
        }

        // libmicrokit's CSpace layout.
        let kept = &self.pds[i].kept;
        let input = kept.ep.unwrap_or(kept.ntfn);
        mint(cnode, cspace::INPUT, input, Rights::ALL, 0)?;
        mint(
            cnode,
            cspace::MONITOR_EP,
            self.fault_ep.cptr(),
            Rights::WRITE.union(Rights::GRANT),
            i as u64 + 1,
        )?;
        mint(cnode, cspace::TCB, tcb.cptr(), Rights::ALL, 0)?;
        for &(id, handler) in &kept.irqs {
            mint(cnode, cspace::IRQ_BASE + id as u64, handler, Rights::ALL, 0)?;
        }
        for io in &pd.ioports {
            ioport(cnode, io)?;
        }
        for ch in &plan.channels {
            for (a, b) in [(ch.ends[0], ch.ends[1]), (ch.ends[1], ch.ends[0])] {
                if a.pd as usize != i {
                    continue;
                }
                let to = &self.pds[b.pd as usize].kept;
                if a.notify {
                    mint(
                        cnode,
                        cspace::NOTIFY_BASE + a.id as u64,
                        to.ntfn,
                        Rights::WRITE,
                        1 << b.id,
                    )?;
                }
                if a.pp {
                    let Some(ep) = to.ep else {
                        return fail("pp channel to a PD without an endpoint");
                    };
                    let badge = cspace::BADGE_PPC | b.id as u64;
                    mint(
                        cnode,
                        cspace::PPC_BASE + a.id as u64,
                        ep,
                        Rights::WRITE.union(Rights::GRANT),
                        badge,
                    )?;
                }
            }
        }

        tcb.configure(&TcbConfig {
            fault_ep: cspace::MONITOR_EP,
            priority: pd.priority,
            cspace: cnode,
            cspace_data: cap::cnode_guard(0, (WORD_BITS - cspace::SIZE_BITS) as u64),
            vspace: root,
            ipc_buffer_vaddr: layout::IPC_BUFFER_VADDR,
            ipc_buffer: Cap::from_cptr(ipc_buffer),
        })
        .ctx("configure a TCB")?;
        if pd.pp_callee {
            tcb.bind_notification(Cap::from_cptr(kept.ntfn))
                .ctx("bind a notification")?;
        }
        let regs = UserContext::start(pd.entry, layout::STACK_TOP);
        tcb.write_registers(false, &regs)
            .ctx("set a PD's entry point")?;
        let handle = &mut self.pds[i];
        handle.tcb = tcb;
        handle.vspace = vspace;
        Ok(())
    }
}

/// Tells PD `pd` which instance it is and how it is supervised, and marks
/// it busy (starting up) for its budget.
fn write_recovery(pd: &PdHandle, plan: &boot_plan::Pd, incarnation: u64) {
    let r = &plan.recovery;
    let mut flags = 0;
    if r.restart.is_some() {
        flags |= recovery::RESTARTABLE;
    }
    if r.budget_ms.is_some() {
        flags |= recovery::BUDGETED;
    }
    pd.set_recovery_word(recovery::PROGRESS, 1);
    pd.set_recovery_word(recovery::INCARNATION, incarnation);
    pd.set_recovery_word(recovery::FLAGS, flags);
    pd.set_recovery_word(recovery::BUDGET_MS, r.budget_ms.map_or(0, u64::from));
}

fn slot(cptr: u64) -> Slot {
    Slot::new(ROOT_CNODE, cptr, WORD_BITS)
}

fn rights(p: Perms) -> Rights {
    // Mappings are readable whenever present; writability is a right,
    // execution an attribute (see `attributes`).
    if p.write {
        Rights::READ_WRITE
    } else {
        Rights::READ
    }
}

/// The page attributes of a mapping with `perms`: not executable unless
/// asked (32-bit ARM enforces it; x86_64 seL4 5.0.0 cannot, so there data
/// stays executable).
fn attributes(p: Perms, base: VmAttributes) -> VmAttributes {
    if p.execute { base } else { base.no_execute() }
}

/// Places `src` at `index` of a PD's CNode, badged/narrowed by `data`.
fn mint(dest: Cap<kind::CNode>, index: u64, src: u64, r: Rights, data: u64) -> Setup<()> {
    dest.mint(index, cspace::SIZE_BITS, slot(src), r, data)
        .ctx("mint a cap into a PD's CSpace")
}

/// An upper bound of what PD `pd` takes from its pool: bytes and slots.
/// Generous: object alignment wastes some bytes, and the paging
/// structures depend on where things are mapped.
fn pool_size(plan: &Plan, pd: &boot_plan::Pd) -> (u64, u64) {
    let mut pages = 0;
    let mut vaddrs = Vec::new();
    for seg in &pd.segments {
        let start = seg.vaddr & !(PAGE - 1);
        let end = (seg.vaddr + seg.mem_size).next_multiple_of(PAGE);
        pages += (end - start) / PAGE;
        vaddrs.push(start);
    }
    pages += pd.stack_size / PAGE + 2;
    vaddrs.extend([layout::STACK_TOP - pd.stack_size, layout::IPC_BUFFER_VADDR]);
    let mut frames = 0;
    for m in &pd.maps {
        let r = &plan.regions[m.region as usize];
        frames += r.size >> r.page_bits;
        vaddrs.push(m.vaddr);
    }
    // Each mapped range needs at most a few tables per 2 MiB (x86_64) or
    // 1 MiB (ARM) it spans; a map's span is its region's size.
    let spans: u64 = pd
        .maps
        .iter()
        .map(|m| plan.regions[m.region as usize].size >> 20)
        .sum::<u64>()
        + (pages >> 8);
    let tables = 4 * (vaddrs.len() as u64 + spans + 4);
    // The VSpace root, the CNode and the TCB are at most 16 KiB each.
    let bytes = 2 * ((pages + tables) * PAGE + 3 * 0x4000);
    let slots = pages + frames + tables + 16;
    (bytes, slots)
}

pub fn build<'a>(
    plan: &Plan<'a>,
    res: &mut Resources,
    own: &mut VSpace,
    tsc_mhz: u64,
) -> Setup<System<'a>> {
    let fault_ep = res.alloc(Object::ENDPOINT)?;
    let regions = plan
        .regions
        .iter()
        .map(|r| res.frames(r.size, r.page_bits, r.phys_addr))
        .collect::<Setup<Vec<_>>>()?;

    let mut pds = Vec::with_capacity(plan.pds.len());
    for (index, pd) in plan.pds.iter().enumerate() {
        let ntfn = res.alloc(Object::NOTIFICATION)?;
        let ep = if pd.pp_callee {
            Some(res.alloc(Object::ENDPOINT)?)
        } else {
            None
        };
        let mut irqs = Vec::with_capacity(pd.irqs.len());
        for irq in &pd.irqs {
            let handler = res.slots(1)?;
            irq_handler(slot(handler), irq)?;
            let badged = res.slots(1)?;
            ROOT_CNODE
                .mint(badged, WORD_BITS, slot(ntfn), Rights::WRITE, 1 << irq.id)
                .ctx("badge a notification for an IRQ")?;
            let h = Cap::<kind::IrqHandler>::from_cptr(handler);
            h.set_notification(Cap::from_cptr(badged))
                .ctx("bind an IRQ to its PD")?;
            // New handlers start masked; the PD acks after each interrupt.
            h.ack().ctx("unmask an IRQ")?;
            irqs.push((irq.id, handler));
        }
        // The recovery page: one frame the PD and the monitor both map.
        let recovery_frame = res.alloc(Object::PAGE)?;
        let mine = res.slots(1)?;
        ROOT_CNODE
            .copy(mine, WORD_BITS, slot(recovery_frame), Rights::ALL)
            .ctx("copy a recovery page cap")?;
        let at = RECOVERY + index as u64 * PAGE;
        own.map(
            res,
            mine,
            at,
            false,
            Rights::READ_WRITE,
            VmAttributes::DEFAULT.no_execute(),
        )?;
        let pool = match pd.recovery.restart {
            Some(_) => {
                let (bytes, slots) = pool_size(plan, pd);
                Some(res.pool(bytes, slots)?)
            }
            None => None,
        };
        pds.push(PdHandle {
            name: pd.name,
            priority: pd.priority,
            stack_size: pd.stack_size,
            tcb: Cap::from_cptr(0),
            kept: Kept {
                ntfn,
                ep,
                irqs,
                recovery_frame,
                recovery: at as *mut u64,
            },
            pool,
            vspace: VSpace::new(Cap::from_cptr(0)),
        });
    }
    let mut system = System {
        pds,
        fault_ep: Cap::from_cptr(fault_ep),
        regions,
        tsc_mhz,
        zero_slot: res.slots(1)?,
    };
    for i in 0..plan.pds.len() {
        let mut pool = system.pds[i].pool.take();
        let built = system.construct(plan, i, own, res, pool.as_mut());
        system.pds[i].pool = pool;
        built?;
    }
    Ok(system)
}

impl System<'_> {
    /// Each region's first frame cap (the monitor's clock maps the HPET's).
    #[cfg(target_arch = "x86_64")]
    pub fn region_frame(&self, r: usize) -> u64 {
        self.regions[r].0
    }
}

/// Creates at `dest` the handler of `irq`, from its source.
fn irq_handler(dest: Slot, irq: &boot_plan::Irq) -> Setup<()> {
    match irq.source {
        #[cfg(target_arch = "x86_64")]
        IrqSource::Ioapic {
            ioapic,
            pin,
            level_triggered,
            active_low,
        } => {
            let line = cap::IoapicLine {
                ioapic,
                pin,
                level_triggered,
                active_low,
            };
            IRQ_CONTROL.get_ioapic(dest, line, irq.vector)
        }
        #[cfg(target_arch = "x86_64")]
        IrqSource::Msi {
            bus,
            dev,
            func,
            handle,
        } => IRQ_CONTROL.get_msi(
            dest,
            (bus as u64, dev as u64, func as u64),
            handle,
            irq.vector,
        ),
        #[cfg(target_arch = "arm")]
        IrqSource::Gic { irq } => IRQ_CONTROL.get(dest, irq),
        // system-builder gives each architecture only its own sources.
        #[allow(unreachable_patterns)]
        _ => return fail("an interrupt source this architecture does not have"),
    }
    .ctx("create an IRQ handler")
}

/// Places the I/O port range `io` in a PD's CSpace.
#[cfg(target_arch = "x86_64")]
fn ioport(dest: Cap<kind::CNode>, io: &boot_plan::IoPort) -> Setup<()> {
    let range = cap::ioport_range(io.addr, io.addr + (io.size - 1));
    mint(
        dest,
        cspace::IOPORT_BASE + io.id as u64,
        init_cap::CapIOPort,
        Rights::ALL,
        range,
    )
}

#[cfg(target_arch = "arm")]
fn ioport(_dest: Cap<kind::CNode>, _io: &boot_plan::IoPort) -> Setup<()> {
    fail("I/O ports in a plan for ARM, which has none")
}
