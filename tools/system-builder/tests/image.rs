//! Packing the plan into a monitor built with gcc, checked by re-reading the
//! output with binutils and the raw bytes, never with the builder's reader.

mod common;

use std::path::{Path, PathBuf};

use boot_plan::{Perms, Plan, Region};
use common::{Phdr, build_c, fixtures, nm, readelf_phdrs};
use system_builder::image::{self, MonitorError};

/// The monitor's plan symbols plus a large .bss, so that the memory end
/// of the image lies well past its file end.
const MONITOR: &str = "unsigned long DINGO_PLAN_VADDR = 1;\n\
                       unsigned long DINGO_PLAN_SIZE = 1;\n\
                       unsigned long scratch[4096];\n\
                       void _start(void) { for (;;) { } }\n";

/// Links the program headers, and a PT_PHDR entry, into the first segment,
/// as rustc's default link of the real monitor does.
const PHDR_SCRIPT: &str = "PHDRS {
    headers PT_PHDR PHDRS;
    text PT_LOAD FILEHDR PHDRS;
    data PT_LOAD;
}
SECTIONS {
    . = 0x200000 + SIZEOF_HEADERS;
    .text : { *(.text*) *(.rodata*) *(.eh_frame*) } :text
    . = ALIGN(0x1000);
    .data : { *(.data*) } :data
    .bss : { *(.bss*) *(COMMON) } :data
    /DISCARD/ : { *(.note*) *(.comment) }
}
";

fn plan_bytes() -> Vec<u8> {
    let mut segment_data = vec![0xc3u8; 5000];
    segment_data[0] = 0x90;
    Plan {
        regions: vec![Region {
            name: "r",
            size: 0x20_0000,
            page_bits: 21,
            phys_addr: None,
        }],
        pds: vec![boot_plan::Pd {
            name: "p",
            priority: 9,
            stack_size: 0x2000,
            entry: 0x40_1000,
            pp_callee: false,
            segments: vec![boot_plan::Segment {
                vaddr: 0x40_1000,
                mem_size: 0x2000,
                perms: Perms {
                    read: true,
                    write: false,
                    execute: true,
                },
                data: &segment_data,
            }],
            maps: vec![],
            irqs: vec![],
            ioports: vec![],
            setvars: vec![],
            recovery: Default::default(),
        }],
        channels: vec![],
        monitor_bench: false,
        tick: None,
    }
    .encode()
}

fn monitor(name: &str, source: &str, extra: &[&str]) -> PathBuf {
    build_c(name, source, &[&["-no-pie"], extra].concat())
}

/// File offset of `vaddr` according to the LOAD headers.
fn file_offset(loads: &[Phdr], vaddr: u64) -> usize {
    let seg = loads
        .iter()
        .find(|p| p.kind == "LOAD" && p.vaddr <= vaddr && vaddr + 8 <= p.vaddr + p.filesz)
        .expect("vaddr is file-backed");
    (seg.offset + vaddr - seg.vaddr) as usize
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Packs `mon` and checks everything about the result.
fn check_packing(mon: &Path) {
    let original = std::fs::read(mon).unwrap();
    let before = readelf_phdrs(mon);
    let plan = plan_bytes();
    let packed = image::pack(&original, &plan).expect("packs");
    let out = mon.with_extension("packed");
    std::fs::write(&out, &packed.bytes).unwrap();
    let after = readelf_phdrs(&out);

    // The new table: every old header except PT_PHDR, in order, then the plan.
    let kept: Vec<&Phdr> = before.iter().filter(|p| p.kind != "PHDR").collect();
    assert_eq!(after.len(), kept.len() + 1);
    assert!(after.iter().zip(&kept).all(|(a, b)| a == *b));
    let end = before
        .iter()
        .filter(|p| p.memsz > 0)
        .map(|p| p.vaddr + p.memsz)
        .max()
        .unwrap();
    let expected_vaddr = end.div_ceil(0x1000) * 0x1000;
    let new = after.last().unwrap();
    assert_eq!(new.kind, "LOAD");
    assert_eq!(new.flags, "R");
    assert_eq!(new.align, 0x1000);
    assert_eq!(new.vaddr, expected_vaddr);
    assert_eq!(new.paddr, expected_vaddr);
    assert_eq!(new.offset % 0x1000, new.vaddr % 0x1000);
    assert_eq!(
        (new.filesz, new.memsz),
        (plan.len() as u64, plan.len() as u64)
    );
    assert_eq!(
        (packed.plan_vaddr, packed.plan_offset, packed.plan_size),
        (new.vaddr, new.offset, new.filesz)
    );
    let embedded = &packed.bytes[new.offset as usize..(new.offset + new.filesz) as usize];
    assert_eq!(embedded, &plan[..]);
    assert_eq!(
        Plan::decode(embedded).unwrap(),
        Plan::decode(&plan).unwrap()
    );

    // The symbols hold the plan's place; nm finds them where they were.
    let vaddr_sym = nm(mon, "DINGO_PLAN_VADDR");
    let size_sym = nm(mon, "DINGO_PLAN_SIZE");
    assert_eq!(nm(&out, "DINGO_PLAN_VADDR"), vaddr_sym);
    assert_eq!(nm(&out, "DINGO_PLAN_SIZE"), size_sym);
    let vaddr_at = file_offset(&after, vaddr_sym);
    let size_at = file_offset(&after, size_sym);
    assert_eq!(word(&packed.bytes, vaddr_at), new.vaddr);
    assert_eq!(word(&packed.bytes, size_at), plan.len() as u64);
    assert_eq!(word(&original, vaddr_at), 1);

    // Every original byte, so every original segment, is unchanged apart
    // from the two patched words and the ELF header's e_phoff and e_phnum
    // (which the first segment holds when it starts at offset 0).
    let allowed = |i: usize| {
        (32..40).contains(&i)
            || (56..58).contains(&i)
            || (vaddr_at..vaddr_at + 8).contains(&i)
            || (size_at..size_at + 8).contains(&i)
    };
    for (i, (a, b)) in original.iter().zip(&packed.bytes).enumerate() {
        assert!(a == b || allowed(i), "file byte {i:#x} changed");
    }
    assert!(
        before
            .iter()
            .filter(|p| p.kind == "LOAD")
            .all(|p| p.offset + p.filesz <= original.len() as u64)
    );
}

#[test]
fn plan_is_appended_after_a_gcc_monitor() {
    let mon = monitor("mon.elf", MONITOR, &[]);
    assert!(
        readelf_phdrs(&mon)
            .iter()
            .any(|p| p.kind == "LOAD" && p.memsz > p.filesz + 0x1000),
        "the fixture has a large .bss"
    );
    check_packing(&mon);
}

#[test]
fn pt_phdr_is_dropped_and_the_rest_kept() {
    let script = fixtures().join("phdr.ld");
    std::fs::write(&script, PHDR_SCRIPT).unwrap();
    let mon = monitor(
        "mon-phdr.elf",
        MONITOR,
        &[
            "-Wl,--build-id=none",
            &format!("-Wl,-T,{}", script.display()),
        ],
    );
    assert_eq!(readelf_phdrs(&mon)[0].kind, "PHDR");
    check_packing(&mon);
}

fn pack_error(name: &str, source: &str) -> MonitorError {
    let mon = monitor(name, source, &[]);
    image::pack(&std::fs::read(mon).unwrap(), &plan_bytes()).expect_err("rejected")
}

fn expected(name: &str) -> String {
    format!(
        "a writable, initialised 8-byte variable named {name} (for example `#[unsafe(no_mangle)] static mut {name}: u64 = 1;`)"
    )
}

#[test]
fn unusable_plan_symbols_are_named() {
    const START: &str = "void _start(void) { for (;;) { } }\n";
    let e = pack_error(
        "mon-nosize.elf",
        &format!("unsigned long DINGO_PLAN_VADDR = 1;\n{START}"),
    );
    assert_eq!(e.what, "does not define the symbol DINGO_PLAN_SIZE");
    assert_eq!(e.expected, expected("DINGO_PLAN_SIZE"));

    let e = pack_error(
        "mon-int.elf",
        &format!("unsigned int DINGO_PLAN_VADDR = 1;\nunsigned long DINGO_PLAN_SIZE = 1;\n{START}"),
    );
    assert_eq!(e.what, "defines DINGO_PLAN_VADDR with 4 bytes, not 8");

    let bss = monitor(
        "mon-bss.elf",
        &format!("unsigned long DINGO_PLAN_VADDR = 1;\nunsigned long DINGO_PLAN_SIZE;\n{START}"),
        &[],
    );
    let e = image::pack(&std::fs::read(&bss).unwrap(), &plan_bytes()).unwrap_err();
    assert_eq!(
        e.what,
        format!(
            "has DINGO_PLAN_SIZE at {:#x} in .bss, not backed by file bytes, so the kernel would zero what the builder writes",
            nm(&bss, "DINGO_PLAN_SIZE")
        )
    );

    let ro = monitor(
        "mon-ro.elf",
        &format!(
            "const unsigned long DINGO_PLAN_VADDR = 1;\nunsigned long DINGO_PLAN_SIZE = 1;\n{START}"
        ),
        &[],
    );
    let e = image::pack(&std::fs::read(&ro).unwrap(), &plan_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "has DINGO_PLAN_VADDR at {:#x} in a read-only segment, where the compiler may fold its value into the code; expected {}",
            nm(&ro, "DINGO_PLAN_VADDR"),
            expected("DINGO_PLAN_VADDR")
        )
    );

    let e = image::pack(b"not an elf at all", &plan_bytes()).unwrap_err();
    assert!(e.what.starts_with("is not an ELF file"), "{}", e.what);
}
