//! Loading from a file on disk, and the file name the diagnostics carry.

mod common;

use std::path::PathBuf;

use system_builder::load_file;

#[test]
fn loads_a_file_and_names_it_in_diagnostics() {
    let dir = common::fixtures();
    let good = dir.join("good.xml");
    std::fs::write(
        &good,
        common::sys(
            r#"
    <protection_domain name="only" priority="7">
        <program_image path="pd.elf"/>
    </protection_domain>"#,
        ),
    )
    .unwrap();
    let loaded =
        load_file(&good, &[PathBuf::from("/nonexistent"), dir.to_path_buf()]).expect("loads");
    assert_eq!(loaded.system.file, good.display().to_string());
    assert_eq!(loaded.system.protection_domains[0].priority, 7);
    // The second search directory holds the image.
    assert_eq!(
        loaded.system.protection_domains[0].program_image.path,
        dir.join("pd.elf")
    );

    let bad = dir.join("bad.xml");
    std::fs::write(&bad, "<system>\n  <nonsense/>\n</system>\n").unwrap();
    let diags = load_file(&bad, &[dir.to_path_buf()]).unwrap_err();
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [format!(
            "{}:2:3: error: unknown element <nonsense> inside <system>; expected one of: protection_domain, memory_region, channel",
            bad.display()
        )]
    );
}

#[test]
fn missing_system_file_is_a_diagnostic() {
    let path = common::fixtures().join("no-such-system.xml");
    let diags = load_file(&path, &[]).unwrap_err();
    assert_eq!(diags.len(), 1);
    let text = diags[0].to_string();
    assert!(
        text.starts_with(&format!(
            "{}:1:1: error: cannot read the system description: ",
            path.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("; expected a readable system.xml file"),
        "{text}"
    );
}
