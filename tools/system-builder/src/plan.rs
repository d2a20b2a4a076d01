//! Turns a validated [`System`] into the [`boot_plan::Plan`] the monitor
//! executes. Names become indices, setvar values are resolved as far as the
//! build can, and each PD's segment bytes are borrowed from its ELF file.
//!
//! Two properties of the program images are checked here because only the
//! monitor's page-by-page loading depends on them: no 4 KiB page belongs to
//! two segments (each page gets one set of rights), and no segment is both
//! writable and executable (the system promises W^X).

use boot_plan as bp;

use crate::diag::{Diagnostic, Diags};
use crate::model::{
    IrqKind, IrqPolarity, IrqTrigger, PAGE_SIZE_4K, Perms, ProgramImage, Segment, SetVarValue,
    System,
};

/// Reads every PD's program image file, in PD order, for [`build_plan`] to
/// borrow segment bytes from.
pub fn read_images(system: &System) -> Result<Vec<Vec<u8>>, Vec<Diagnostic>> {
    let mut d = Diags::new(&system.file);
    let mut files = Vec::new();
    for pd in &system.protection_domains {
        let img = &pd.program_image;
        match std::fs::read(&img.path) {
            Ok(bytes) => files.push(bytes),
            Err(e) => d.error(
                img.pos,
                format!(
                    "program image '{}' of protection domain '{}' cannot be read any more: {e}",
                    img.path.display(),
                    pd.name
                ),
                "the program image to stay readable while the system is built".into(),
            ),
        }
    }
    finish(d, files)
}

fn finish<T>(d: Diags, value: T) -> Result<T, Vec<Diagnostic>> {
    if d.error_count() == 0 {
        Ok(value)
    } else {
        Err(d.into_sorted())
    }
}

fn perms(p: Perms) -> bp::Perms {
    bp::Perms {
        read: p.read,
        write: p.write,
        execute: p.execute,
    }
}

/// Ids were range-checked (0..=61) when system.xml was validated.
fn small_id(id: u64) -> u8 {
    u8::try_from(id).expect("ids are validated to 0..=61")
}

/// Builds the boot plan. `images[i]` holds the bytes of the program image of
/// PD `i`, as returned by [`read_images`]; the plan borrows from both
/// arguments. Every problem is returned as a diagnostic pointing into
/// system.xml; nothing is built when there is one.
///
/// # Panics
/// If `images` does not hold one file per PD.
pub fn build_plan<'a>(
    system: &'a System,
    images: &'a [Vec<u8>],
) -> Result<bp::Plan<'a>, Vec<Diagnostic>> {
    assert_eq!(
        images.len(),
        system.protection_domains.len(),
        "one program image file per protection domain"
    );
    let mut d = Diags::new(&system.file);
    let regions = system
        .memory_regions
        .iter()
        .map(|r| bp::Region {
            name: &r.name,
            size: r.size,
            page_bits: r.page_size.bits(),
            phys_addr: r.phys_addr,
        })
        .collect();
    let mut pds = Vec::new();
    for (index, (pd, file)) in system.protection_domains.iter().zip(images).enumerate() {
        check_segments(&mut d, &pd.name, &pd.program_image);
        let segments = segments(&mut d, &pd.name, &pd.program_image, file);
        let maps = pd
            .maps
            .iter()
            .map(|m| bp::Map {
                region: u32::try_from(m.mr).expect("region indices fit in u32"),
                vaddr: m.vaddr,
                perms: perms(m.perms),
                cached: m.cached,
            })
            .collect();
        let irqs = pd
            .irqs
            .iter()
            .map(|irq| bp::Irq {
                id: small_id(irq.id),
                vector: irq.vector(),
                source: match irq.kind {
                    IrqKind::Ioapic {
                        ioapic,
                        pin,
                        trigger,
                        polarity,
                        ..
                    } => bp::IrqSource::Ioapic {
                        ioapic,
                        pin,
                        level_triggered: trigger == IrqTrigger::Level,
                        active_low: polarity == IrqPolarity::ActiveLow,
                    },
                    IrqKind::Msi { pci, handle, .. } => bp::IrqSource::Msi {
                        bus: pci.bus,
                        dev: pci.dev,
                        func: pci.func,
                        handle,
                    },
                    IrqKind::Gic { irq } => bp::IrqSource::Gic { irq },
                },
            })
            .collect();
        let mut ioports = Vec::new();
        for port in &pd.ioports {
            // The plan stores a range as u16 start and u16 length, so the
            // one range that system.xml allows but the plan cannot hold is
            // the whole 64 Ki port space.
            match (u16::try_from(port.addr), u16::try_from(port.size)) {
                (Ok(addr), Ok(size)) => ioports.push(bp::IoPort {
                    id: small_id(port.id),
                    addr,
                    size,
                }),
                _ => d.error(
                    port.pos,
                    format!(
                        "ioport {} of protection domain '{}' spans {:#x} ports, more than one boot plan entry can describe",
                        port.id, pd.name, port.size
                    ),
                    "a size of at most 0xffff ports".into(),
                ),
            }
        }
        let mut setvars: Vec<bp::Setvar> = pd
            .setvars
            .iter()
            .map(|sv| bp::Setvar {
                vaddr: sv.symbol_vaddr,
                value: match (sv.known_value(system), sv.value) {
                    (Some(v), _) => bp::SetvarValue::Word(v),
                    (None, SetVarValue::RegionPaddr { mr }) => bp::SetvarValue::RegionPaddr(
                        u32::try_from(mr).expect("region indices fit in u32"),
                    ),
                    (None, SetVarValue::BootInfoTscMhz) => bp::SetvarValue::BootInfoTscMhz,
                    (None, other) => unreachable!("only region addresses are unknown: {other:?}"),
                },
            })
            .collect();
        setvars.extend(
            crate::wiring::config_setvars(pd).map(|(vaddr, w)| bp::Setvar {
                vaddr,
                value: match w {
                    pd_manifest::encode::Word::Value(v) => bp::SetvarValue::Word(v),
                    pd_manifest::encode::Word::RegionPaddr(mr) => bp::SetvarValue::RegionPaddr(
                        u32::try_from(mr).expect("region indices fit in u32"),
                    ),
                },
            }),
        );
        pds.push(bp::Pd {
            name: &pd.name,
            priority: pd.priority,
            stack_size: pd.stack_size,
            entry: pd.program_image.entry,
            pp_callee: system.is_pp_callee(index),
            segments,
            maps,
            irqs,
            ioports,
            setvars,
            recovery: recovery(system, index),
        });
    }
    let channels = system
        .channels
        .iter()
        .map(|c| bp::Channel {
            ends: c.ends.each_ref().map(|e| bp::ChannelEnd {
                pd: u32::try_from(e.pd).expect("PD indices fit in u32"),
                id: small_id(e.id),
                notify: e.notify,
                pp: e.pp,
            }),
        })
        .collect();
    finish(
        d,
        bp::Plan {
            regions,
            pds,
            channels,
            monitor_bench: false,
            tick: system.tick.map(|t| bp::Tick {
                hpet: u32::try_from(t.hpet).expect("region indices fit in u32"),
                ioapic: 0,
                pin: t.pin,
                vector: t.vector,
                period_us: t.period_us,
            }),
        },
    )
}

/// PD `index`'s supervision: its policy and budget from the wiring file,
/// the PCI functions to quiesce when it fails, and, if it is restarted,
/// the regions to zero again (RAM that no other PD maps).
pub(crate) fn recovery(system: &System, index: usize) -> bp::Recovery {
    let pd = &system.protection_domains[index];
    let quiesce = pd
        .pci
        .iter()
        .map(|l| bp::Quiesce {
            server: u32::try_from(l.server).expect("PD indices fit in u32"),
            channel: l.server_channel,
        })
        .collect();
    let mut zero = Vec::new();
    if pd.recovery.restart.is_some() {
        for m in &pd.maps {
            let shared = system
                .protection_domains
                .iter()
                .enumerate()
                .any(|(i, other)| i != index && other.maps.iter().any(|o| o.mr == m.mr));
            let region = u32::try_from(m.mr).expect("region indices fit in u32");
            if !shared && system.memory_regions[m.mr].phys_addr.is_none() && !zero.contains(&region)
            {
                zero.push(region);
            }
        }
    }
    bp::Recovery {
        restart: pd.recovery.restart,
        budget_ms: pd.recovery.budget_ms,
        quiesce,
        zero,
    }
}

fn span(seg: &Segment) -> String {
    format!(
        "[{:#x}..{:#x}) ({})",
        seg.vaddr,
        seg.vaddr + seg.memsz,
        seg.perms
    )
}

/// The W^X and one-segment-per-page rules.
fn check_segments(d: &mut Diags, pd: &str, img: &ProgramImage) {
    for seg in &img.segments {
        if seg.perms.write && seg.perms.execute {
            d.error(
                img.pos,
                format!(
                    "program image '{}' of protection domain '{pd}' has a loadable segment {} that is both writable and executable",
                    img.declared_path,
                    span(seg)
                ),
                "no segment both writable and executable (do not link with -N/--omagic, and keep code and data in separate segments)".into(),
            );
        }
    }
    // One report per image: a linker setup that packs two segments into a
    // page usually packs all of them.
    let mut pairs = img
        .segments
        .iter()
        .enumerate()
        .flat_map(|(i, a)| img.segments[i + 1..].iter().map(move |b| (a, b)));
    if let Some((a, b)) = pairs.find(|(a, b)| {
        let ((a_lo, a_hi), (b_lo, b_hi)) = (a.page_range(), b.page_range());
        a_lo < b_hi && b_lo < a_hi
    }) {
        let page = a.page_range().0.max(b.page_range().0);
        let what = format!(
            "program image '{}' of protection domain '{pd}' has loadable segments {} and {} that share the 4 KiB page at {page:#x}",
            img.declared_path,
            span(a),
            span(b),
        );
        d.error(
            img.pos,
            what,
            format!(
                "every segment on pages of its own, {PAGE_SIZE_4K:#x} bytes each (link with -z separate-code and -z max-page-size=4096)"
            ),
        );
    }
}

/// The segments with their file bytes. The file was validated when
/// system.xml was loaded; it is read again here, so a file replaced in
/// between is caught rather than trusted.
fn segments<'a>(
    d: &mut Diags,
    pd: &str,
    img: &ProgramImage,
    file: &'a [u8],
) -> Vec<bp::Segment<'a>> {
    let mut out = Vec::new();
    for seg in &img.segments {
        let bytes = usize::try_from(seg.offset)
            .ok()
            .zip(usize::try_from(seg.filesz).ok())
            .and_then(|(off, len)| file.get(off..off.checked_add(len)?));
        match bytes {
            Some(data) => out.push(bp::Segment {
                vaddr: seg.vaddr,
                mem_size: seg.memsz,
                perms: perms(seg.perms),
                data,
            }),
            None => {
                d.error(
                    img.pos,
                    format!(
                        "program image '{}' of protection domain '{pd}' changed while the system was built: segment {} lies outside the file",
                        img.path.display(),
                        span(seg)
                    ),
                    "the program image to stay unchanged while the system is built".into(),
                );
                break;
            }
        }
    }
    out
}
