//! Hostile input (issue 13): deep nesting ends in a located error instead
//! of a stack overflow, huge specs check (a quadratic checker would not
//! finish these tests), every error names its file and place, and names
//! that have no Rust spelling are refused before code generation.

use tingu::Sources;

fn errors(src: &str) -> Vec<String> {
    match Sources::from_strings(&[("t.tingu", src)]).check() {
        Ok(_) => panic!("expected an error for:\n{}", &src[..src.len().min(400)]),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

fn first_error(src: &str) -> String {
    errors(src).remove(0)
}

/// Checks and runs both back ends, as `build.rs` does.
fn compiles(src: &str) -> tingu::Model {
    let sources = Sources::from_strings(&[("t.tingu", src)]);
    let model = sources
        .check()
        .unwrap_or_else(|d| panic!("{}", tingu::diag::render(&d)));
    sources.rust().expect("rust");
    sources.dot().expect("dot");
    model
}

/// A protocol whose guard (on line 3) is `guard`.
fn with_guard(guard: &str) -> String {
    format!("protocol P {{\n  in go(n: u8);\n  initial state a {{ ?go [{guard}] -> a; }}\n}}\n")
}

#[test]
fn deep_expressions_are_located_errors() {
    let n = 5000;
    let cases = [
        format!("{}n > 0{}", "(".repeat(n), ")".repeat(n)),
        format!("{}(n > 0)", "!".repeat(n)),
        format!("{}n > 0", "-".repeat(n)),
        format!("n{} > 0", " + n".repeat(n)),
        format!("n > 0{}", " || n > 0".repeat(n)),
    ];
    for guard in &cases {
        let e = first_error(&with_guard(guard));
        assert!(
            e.starts_with("t.tingu:3:") && e.contains("nested more than 128 levels deep"),
            "{e}"
        );
    }
    // In an initial value too.
    let src = format!(
        "protocol P {{\n  in go();\n  var x: u8 = {}1{};\n  initial state a {{ ?go -> a; }}\n}}\n",
        "(".repeat(n),
        ")".repeat(n)
    );
    assert!(first_error(&src).starts_with("t.tingu:3:"));
}

#[test]
fn expressions_at_the_depth_limit_still_compile() {
    // 127 `||` make a tree 128 deep: accepted, and every back end walks it
    // (on a test thread's small stack, in a debug build).
    let guard = format!("n > 0{}", " || n > 0".repeat(126));
    compiles(&with_guard(&guard));
    let guard = format!("{}n > 0{}", "(".repeat(60), ")".repeat(60));
    compiles(&with_guard(&guard));
    let guard = format!("n{} > 0", " + n".repeat(128));
    assert!(first_error(&with_guard(&guard)).contains("nested more than 128 levels"));
}

#[test]
fn deep_superstates_are_located_errors() {
    let nest = |depth: usize| {
        let mut src = String::from("protocol P {\n  in go();\n");
        for i in 0..depth {
            src.push_str(&format!("  superstate s{i} {{\n"));
        }
        src.push_str("  initial state a { ?go -> a; }\n");
        src.push_str(&"  }\n".repeat(depth));
        src.push_str("}\n");
        src
    };
    assert_eq!(
        first_error(&nest(5000)),
        "t.tingu:35:14: error: superstate `s32` is nested 33 levels deep; at most 32 are allowed"
    );
    compiles(&nest(32));
}

/// A chain `s0 -> s1 -> ... -> s{n-1}`, the last one final.
fn chain(n: usize) -> String {
    let mut src = String::from("protocol Chain {\n  in go();\n  initial state s0 { ?go -> s1; }\n");
    for i in 1..n - 1 {
        src.push_str(&format!("  state s{i} {{ ?go -> s{}; }}\n", i + 1));
    }
    src.push_str(&format!("  final state s{};\n}}\n", n - 1));
    src
}

#[test]
fn long_state_chains_check() {
    // 29 s at 4000 states before the checks were made linear.
    let model = Sources::from_strings(&[("t.tingu", &chain(100_000))])
        .check()
        .expect("a chain is a valid protocol");
    assert_eq!(model.protocols[0].states.len(), 100_000);
    // The graph checks still see the end of the chain.
    let broken = chain(50_000).replace("final state s49999;", "state s49999;");
    let errs = Sources::from_strings(&[("t.tingu", &broken)])
        .check()
        .err()
        .unwrap_or_default();
    assert!(
        errs.is_empty(),
        "no final state at all: no reachability-to-end check"
    );
    let looped = chain(50_000).replace("?go -> s49998;", "?go -> s49997;");
    let errs: Vec<String> = errors(&looped);
    // Every state up to the loop cannot end; the two after it are unreachable.
    assert_eq!(errs.len(), 50_000);
    assert_eq!(
        errs[49_997],
        "t.tingu:50000:9: error: no final state of `Chain` can be reached from state `s49997`"
    );
    assert_eq!(
        errs[49_999],
        "t.tingu:50002:15: error: state `s49999` is unreachable from the initial state `s0`"
    );
}

#[test]
fn many_guarded_transitions_on_one_message() {
    let n = 20_000;
    let mut src = String::from("protocol P {\n  in go(n: u32);\n  initial state a {\n");
    for i in 0..n {
        src.push_str(&format!("    ?go [n == {i}] -> a;\n"));
    }
    src.push_str("  }\n}\n");
    compiles(&src);
    // Two identical guards among them, far apart: one error, naming the first.
    let dup = src.replace("?go [n == 19999]", "?go [n == 7]");
    assert_eq!(
        errors(&dup),
        [
            "t.tingu:20003:6: error: non-deterministic transitions on `go` in state `a`: this one and the one at 11:6 can both fire (their guards are identical)"
        ]
    );
    // Unguarded ones are reported once each, not once per pair.
    let src = format!(
        "protocol P {{\n  in go();\n  initial state a {{\n{}  }}\n}}\n",
        "    ?go -> a;\n".repeat(5000)
    );
    assert_eq!(errors(&src).len(), 4999);
}

#[test]
fn many_messages_and_superstates() {
    let n = 20_000;
    let mut src = String::from("protocol P {\n");
    for i in 0..n {
        src.push_str(&format!("  in m{i}();\n"));
    }
    src.push_str("  initial state a {\n");
    for i in 0..n {
        src.push_str(&format!("    ?m{i} -> b{i};\n"));
    }
    src.push_str("  }\n");
    for i in 0..n {
        src.push_str(&format!(
            "  superstate g{i} {{ state b{i} {{ ?m{i} -> a; }} }}\n"
        ));
    }
    src.push_str("}\n");
    let model = Sources::from_strings(&[("t.tingu", &src)]).check().unwrap();
    assert_eq!(model.protocols[0].states.len(), 1 + 2 * n);
    let too_many: String = (0..=u16::MAX as usize)
        .map(|i| format!("in m{i}();\n"))
        .collect();
    let src = format!("protocol P {{\n{too_many}initial state a;\n}}\n");
    assert_eq!(
        first_error(&src),
        "t.tingu:65537:4: error: protocol `P` has more than 65535 messages: wire ids are 16 bits"
    );
}

#[test]
fn non_utf8_files_name_the_place() {
    let dir = std::env::temp_dir().join(format!("tingu-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.tingu");
    std::fs::write(&path, b"protocol P {\n  in g\xc3(\xff);\n}\n").unwrap();
    let e = match Sources::load(&[&path]) {
        Ok(_) => panic!("a non-UTF-8 file loaded"),
        Err(e) => e,
    };
    assert_eq!(
        e,
        format!(
            "{}:2:7: error: byte 0xc3 is not valid UTF-8; Tingu files are UTF-8 text",
            path.display()
        )
    );
    // After a byte-order mark and a multi-byte character, columns count characters.
    std::fs::write(
        &path,
        "\u{feff}é\u{1}\n"
            .as_bytes()
            .iter()
            .chain(b"\xfe")
            .copied()
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let e = Sources::load(&[&path]).err().unwrap();
    assert!(
        e.ends_with(":2:1: error: byte 0xfe is not valid UTF-8; Tingu files are UTF-8 text"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn byte_order_mark_is_skipped() {
    let src = "\u{feff}protocol P {\n  in go();\n  initial state a { ?go -> a; }\n}\n";
    compiles(src);
    assert_eq!(
        first_error("\u{feff}protocol P { # }"),
        "t.tingu:1:14: error: unexpected character `#`"
    );
}

#[test]
fn duplicates_across_files_name_the_other_file() {
    let a = "protocol P {\n  in go();\n  initial state a { ?go -> a; }\n}\n";
    let b = "\n\nprotocol P {\n  in go();\n  initial state a { ?go -> a; }\n}\n";
    let c = "component p {\n  port x: P;\n}\n";
    let errs: Vec<String> =
        Sources::from_strings(&[("a.tingu", a), ("b.tingu", b), ("c.tingu", c)])
            .check()
            .err()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(
        errs,
        [
            "b.tingu:3:10: error: duplicate protocol or component `P` (first declared at a.tingu:1:10)",
            "c.tingu:1:11: error: `p` maps to the same Rust module as `P` at a.tingu:1:10",
        ]
    );
}

/// The spec `proto` with `decl` added to its declarations, checked.
fn declared(decl: &str) -> String {
    let src = format!(
        "protocol P {{\n  in go(n: u8);\n  {decl}\n  initial state a {{ ?go -> a; }}\n}}\n"
    );
    first_error(&src)
}

#[test]
fn names_without_a_rust_spelling_are_refused() {
    assert_eq!(
        declared("in Go();"),
        "t.tingu:3:6: error: message `Go` and message `go` at 2:6 both become the Rust name `Go`; rename one"
    );
    assert_eq!(
        first_error("protocol P {\n  in a_b();\n  in aB();\n  initial state a { ?a_b -> a; }\n}\n"),
        "t.tingu:3:6: error: message `aB` and message `a_b` at 2:6 both become the Rust name `AB`; rename one"
    );
    assert_eq!(
        declared("in self();"),
        "t.tingu:3:6: error: `self` cannot name a message: its Rust name `Self` is a keyword"
    );
    for (state, col) in [("Self", 17), ("self", 17)] {
        let src = format!(
            "protocol P {{\n  in go();\n  initial state {state} {{ ?go -> {state}; }}\n}}\n"
        );
        assert_eq!(
            first_error(&src),
            format!(
                "t.tingu:3:{col}: error: `{state}` cannot name a state: its Rust name `Self` is a keyword"
            )
        );
    }
    for state in ["_", "_1"] {
        let src = format!(
            "protocol P {{\n  in go();\n  initial state {state} {{ ?go -> {state}; }}\n}}\n"
        );
        let e = first_error(&src);
        assert!(
            e.starts_with("t.tingu:3:17: error: ")
                && e.contains("is not an identifier; start it with a letter"),
            "{e}"
        );
    }
    assert_eq!(
        first_error("protocol State {\n  initial state self;\n}\n"),
        "t.tingu:1:10: error: protocol `State` declares no messages; declare at least one with `in` or `out`"
    );
    assert_eq!(
        first_error("protocol Self {\n  in go();\n  initial state a;\n}\n"),
        "t.tingu:1:10: error: `Self` cannot name a protocol or component: its Rust module would be `self`, which is a keyword"
    );
    for (arg, why) in [
        (
            "slot",
            "`slot` is reserved and cannot name a message argument",
        ),
        ("w", "`w` is reserved and cannot name a message argument"),
        ("f", "`f` is reserved and cannot name a message argument"),
        (
            "next",
            "`next` is reserved and cannot name a message argument",
        ),
        (
            "gen",
            "`gen` is a Rust keyword and cannot name a message argument",
        ),
        (
            "_",
            "`_` cannot name a message argument: it is not a Rust identifier",
        ),
        (
            "maxPacket",
            "message argument `maxPacket` must be written in snake_case (it becomes a Rust field): `max_packet`",
        ),
    ] {
        let src =
            format!("protocol P {{\n  in go({arg}: u8);\n  initial state a {{ ?go -> a; }}\n}}\n");
        assert_eq!(first_error(&src), format!("t.tingu:2:9: error: {why}"));
    }
    assert_eq!(
        declared("const limit = 3;"),
        "t.tingu:3:9: error: constant `limit` must be written in UPPER_CASE (it becomes a Rust constant): `LIMIT`"
    );
    assert_eq!(
        declared("const NAME = 3;"),
        "t.tingu:3:9: error: `NAME` cannot name a constant: the generated module of `P` defines `NAME` itself"
    );
}

#[test]
fn values_the_generated_rust_cannot_hold_are_refused() {
    assert_eq!(
        declared("var x: u8 = -0;"),
        "t.tingu:3:15: error: initial value of `x` must be a plain u8 literal from 0 to 255 (found `-0`)"
    );
    assert_eq!(
        declared("var x: i8 = --5;"),
        "t.tingu:3:15: error: initial value of `x` must be a plain i8 literal from -128 to 127 (found `--5`)"
    );
    compiles(
        "protocol P {\n  in go();\n  var x: i8 = -128;\n  var y: u64 = 18446744073709551615;\n  initial state a { ?go -> a; }\n}\n",
    );
    assert_eq!(
        first_error(&with_guard("n > 0 && 1 < 5000000000")),
        "t.tingu:3:35: error: `1 < 5000000000` compares constants only, so it never changes; compare an argument or a variable"
    );
    let component = |max: &str| {
        format!(
            "protocol P {{\n  in go(n: u8);\n  initial state a {{ ?go -> a; }}\n}}\ncomponent C {{\n  port p: P;\n  subport s: P max {max} spawned by p.go(n);\n}}\n"
        )
    };
    compiles(&component("1024"));
    assert_eq!(
        first_error(&component("18446744073709551615")),
        "t.tingu:7:20: error: subport `s` may have at most 1024 instances: each open one keeps a protocol observer inside the component's observer"
    );
}

#[test]
fn component_methods_do_not_collide() {
    let src = |body: &str| {
        format!(
            "protocol P {{\n  in go(n: u8);\n  initial state a {{ ?go -> a; }}\n}}\ncomponent C {{\n{body}\n}}\n"
        )
    };
    assert_eq!(
        first_error(&src(
            "  port p: P;\n  subport new: P max 2 spawned by p.go(n);"
        )),
        "t.tingu:7:11: error: `new` would give the observer of `C` a method `new`, which it already has of its own; rename it"
    );
    assert_eq!(
        first_error(&src(
            "  port x: P;\n  subport s: P max 2 spawned by x.go(n);\n  subport s_open: P max 2 spawned by x.go(n);"
        )),
        "t.tingu:8:11: error: `s_open` would give the observer of `C` a method `s_open`, which it already has for `s` at 7:11; rename it"
    );
    assert_eq!(
        first_error(&src(
            "  port x: P;\n  subport observe_x: P max 2 spawned by x.go(n);"
        )),
        "t.tingu:7:11: error: `observe_x` would give the observer of `C` a method `observe_x`, which it already has for `x` at 6:8; rename it"
    );
    // Fixed ports are types of the component's `ports` module as well.
    assert_eq!(
        first_error(&src("  port a_1: P;\n  port a1: P;")),
        "t.tingu:7:8: error: port `a1` and port `a_1` at 6:8 both become the Rust name `A1`; rename one"
    );
}
