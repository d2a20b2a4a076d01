//! The `system-builder` binary: search order, output files, exit codes, and
//! that a failed build writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{build_c, fixtures, pd_source, readelf_phdrs};

const MONITOR: &str = "unsigned long DINGO_PLAN_VADDR = 1;\n\
                       unsigned long DINGO_PLAN_SIZE = 1;\n\
                       void _start(void) { for (;;) { } }\n";

const GOOD: &str = r#"<system>
    <memory_region name="shared" size="0x1000"/>
    <protection_domain name="a" priority="10">
        <program_image path="pd.elf"/>
        <map mr="shared" vaddr="0x3000000"/>
    </protection_domain>
    <protection_domain name="b" priority="20">
        <program_image path="pd.elf"/>
    </protection_domain>
    <channel>
        <end pd="a" id="0"/>
        <end pd="b" id="0"/>
    </channel>
</system>
"#;

/// A fresh directory holding `system.xml` with `xml`.
fn workdir(name: &str, xml: &str) -> PathBuf {
    let dir = fixtures().join(format!("cli-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("system.xml"), xml).unwrap();
    dir
}

/// Built once: the tests run in parallel and must not rewrite a monitor
/// another test is reading.
fn monitor() -> &'static Path {
    static MONITOR_ELF: OnceLock<PathBuf> = OnceLock::new();
    MONITOR_ELF.get_or_init(|| build_c("cli-monitor.elf", MONITOR, &["-no-pie"]))
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_system-builder"))
        .arg(dir.join("system.xml"))
        .arg("--monitor")
        .arg(monitor())
        .arg("--search-path")
        .arg(fixtures())
        .arg("-o")
        .arg(dir.join("image.elf"))
        .arg("--report")
        .arg(dir.join("report.txt"))
        .args(extra)
        .output()
        .expect("run system-builder")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn good_system_writes_image_and_report() {
    let dir = workdir("good", GOOD);
    let out = run(&dir, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let image = dir.join("image.elf");
    let report = dir.join("report.txt");
    let phdrs = readelf_phdrs(&image);
    let plan = phdrs.last().unwrap();
    assert_eq!((plan.kind.as_str(), plan.flags.as_str()), ("LOAD", "R"));
    assert_eq!(
        text(&out.stdout),
        format!(
            "system-builder: {} (2 PDs, 1 regions, plan {} bytes); report {}\n",
            image.display(),
            plan.filesz,
            report.display()
        )
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let report = std::fs::read_to_string(report).unwrap();
    assert!(report.contains("    slot  10 (notify ch 0): notification of b, badge bit 0\n"));
    assert!(report.contains(&format!(
        "boot plan: {:#x} bytes at vaddr {:#x}",
        plan.filesz, plan.vaddr
    )));
}

#[test]
fn bad_system_exits_1_with_positions_and_writes_nothing() {
    let xml = GOOD.replace(r#"<end pd="b" id="0"/>"#, r#"<end pd="c" id="0"/>"#);
    let dir = workdir("bad", &xml);
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:12:14: error: channel end names unknown protection domain 'c'; expected the name of a <protection_domain> (declared: a, b)\n",
            dir.join("system.xml").display()
        )
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.join("image.elf").exists());
    assert!(!dir.join("report.txt").exists());
}

#[test]
fn plan_step_errors_also_write_nothing() {
    let dir = workdir("wx", &GOOD.replace("pd.elf", "wx-cli.elf"));
    build_c(
        "wx-cli.elf",
        &pd_source(),
        &["-Wl,-N", "-Wl,--no-warn-rwx-segments"],
    );
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    let file = dir.join("system.xml").display().to_string();
    assert!(lines[0].starts_with(&format!("{file}:4:24: error: program image 'wx-cli.elf'")));
    assert!(lines[1].starts_with(&format!("{file}:8:24: error: program image 'wx-cli.elf'")));
    assert!(err.contains("both writable and executable"));
    assert!(!dir.join("image.elf").exists());
}

#[test]
fn directory_of_system_xml_is_searched_first() {
    let dir = workdir("order", GOOD);
    // A pd.elf beside system.xml shadows the good one in --search-path.
    std::fs::write(dir.join("pd.elf"), "not an ELF\n").unwrap();
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: program image '{}' is not an ELF file",
            dir.join("pd.elf").display()
        )),
        "{err}"
    );
    assert!(!dir.join("image.elf").exists());
}

#[test]
fn unusable_monitor_exits_1_and_writes_nothing() {
    let dir = workdir("monitor", GOOD);
    let out = Command::new(env!("CARGO_BIN_EXE_system-builder"))
        .arg(dir.join("system.xml"))
        .args(["--search-path"])
        .arg(fixtures())
        .arg("--monitor")
        .arg(fixtures().join("pd.elf"))
        .arg("-o")
        .arg(dir.join("image.elf"))
        .arg("--report")
        .arg(dir.join("report.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "system-builder: error: monitor ELF '{}' does not define the symbol DINGO_PLAN_VADDR; expected",
            fixtures().join("pd.elf").display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("image.elf").exists());
    assert!(!dir.join("report.txt").exists());
}

#[test]
fn bad_arguments_print_usage_and_exit_2() {
    let dir = workdir("args", GOOD);
    let out = run(&dir, &["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("system-builder: unknown option --frobnicate\nusage: system-builder <system.xml> --monitor <monitor ELF>"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_system-builder"))
        .arg(dir.join("system.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("system-builder: missing --monitor\n"));
    assert!(!dir.join("image.elf").exists());
}

#[test]
fn a_system_xml_that_is_not_utf8_is_located_at_the_bad_byte() {
    let dir = std::env::temp_dir().join(format!("sb-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("system.xml");
    std::fs::write(&path, b"<system>\n  <!-- caf\xe9 -->\n</system>\n").unwrap();
    let e = system_builder::load_file(&path, &[]).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].pos.line, e[0].pos.col), (2, 11));
    assert!(
        e[0].to_string().contains("byte 0xe9 is not UTF-8 text"),
        "{}",
        e[0]
    );
}
