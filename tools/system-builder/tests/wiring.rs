//! The generated per-PD config: programs whose images embed a PD manifest
//! (as pd-manifest's generated code does) get every role bound from
//! system.xml and the wiring file, checked, and encoded; every mismatch
//! between the system description and a program's needs is an error with
//! file:line:col.

mod common;

use std::path::PathBuf;

use common::{FILE, build_c, fixtures};
use pd_config::Reader;
use pd_manifest::codegen::embedded;
use pd_manifest::encode::{Word, layout_hash, total_words};
use system_builder::{Loaded, load_with_wiring};

const WIRING: &str = "system.dingo.toml";

/// The PD manifest of every program of these tests.
const MANIFEST: &str = r#"
[program.driver.regions]
mmio = { kind = "device", min_size = 0x1000 }
ring = { kind = "dma", min_size = 0x4000 }
[program.driver.irqs]
dev = {}
[program.driver.ports]
client = { protocol = "EthernetController", side = "provider", data = 0x1000 }
[program.driver.pci]
nic = {}
[program.driver.params]
index = { type = "u8", default = 1 }

[program.stack.ports]
nic = { protocol = "EthernetController", side = "client" }
[program.stack.channels]
logger = {}
[program.stack.pci]
nic = { optional = true }

[program.pci.pci_service]
drivers = { max = 4 }

[program.logger.channels]
clients = { max = 4 }
"#;

/// A program image for `program` of [`MANIFEST`], built with gcc: the two
/// symbols the generated config defines, and nothing else that matters.
fn image(program: &str, manifest: &str) -> PathBuf {
    let m = pd_manifest::manifest::parse("pds/x/pd.toml", manifest).unwrap();
    let words = total_words(&m.programs[program]);
    let bytes = embedded("pds/x/pd.toml", program, manifest);
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    let src = format!(
        "const unsigned char __dingo_manifest[{}] = {{{}}};\n\
         unsigned long __dingo_config[{words}];\n\
         void _start(void) {{ for (;;) {{ }} }}\n",
        bytes.len(),
        list.join(",")
    );
    let name = format!("cfg-{program}-{:x}.elf", layout_hash(&m.programs[program]));
    build_c(&name, &src, &[])
}

/// The four program images, built once: tests run in parallel threads of
/// one process and share the fixture directory.
fn images() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        for p in ["driver", "stack", "pci", "logger"] {
            let path = image(p, MANIFEST);
            std::fs::copy(&path, fixtures().join(format!("{p}.elf"))).unwrap();
        }
    });
}

/// A system of a driver, a stack, a PCI server and a logger; `patch`
/// replaces text in it.
fn system(patch: &[(&str, &str)]) -> String {
    let mut s = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="regs" size="0x1000" phys_addr="0xfebf0000" />
    <memory_region name="dma" size="0x4000" />
    <memory_region name="eth" size="0x4000" />
    <protection_domain name="pci" priority="250">
        <program_image path="pci.elf" />
    </protection_domain>
    <protection_domain name="rtl8139" priority="200">
        <program_image path="driver.elf" />
        <map mr="regs" vaddr="0x10000000" perms="rw" cached="false" />
        <map mr="dma" vaddr="0x10100000" perms="rw" />
        <map mr="eth" vaddr="0x10200000" perms="rw" />
        <irq id="5" pin="11" vector="11" trigger="level" polarity="low" />
    </protection_domain>
    <protection_domain name="net" priority="100">
        <program_image path="stack.elf" />
        <map mr="eth" vaddr="0x10200000" perms="rw" />
    </protection_domain>
    <protection_domain name="logger" priority="50">
        <program_image path="logger.elf" />
    </protection_domain>
    <channel><end pd="rtl8139" id="0" /><end pd="net" id="0" /></channel>
    <channel><end pd="rtl8139" id="1" pp="true" /><end pd="pci" id="0" /></channel>
    <channel><end pd="net" id="1" /><end pd="logger" id="0" /></channel>
</system>
"#
    .to_string();
    for (from, to) in patch {
        assert!(s.contains(from), "the system has no {from:?}");
        s = s.replacen(from, to, 1);
    }
    s
}

fn wiring(patch: &[(&str, &str)]) -> String {
    let mut s = r#"[[port]]
protocol = "EthernetController"
region = "eth"
provider = "rtl8139.client"
client = "net.nic"

[[pci]]
function = "00:03.0"
driver = "rtl8139.nic"

[pd.rtl8139]
regions = { mmio = "regs", ring = "dma" }
params = { index = 2 }

[pd.logger]
channels = { clients = ["net"] }
"#
    .to_string();
    for (from, to) in patch {
        assert!(s.contains(from), "the wiring has no {from:?}");
        s = s.replacen(from, to, 1);
    }
    s
}

fn load(xml: &str, wiring: &str) -> Result<Loaded, Vec<String>> {
    images();
    load_with_wiring(
        FILE,
        xml,
        Some((WIRING, wiring)),
        &[fixtures().to_path_buf()],
    )
    .map_err(|d| d.iter().map(ToString::to_string).collect())
}

fn errors(xml: &str, wiring: &str) -> Vec<String> {
    match load(xml, wiring) {
        Ok(_) => panic!("expected errors, the system loaded"),
        Err(e) => e.into_iter().filter(|l| l.contains(": error: ")).collect(),
    }
}

/// The config words of PD `name`, with `paddr` for every region address
/// the monitor fills in, as a PD would read them.
fn words(l: &Loaded, name: &str, paddr: u64) -> &'static [u64] {
    let pd = l.system.pd(name).unwrap();
    let c = pd.config.as_ref().expect("the PD has a config");
    let flat: Vec<u64> = c
        .words
        .iter()
        .map(|w| match w {
            Word::Value(v) => *v,
            Word::RegionPaddr(_) => paddr,
        })
        .collect();
    Vec::leak(flat)
}

#[test]
fn every_role_is_bound_and_encoded_as_the_pd_reads_it() {
    let l = load(&system(&[]), &wiring(&[])).unwrap();
    let m = pd_manifest::manifest::parse("x", MANIFEST).unwrap();
    let hash = |p: &str| layout_hash(&m.programs[p]);

    let mut r = Reader::new(words(&l, "rtl8139", 0x1230_0000), hash("driver"), "driver");
    assert_eq!(r.name(), "rtl8139");
    let mmio = r.device_region();
    assert_eq!(
        (mmio.vaddr, mmio.size, mmio.paddr),
        (0x1000_0000, 0x1000, 0xfebf0000)
    );
    let ring = r.dma_region(32);
    assert_eq!((ring.vaddr, ring.paddr), (0x1010_0000, 0x1230_0000));
    let irq = r.irq();
    assert_eq!(irq.id, 5);
    assert!(matches!(
        irq.source,
        pd_config::IrqSource::Ioapic {
            pin: 11,
            level: true,
            active_low: true,
            ..
        }
    ));
    let port = r.port("client");
    assert_eq!((port.channel, port.slots, port.peer), (0, 16, "net"));
    assert_eq!(port.side, pd_config::Side::Provider);
    let pci = r.pci();
    assert_eq!(
        (pci.channel, pci.bdf.to_string()),
        (1, "00:03.0".to_string())
    );
    assert_eq!(r.param_u8(), 2);
    r.finish();

    let mut r = Reader::new(words(&l, "pci", 0), hash("pci"), "pci");
    assert_eq!(r.name(), "pci");
    let clients: pd_config::List<pd_config::PciClient, 4> =
        r.list(pd_config::layout::PCI_CLIENT_WORDS, |r| r.pci_client());
    assert_eq!(clients.len(), 1);
    assert_eq!((clients[0].channel, clients[0].pd), (0, "rtl8139"));
    r.finish();

    // The stack's `logger` channel, unbound in the wiring file, is the one
    // to the PD of that name.
    let stack = l.system.pd("net").unwrap().config.as_ref().unwrap();
    assert!(
        stack
            .bindings
            .contains(&"channel role 'logger': channel 1 (to 'logger')".to_string()),
        "{:?}",
        stack.bindings
    );
}

#[test]
fn the_report_shows_each_binding() {
    let l = load(&system(&[]), &wiring(&[])).unwrap();
    let text = system_builder::report::render(&l.system, None);
    for line in [
        "  config (program 'driver' of pds/x/pd.toml; ",
        "    region role 'ring': 'dma' at 0x10100000, 0x4000 bytes, paddr filled in by the monitor (contiguous)",
        "    port role 'client': EthernetController provider end on channel 0 with 'net', region 'eth' at 0x10200000 (0x4000 bytes, 16 slots)",
        "    pci role 'nic': 00:03.0 through 'pci' on channel 1",
        "    pci_service role 'drivers': 00:03.0 to 'rtl8139' on channel 0",
    ] {
        assert!(text.contains(line), "report lacks {line:?}:\n{text}");
    }
}

#[test]
fn port_ends_that_name_different_protocols_are_refused() {
    let manifest = MANIFEST.replace(
        "nic = { protocol = \"EthernetController\", side = \"client\" }",
        "nic = { protocol = \"Timer\", side = \"client\" }",
    );
    let path = image("stack", &manifest);
    images();
    std::fs::copy(path, fixtures().join("stack-timer.elf")).unwrap();
    let xml = system(&[("stack.elf", "stack-timer.elf")]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.dingo.toml:2:12: error: [[port]] speaks EthernetController, but 'net.nic' speaks Timer; expected both ends and the port to name the same Tingu protocol"
        ]
    );
}

#[test]
fn a_port_with_two_providers_is_refused() {
    // The driver's provider role on both ends; the stack's role is then
    // unbound, which is said too.
    let xml = system(&[]);
    let w = wiring(&[("client = \"net.nic\"", "client = \"rtl8139.client\"")]);
    assert_eq!(
        errors(&xml, &w),
        [
            "system.dingo.toml:5:10: error: both ends of the [[port]] are providers: 'rtl8139.client' and 'rtl8139.client'; expected one provider and one client (the mirror)",
            "system.xml:16:5: error: port role 'nic' of program 'stack' (pds/x/pd.toml:15:1) of protection domain 'net' is not bound; expected a [[port]] naming \"net.nic\" in the wiring file",
        ]
    );
}

#[test]
fn a_port_region_too_small_for_its_rings_and_data_is_refused() {
    let xml = system(&[(r#"name="eth" size="0x4000""#, r#"name="eth" size="0x1000""#)]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.xml:5:5: error: memory region 'eth' is 0x1000 bytes, too small for its EthernetController port: two rings of 16 slots and a data area of 0x1000 bytes need 0x1980; expected size=\"0x2000\" or more"
        ]
    );
}

#[test]
fn a_dma_region_smaller_than_the_driver_needs_is_refused() {
    let xml = system(&[(r#"name="dma" size="0x4000""#, r#"name="dma" size="0x2000""#)]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.xml:4:5: error: memory region 'dma' is 0x2000 bytes, but region role 'ring' of program 'driver' (pds/x/pd.toml:4:1) needs at least 0x4000; expected size=\"0x4000\" or more"
        ]
    );
}

#[test]
fn a_device_region_mapped_cached_is_refused() {
    let xml = system(&[(r#"perms="rw" cached="false" />"#, r#"perms="rw" />"#)]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.xml:11:9: error: the map of device region 'regs' is cached, but region role 'mmio' of program 'driver' (pds/x/pd.toml:3:1) is device memory; expected cached=\"false\""
        ]
    );
}

#[test]
fn a_pci_function_claimed_by_two_drivers_is_refused() {
    let w = wiring(&[(
        "[pd.rtl8139]",
        "[[pci]]\nfunction = \"00:03.0\"\ndriver = \"net.nic\"\n\n[pd.rtl8139]",
    )]);
    assert_eq!(
        errors(&system(&[]), &w),
        [
            "system.dingo.toml:12:12: error: PCI function 00:03.0 is claimed by 'net' here and by 'rtl8139' at 8:12; expected each PCI function driven by one PD"
        ]
    );
}

#[test]
fn a_binding_to_a_channel_system_xml_lacks_is_refused() {
    let w = wiring(&[(
        "channels = { clients = [\"net\"] }",
        "channels = { clients = [\"net\", 7] }",
    )]);
    assert_eq!(
        errors(&system(&[]), &w),
        [
            "system.dingo.toml:16:32: error: channel role 'clients' is bound to channel 7, which system.xml does not give protection domain 'logger'; expected the id of one of its <channel> ends: 0"
        ]
    );
}

#[test]
fn a_port_whose_pds_have_no_channel_is_refused() {
    let xml = system(&[(
        r#"<channel><end pd="rtl8139" id="0" /><end pd="net" id="0" /></channel>"#,
        "",
    )]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.dingo.toml:1:1: error: [[port]] joins 'rtl8139' and 'net', but system.xml has no channel between them; expected a <channel> with ends in 'rtl8139' and 'net'"
        ]
    );
}

#[test]
fn an_unbound_role_and_an_unknown_role_are_named() {
    let w = wiring(&[("params = { index = 2 }", "params = { indx = 2 }")]);
    let e = errors(&system(&[]), &w);
    assert_eq!(
        e,
        [
            "system.dingo.toml:13:12: error: [pd.rtl8139] binds param role 'indx', which program 'driver' (pds/x/pd.toml) does not have; expected one of: index"
        ]
    );
    let w = wiring(&[
        ("client = \"net.nic\"\n", "client = \"net.nic\"\n"),
        (
            "[[pci]]\nfunction = \"00:03.0\"\ndriver = \"rtl8139.nic\"\n",
            "",
        ),
    ]);
    assert_eq!(
        errors(&system(&[]), &w),
        [
            "system.dingo.toml:8:5: error: pci role 'nic' of program 'driver' (pds/x/pd.toml:10:1) of protection domain 'rtl8139' is not bound; expected a [[pci]] with driver = \"rtl8139.nic\" in the wiring file"
        ]
    );
}

#[test]
fn a_pci_driver_without_a_pp_channel_to_the_server_is_refused() {
    let xml = system(&[(
        r#"<end pd="rtl8139" id="1" pp="true" />"#,
        r#"<end pd="rtl8139" id="1" />"#,
    )]);
    assert_eq!(
        errors(&xml, &wiring(&[])),
        [
            "system.dingo.toml:8:12: error: [[pci]] gives 00:03.0 to 'rtl8139', but system.xml has no channel on which 'rtl8139' calls 'pci'; expected a <channel> between them with pp=\"true\" on the end in 'rtl8139'"
        ]
    );
}

#[test]
fn wiring_mistakes_are_located() {
    assert_eq!(
        errors(
            &system(&[]),
            &wiring(&[(
                "provider = \"rtl8139.client\"",
                "provider = \"rtl8193.client\""
            )])
        ),
        [
            "system.dingo.toml:4:12: error: provider names unknown protection domain 'rtl8193'; expected the name of a <protection_domain> in system.xml"
        ]
    );
    assert_eq!(
        errors(
            &system(&[]),
            &wiring(&[("function = \"00:03.0\"", "function = \"0:3\"")])
        ),
        [
            "system.dingo.toml:8:12: error: [[pci]] function '0:3' is not a PCI address; expected \"<bus>:<dev>.<func>\" in hex, as lspci prints it (e.g. \"00:03.0\")"
        ]
    );
    assert_eq!(
        errors(
            &system(&[]),
            &wiring(&[("region = \"eth\"", "region = \"eth\"\nsize = 4")])
        ),
        [
            "system.dingo.toml:4:1: error: unknown key 'size' in [[port]]; expected one of: protocol, region, provider, client, slots, channel"
        ]
    );
    assert_eq!(
        errors(&system(&[]), &wiring(&[("[[port]]", "[[port]\n")])),
        errors(&system(&[]), &wiring(&[("[[port]]", "[[port]\n")]))
    );
    let e = errors(&system(&[]), "[[port]\n");
    assert!(e[0].starts_with("system.dingo.toml:1:"), "{e:?}");
    assert!(e[0].contains("malformed TOML"), "{e:?}");
}

#[test]
fn a_manifest_error_names_the_manifest() {
    let bad =
        "[program.stack.ports]\nnic = { protocol = \"EthernetController\", side = \"mirror\" }\n";
    // Built by hand: image() parses the manifest, which fails here.
    let bytes = embedded("pds/x/pd.toml", "stack", bad);
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    let src = format!(
        "const unsigned char __dingo_manifest[{}] = {{{}}};\nunsigned long __dingo_config[32];\nvoid _start(void) {{ for (;;) {{ }} }}\n",
        bytes.len(),
        list.join(",")
    );
    images();
    let path = build_c("cfg-bad.elf", &src, &[]);
    std::fs::copy(path, fixtures().join("stack-bad.elf")).unwrap();
    assert_eq!(
        errors(&system(&[("stack.elf", "stack-bad.elf")]), &wiring(&[])),
        [
            "pds/x/pd.toml:2:49: error: port role 'nic' has side 'mirror'; expected \"provider\" or \"client\""
        ]
    );
}

/// The system with an HPET region the monitor's clock can use.
fn with_hpet(patch: &[(&str, &str)]) -> String {
    let mut p = vec![(
        "<memory_region name=\"dma\"",
        "<memory_region name=\"hpet\" size=\"0x1000\" phys_addr=\"0xfed00000\" />\n    <memory_region name=\"dma\"",
    )];
    p.extend_from_slice(patch);
    system(&p)
}

const SUPERVISED: &str = "params = { index = 2 }\nrestart = { backoff_ms = 20, limit = 3, window_ms = 5000 }\nbudget_ms = 40\n\n[monitor]\nhpet = \"hpet\"";

#[test]
fn a_restart_policy_and_budget_reach_the_plan_with_what_a_restart_needs() {
    let l = load(
        &with_hpet(&[]),
        &wiring(&[("params = { index = 2 }", SUPERVISED)]),
    )
    .unwrap();
    let files = system_builder::plan::read_images(&l.system).unwrap();
    let plan = system_builder::plan::build_plan(&l.system, &files).unwrap();
    let rtl = &plan.pds[1];
    assert_eq!(
        rtl.recovery,
        boot_plan::Recovery {
            restart: Some(boot_plan::Restart {
                backoff_ms: 20,
                max_backoff_ms: 1000,
                limit: 3,
                window_ms: 5000
            }),
            budget_ms: Some(40),
            // The pci PD (index 0) quiesces 00:03.0, the driver's channel
            // there being 0.
            quiesce: vec![boot_plan::Quiesce {
                server: 0,
                channel: 0
            }],
            // dma is the driver's alone; eth is shared with net, regs is
            // device memory.
            zero: vec![2],
        }
    );
    assert_eq!(plan.regions[2].name, "dma");
    assert_eq!(plan.pds[2].recovery, boot_plan::Recovery::default());
    // Half the 40 ms budget capped at 10 ms, the first vector no PD uses,
    // HPET timer 1's pin.
    assert_eq!(
        plan.tick,
        Some(boot_plan::Tick {
            hpet: 1,
            ioapic: 0,
            pin: 8,
            vector: 0,
            period_us: 10_000
        })
    );
    let report = system_builder::report::render(&l.system, None);
    for want in [
        "monitor clock: HPET timer 1 of 'hpet' every 10000 us, IOAPIC pin 8 vector 0",
        "  restart: on a fault or an overrun, backoff 20 ms doubling to 1000 ms, given up after 3 failures within 5000 ms; regions zeroed again: dma",
        "  handler budget: 40 ms (an overrun is seen within 80 ms)",
        "  on a failure: 00:03.0 quiesced (bus mastering off) by 'pci', where it is channel 0",
        "  recovery page: 0x10000001000",
    ] {
        assert!(report.contains(want), "no {want:?} in:\n{report}");
    }
}

#[test]
fn a_pd_without_a_manifest_may_be_restarted() {
    // The logger's restart policy needs no config; a backoff of 0 needs no
    // clock.
    let l = load(
        &system(&[]),
        &wiring(&[(
            "channels = { clients = [\"net\"] }",
            "channels = { clients = [\"net\"] }\nrestart = { backoff_ms = 0 }",
        )]),
    )
    .unwrap();
    let logger = l.system.pd("logger").unwrap();
    assert_eq!(logger.recovery.restart.map(|r| r.backoff_ms), Some(0));
    assert!(l.system.tick.is_none());
}

#[test]
fn supervision_mistakes_are_located() {
    let budget_alone = wiring(&[(
        "params = { index = 2 }",
        "params = { index = 2 }\nbudget_ms = 40",
    )]);
    assert_eq!(
        errors(&system(&[]), &budget_alone),
        [
            "system.dingo.toml:14:13: error: a handler budget for 'rtl8139' needs the monitor's clock, which the wiring file does not give; expected [monitor] hpet = \"<the HPET's memory_region>\" (or backoff_ms = 0 for a restart without delay)"
        ]
    );
    let bad = |from: &str, to: &str| {
        errors(
            &with_hpet(&[]),
            &wiring(&[("params = { index = 2 }", &SUPERVISED.replace(from, to))]),
        )
    };
    assert_eq!(
        bad("limit = 3", "limit = 0"),
        ["system.dingo.toml:14:38: error: limit = 0 in [pd.rtl8139] restart; expected 1 to 100000"]
    );
    assert_eq!(
        bad("limit = 3", "limits = 3"),
        [
            "system.dingo.toml:14:30: error: unknown key 'limits' in [pd.rtl8139] restart; expected one of: backoff_ms, max_backoff_ms, limit, window_ms"
        ]
    );
    assert_eq!(
        bad("budget_ms = 40", "budget_ms = 0"),
        [
            "system.dingo.toml:15:13: error: budget_ms = 0 in [pd.rtl8139]; expected a handler budget of 1 to 60000 ms"
        ]
    );
    assert_eq!(
        bad("backoff_ms = 20,", "backoff_ms = 20, max_backoff_ms = 5,"),
        [
            "system.dingo.toml:14:47: error: max_backoff_ms = 5 in [pd.rtl8139] restart is below backoff_ms = 20; expected a maximum backoff at least the first"
        ]
    );
    assert_eq!(
        bad("hpet = \"hpet\"", "hpet = \"hpets\""),
        [
            "system.dingo.toml:18:8: error: [monitor] hpet names unknown memory region 'hpets'; expected the name of a <memory_region> in system.xml"
        ]
    );
    assert_eq!(
        bad("hpet = \"hpet\"", "hpet = \"dma\""),
        [
            "system.dingo.toml:18:8: error: [monitor] hpet names region 'dma', which is not a device page (no phys_addr, or under 4 KiB); expected the memory_region of the HPET's registers (phys_addr=\"0xfed00000\" on a PC)"
        ]
    );
    // HPET timer 1's pin taken by a PD.
    assert_eq!(
        errors(
            &with_hpet(&[("pin=\"11\"", "pin=\"8\"")]),
            &wiring(&[("params = { index = 2 }", SUPERVISED)])
        ),
        [
            "system.dingo.toml:18:8: error: the monitor's clock (HPET timer 1) interrupts on IOAPIC pin 8, which protection domain 'rtl8139' takes for irq 5 (system.xml:15:9); expected no PD irq on pin 8 while [monitor] is given"
        ]
    );
}

#[test]
fn an_msi_from_another_function_than_the_pds_is_refused() {
    let irq = r#"<irq id="5" pin="11" vector="11" trigger="level" polarity="low" />"#;
    let xml = system(&[(
        irq,
        r#"<irq id="5" pcidev="00:04.0" handle="0" vector="41" />"#,
    )]);
    let e = errors(&xml, &wiring(&[]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("system.xml:")
            && e[0].ends_with(
                "error: <irq id=\"5\">: an MSI from 00:04.0, but protection domain 'rtl8139' drives 00:03.0 (the wiring file's [[pci]]); expected pcidev=\"00:03.0\""
            ),
        "{e:?}"
    );
    // From its own function it is taken.
    let own = system(&[(
        irq,
        r#"<irq id="5" pcidev="00:03.0" handle="0" vector="41" />"#,
    )]);
    assert!(load(&own, &wiring(&[])).is_ok());
}
