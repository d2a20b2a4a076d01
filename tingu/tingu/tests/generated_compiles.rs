//! Every spec the checker accepts must compile: the Rust generated for a
//! spec full of names and values at the edges of what is allowed (names
//! the generated code also uses, Rust-flavoured names, extreme literals,
//! expressions at the depth limit, the largest subport array) is built
//! with rustc, in a scratch crate next to `tingu-rt`.

use std::path::Path;
use std::process::Command;

use tingu::Sources;

const EDGES: &str = r#"
protocol Core {
    in go(vars: u8, msg: u8, dir: u8, now_ns: u16, kind: u8, target: u8, id: u8, seed: u8, r: u8, key: u32, i128: u8, tingu_rt: u8, core: u8, union: u8);
    out Msg(ok: bool);
    out State();
    in None(some: i64);
    in Some_thing();
    const BIG = 18446744073709551615;
    const LOW = -18446744073709551615;
    var v: u64 = 18446744073709551615;
    var w_: i8 = -128;
    var flag: bool = false;
    initial state None {
        ?go [msg > 0 && i128 < BIG && core + tingu_rt > LOW && union != 5000000000] / v = key + BIG - BIG, flag = vars == dir -> State;
        ?None [some < LOW || some > -5000000000] / w_ = -1 -> Msg;
        ?Some_thing -> Msg;
    }
    superstate Outer {
        state State timeout 18446744073709551615 ms { !Msg [ok] -> Msg; !Msg [!ok] / flag = !flag -> None; }
        superstate Inner {
            state Msg { !State -> Done_; ?go [DEPTH] -> Msg; }
        }
    }
    final state Done_;
}

protocol TinguRt {
    in open(pipe: u64);
    out done();
    initial state idle { ?open -> idle; !done -> idle; }
}

component Std {
    port new: Core;
    port check_timeouts: mirror TinguRt;
    port flow: TinguRt;
    subport msg: mirror TinguRt max 1024 spawned by flow.open(pipe);
    subport kind: Core max 1 spawned by check_timeouts.open(pipe);
    depend new.go, new.None on flow in idle;
    depend flow.* on new in Outer;
}
"#;

fn edges() -> String {
    // 127 `||` terms: a tree exactly at the depth limit.
    let deep = format!("now_ns > 0{}", " || now_ns > 0".repeat(126));
    EDGES.replace("DEPTH", &deep)
}

#[test]
fn accepted_edge_cases_compile() {
    let spec = edges();
    let code = Sources::from_strings(&[("edges.tingu", &spec)])
        .rust()
        .unwrap_or_else(|d| panic!("{}", tingu::diag::render(&d)));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tingu-generated-compiles");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tingu-rt");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"generated\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\ntingu-rt = {{ path = {:?} }}\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "#![no_std]\ninclude!(\"generated.rs\");\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/generated.rs"), code).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--offline", "--quiet", "--message-format", "short"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "the generated Rust does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
