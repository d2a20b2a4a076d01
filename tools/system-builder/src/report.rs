//! The human-readable build report, in the spirit of Microkit's
//! `report.txt`: for every PD its scheduling and address-space facts, its
//! CSpace slot by slot (libmicrokit's layout), its maps, channels, setvars
//! and ELF segments; then every memory region and every channel.
//!
//! The report is derived from the same validated [`System`] as the boot
//! plan, with the same rules (who gets which cap, which badge), so reading
//! it tells a PD author what `microkit_notify(ch)` or `microkit_ppcall(ch)`
//! will reach.

use std::fmt::Write;

use crate::image::PackedImage;
use crate::model::{
    ChannelEnd, IrqKind, IrqPolarity, IrqTrigger, PageSize, ProtectionDomain, STACK_GUARD_SIZE,
    SetVarValue, System, cspace,
};

fn range(lo: u64, hi: u64) -> String {
    format!("[{lo:#x}..{hi:#x})")
}

fn page_size(p: PageSize) -> &'static str {
    match p {
        PageSize::Small => "4 KiB",
        PageSize::Large => "2 MiB",
        PageSize::Section => "1 MiB",
    }
}

/// "1 port", "2 ports".
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Renders the report. `image`, when given, adds where the plan was placed.
pub fn render(system: &System, image: Option<&PackedImage>) -> String {
    let mut out = String::new();
    let o = &mut out;
    // Writing to a String cannot fail, so the results are ignored below.
    let _ = writeln!(o, "Dingo system report for {}", system.file);
    if let Some(img) = image {
        let _ = writeln!(
            o,
            "boot plan: {:#x} bytes at vaddr {:#x} (file offset {:#x}), image {:#x} bytes",
            img.plan_size,
            img.plan_vaddr,
            img.plan_offset,
            img.bytes.len()
        );
    }
    let _ = writeln!(
        o,
        "{}, {}, {}",
        count(system.protection_domains.len() as u64, "protection domain"),
        count(system.memory_regions.len() as u64, "memory region"),
        count(system.channels.len() as u64, "channel")
    );
    if let Some(t) = &system.tick {
        let _ = writeln!(
            o,
            "monitor clock: HPET timer 1 of '{}' every {} us, IOAPIC pin {} vector {}",
            system.memory_regions[t.hpet].name, t.period_us, t.pin, t.vector
        );
    }
    for (index, pd) in system.protection_domains.iter().enumerate() {
        o.push('\n');
        pd_section(o, system, index, pd);
    }

    let _ = writeln!(o, "\n== Memory regions ==");
    // Each region's maps, in PD order: one pass over all maps, not one per
    // region (a system may have many thousands of both).
    let mut maps_of: Vec<Vec<(&str, &crate::model::Map)>> =
        vec![Vec::new(); system.memory_regions.len()];
    for pd in &system.protection_domains {
        for m in &pd.maps {
            maps_of[m.mr].push((&pd.name, m));
        }
    }
    for (i, r) in system.memory_regions.iter().enumerate() {
        let place = match r.phys_addr {
            Some(p) => format!("phys_addr {}", range(p, p + r.size)),
            // The monitor allocates each region from one untyped.
            None => "allocated at boot, physically contiguous".into(),
        };
        let _ = writeln!(
            o,
            "  {}: {:#x} bytes, {} of {}, {place}",
            r.name,
            r.size,
            count(r.page_count(), "page"),
            page_size(r.page_size)
        );
        for (pd, m) in &maps_of[i] {
            let _ = writeln!(
                o,
                "    mapped by {pd} at {} {}",
                range(m.vaddr, m.vaddr + r.size),
                m.perms
            );
        }
    }

    let _ = writeln!(o, "\n== Channels ==");
    for c in &system.channels {
        let [a, b] = &c.ends;
        let (an, bn) = (pd_name(system, a), pd_name(system, b));
        let _ = writeln!(
            o,
            "  {an}:{} <-> {bn}:{}: {an} notifies {bn}: {}; {bn} notifies {an}: {}{}",
            a.id,
            b.id,
            yes(a.notify),
            yes(b.notify),
            pp_note(a, b, an, bn)
        );
    }
    out
}

fn pd_name<'s>(system: &'s System, end: &ChannelEnd) -> &'s str {
    &system.protection_domains[end.pd].name
}

fn pp_note(a: &ChannelEnd, b: &ChannelEnd, an: &str, bn: &str) -> String {
    match (a.pp, b.pp) {
        (true, _) => format!("; {an} calls {bn} (pp)"),
        (false, true) => format!("; {bn} calls {an} (pp)"),
        (false, false) => String::new(),
    }
}

fn slot(o: &mut String, slot: u64, what: &str, text: &str) {
    let _ = writeln!(o, "    slot {slot:3} ({what}): {text}");
}

fn pd_section(o: &mut String, system: &System, index: usize, pd: &ProtectionDomain) {
    let callee = system.is_pp_callee(index);
    let img = &pd.program_image;
    let _ = writeln!(o, "== Protection domain '{}' (index {index}) ==", pd.name);
    let _ = writeln!(o, "  priority:   {}", pd.priority);
    let _ = writeln!(
        o,
        "  program:    {} ({})",
        img.declared_path,
        img.path.display()
    );
    let _ = writeln!(o, "  entry:      {:#x}", img.entry);
    let bottom = pd.stack_bottom();
    let layout = pd.board.layout();
    let _ = writeln!(
        o,
        "  stack:      {} ({:#x} bytes), guard page {}",
        range(bottom, layout.stack_top),
        pd.stack_size,
        range(bottom - STACK_GUARD_SIZE, bottom)
    );
    let _ = writeln!(o, "  IPC buffer: {:#x}", layout.ipc_buffer_vaddr);
    let _ = writeln!(o, "  recovery page: {:#x}", layout.recovery_vaddr);

    let _ = writeln!(o, "  CSpace ({} slots):", 1u64 << cspace::SIZE_BITS);
    let input = if callee {
        format!(
            "endpoint of {} (a peer calls it; its notification is bound to its TCB)",
            pd.name
        )
    } else {
        format!("notification of {}", pd.name)
    };
    slot(o, cspace::INPUT, "input", &input);
    slot(
        o,
        cspace::MONITOR_EP,
        "monitor",
        &format!(
            "endpoint of the monitor, badge {} (PD index + 1), also the fault endpoint",
            index + 1
        ),
    );
    slot(o, cspace::TCB, "tcb", &format!("TCB of {}", pd.name));
    let mut ends: Vec<(&ChannelEnd, &ChannelEnd)> = system.ends_of(index).collect();
    ends.sort_by_key(|(own, _)| own.id);
    for (own, peer) in ends.iter().filter(|(own, _)| own.notify) {
        slot(
            o,
            cspace::NOTIFY_BASE + own.id,
            &format!("notify ch {}", own.id),
            &format!(
                "notification of {}, badge bit {}",
                pd_name(system, peer),
                peer.id
            ),
        );
    }
    for (own, peer) in ends.iter().filter(|(own, _)| own.pp) {
        slot(
            o,
            cspace::PPC_BASE + own.id,
            &format!("ppc ch {}", own.id),
            &format!(
                "endpoint of {}, badge bit {} | {} ({:#x})",
                pd_name(system, peer),
                cspace::BADGE_PPC.trailing_zeros(),
                peer.id,
                cspace::BADGE_PPC | peer.id
            ),
        );
    }
    let mut irqs: Vec<_> = pd.irqs.iter().collect();
    irqs.sort_by_key(|i| i.id);
    for irq in irqs {
        let source = match irq.kind {
            IrqKind::Ioapic {
                ioapic,
                pin,
                trigger,
                polarity,
                vector,
            } => format!(
                "IOAPIC {ioapic} pin {pin} vector {vector}, {}, {}",
                match trigger {
                    IrqTrigger::Level => "level triggered",
                    IrqTrigger::Edge => "edge triggered",
                },
                match polarity {
                    IrqPolarity::ActiveHigh => "active high",
                    IrqPolarity::ActiveLow => "active low",
                }
            ),
            IrqKind::Msi {
                pci,
                handle,
                vector,
            } => format!("MSI of PCI {pci} handle {handle} vector {vector}"),
            IrqKind::Gic { irq } => format!("GIC interrupt {irq}, level triggered"),
        };
        slot(
            o,
            cspace::IRQ_BASE + irq.id,
            &format!("irq ch {}", irq.id),
            &format!("IRQ handler, {source}; delivered as badge bit {}", irq.id),
        );
    }
    let mut ports: Vec<_> = pd.ioports.iter().collect();
    ports.sort_by_key(|p| p.id);
    for port in ports {
        slot(
            o,
            cspace::IOPORT_BASE + port.id,
            &format!("ioport {}", port.id),
            &format!(
                "I/O ports {} ({})",
                range(port.addr, port.addr + port.size),
                count(port.size, "port")
            ),
        );
    }

    let _ = writeln!(o, "  maps:");
    if pd.maps.is_empty() {
        let _ = writeln!(o, "    none");
    }
    for m in &pd.maps {
        let r = &system.memory_regions[m.mr];
        let _ = writeln!(
            o,
            "    {} -> {}: {}, {}, {:#x} bytes in {} pages",
            range(m.vaddr, m.vaddr + r.size),
            r.name,
            m.perms,
            if m.cached { "cached" } else { "uncached" },
            r.size,
            page_size(r.page_size)
        );
    }

    let _ = writeln!(o, "  channels:");
    if ends.is_empty() {
        let _ = writeln!(o, "    none");
    }
    for (own, peer) in &ends {
        let peer_name = pd_name(system, peer);
        let pp = match (own.pp, peer.pp) {
            (true, _) => format!("; calls {peer_name} (pp)"),
            (false, true) => format!("; called by {peer_name} (pp)"),
            (false, false) => String::new(),
        };
        let _ = writeln!(
            o,
            "    ch {:2} <-> {peer_name}:{}: notifies {peer_name}: {}; notified by {peer_name}: {}{pp}",
            own.id,
            peer.id,
            yes(own.notify),
            yes(peer.notify)
        );
    }

    if !pd.setvars.is_empty() {
        let _ = writeln!(o, "  setvars:");
    }
    for sv in &pd.setvars {
        let value = match (sv.known_value(system), sv.value) {
            (Some(v), _) => format!("{v:#x}"),
            (None, SetVarValue::RegionPaddr { mr }) => format!(
                "physical address of '{}', set by the monitor at boot",
                system.memory_regions[mr].name
            ),
            (None, SetVarValue::BootInfoTscMhz) => {
                "TSC frequency in MHz from bootinfo, set by the monitor at boot".into()
            }
            (None, other) => unreachable!("only a region's address can be unknown: {other:?}"),
        };
        let _ = writeln!(o, "    {} at {:#x} = {value}", sv.symbol, sv.symbol_vaddr);
    }

    let plan = crate::plan::recovery(system, index);
    if let Some(r) = &pd.recovery.restart {
        let zeroed: Vec<&str> = plan
            .zero
            .iter()
            .map(|z| system.memory_regions[*z as usize].name.as_str())
            .collect();
        let _ = writeln!(
            o,
            "  restart: on a fault or an overrun, backoff {} ms doubling to {} ms, given up after {} failures within {} ms; regions zeroed again: {}",
            r.backoff_ms,
            r.max_backoff_ms,
            r.limit,
            r.window_ms,
            if zeroed.is_empty() {
                "none".into()
            } else {
                zeroed.join(", ")
            }
        );
    }
    if let Some(b) = pd.recovery.budget_ms {
        let _ = writeln!(
            o,
            "  handler budget: {b} ms (an overrun is seen within {} ms)",
            2 * b
        );
    }
    for l in &pd.pci {
        let _ = writeln!(
            o,
            "  on a failure: {} quiesced (bus mastering off) by '{}', where it is channel {}",
            l.bdf, system.protection_domains[l.server].name, l.server_channel
        );
    }
    if let Some(c) = &pd.config {
        let _ = writeln!(
            o,
            "  config (program '{}' of {}; {} words at {:#x}):",
            c.program.name,
            c.program.file,
            c.words.len(),
            c.block_vaddr
        );
        for line in &c.bindings {
            let _ = writeln!(o, "    {line}");
        }
    }
    let _ = writeln!(o, "  segments:");
    for seg in &img.segments {
        let _ = writeln!(
            o,
            "    {} {}, {:#x} bytes from the file",
            range(seg.vaddr, seg.vaddr + seg.memsz),
            seg.perms,
            seg.filesz
        );
    }
}
