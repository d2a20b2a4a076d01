fn main() {
    pd_manifest::build::generate();
}
