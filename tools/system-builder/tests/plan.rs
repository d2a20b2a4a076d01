//! System -> boot plan: every field of a multi-PD system, checked against
//! values read with binutils, and the two image rules only the plan step
//! enforces (W^X, one segment per page).

mod common;

use boot_plan::{
    Channel, ChannelEnd, IoPort, Irq, IrqSource, Map, Pd, Perms, Plan, Region, Segment, Setvar,
    SetvarValue,
};
use common::{Phdr, assert_loads, build_c, fixtures, nm, pd_source, readelf_phdrs, sys};
use system_builder::{DEFAULT_STACK_SIZE, Diagnostic, plan};

const SYSTEM: &str = r#"<system>
    <memory_region name="shared" size="0x2000"/>
    <memory_region name="dev" size="0x1000" phys_addr="0xfebf0000"/>
    <memory_region name="big" size="0x400000" page_size="0x200000"/>
    <protection_domain name="timer" priority="200" stack_size="0x4000">
        <program_image path="pd.elf"/>
        <map mr="dev" vaddr="0x2000000" perms="rw" cached="false" setvar_vaddr="shared_vaddr"/>
        <setvar symbol="dev_paddr" region_paddr="dev"/>
        <irq id="3" pin="11" vector="5" trigger="level" polarity="low" setvar_id="timer_id"/>
        <ioport id="0" addr="0x40" size="4"/>
    </protection_domain>
    <protection_domain name="server" priority="150">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x3000000" perms="r"/>
        <map mr="big" vaddr="0x40000000" perms="rw"/>
        <setvar symbol="buf_paddr" region_paddr="shared"/>
        <irq id="5" pcidev="01:1f.7" handle="2" vector="9"/>
    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x5000000" perms="rw"/>
    </protection_domain>
    <channel>
        <end pd="client" id="0" pp="true"/>
        <end pd="server" id="1" notify="false"/>
    </channel>
    <channel>
        <end pd="timer" id="1"/>
        <end pd="client" id="61" setvar_id="client_id"/>
    </channel>
</system>
"#;

fn perms(r: bool, w: bool, x: bool) -> Perms {
    Perms {
        read: r,
        write: w,
        execute: x,
    }
}

/// The segments of `file` as binutils sees them, with their file bytes.
fn expected_segments<'a>(phdrs: &[Phdr], file: &'a [u8]) -> Vec<Segment<'a>> {
    phdrs
        .iter()
        .filter(|p| p.kind == "LOAD" && p.memsz > 0)
        .map(|p| Segment {
            vaddr: p.vaddr,
            mem_size: p.memsz,
            perms: perms(
                p.flags.contains('R'),
                p.flags.contains('W'),
                p.flags.contains('E'),
            ),
            data: &file[p.offset as usize..(p.offset + p.filesz) as usize],
        })
        .collect()
}

#[test]
fn multi_pd_system_gives_the_expected_plan() {
    let loaded = assert_loads(SYSTEM);
    let system = &loaded.system;
    let files = plan::read_images(system).expect("images readable");
    let got = plan::build_plan(system, &files).expect("plan builds");

    let elf = fixtures().join("pd.elf");
    let file = std::fs::read(&elf).unwrap();
    let segments = expected_segments(&readelf_phdrs(&elf), &file);
    assert!(segments.len() >= 2, "pd.elf has code and data segments");
    let entry = nm(&elf, "_start");
    let pd = |name, priority, stack_size, pp_callee| Pd {
        name,
        priority,
        stack_size,
        entry,
        pp_callee,
        segments: segments.clone(),
        maps: vec![],
        irqs: vec![],
        ioports: vec![],
        setvars: vec![],
        recovery: Default::default(),
    };
    let mut timer = pd("timer", 200, 0x4000, false);
    timer.maps = vec![Map {
        region: 1,
        vaddr: 0x200_0000,
        perms: perms(true, true, false),
        cached: false,
    }];
    timer.irqs = vec![Irq {
        id: 3,
        vector: 5,
        source: IrqSource::Ioapic {
            ioapic: 0,
            pin: 11,
            level_triggered: true,
            active_low: true,
        },
    }];
    timer.ioports = vec![IoPort {
        id: 0,
        addr: 0x40,
        size: 4,
    }];
    // Setvars in declaration order; a fixed phys_addr is known now, so it
    // is a plain word.
    timer.setvars = vec![
        Setvar {
            vaddr: nm(&elf, "shared_vaddr"),
            value: SetvarValue::Word(0x200_0000),
        },
        Setvar {
            vaddr: nm(&elf, "dev_paddr"),
            value: SetvarValue::Word(0xfebf_0000),
        },
        Setvar {
            vaddr: nm(&elf, "timer_id"),
            value: SetvarValue::Word(3),
        },
    ];
    let mut server = pd("server", 150, DEFAULT_STACK_SIZE, true);
    server.maps = vec![
        Map {
            region: 0,
            vaddr: 0x300_0000,
            perms: perms(true, false, false),
            cached: true,
        },
        Map {
            region: 2,
            vaddr: 0x4000_0000,
            perms: perms(true, true, false),
            cached: true,
        },
    ];
    server.irqs = vec![Irq {
        id: 5,
        vector: 9,
        source: IrqSource::Msi {
            bus: 1,
            dev: 0x1f,
            func: 7,
            handle: 2,
        },
    }];
    // 'shared' has no phys_addr: only the monitor will know it.
    server.setvars = vec![Setvar {
        vaddr: nm(&elf, "buf_paddr"),
        value: SetvarValue::RegionPaddr(0),
    }];
    let mut client = pd("client", 100, DEFAULT_STACK_SIZE, false);
    client.maps = vec![Map {
        region: 0,
        vaddr: 0x500_0000,
        perms: perms(true, true, false),
        cached: true,
    }];
    client.setvars = vec![Setvar {
        vaddr: nm(&elf, "client_id"),
        value: SetvarValue::Word(61),
    }];
    let end = |pd, id, notify, pp| ChannelEnd { pd, id, notify, pp };
    let expected = Plan {
        regions: vec![
            Region {
                name: "shared",
                size: 0x2000,
                page_bits: 12,
                phys_addr: None,
            },
            Region {
                name: "dev",
                size: 0x1000,
                page_bits: 12,
                phys_addr: Some(0xfebf_0000),
            },
            Region {
                name: "big",
                size: 0x40_0000,
                page_bits: 21,
                phys_addr: None,
            },
        ],
        pds: vec![timer, server, client],
        channels: vec![
            Channel {
                ends: [end(2, 0, true, true), end(1, 1, false, false)],
            },
            Channel {
                ends: [end(0, 1, true, false), end(2, 61, true, false)],
            },
        ],
        monitor_bench: false,
        tick: None,
    };
    assert_eq!(got, expected);

    // The plan survives the trip to the monitor unchanged.
    let bytes = got.encode();
    assert_eq!(Plan::decode(&bytes).unwrap(), expected);
}

/// Loads a one-PD system whose image is `image` and returns the plan
/// step's diagnostics.
fn plan_errors(image: &str) -> Vec<String> {
    let xml = sys(&format!(
        "\n    <protection_domain name=\"a\">\n        <program_image path=\"{image}\"/>\n    </protection_domain>"
    ));
    let loaded = assert_loads(&xml);
    let files = plan::read_images(&loaded.system).unwrap();
    let diags: Vec<Diagnostic> =
        plan::build_plan(&loaded.system, &files).expect_err("the plan step rejects this image");
    diags.iter().map(ToString::to_string).collect()
}

fn span(p: &Phdr) -> String {
    format!("[{:#x}..{:#x})", p.vaddr, p.vaddr + p.memsz)
}

#[test]
fn writable_and_executable_segment_is_rejected() {
    // -N (omagic) links text and data into one RWX segment.
    let elf = build_c(
        "wx.elf",
        &pd_source(),
        &["-Wl,-N", "-Wl,--no-warn-rwx-segments"],
    );
    let loads: Vec<Phdr> = readelf_phdrs(&elf)
        .into_iter()
        .filter(|p| p.kind == "LOAD")
        .collect();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].flags, "RWE");
    assert_eq!(
        plan_errors("wx.elf"),
        [format!(
            "system.xml:3:24: error: program image 'wx.elf' of protection domain 'a' has a loadable segment {} (rwx) that is both writable and executable; expected no segment both writable and executable (do not link with -N/--omagic, and keep code and data in separate segments)",
            span(&loads[0])
        )]
    );
}

#[test]
fn segments_sharing_a_page_are_rejected_once() {
    // A 16-byte "page size" packs all segments into the first 4 KiB page.
    let elf = build_c("packed.elf", &pd_source(), &["-Wl,-z,max-page-size=0x10"]);
    let loads: Vec<Phdr> = readelf_phdrs(&elf)
        .into_iter()
        .filter(|p| p.kind == "LOAD")
        .collect();
    assert!(loads.len() >= 3, "{loads:?}");
    assert_eq!(loads[0].vaddr >> 12, loads[2].vaddr >> 12);
    assert_eq!(loads[0].flags, "R");
    assert_eq!(loads[1].flags, "RE");
    assert_eq!(
        plan_errors("packed.elf"),
        [format!(
            "system.xml:3:24: error: program image 'packed.elf' of protection domain 'a' has loadable segments {} (r--) and {} (r-x) that share the 4 KiB page at {:#x}; expected every segment on pages of its own, 0x1000 bytes each (link with -z separate-code and -z max-page-size=4096)",
            span(&loads[0]),
            span(&loads[1]),
            loads[0].vaddr & !0xfff
        )]
    );
}

#[test]
fn image_replaced_after_validation_is_caught() {
    let loaded = assert_loads(&sys(
        "\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>\n    </protection_domain>",
    ));
    // The bytes the plan step gets are shorter than the validated file.
    let files = vec![b"\x7fELF".to_vec()];
    let diags = plan::build_plan(&loaded.system, &files).unwrap_err();
    assert_eq!(diags.len(), 1);
    let text = diags[0].to_string();
    assert!(
        text.starts_with("system.xml:3:24: error: program image '")
            && text.contains("of protection domain 'a' changed while the system was built"),
        "{text}"
    );
}

#[test]
fn whole_port_space_does_not_fit_a_plan_entry() {
    let loaded = assert_loads(&sys(
        "\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>\n        <ioport id=\"0\" addr=\"0\" size=\"0x10000\"/>\n    </protection_domain>",
    ));
    let files = plan::read_images(&loaded.system).unwrap();
    let diags: Vec<String> = plan::build_plan(&loaded.system, &files)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        diags,
        [
            "system.xml:4:9: error: ioport 0 of protection domain 'a' spans 0x10000 ports, more than one boot plan entry can describe; expected a size of at most 0xffff ports"
        ]
    );
}

#[test]
fn implicit_tsc_symbol_becomes_a_monitor_setvar() {
    let src = "unsigned long dingo_bootinfo_tsc_mhz = 1;\nvoid _start(void) { for (;;) { } }\n";
    let elf = build_c("tsc.elf", src, &[]);
    let xml = sys(&format!(
        r#"<protection_domain name="timer"><program_image path="{}"/></protection_domain>"#,
        elf.display()
    ));
    let loaded = assert_loads(&xml);
    let files = plan::read_images(&loaded.system).expect("images readable");
    let got = plan::build_plan(&loaded.system, &files).expect("plan builds");
    assert_eq!(
        got.pds[0].setvars,
        vec![Setvar {
            vaddr: nm(&elf, "dingo_bootinfo_tsc_mhz"),
            value: SetvarValue::BootInfoTscMhz,
        }]
    );
}

#[test]
fn implicit_tsc_symbol_of_the_wrong_size_is_an_error() {
    let src = "unsigned int dingo_bootinfo_tsc_mhz = 1;\nvoid _start(void) { for (;;) { } }\n";
    let elf = build_c("tsc4.elf", src, &[]);
    let xml = sys(&format!(
        r#"<protection_domain name="timer"><program_image path="{}"/></protection_domain>"#,
        elf.display()
    ));
    let err = system_builder::load_str("system.xml", &xml, &[]).unwrap_err();
    let text: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("system.xml:1:56: error: program image"),
        "{}",
        text[0]
    );
    assert!(
        text[0].contains("defines 'dingo_bootinfo_tsc_mhz' with 4 bytes"),
        "{}",
        text[0]
    );
}
