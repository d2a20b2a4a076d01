//! PD manifests: what each program of a PD crate needs from a system
//! description, declared once in the crate's `pd.toml` (see [`manifest`]
//! for the format). Two tools read it: the crate's build script, which
//! generates the program's typed `Config` ([`build`], [`codegen`]), and
//! system-builder, which finds the manifest embedded in the program image,
//! binds every role to what system.xml and the Dingo wiring file give the
//! instance, checks it, and writes the values into the image ([`encode`],
//! in the layout of `pd_config::layout`). Diagnostics carry file:line:col
//! ([`source`]).

pub mod codegen;
pub mod encode;
pub mod manifest;
pub mod source;

pub use manifest::{Count, Kind, Manifest, ParamType, Program, RegionKind, Role, Side, Spec};
pub use source::{Diag, Pos};

/// The build script of a PD crate: `pd_manifest::build::generate()`.
pub mod build {
    use std::path::{Path, PathBuf};

    /// Reads the crate's `pd.toml` and writes one config module per program
    /// to `$OUT_DIR/pd-config/<program>.rs`, for `pd_config::program!`.
    /// Problems in the manifest stop the build with file:line:col.
    pub fn generate() {
        let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("run by cargo")).join("pd-config");
        let file = dir.join("pd.toml");
        println!("cargo::rerun-if-changed={}", file.display());
        let shown = shown_path(&file);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => fail(&[format!(
                "{shown}:1:1: error: cannot read the PD manifest: {e}; expected a pd.toml beside Cargo.toml that declares each program's roles"
            )]),
        };
        let manifest = match crate::manifest::parse(&shown, &text) {
            Ok(m) => m,
            Err(diags) => fail(&diags.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
        };
        std::fs::create_dir_all(&out).expect("create OUT_DIR/pd-config");
        for p in manifest.programs.values() {
            let code = crate::codegen::rust(p, &shown, &text);
            std::fs::write(out.join(format!("{}.rs", p.name)), code)
                .expect("write generated config");
        }
    }

    /// The path relative to the workspace (the nearest directory up with a
    /// Cargo.lock), as users see it in the tree.
    fn shown_path(file: &Path) -> String {
        let mut dir = file.parent();
        while let Some(d) = dir {
            if d.join("Cargo.lock").exists()
                && let Ok(rel) = file.strip_prefix(d)
            {
                return rel.display().to_string();
            }
            dir = d.parent();
        }
        file.display().to_string()
    }

    fn fail(lines: &[String]) -> ! {
        for l in lines {
            eprintln!("{l}");
        }
        std::process::exit(1);
    }
}
