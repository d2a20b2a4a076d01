//! Times tingu and system-builder on generated 100,000-element inputs
//! (`make fuzz` prints the figures): CPU seconds of this process for one
//! run each (wall-clock too, which on a shared machine says less), in
//! whatever build this binary is (the Makefile builds it in release). A
//! check on the tools staying linear, not a benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const N: usize = 100_000;

/// User plus system CPU time of this process so far, from Linux's
/// /proc/self/stat (in clock ticks of 1/100 s, as on every Linux
/// architecture Rust targets).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn time<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let out = f();
    println!(
        "scale: {what}: {:.2} s CPU ({:.2} s wall)",
        cpu_seconds() - cpu,
        wall.elapsed().as_secs_f64()
    );
    out
}

fn tingu_chain() -> String {
    let mut src =
        String::from("protocol Chain {\n  in go(n: u32);\n  initial state s0 { ?go -> s1; }\n");
    for i in 1..N - 1 {
        src.push_str(&format!(
            "  state s{i} {{ ?go [n == {i}] -> s{}; ?go [n != {i}] -> s0; }}\n",
            i + 1
        ));
    }
    src.push_str(&format!("  final state s{};\n}}\n", N - 1));
    src
}

fn tingu_guards() -> String {
    let mut src = String::from("protocol Guards {\n  in go(n: u32);\n  initial state a {\n");
    for i in 0..N {
        src.push_str(&format!("    ?go [n == {i}] -> a;\n"));
    }
    src.push_str("  }\n}\n");
    src
}

/// A PD image like the builder's test fixtures: a static program with no
/// libraries, made with the machine's gcc.
fn fixture_image(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("scale directory");
    let c = dir.join("pd.c");
    std::fs::write(&c, "void _start(void) { for (;;) { } }\n").expect("write pd.c");
    let elf = dir.join("pd.elf");
    let ok = Command::new("gcc")
        .args(["-nostdlib", "-static", "-O1", "-o"])
        .arg(&elf)
        .arg(&c)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "gcc could not build the fixture PD");
    elf
}

fn system_maps() -> String {
    let mut xml = String::from("<system>\n");
    for i in 0..N {
        xml.push_str(&format!(
            "  <memory_region name=\"r{i}\" size=\"0x1000\"/>\n"
        ));
    }
    xml.push_str("  <protection_domain name=\"a\">\n    <program_image path=\"pd.elf\"/>\n");
    for i in 0..N {
        xml.push_str(&format!(
            "    <map mr=\"r{i}\" vaddr=\"{:#x}\" perms=\"r\"/>\n",
            0x4000_0000 + i * 0x1000
        ));
    }
    xml.push_str("  </protection_domain>\n</system>\n");
    xml
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dingo-scale"));

    for (what, src) in [
        (
            "tingu check, chain of 100000 states (200000 guarded transitions)",
            tingu_chain(),
        ),
        (
            "tingu check, 100000 guarded transitions in one state",
            tingu_guards(),
        ),
    ] {
        let sources = tingu::Sources::from_strings(&[("scale.tingu", &src)]);
        time(what, || sources.check().map(|_| ()).expect("valid spec"));
    }

    let image = fixture_image(&dir);
    let xml = system_maps();
    let search = [image.parent().expect("in a directory").to_path_buf()];
    let loaded = time(
        "system-builder load, 100000 memory regions mapped in one PD (200000 elements)",
        || system_builder::load_str("scale.xml", &xml, &search).expect("valid system"),
    );
    let images = system_builder::plan::read_images(&loaded.system).expect("images");
    let plan = time("system-builder boot plan of it", || {
        system_builder::plan::build_plan(&loaded.system, &images)
            .expect("plan")
            .encode()
    });
    println!("scale: plan {} bytes", plan.len());
    time("system-builder report of it", || {
        system_builder::report::render(&loaded.system, None)
    });
    let broken = xml.replace("perms=\"r\"", "perms=\"w\"");
    let errors = time(
        "system-builder load, the same with 100000 bad perms (one error each)",
        || system_builder::load_str("scale.xml", &broken, &search).expect_err("invalid"),
    );
    assert_eq!(errors.iter().filter(|d| d.is_error()).count(), N);
}
