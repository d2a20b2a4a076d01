//! Builds the system a boot plan describes, with Microkit's semantics: per
//! PD a VSpace, a CSpace in libmicrokit's layout, a TCB, an IPC buffer, a
//! stack with an unmapped guard page, and its ELF segments; system-wide the
//! memory regions, notifications, endpoints, IRQ handlers and I/O ports.
//! The PDs are created stopped; [`System::start`] resumes them all.

use crate::error::{Context, Setup, fail};
use crate::resources::{Object, ROOT_CNODE, Resources};
use crate::vspace::VSpace;
use alloc::vec::Vec;
use boot_plan::layout::{self, cspace};
use boot_plan::{IrqSource, Perms, Plan, SetvarValue};
use sel4::cap::{self, Cap, Rights, Slot, TcbConfig, UserContext, VmAttributes, kind};
use sel4::{WORD_BITS, init_cap};

/// Where the monitor maps a frame of its own to fill it (PD images): far
/// from its own image, inside the user address space.
#[cfg(target_arch = "x86_64")]
pub const SCRATCH: u64 = 1 << 39;
#[cfg(target_arch = "arm")]
pub const SCRATCH: u64 = 0xa000_0000;
const PAGE: u64 = sel4::PAGE_SIZE as u64;

const IRQ_CONTROL: Cap<kind::IrqControl> = Cap::from_cptr(init_cap::CapIRQControl);
const ASID_POOL: Cap<kind::AsidPool> = Cap::from_cptr(init_cap::CapInitThreadASIDPool);

/// A running (or startable) PD.
pub struct PdHandle<'a> {
    pub name: &'a str,
    pub priority: u8,
    pub stack_size: u64,
    pub tcb: Cap<kind::Tcb>,
}

pub struct System<'a> {
    pub pds: Vec<PdHandle<'a>>,
    /// Badge `i + 1` identifies PD `i` in fault messages.
    pub fault_ep: Cap<kind::Endpoint>,
}

impl System<'_> {
    pub fn start(&self) -> Setup<()> {
        for pd in &self.pds {
            pd.tcb.resume().ctx("resume a PD")?;
        }
        Ok(())
    }
}

/// The kernel objects of one PD, as monitor CPtrs.
struct PdObjects {
    tcb: u64,
    cnode: Cap<kind::CNode>,
    vspace: VSpace,
    ntfn: u64,
    ep: Option<u64>,
    ipc_buffer: u64,
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

    let mut objs = Vec::with_capacity(plan.pds.len());
    for pd in &plan.pds {
        let root = Cap::<cap::VSpaceKind>::from_cptr(res.alloc(Object::VSPACE)?);
        ASID_POOL.assign(root).ctx("assign an ASID")?;
        objs.push(PdObjects {
            tcb: res.alloc(Object::TCB)?,
            cnode: Cap::from_cptr(res.alloc(Object::cnode(cspace::SIZE_BITS))?),
            vspace: VSpace::new(root),
            ntfn: res.alloc(Object::NOTIFICATION)?,
            ep: if pd.pp_callee {
                Some(res.alloc(Object::ENDPOINT)?)
            } else {
                None
            },
            ipc_buffer: res.alloc(Object::PAGE)?,
        });
    }

    for (index, (pd, o)) in plan.pds.iter().zip(&mut objs).enumerate() {
        // Program segments, with setvars patched in.
        for seg in &pd.segments {
            let start = seg.vaddr & !(PAGE - 1);
            let end = (seg.vaddr + seg.mem_size).next_multiple_of(PAGE);
            for page in (start..end).step_by(PAGE as usize) {
                let frame = res.alloc(Object::PAGE)?;
                own.map(
                    res,
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
                        SetvarValue::RegionPaddr(r) => regions[r as usize].1,
                        SetvarValue::BootInfoTscMhz => tsc_mhz,
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
                o.vspace.map(
                    res,
                    frame,
                    page,
                    false,
                    rights(seg.perms),
                    attributes(seg.perms, VmAttributes::DEFAULT),
                )?;
            }
        }

        o.vspace.map(
            res,
            o.ipc_buffer,
            layout::IPC_BUFFER_VADDR,
            false,
            Rights::READ_WRITE,
            VmAttributes::DEFAULT.no_execute(),
        )?;
        let pages = pd.stack_size / PAGE;
        let stack = res.alloc_n(Object::PAGE, pages)?;
        for i in 0..pages {
            let vaddr = layout::STACK_TOP - pd.stack_size + i * PAGE;
            o.vspace.map(
                res,
                stack + i,
                vaddr,
                false,
                Rights::READ_WRITE,
                VmAttributes::DEFAULT.no_execute(),
            )?;
        }

        for m in &pd.maps {
            let region = &plan.regions[m.region as usize];
            let (first, _) = regions[m.region as usize];
            let page_size = 1u64 << region.page_bits;
            let attr = attributes(
                m.perms,
                if m.cached {
                    VmAttributes::DEFAULT
                } else {
                    VmAttributes::CACHE_DISABLED
                },
            );
            for i in 0..region.size / page_size {
                // A frame cap maps once: every mapping gets its own copy.
                let copy = res.slots(1)?;
                ROOT_CNODE
                    .copy(copy, WORD_BITS, slot(first + i), Rights::ALL)
                    .ctx("copy a frame cap")?;
                let large = region.page_bits == 21;
                o.vspace.map(
                    res,
                    copy,
                    m.vaddr + i * page_size,
                    large,
                    rights(m.perms),
                    attr,
                )?;
            }
        }

        // libmicrokit's CSpace layout.
        let input = o.ep.unwrap_or(o.ntfn);
        mint(o.cnode, cspace::INPUT, input, Rights::ALL, 0)?;
        mint(
            o.cnode,
            cspace::MONITOR_EP,
            fault_ep,
            Rights::WRITE.union(Rights::GRANT),
            index as u64 + 1,
        )?;
        mint(o.cnode, cspace::TCB, o.tcb, Rights::ALL, 0)?;
        for irq in &pd.irqs {
            let handler = res.slots(1)?;
            irq_handler(slot(handler), irq)?;
            let badged = res.slots(1)?;
            ROOT_CNODE
                .mint(badged, WORD_BITS, slot(o.ntfn), Rights::WRITE, 1 << irq.id)
                .ctx("badge a notification for an IRQ")?;
            let h = Cap::<kind::IrqHandler>::from_cptr(handler);
            h.set_notification(Cap::from_cptr(badged))
                .ctx("bind an IRQ to its PD")?;
            // New handlers start masked; the PD acks after each interrupt.
            h.ack().ctx("unmask an IRQ")?;
            mint(
                o.cnode,
                cspace::IRQ_BASE + irq.id as u64,
                handler,
                Rights::ALL,
                0,
            )?;
        }
        for io in &pd.ioports {
            ioport(o.cnode, io)?;
        }
    }

    for ch in &plan.channels {
        for (a, b) in [(ch.ends[0], ch.ends[1]), (ch.ends[1], ch.ends[0])] {
            let (from, to) = (&objs[a.pd as usize], &objs[b.pd as usize]);
            if a.notify {
                mint(
                    from.cnode,
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
                    from.cnode,
                    cspace::PPC_BASE + a.id as u64,
                    ep,
                    Rights::WRITE.union(Rights::GRANT),
                    badge,
                )?;
            }
        }
    }

    let mut pds = Vec::with_capacity(plan.pds.len());
    for (pd, o) in plan.pds.iter().zip(objs) {
        let tcb = Cap::<kind::Tcb>::from_cptr(o.tcb);
        tcb.configure(&TcbConfig {
            fault_ep: cspace::MONITOR_EP,
            priority: pd.priority,
            cspace: o.cnode,
            cspace_data: cap::cnode_guard(0, (WORD_BITS - cspace::SIZE_BITS) as u64),
            vspace: o.vspace.root,
            ipc_buffer_vaddr: layout::IPC_BUFFER_VADDR,
            ipc_buffer: Cap::from_cptr(o.ipc_buffer),
        })
        .ctx("configure a TCB")?;
        if pd.pp_callee {
            tcb.bind_notification(Cap::from_cptr(o.ntfn))
                .ctx("bind a notification")?;
        }
        let regs = UserContext::start(pd.entry, layout::STACK_TOP);
        tcb.write_registers(false, &regs)
            .ctx("set a PD's entry point")?;
        pds.push(PdHandle {
            name: pd.name,
            priority: pd.priority,
            stack_size: pd.stack_size,
            tcb,
        });
    }
    Ok(System {
        pds,
        fault_ep: Cap::from_cptr(fault_ep),
    })
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
