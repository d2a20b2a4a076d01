//! The report's per-PD CSpace, maps, channels and segments, and its
//! system-wide region and channel lists, for a small system.

mod common;

use common::{assert_loads, fixtures, nm, readelf_phdrs};
use system_builder::report;

const SYSTEM: &str = r#"<system>
    <memory_region name="shared" size="0x2000"/>
    <memory_region name="dev" size="0x200000" page_size="0x200000" phys_addr="0xfe000000"/>
    <protection_domain name="pd1" priority="100">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x3000000" perms="rw" setvar_vaddr="shared_vaddr"/>
        <setvar symbol="buf_paddr" region_paddr="shared"/>
    </protection_domain>
    <protection_domain name="pd2" priority="200" stack_size="0x4000">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x4000000" perms="r"/>
        <map mr="dev" vaddr="0x40000000" perms="rw" cached="false"/>
        <irq id="7" pin="4" vector="4" trigger="level" polarity="low"/>
        <irq id="9" pcidev="00:03.0" handle="1" vector="12"/>
        <ioport id="2" addr="0x3f8" size="8"/>
    </protection_domain>
    <channel>
        <end pd="pd1" id="0" pp="true"/>
        <end pd="pd2" id="3"/>
    </channel>
    <channel>
        <end pd="pd1" id="5" notify="false"/>
        <end pd="pd2" id="4"/>
    </channel>
</system>
"#;

/// The lines of `section` (from its heading up to the next blank line).
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != heading)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn report_lists_slots_maps_channels_and_regions() {
    let loaded = assert_loads(SYSTEM);
    let text = report::render(&loaded.system, None);
    let elf = fixtures().join("pd.elf");

    let pd1 = section(&text, "== Protection domain 'pd1' (index 0) ==");
    let pd2 = section(&text, "== Protection domain 'pd2' (index 1) ==");
    let has = |lines: &[&str], want: &str| {
        assert!(
            lines.contains(&want),
            "missing line\n{want}\nin\n{}",
            lines.join("\n")
        );
    };

    // pd1 calls pd2 on ch 0 and notifies it there; it cannot notify on ch 5.
    for line in [
        "  priority:   100",
        &format!("  entry:      {:#x}", nm(&elf, "_start")),
        "  stack:      [0x7fffffe000..0x8000000000) (0x2000 bytes), guard page [0x7fffffd000..0x7fffffe000)",
        "  IPC buffer: 0x10000000000",
        "    slot   1 (input): notification of pd1",
        "    slot   5 (monitor): endpoint of the monitor, badge 1 (PD index + 1), also the fault endpoint",
        "    slot   6 (tcb): TCB of pd1",
        "    slot  10 (notify ch 0): notification of pd2, badge bit 3",
        "    slot  74 (ppc ch 0): endpoint of pd2, badge bit 27 | 3 (0x8000003)",
        "    [0x3000000..0x3002000) -> shared: rw-, cached, 0x2000 bytes in 4 KiB pages",
        "    ch  0 <-> pd2:3: notifies pd2: yes; notified by pd2: yes; calls pd2 (pp)",
        "    ch  5 <-> pd2:4: notifies pd2: no; notified by pd2: yes",
        &format!(
            "    shared_vaddr at {:#x} = 0x3000000",
            nm(&elf, "shared_vaddr")
        ),
        &format!(
            "    buf_paddr at {:#x} = physical address of 'shared', set by the monitor at boot",
            nm(&elf, "buf_paddr")
        ),
    ] {
        has(&pd1, line);
    }
    assert!(
        !pd1.iter().any(|l| l.contains("slot  15")),
        "no notify cap on ch 5"
    );

    // pd2 is called, so its input is an endpoint; it has IRQs and ports.
    for line in [
        "    slot   1 (input): endpoint of pd2 (a peer calls it; its notification is bound to its TCB)",
        "    slot   5 (monitor): endpoint of the monitor, badge 2 (PD index + 1), also the fault endpoint",
        "    slot  13 (notify ch 3): notification of pd1, badge bit 0",
        "    slot  14 (notify ch 4): notification of pd1, badge bit 5",
        "    slot 145 (irq ch 7): IRQ handler, IOAPIC 0 pin 4 vector 4, level triggered, active low; delivered as badge bit 7",
        "    slot 147 (irq ch 9): IRQ handler, MSI of PCI 00:03.0 handle 1 vector 12; delivered as badge bit 9",
        "    slot 396 (ioport 2): I/O ports [0x3f8..0x400) (8 ports)",
        "  stack:      [0x7fffffc000..0x8000000000) (0x4000 bytes), guard page [0x7fffffb000..0x7fffffc000)",
        "    [0x4000000..0x4002000) -> shared: r--, cached, 0x2000 bytes in 4 KiB pages",
        "    [0x40000000..0x40200000) -> dev: rw-, uncached, 0x200000 bytes in 2 MiB pages",
        "    ch  3 <-> pd1:0: notifies pd1: yes; notified by pd1: yes; called by pd1 (pp)",
    ] {
        has(&pd2, line);
    }
    assert!(
        !pd2.iter().any(|l| l.contains("(ppc ch")),
        "pd2 calls nobody"
    );

    // Segments as binutils sees them.
    for p in readelf_phdrs(&elf)
        .iter()
        .filter(|p| p.kind == "LOAD" && p.memsz > 0)
    {
        let perms: String = [('R', 'r'), ('W', 'w'), ('E', 'x')]
            .iter()
            .map(|&(f, c)| if p.flags.contains(f) { c } else { '-' })
            .collect();
        has(
            &pd1,
            &format!(
                "    [{:#x}..{:#x}) {perms}, {:#x} bytes from the file",
                p.vaddr,
                p.vaddr + p.memsz,
                p.filesz
            ),
        );
    }

    assert_eq!(
        section(&text, "== Memory regions =="),
        [
            "== Memory regions ==",
            "  shared: 0x2000 bytes, 2 pages of 4 KiB, allocated at boot, physically contiguous",
            "    mapped by pd1 at [0x3000000..0x3002000) rw-",
            "    mapped by pd2 at [0x4000000..0x4002000) r--",
            "  dev: 0x200000 bytes, 1 page of 2 MiB, phys_addr [0xfe000000..0xfe200000)",
            "    mapped by pd2 at [0x40000000..0x40200000) rw-",
        ]
    );
    assert_eq!(
        section(&text, "== Channels =="),
        [
            "== Channels ==",
            "  pd1:0 <-> pd2:3: pd1 notifies pd2: yes; pd2 notifies pd1: yes; pd1 calls pd2 (pp)",
            "  pd1:5 <-> pd2:4: pd1 notifies pd2: no; pd2 notifies pd1: yes",
        ]
    );
    assert!(text.contains("\n2 protection domains, 2 memory regions, 2 channels\n"));
}
