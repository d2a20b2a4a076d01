//! Shared helpers for the system-builder integration tests: ELF fixtures
//! built with the machine's gcc at run time, and ways to run the loader on
//! a system.xml text and compare its diagnostics.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use system_builder::{Diagnostic, Loaded, load_str};

/// The word-sized variables every fixture PD defines (all `unsigned long`).
pub const WORD_SYMBOLS: &[&str] = &[
    "shared_vaddr",
    "shared_size",
    "dev_paddr",
    "buf_paddr",
    "serial_id",
    "port_base",
    "timer_id",
    "client_id",
];

/// The file name the diagnostics of `check` carry.
pub const FILE: &str = "system.xml";

/// The C source of every fixture PD.
pub fn pd_source() -> String {
    let mut src = String::new();
    for s in WORD_SYMBOLS {
        src.push_str(&format!("unsigned long {s};\n"));
    }
    // An initialised word lands in .data rather than .bss.
    src.push_str("unsigned long data_word = 5;\n");
    // One byte: the "not word-sized" case.
    src.push_str("char small_var;\n");
    src.push_str("void _start(void) { for (;;) { } }\n");
    src
}

fn gcc(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).expect("write C fixture");
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(["-nostdlib", "-static", "-O1"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed for {name}");
    out
}

/// Copies `src` to `name` with the byte at `offset` replaced.
fn patched(dir: &Path, src: &Path, name: &str, offset: usize, byte: u8) {
    let mut bytes = std::fs::read(src).expect("read fixture");
    bytes[offset] = byte;
    std::fs::write(dir.join(name), bytes).expect("write patched fixture");
}

/// The fixture directory, built once per test binary:
/// - `pd.elf`: a static x86_64 executable at 0x400000 with the
///   [`WORD_SYMBOLS`], `data_word` and the 1-byte `small_var`;
/// - `stripped.elf`: the same without a symbol table;
/// - `text.elf`: not an ELF at all;
/// - `elf32.elf`, `dyn.elf`: `pd.elf` marked 32-bit, or as type DYN;
/// - `truncated.elf`: `pd.elf` cut short inside its section headers;
/// - `high.elf`: the same program linked at 0x7fffffc000, so that its
///   segments run into the default stack and its guard page.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sdf-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let pd = gcc(&dir, "pd.elf", &pd_source(), &[]);
        gcc(
            &dir,
            "high.elf",
            &pd_source(),
            &["-Wl,-Ttext-segment=0x7fffffc000"],
        );
        let stripped = dir.join("stripped.elf");
        let status = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&pd)
            .status()
            .expect("run strip");
        assert!(status.success());
        std::fs::write(dir.join("text.elf"), "this is not an ELF file\n").unwrap();
        patched(&dir, &pd, "elf32.elf", 4, 1); // EI_CLASS = ELFCLASS32
        patched(&dir, &pd, "dyn.elf", 16, 3); // e_type = ET_DYN
        let bytes = std::fs::read(&pd).unwrap();
        std::fs::write(dir.join("truncated.elf"), &bytes[..bytes.len() - 100]).unwrap();
        dir
    })
}

/// Loads `xml` as system.xml with the fixture directory as search path.
pub fn load(xml: &str) -> Result<Loaded, Vec<Diagnostic>> {
    load_str(FILE, xml, &[fixtures().to_path_buf()])
}

/// `<system>` around `body`; with `body` starting with a newline, its first
/// line is line 2 of the file.
pub fn sys(body: &str) -> String {
    format!("<system>{body}\n</system>\n")
}

/// Asserts that loading fails with exactly these diagnostics, in order.
pub fn assert_diags(xml: &str, expected: &[&str]) {
    let got: Vec<String> = match load(xml) {
        Ok(l) => panic!(
            "expected diagnostics, but the system loaded (warnings: {:?})",
            l.warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(
        got,
        expected,
        "\n--- got:\n{}\n--- expected:\n{}\n",
        got.join("\n"),
        expected.join("\n")
    );
}

/// Asserts that loading succeeds; returns the result.
pub fn assert_loads(xml: &str) -> Loaded {
    match load(xml) {
        Ok(l) => l,
        Err(diags) => panic!(
            "expected the system to load, got:\n{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Reads the ELF symbol table with binutils `nm`, independently of the
/// builder's own ELF reader: symbol name to address.
pub fn nm(elf: &Path, symbol: &str) -> u64 {
    let out = Command::new("nm").arg(elf).output().expect("run nm");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _, name) = (f.next()?, f.next()?, f.next()?);
            (name == symbol).then(|| u64::from_str_radix(addr, 16).unwrap())
        })
        .unwrap_or_else(|| panic!("nm: no symbol {symbol}"))
}

/// Compiles `source` with gcc into `<fixtures>/<name>`, with `extra` flags
/// after the fixtures' usual `-nostdlib -static -O1`.
pub fn build_c(name: &str, source: &str, extra: &[&str]) -> PathBuf {
    gcc(fixtures(), name, source, extra)
}

/// One program header as binutils `readelf -lW` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phdr {
    pub kind: String,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// As readelf prints them without blanks: "R", "RE", "RW", "RWE".
    pub flags: String,
    pub align: u64,
}

/// The program headers of `elf` according to binutils, independently of the
/// builder's ELF reader.
pub fn readelf_phdrs(elf: &Path) -> Vec<Phdr> {
    let out = Command::new("readelf")
        .args(["-lW"])
        .arg(elf)
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf failed on {}", elf.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16).unwrap();
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("Type "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Phdr {
                kind: f[0].to_string(),
                offset: hex(f[1]),
                vaddr: hex(f[2]),
                paddr: hex(f[3]),
                filesz: hex(f[4]),
                memsz: hex(f[5]),
                flags: f[6..f.len() - 1].concat(),
                align: hex(f[f.len() - 1]),
            }
        })
        .collect()
}
