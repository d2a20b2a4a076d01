//! Compiles every `.tingu` file of this crate into `$OUT_DIR/protocols.rs`.

fn main() {
    let mut files: Vec<_> = std::fs::read_dir(".")
        .expect("read the crate directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tingu"))
        .collect();
    files.sort();
    // A new file must also trigger a rebuild, not only a changed one.
    println!("cargo:rerun-if-changed=.");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("protocols.rs");
    if let Err(e) = tingu::build::compile(&files, out) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
