//! A full valid system parses into the expected model.

mod common;

use common::{assert_loads, fixtures, nm};
use system_builder::{
    DEFAULT_STACK_SIZE, IPC_BUFFER_VADDR, IrqKind, IrqPolarity, IrqTrigger, PageSize, PciAddress,
    Perms, STACK_GUARD_SIZE, STACK_TOP, SetVarValue, SourcePos,
};

const SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <!-- regions: shared between two PDs, device memory, large pages, RAM -->
    <memory_region name="shared" size="0x2000"/>
    <memory_region name="dev" size="0x1000" phys_addr="0xfebf_0000"/>
    <memory_region name="big" size="0x400000" page_size="0x200000"/>
    <memory_region name="dma" size="4096"/>
    <protection_domain name="timer" priority="200" stack_size="0x4000">
        <program_image path="pd.elf"/>
        <map mr="dev" vaddr="0x2000000" perms="rw" cached="false" setvar_vaddr="shared_vaddr"/>
        <setvar symbol="dev_paddr" region_paddr="dev"/>
        <irq id="3" pin="2" vector="0" trigger="edge" polarity="high" setvar_id="timer_id"/>
        <ioport id="0" addr="0x40" size="4" setvar_addr="port_base"/>
    </protection_domain>
    <protection_domain name="server" priority="150">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x3000000" perms="r" setvar_vaddr="shared_vaddr" setvar_size="shared_size"/>
        <map mr="big" vaddr="0x4000_0000"/>
        <setvar symbol="buf_paddr" region_paddr="dma"/>
        <irq id="5" pcidev="00:03.0" handle="0" vector="1"/>
        <ioport id="1" addr="0xf4" size="1"/>
    </protection_domain>
    <protection_domain name="client" priority="100" budget="1000" period="1000">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x5000000" perms="rw"/>
        <map mr="dma" vaddr="0x6000000" perms="rwx"/>
    </protection_domain>
    <channel>
        <end pd="client" id="0" pp="true" setvar_id="client_id"/>
        <end pd="server" id="1" notify="false"/>
    </channel>
    <channel>
        <end pd="timer" id="1"/>
        <end pd="client" id="61"/>
    </channel>
</system>
"#;

#[test]
fn full_system_parses_into_the_expected_model() {
    let loaded = assert_loads(SYSTEM);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let sys = &loaded.system;
    let elf = fixtures().join("pd.elf");

    // Regions, in declaration order.
    let names: Vec<&str> = sys.memory_regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["shared", "dev", "big", "dma"]);
    let dev = sys.region("dev").unwrap();
    assert_eq!(dev.phys_addr, Some(0xfebf_0000));
    assert_eq!((dev.size, dev.page_size), (0x1000, PageSize::Small));
    let big = sys.region("big").unwrap();
    assert_eq!((big.page_size, big.page_count()), (PageSize::Large, 2));
    assert_eq!(sys.region("dma").unwrap().size, 4096);
    assert_eq!(sys.region("shared").unwrap().phys_addr, None);
    assert_eq!(
        sys.region("shared").unwrap().pos,
        SourcePos { line: 4, col: 5 }
    );

    // PDs and their attributes.
    let (t, s, c) = (
        sys.pd_index("timer").unwrap(),
        sys.pd_index("server").unwrap(),
        sys.pd_index("client").unwrap(),
    );
    assert_eq!((t, s, c), (0, 1, 2));
    let timer = &sys.protection_domains[t];
    let server = &sys.protection_domains[s];
    let client = &sys.protection_domains[c];
    assert_eq!(
        [timer.priority, server.priority, client.priority],
        [200, 150, 100]
    );
    assert_eq!(timer.stack_size, 0x4000);
    assert_eq!(server.stack_size, DEFAULT_STACK_SIZE);
    assert_eq!(timer.stack_bottom(), STACK_TOP - 0x4000);
    let areas = timer.reserved_areas();
    assert_eq!(
        (areas[1].start, areas[1].end),
        (STACK_TOP - 0x4000 - STACK_GUARD_SIZE, STACK_TOP - 0x4000)
    );
    assert_eq!(areas[2].start, IPC_BUFFER_VADDR);
    assert_eq!((client.budget_us, client.period_us), (1000, 1000));
    assert_eq!(timer.pos, SourcePos { line: 8, col: 5 });

    // The program image: entry, segments and their file bytes, checked
    // against binutils and the file itself rather than the builder's reader.
    let img = &timer.program_image;
    assert_eq!(img.declared_path, "pd.elf");
    assert_eq!(img.path, elf);
    assert_eq!(img.entry, nm(&elf, "_start"));
    let exec: Vec<_> = img.segments.iter().filter(|s| s.perms.execute).collect();
    assert_eq!(exec.len(), 1);
    assert!(exec[0].vaddr <= img.entry && img.entry < exec[0].vaddr + exec[0].memsz);
    assert!(!exec[0].perms.write);
    let data_word = nm(&elf, "data_word");
    let data = img
        .segments
        .iter()
        .find(|s| s.vaddr <= data_word && data_word < s.vaddr + s.memsz)
        .expect("a segment holds data_word");
    assert_eq!(data.perms, Perms::new(true, true, false));
    assert!(data.filesz <= data.memsz);
    let file = std::fs::read(&elf).unwrap();
    let at = (data.offset + data_word - data.vaddr) as usize;
    assert_eq!(u64::from_le_bytes(file[at..at + 8].try_into().unwrap()), 5);

    // Maps, resolved to region indices.
    let shared = sys.region_index("shared").unwrap();
    assert_eq!(timer.maps.len(), 1);
    let m = &timer.maps[0];
    assert_eq!(m.mr, sys.region_index("dev").unwrap());
    assert_eq!(
        (m.vaddr, m.perms, m.cached),
        (0x200_0000, Perms::new(true, true, false), false)
    );
    assert_eq!(m.pos, SourcePos { line: 10, col: 9 });
    assert_eq!(server.maps[0].mr, shared);
    assert_eq!(server.maps[0].perms, Perms::new(true, false, false));
    assert!(server.maps[0].cached);
    assert_eq!(server.maps[1].vaddr, 0x4000_0000);
    assert_eq!(client.maps[0].mr, shared);
    assert_eq!(client.maps[1].perms, Perms::new(true, true, true));

    // IRQs: one IOAPIC, one MSI.
    assert_eq!(timer.irqs.len(), 1);
    assert_eq!(timer.irqs[0].id, 3);
    assert_eq!(
        timer.irqs[0].kind,
        IrqKind::Ioapic {
            ioapic: 0,
            pin: 2,
            trigger: IrqTrigger::Edge,
            polarity: IrqPolarity::ActiveHigh,
            vector: 0
        }
    );
    assert_eq!(
        server.irqs[0].kind,
        IrqKind::Msi {
            pci: PciAddress {
                bus: 0,
                dev: 3,
                func: 0
            },
            handle: 0,
            vector: 1
        }
    );

    // I/O ports.
    assert_eq!(
        (
            timer.ioports[0].id,
            timer.ioports[0].addr,
            timer.ioports[0].size
        ),
        (0, 0x40, 4)
    );
    assert_eq!(
        (
            server.ioports[0].id,
            server.ioports[0].addr,
            server.ioports[0].size
        ),
        (1, 0xf4, 1)
    );

    // Setvars, each with its symbol's address from the ELF.
    let value = |pd: &system_builder::ProtectionDomain, sym: &str| {
        let sv = pd
            .setvars
            .iter()
            .find(|v| v.symbol == sym)
            .unwrap_or_else(|| panic!("setvar {sym}"));
        assert_eq!(sv.symbol_vaddr, nm(&elf, sym), "address of {sym}");
        (sv.value, sv.known_value(sys))
    };
    assert_eq!(timer.setvars.len(), 4);
    assert_eq!(
        value(timer, "shared_vaddr"),
        (SetVarValue::Vaddr(0x200_0000), Some(0x200_0000))
    );
    assert_eq!(
        value(timer, "dev_paddr"),
        (
            SetVarValue::RegionPaddr {
                mr: sys.region_index("dev").unwrap()
            },
            Some(0xfebf_0000)
        )
    );
    assert_eq!(value(timer, "timer_id"), (SetVarValue::Id(3), Some(3)));
    assert_eq!(
        value(timer, "port_base"),
        (SetVarValue::IoPortAddr(0x40), Some(0x40))
    );
    assert_eq!(server.setvars.len(), 3);
    assert_eq!(
        value(server, "shared_vaddr"),
        (SetVarValue::Vaddr(0x300_0000), Some(0x300_0000))
    );
    assert_eq!(
        value(server, "shared_size"),
        (SetVarValue::Size(0x2000), Some(0x2000))
    );
    // dma has no phys_addr: the monitor allocates it, so the value is unknown here.
    assert_eq!(
        value(server, "buf_paddr"),
        (
            SetVarValue::RegionPaddr {
                mr: sys.region_index("dma").unwrap()
            },
            None
        )
    );
    assert_eq!(client.setvars.len(), 1);
    assert_eq!(value(client, "client_id"), (SetVarValue::Id(0), Some(0)));

    // Channels, with PD indices, pp and notify.
    assert_eq!(sys.channels.len(), 2);
    let [a, b] = &sys.channels[0].ends;
    assert_eq!((a.pd, a.id, a.pp, a.notify), (c, 0, true, true));
    assert_eq!((b.pd, b.id, b.pp, b.notify), (s, 1, false, false));
    assert_eq!(sys.channels[0].pos, SourcePos { line: 28, col: 5 });
    let [a, b] = &sys.channels[1].ends;
    assert_eq!((a.pd, a.id, b.pd, b.id), (t, 1, c, 61));
    assert!(sys.is_pp_callee(s));
    assert!(!sys.is_pp_callee(c) && !sys.is_pp_callee(t));
    let client_ends: Vec<u64> = sys.ends_of(c).map(|(own, _)| own.id).collect();
    assert_eq!(client_ends, [0, 61]);
}

#[test]
fn non_default_budget_is_a_warning_not_an_error() {
    let xml = common::sys(
        r#"
    <protection_domain name="a" budget="500" period="2000">
        <program_image path="pd.elf"/>
    </protection_domain>"#,
    );
    let loaded = assert_loads(&xml);
    let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "system.xml:2:33: warning: budget=\"500\" is ignored: scheduling budgets and periods need an MCS kernel, and seL4 5.0.0 here is built without MCS, so this PD runs unbounded at its priority; expected no budget attribute, or the default 1000",
            "system.xml:2:46: warning: period=\"2000\" is ignored: scheduling budgets and periods need an MCS kernel, and seL4 5.0.0 here is built without MCS, so this PD runs unbounded at its priority; expected no period attribute, or the default 1000",
        ]
    );
    let pd = &loaded.system.protection_domains[0];
    assert_eq!((pd.budget_us, pd.period_us), (500, 2000));
    // Defaults: priority 0, 8 KiB stack.
    assert_eq!((pd.priority, pd.stack_size), (0, 0x2000));
}
