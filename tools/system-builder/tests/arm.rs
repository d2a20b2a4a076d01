//! The Sabre Lite board (32-bit ARM): what system.xml may say there (GIC
//! interrupts, sections, no I/O ports, 28-bit badges), its program format
//! (ELF32 ARM, fixtures built with the cross gcc), the plan it gives, and
//! the boot image (loader + kernel + system image) read back with the
//! loader's own payload parser.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use boot_plan::IrqSource;
use system_builder::{Board, Diagnostic, Loaded, boot_image, load_for, plan};

const FILE: &str = "system.xml";

fn cross_gcc(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let out = dir.join(name);
    let status = Command::new("arm-linux-gnueabihf-gcc")
        .args(["-nostdlib", "-static", "-O1", "-mfloat-abi=soft"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status()
        .expect("run arm-linux-gnueabihf-gcc (tools/prereqs.sh installs it)");
    assert!(status.success(), "arm gcc failed for {name}");
    out
}

/// - `pd.elf`: an ARM PD; `loader.elf`: a loader with the payload
///   symbols at 0x20000000, `low-loader.elf` the same at 0x10000000 (where
///   the kernel goes); `kernel.elf`: a kernel linked at 0xe0000000,
///   loaded at 0x10000000, with `ki_end`.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("arm-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pd = "unsigned long long word = 1;\nvoid _start(void) { for (;;) { } }\n";
        cross_gcc(&dir, "pd.elf", pd, &["-Wl,-Ttext-segment=0x200000"]);
        let loader = "unsigned long long DINGO_PAYLOAD_VADDR = 1;\n\
                      unsigned long long DINGO_PAYLOAD_SIZE = 1;\n\
                      void _start(void) { for (;;) { } }\n";
        cross_gcc(
            &dir,
            "loader.elf",
            loader,
            &["-Wl,-Ttext-segment=0x20000000"],
        );
        cross_gcc(
            &dir,
            "low-loader.elf",
            loader,
            &["-Wl,-Ttext-segment=0x10000000"],
        );
        let script = dir.join("kernel.ld");
        std::fs::write(
            &script,
            "ENTRY(_start)\nSECTIONS {\n . = 0xe0000000;\n \
             .text : AT(0x10000000) { *(.text*) *(.rodata*) *(.data*) *(.bss*) }\n \
             . = ALIGN(0x1000);\n ki_end = .;\n /DISCARD/ : { *(.note*) *(.ARM.*) }\n}\n",
        )
        .unwrap();
        let kernel = "void _start(void) { for (;;) { } }\n";
        cross_gcc(
            &dir,
            "kernel.elf",
            kernel,
            &[
                "-marm",
                "-Wl,--build-id=none",
                &format!("-T{}", script.display()),
            ],
        );
        dir
    })
}

fn load(xml: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_for(
        Board::Sabrelite,
        FILE,
        xml,
        None,
        &[fixtures().to_path_buf()],
    )
}

fn errors(xml: &str) -> Vec<String> {
    match load(xml) {
        Ok(_) => panic!("expected diagnostics, the system loaded"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

const SYSTEM: &str = r#"<system>
    <memory_region name="gpt" size="0x1000" phys_addr="0x02098000"/>
    <memory_region name="big" size="0x200000" page_size="0x100000"/>
    <protection_domain name="timer" priority="200">
        <program_image path="pd.elf"/>
        <map mr="gpt" vaddr="0x4000000" perms="rw" cached="false"/>
        <map mr="big" vaddr="0x10000000" perms="rw"/>
        <irq irq="87" id="27" trigger="level"/>
    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="pd.elf"/>
    </protection_domain>
    <channel><end pd="timer" id="0"/><end pd="client" id="26"/></channel>
</system>
"#;

#[test]
fn an_arm_system_gives_gic_irqs_and_sections_in_its_plan() {
    let loaded = load(SYSTEM).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let system = &loaded.system;
    assert_eq!(system.board, Board::Sabrelite);
    let images = plan::read_images(system).unwrap();
    let p = plan::build_plan(system, &images).unwrap();
    assert_eq!(p.regions[1].page_bits, 20, "a 1 MiB section");
    let irq = p.pds[0].irqs[0];
    assert_eq!((irq.id, irq.vector), (27, 0));
    assert_eq!(irq.source, IrqSource::Gic { irq: 87 });
    let report = system_builder::report::render(system, None);
    assert!(report.contains("GIC interrupt 87, level triggered"));
    // The ARM layout: the stack below 0xc0000000, the IPC buffer at 0xd0000000.
    assert!(report.contains("IPC buffer: 0xd0000000"), "{report}");
    assert!(report.contains("0xc0000000)"), "{report}");
}

#[test]
fn what_arm_does_not_have_is_named() {
    let pd = |inner: &str| {
        format!(
            "<system>\n<protection_domain name=\"a\" priority=\"1\">\n<program_image path=\"pd.elf\"/>\n{inner}\n</protection_domain>\n</system>\n"
        )
    };
    assert_eq!(
        errors(&pd(r#"<irq id="1" pin="2" vector="3"/>"#)),
        [
            "system.xml:4:1: error: <irq> with pin or pcidev is the x86 form, which board sabrelite (32-bit ARM) does not have; expected irq=\"...\" giving the GIC interrupt ID"
        ]
    );
    assert_eq!(
        errors(&pd(r#"<ioport id="0" addr="0xf4" size="4"/>"#)),
        [
            "system.xml:4:1: error: <ioport>: board sabrelite (32-bit ARM) has no I/O ports; expected device registers as a memory_region with phys_addr, mapped with cached=\"false\""
        ]
    );
    assert_eq!(
        errors(&pd(r#"<irq id="1" irq="29"/>"#)),
        [
            "system.xml:4:13: error: irq 29 on <irq> is out of range; expected irq between 32 and 159"
        ]
    );
    assert_eq!(
        errors(&pd(r#"<irq id="1" irq="87" trigger="edge"/>"#)),
        [
            "system.xml:4:22: error: trigger=\"edge\": seL4 5.0.0 on ARM configures every GIC interrupt level-triggered and lets no one change it; expected trigger=\"level\" (or no trigger attribute)"
        ]
    );
    // 28-bit badges: one bit per channel id up to 27.
    assert_eq!(
        errors(&pd(r#"<irq id="28" irq="87"/>"#)),
        ["system.xml:4:6: error: id 28 on <irq> is out of range; expected id between 0 and 27"]
    );
    assert_eq!(
        errors(
            "<system>\n<memory_region name=\"m\" size=\"0x200000\" page_size=\"0x200000\"/>\n</system>\n"
        ),
        [
            "system.xml:2:41: error: page_size 0x200000 is not a 32-bit ARM page size; expected page_size=\"0x1000\" or page_size=\"0x100000\""
        ]
    );
}

#[test]
fn programs_must_be_arm_elf32_on_arm_and_x86_elf64_on_the_pc() {
    let xml = |image: &str| {
        format!(
            "<system>\n<protection_domain name=\"a\" priority=\"1\">\n<program_image path=\"{image}\"/>\n</protection_domain>\n</system>\n"
        )
    };
    // An x86 program on the ARM board.
    let x86 = fixtures().join("x86.elf");
    let status = Command::new("gcc")
        .args(["-nostdlib", "-static", "-o"])
        .arg(&x86)
        .arg(fixtures().join("pd.elf.c"))
        .status()
        .unwrap();
    assert!(status.success());
    let e = errors(&xml("x86.elf"));
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("x86.elf' is a 64-bit ELF file; expected a statically linked, non-PIE 32-bit ARM ELF32 executable"), "{e:?}");
    // An ARM program on the pc.
    let pc = system_builder::load_str(FILE, &xml("pd.elf"), &[fixtures().to_path_buf()]);
    let e: Vec<String> = pc.unwrap_err().iter().map(ToString::to_string).collect();
    assert!(e[0].contains("pd.elf' is a 32-bit ELF file; expected a statically linked, non-PIE x86_64 ELF64 executable"), "{e:?}");
}

#[test]
fn the_boot_image_places_the_system_at_ki_end_for_the_loader() {
    let read = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    let (kernel, system) = (read("kernel.elf"), read("pd.elf"));
    let image = boot_image::pack(&read("loader.elf"), &kernel, &system).unwrap();
    // The loader's payload symbols point at the appended segment, whose
    // bytes the loader's own parser accepts.
    let vaddr = image.plan_vaddr;
    let payload = &image.bytes[image.plan_offset as usize..][..image.plan_size as usize];
    assert!(vaddr >= 0x2000_0000);
    let p = boot_payload::Payload::parse(payload).unwrap();
    assert_eq!(
        (p.kernel_entry, p.kernel_vbase, p.kernel_pbase),
        (0xe000_0000, 0xe000_0000, 0x1000_0000)
    );
    // ki_end is the first page after the kernel's one page of code.
    assert_eq!(p.args.ui_p_reg_start, 0x1000_1000);
    // The system image's first page (0x200000) lands at ki_end.
    assert_eq!(p.args.pv_offset, 0x1000_1000 - 0x20_0000);
    let copies: Vec<_> = p.copies().collect();
    assert_eq!(copies[0].dest, 0x1000_0000, "the kernel first");
    assert!(
        copies
            .iter()
            .skip(1)
            .all(|c| c.dest >= p.args.ui_p_reg_start && c.dest + c.size <= p.args.ui_p_reg_end)
    );
    // The segments' bytes are the system image's.
    let text = copies
        .iter()
        .find(|c| !c.bytes.is_empty() && c.dest != 0x1000_0000)
        .unwrap();
    assert!(system.windows(text.bytes.len()).any(|w| w == text.bytes));
}

#[test]
fn a_loader_where_the_system_goes_is_refused() {
    let read = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    let Err(e) = boot_image::pack(
        &read("low-loader.elf"),
        &read("kernel.elf"),
        &read("pd.elf"),
    ) else {
        panic!("a loader over the kernel was accepted");
    };
    let e = e.to_string();
    assert!(
        e.starts_with("loader ELF has a segment [0x10000000.."),
        "{e}"
    );
    assert!(e.contains("where it would copy"), "{e}");
}

/// A driver with a DMA role and a client that maps the same memory.
const DMA_MANIFEST: &str = r#"
[program.driver.regions]
ring = { kind = "dma", min_size = 0x1000 }
[program.client.regions]
frames = { min_size = 0x1000 }
"#;

/// An ARM program image of `program` of [`DMA_MANIFEST`]: the manifest and
/// the config block the generated code defines.
fn manifest_image(program: &str) -> PathBuf {
    let m = pd_manifest::manifest::parse("pds/x/pd.toml", DMA_MANIFEST).unwrap();
    let words = pd_manifest::encode::total_words(&m.programs[program]);
    let bytes = pd_manifest::codegen::embedded("pds/x/pd.toml", program, DMA_MANIFEST);
    let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    let src = format!(
        "const unsigned char __dingo_manifest[{}] = {{{}}};\n\
         unsigned long long __dingo_config[{words}];\n\
         void _start(void) {{ for (;;) {{ }} }}\n",
        bytes.len(),
        list.join(",")
    );
    cross_gcc(
        fixtures(),
        &format!("{program}.elf"),
        &src,
        &["-Wl,-Ttext-segment=0x200000"],
    )
}

fn dma_system(driver_cached: bool, client_cached: bool) -> Result<Loaded, Vec<Diagnostic>> {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        manifest_image("driver");
        manifest_image("client");
    });
    let xml = format!(
        r#"<system>
    <memory_region name="ring" size="0x1000"/>
    <protection_domain name="driver" priority="200">
        <program_image path="driver.elf"/>
        <map mr="ring" vaddr="0x4000000" perms="rw" cached="{driver_cached}"/>
    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="client.elf"/>
        <map mr="ring" vaddr="0x4000000" perms="rw" cached="{client_cached}"/>
    </protection_domain>
</system>
"#
    );
    let wiring = "[pd.client]\nregions = { frames = \"ring\" }\n";
    load_for(
        Board::Sabrelite,
        FILE,
        &xml,
        Some(("system.dingo.toml", wiring)),
        &[fixtures().to_path_buf()],
    )
}

#[test]
fn memory_a_device_reaches_must_be_mapped_uncached_everywhere() {
    assert!(dma_system(false, false).is_ok());
    let Err(d) = dma_system(true, true) else {
        panic!("cached maps of DMA memory were accepted");
    };
    let d: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "system.xml:5:9: error: protection domain 'driver' maps memory region 'ring' cached, but a device reads and writes it (a DMA role binds it), and on board sabrelite devices do not see the CPU's caches, which PDs cannot clean; expected cached=\"false\" on every map of the region",
            "system.xml:9:9: error: protection domain 'client' maps memory region 'ring' cached, but a device reads and writes it (a DMA role binds it), and on board sabrelite devices do not see the CPU's caches, which PDs cannot clean; expected cached=\"false\" on every map of the region",
        ]
    );
    // The client's map alone is enough to corrupt frames.
    assert_eq!(dma_system(false, true).unwrap_err().len(), 1);
}
