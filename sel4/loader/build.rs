//! Links the loader at the address the boot image expects (loader.ld):
//! above the kernel and the system image, which it copies below itself.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    println!("cargo::rerun-if-changed={dir}/loader.ld");
    println!("cargo::rustc-link-arg-bins=-T{dir}/loader.ld");
}
