//! Hostile-input harness: coverage-guided fuzz targets (libFuzzer, built
//! by `make fuzz` with LLVM's coverage instrumentation on stable Rust) for
//! the two host compilers of user input, tingu and system-builder, and for
//! the dingo-rt ring that two PDs share; plus `scale`, which times both
//! tools on 100,000-element inputs. Each target asserts more than "does
//! not crash": every diagnostic is located inside the input, and what a
//! tool accepts goes through its later stages too.

use std::path::PathBuf;
use std::sync::OnceLock;

pub mod ring;

/// Asserts that line `line`, column `col` (1-based, columns in characters,
/// a leading byte-order mark not counted) lies inside `text` or just
/// after its end.
fn assert_inside(text: &str, line: u32, col: u32, what: &dyn std::fmt::Display) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(line >= 1 && col >= 1, "position 0 in: {what}");
    let l = lines
        .get(line as usize - 1)
        .unwrap_or_else(|| panic!("line {line} past the end ({} lines): {what}", lines.len()));
    assert!(
        col as usize <= l.chars().count() + 1,
        "column {col} past the end of line {line} ({} characters): {what}",
        l.chars().count()
    );
}

/// Tingu: the input is up to three files separated by NUL bytes (so that
/// components can use protocols of another file). Accepted specs must
/// also generate Rust and DOT; rejected ones get located errors.
pub fn tingu(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    const NAMES: [&str; 3] = ["a.tingu", "b.tingu", "c.tingu"];
    let files: Vec<(&str, &str)> = NAMES.iter().copied().zip(text.splitn(3, '\0')).collect();
    let sources = tingu::Sources::from_strings(&files);
    match sources.check() {
        Ok(_) => {
            sources.rust().expect("an accepted spec generates Rust");
            sources.dot().expect("an accepted spec draws");
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags {
                let (_, file) = files
                    .iter()
                    .find(|(n, _)| *n == d.path)
                    .unwrap_or_else(|| panic!("diagnostic names no input file: {d}"));
                assert_inside(file, d.line, d.col, d);
            }
        }
    }
}

/// Where system-builder looks for program images: `FUZZ_IMAGE_DIR` if set
/// (the Makefile points it at the built PDs, so the corpus's systems get
/// past image loading), else nowhere.
fn image_dirs() -> &'static [PathBuf] {
    static DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        std::env::var_os("FUZZ_IMAGE_DIR")
            .map(PathBuf::from)
            .into_iter()
            .collect()
    })
}

/// system-builder: the input is system.xml, optionally followed by a NUL
/// byte and its Dingo wiring file. Every diagnostic is located inside the
/// file it names; an accepted system must also give a boot plan that the
/// monitor's own decoder reads back unchanged, and a report.
pub fn system_builder(data: &[u8]) {
    use system_builder::{load_with_wiring, plan, report};
    let text = String::from_utf8_lossy(data);
    let (xml, wiring) = match text.split_once('\0') {
        Some((xml, wiring)) => (xml, Some(("f.dingo.toml", wiring))),
        None => (&*text, None),
    };
    let file = |name: &str| match wiring {
        Some((w, t)) if w == name => t,
        _ => {
            assert_eq!(name, "f.xml", "a diagnostic names no input file");
            xml
        }
    };
    match load_with_wiring("f.xml", xml, wiring, image_dirs()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                assert_inside(file(&w.file), w.pos.line, w.pos.col, w);
            }
            let system = &loaded.system;
            let Ok(images) = plan::read_images(system) else {
                return;
            };
            if let Ok(p) = plan::build_plan(system, &images) {
                let bytes = p.encode();
                let back = boot_plan::Plan::decode(&bytes).expect("the monitor decodes the plan");
                assert_eq!(back, p, "the plan survives encoding");
            }
            report::render(system, None);
        }
        Err(diags) => {
            assert!(
                diags.iter().any(|d| d.is_error()),
                "rejected without an error"
            );
            for d in &diags {
                assert_inside(file(&d.file), d.pos.line, d.pos.col, d);
            }
        }
    }
}
