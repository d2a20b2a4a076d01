//! Parser and checker errors: each names the place (file:line:col) and the problem.

use tingu::Sources;

/// The first diagnostic for `src` (as file `t.tingu`), rendered.
fn first_error(src: &str) -> String {
    match Sources::from_strings(&[("t.tingu", src)]).check() {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(d) => d[0].to_string(),
    }
}

fn all_errors(src: &str) -> Vec<String> {
    Sources::from_strings(&[("t.tingu", src)])
        .check()
        .err()
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

const OK: &str = "protocol P {
    in go(n: u8);
    out done();
    var count: u8 = 0;
    initial state a { ?go [n > 0] / count = n -> b; }
    state b { !done -> c; }
    final state c;
}
";

#[test]
fn valid_protocol_passes() {
    let model = Sources::from_strings(&[("t.tingu", OK)]).check().unwrap();
    assert_eq!(model.protocols[0].states.len(), 3);
}

#[test]
fn a_constant_must_fit_its_written_type() {
    assert_eq!(
        first_error("protocol P {\n  out x();\n  const BIG: u8 = 256;\n  initial state a;\n}"),
        "t.tingu:3:19: error: constant `BIG` = 256 does not fit its type u8, which holds values from 0 to 255"
    );
    assert_eq!(
        first_error("protocol P {\n  out x();\n  const DOWN: u32 = -1;\n  initial state a;\n}"),
        "t.tingu:3:21: error: constant `DOWN` = -1 does not fit its type u32, which holds values from 0 to 4294967295"
    );
    assert_eq!(
        first_error("protocol P {\n  out x();\n  const ON: bool = 1;\n  initial state a;\n}"),
        "t.tingu:3:20: error: constant `ON` cannot be a bool: constants are integers"
    );
    assert_eq!(
        first_error("protocol P {\n  out x();\n  const X: u7 = 1;\n  initial state a;\n}"),
        "t.tingu:3:12: error: unknown type `u7`; expected u8..u64, i8..i64 or bool"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        first_error("protocol P {\n  in go()\n}"),
        "t.tingu:3:1: error: expected `;`, found `}`"
    );
    assert_eq!(
        first_error("protocol P {\n  in go(n: u9);\n}"),
        "t.tingu:2:12: error: unknown type `u9`; expected u8..u64, i8..i64 or bool"
    );
    assert_eq!(
        first_error("thing P {}"),
        "t.tingu:1:1: error: expected `protocol` or `component`, found `thing`"
    );
    assert_eq!(
        first_error("protocol P {\n  initial state a timeout 0 ms;\n}"),
        "t.tingu:2:27: error: a timeout must be at least 1 ms"
    );
    assert_eq!(
        first_error("protocol P { # }"),
        "t.tingu:1:14: error: unexpected character `#`"
    );
    assert_eq!(
        first_error(
            "protocol P {\n  in go(n: u8);\n  initial state a { ?go [0 < n < 3] -> a; }\n}"
        ),
        "t.tingu:3:32: error: comparisons cannot be chained; use `&&`"
    );
    assert_eq!(
        first_error("protocol P {\n  in go();\n  initial state a { ?go -> a }\n}"),
        "t.tingu:3:30: error: expected `;`, found `}`"
    );
}

#[test]
fn undeclared_message() {
    let src = OK.replace("!done -> c", "!finished -> c");
    assert_eq!(
        first_error(&src),
        "t.tingu:6:16: error: undeclared message `finished` in protocol `P`"
    );
}

#[test]
fn direction_must_match_declaration() {
    let src = OK.replace("!done -> c", "?done -> c");
    assert_eq!(
        first_error(&src),
        "t.tingu:6:16: error: message `done` is declared `out`, so write `!done`"
    );
}

#[test]
fn unreachable_state() {
    let src = OK.replace(
        "final state c;",
        "final state c;\n    state lost { !done -> c; }",
    );
    assert_eq!(
        first_error(&src),
        "t.tingu:8:11: error: state `lost` is unreachable from the initial state `a`"
    );
}

#[test]
fn final_state_not_reachable() {
    let src = OK.replace(
        "state b { !done -> c; }",
        "state b { !done -> b; }\n    state d { !done -> c; }\n    initial state x;",
    );
    // Several problems are all reported, in source order.
    let errs = all_errors(&src);
    assert_eq!(
        errs,
        ["t.tingu:8:19: error: second initial state `x` (protocol `P` may have only one)"]
    );
    let src = OK
        .replace(
            "state b { !done -> c; }",
            "state b { !done -> b; }\n    state d { ?go -> c; }",
        )
        .replace(
            "initial state a { ?go [n > 0] / count = n -> b; }",
            "initial state a { ?go [n > 0] / count = n -> b; ?go [n == 0] -> d; }",
        );
    let errs = all_errors(&src);
    assert_eq!(
        errs,
        ["t.tingu:6:11: error: no final state of `P` can be reached from state `b`"]
    );
}

#[test]
fn nondeterministic_transitions() {
    let src = OK.replace(
        "?go [n > 0] / count = n -> b;",
        "?go [n > 0] / count = n -> b; ?go -> c;",
    );
    assert_eq!(
        first_error(&src),
        "t.tingu:5:54: error: non-deterministic transitions on `go` in state `a`: this one and the one at 5:24 can both fire (at least one of them is unguarded)"
    );
    let src = OK.replace(
        "?go [n > 0] / count = n -> b;",
        "?go [n > 0] / count = n -> b; ?go [(n > 0)] -> c;",
    );
    assert!(
        first_error(&src).contains("(their guards are identical)"),
        "{}",
        first_error(&src)
    );
    // Different guards are accepted (the checker does not solve them).
    let src = OK.replace(
        "?go [n > 0] / count = n -> b;",
        "?go [n > 0] / count = n -> b; ?go [n == 0] -> c;",
    );
    assert!(Sources::from_strings(&[("t.tingu", &src)]).check().is_ok());
}

#[test]
fn expression_errors() {
    let src = OK.replace("[n > 0]", "[m > 0]");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:28: error: unknown name `m`: not an argument of `go`, a variable or a constant"
    );
    let src = OK.replace("[n > 0]", "[n]");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:28: error: guard `n` is an integer, expected a bool"
    );
    let src = OK.replace("[n > 0]", "[n && true]");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:28: error: `&&` needs a bool, but `n` is an integer"
    );
    let src = OK.replace("count = n", "count = n > 1");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:45: error: `n > 1` is a bool, but `count` is u8"
    );
    let src = OK.replace("count = n", "total = n");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:37: error: cannot assign `total`: not a variable of `P`"
    );
    let src = OK.replace("var count: u8 = 0;", "var count: u8 = 300;");
    assert_eq!(
        first_error(&src),
        "t.tingu:4:21: error: initial value of `count` must be a plain u8 literal from 0 to 255 (found `300`)"
    );
}

#[test]
fn declaration_errors() {
    let src = OK.replace("out done();", "out done();\n    in done();");
    assert_eq!(
        first_error(&src),
        "t.tingu:4:8: error: duplicate message `done` (first declared at 3:9)"
    );
    let src = OK.replace("in go(n: u8);", "in go(type: u8);");
    assert_eq!(
        first_error(&src),
        "t.tingu:2:11: error: `type` is a Rust keyword and cannot name a message argument"
    );
    let src = OK.replace(
        "in go(n: u8);",
        "in go(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64, h: u64);",
    );
    assert_eq!(
        first_error(&src),
        "t.tingu:2:8: error: message `go` needs 66 bytes but a slot holds 64"
    );
    let src = OK.replace("-> b;", "-> nowhere;");
    assert_eq!(
        first_error(&src),
        "t.tingu:5:50: error: unknown state `nowhere` in protocol `P`"
    );
    let src = OK.replace("final state c;", "final state c { ?go -> a; }");
    assert_eq!(
        first_error(&src),
        "t.tingu:7:22: error: final state `c` cannot have transitions: the protocol ends there"
    );
    let src = "protocol P {\n  in go();\n  state a { ?go -> a; }\n}";
    assert_eq!(
        first_error(src),
        "t.tingu:1:10: error: protocol `P` has no initial state"
    );
}

#[test]
fn superstate_errors() {
    let src =
        "protocol P {\n  in go();\n  initial state a { ?go -> s; }\n  superstate s { state b; }\n}";
    assert_eq!(
        first_error(src),
        "t.tingu:3:28: error: `s` is a superstate; a transition must target one of its states"
    );
    let src = "protocol P {\n  in go();\n  initial state a { ?go -> a; }\n  superstate s { ?go -> a; }\n}";
    assert_eq!(
        first_error(src),
        "t.tingu:4:14: error: superstate `s` contains no states"
    );
}

#[test]
fn component_errors() {
    let with = |c: &str| format!("{OK}\ncomponent C {{\n{c}\n}}\n");
    assert_eq!(
        first_error(&with("  port p: Q;")),
        "t.tingu:11:11: error: unknown protocol `Q`"
    );
    assert_eq!(
        first_error(&with("  port p: P;\n  depend p.go on p in nowhere;")),
        "t.tingu:12:23: error: unknown state `nowhere` in protocol `P`"
    );
    assert_eq!(
        first_error(&with("  port p: P;\n  depend p.gone on p in a;")),
        "t.tingu:12:12: error: undeclared message `gone` in protocol `P`"
    );
    assert_eq!(
        first_error(&with("  port p: P;\n  depend q.* on p in a;")),
        "t.tingu:12:10: error: `q` is not a port of `C`"
    );
    assert_eq!(
        first_error(&with(
            "  port p: P;\n  subport s: mirror P max 2 spawned by p.go(count);"
        )),
        "t.tingu:12:45: error: `count` is not an argument of `go`"
    );
    assert_eq!(
        first_error(&with(
            "  port p: P;\n  subport s: P max 0 spawned by p.go(n);"
        )),
        "t.tingu:12:20: error: a subport maximum must be at least 1"
    );
    assert_eq!(
        first_error(&with(
            "  port p: P;\n  subport s: P max 2 spawned by p.go(n);\n  depend s.go on p in a;"
        )),
        "t.tingu:13:10: error: `s` is a subport; dependencies constrain fixed ports only"
    );
}

#[test]
fn errors_name_the_right_file() {
    let comp = "component C {\n  port p: P;\n  port q: Missing;\n}";
    let d = Sources::from_strings(&[("p.tingu", OK), ("c.tingu", comp)])
        .check()
        .unwrap_err();
    assert_eq!(
        d[0].to_string(),
        "c.tingu:3:11: error: unknown protocol `Missing`"
    );
}
