//! The `tingu` binary: exit codes and outputs.

use std::process::Command;

fn tingu(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tingu"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_rust_and_dot_commands() {
    let dir = std::env::temp_dir().join(format!("tingu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.tingu");
    std::fs::write(
        &good,
        "protocol P {\n  in go();\n  initial state a { ?go -> a; }\n}\n",
    )
    .unwrap();
    let bad = dir.join("bad.tingu");
    std::fs::write(
        &bad,
        "protocol P {\n  in go();\n  initial state a { ?gone -> a; }\n}\n",
    )
    .unwrap();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());

    let (ok, stdout, _) = tingu(&["check", good]);
    assert!(ok);
    assert_eq!(stdout, "ok: 1 protocols, 0 components\n");
    let (ok, _, stderr) = tingu(&["check", bad]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!("{bad}:3:22: error: undeclared message `gone` in protocol `P`\n")
    );

    let rs = dir.join("out.rs");
    let (ok, _, stderr) = tingu(&["rust", good, "-o", rs.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        std::fs::read_to_string(&rs)
            .unwrap()
            .contains("pub mod p {")
    );

    let dot = dir.join("p.dot");
    let (ok, _, _) = tingu(&["dot", good, "-o", dot.to_str().unwrap()]);
    assert!(ok);
    assert!(
        std::fs::read_to_string(&dot)
            .unwrap()
            .starts_with("digraph \"P\"")
    );

    let (ok, _, stderr) = tingu(&["rust", good]);
    assert!(!ok);
    assert!(stderr.starts_with("`rust` needs -o out.rs"));
    std::fs::remove_dir_all(&dir).unwrap();
}
