//! `tingu verify` on known-bad specs (tests/verify/*.tingu): each is
//! refuted, in Tingu terms, with the trace that shows its bug; the fixed
//! variant verifies. Needs SPIN and gcc (tools/prereqs.sh installs them).
//! The protocol library itself is verified by `make test` (tests/run.py).

use std::process::Command;

fn spec(name: &str) -> String {
    format!("{}/tests/verify/{name}.tingu", env!("CARGO_MANIFEST_DIR"))
}

fn library(name: &str) -> String {
    format!(
        "{}/../dingo-protocols/{name}.tingu",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs `tingu verify`: (success, stdout, stderr).
fn verify(files: &[String]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tingu"))
        .arg("verify")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The refutation that starts with `head`, up to the next one.
fn refutation<'a>(stdout: &'a str, head: &str) -> &'a str {
    let start = stdout
        .find(&format!("REFUTED {head}"))
        .unwrap_or_else(|| panic!("no refutation `{head}` in:\n{stdout}"));
    let rest = &stdout[start + 8..];
    let end = rest
        .find("\nREFUTED ")
        .or_else(|| rest.find("\n  ("))
        .unwrap_or(rest.len());
    &stdout[start..start + 8 + end]
}

#[test]
fn missing_crossing_allowance_is_refuted_with_both_sides_sequences() {
    let (ok, out, err) = verify(&[spec("crossing")]);
    assert!(!ok, "{out}");
    assert_eq!(err, "1 of 1 models failed\n");
    let r = refutation(
        &out,
        "protocol OneShot: provider receives ?cancel in state `idle`: unexpected message",
    );
    // The crossing: the client cancels while the provider fires.
    for line in [
        "client sends ?arm: `idle` -> `armed`",
        "client sends ?cancel: `armed` -> `cancelling`",
        "provider receives ?arm: `idle` -> `armed`",
        "provider sends !fired: `armed` -> `idle`",
        "provider receives ?cancel: refused in `idle`",
        "  provider       idle --?arm--> armed --!fired--> idle --?cancel--> REFUSED\n",
        "  client         idle --?arm--> armed --?cancel--> cancelling\n",
        "  in flight      to client: !fired\n",
    ] {
        assert!(r.contains(line), "missing `{line}` in:\n{r}");
    }
    // The same crossing seen from the client: `fired` in `cancelling`.
    let r = refutation(
        &out,
        "protocol OneShot: client receives !fired in state `cancelling`: unexpected message",
    );
    assert!(
        r.contains(
            "  client         idle --?arm--> armed --?cancel--> cancelling --!fired--> REFUSED\n"
        ),
        "{r}"
    );
    assert!(!out.contains("Promela") && !out.contains("pan"), "{out}");
}

#[test]
fn crossing_allowed_for_verifies() {
    let (ok, out, err) = verify(&[spec("crossing_fixed")]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("verified protocol OneShot: "), "{out}");
    assert!(out.contains("\nok: 1 models verified in "), "{out}");
}

#[test]
fn dependency_deadlock_is_refuted() {
    let (ok, out, _) = verify(&[spec("deadlock")]);
    assert!(!ok, "{out}");
    // The protocol alone is fine; the component's rules deadlock it.
    assert!(out.contains("verified protocol Request: "), "{out}");
    let r = refutation(
        &out,
        "component Crossed (ports a, b): deadlock: every side waits and nothing is in flight \
         (Crossed a in `busy`, peer a in `busy`, Crossed b in `busy`, peer b in `busy`)",
    );
    for line in [
        "peer sends a ?ask: `idle` -> `busy`",
        "Crossed receives a ?ask: `idle` -> `busy`",
        "peer sends b ?ask: `idle` -> `busy`",
        "Crossed receives b ?ask: `idle` -> `busy`",
        "  Crossed a      idle --?ask--> busy\n",
        "  Crossed b      idle --?ask--> busy\n",
    ] {
        assert!(r.contains(line), "missing `{line}` in:\n{r}");
    }
    assert!(!r.contains("  in flight "), "{r}");
}

#[test]
fn timeout_state_closed_off_by_dependencies_is_refuted() {
    let (ok, out, _) = verify(&[
        spec("timeout"),
        library("lifecycle"),
        library("power_management"),
    ]);
    assert!(!ok, "{out}");
    let r = refutation(
        &out,
        "component Sleepless (ports lc, pm): Sleepless stays in timeout state `sleep_prepare` of \
         port pm (2000 ms) for good: no way out (!sleepComplete, !sleepFailed) can ever be taken; \
         rules on them: `depend pm.sleepComplete, pm.sleepFailed on lc in {init, starting}`",
    );
    assert!(r.contains("timeout.tingu:8)"), "{r}");
    // Asked to sleep, then started: the rule closes both answers for good.
    for line in [
        "Sleepless receives pm ?sleep(level=1): `full_power` -> `sleep_prepare`",
        "Sleepless sends lc !startComplete: `starting` -> `running`",
        "  Sleepless lc   init --?start--> starting --!startComplete--> running\n",
        "  Sleepless pm   full_power --?sleep(level=1)--> sleep_prepare\n",
    ] {
        assert!(r.contains(line), "missing `{line}` in:\n{r}");
    }
}

#[test]
fn unreachable_final_state_is_refuted() {
    let (ok, out, _) = verify(&[spec("livelock")]);
    assert!(!ok, "{out}");
    let r = refutation(
        &out,
        "protocol Drain: from this state it can never come to rest (both sides in a final state \
         with nothing in flight)",
    );
    assert!(
        r.contains("  client         filling --?finish--> draining\n"),
        "{r}"
    );
    // Not a deadlock: the client may always repeat `finish`.
    assert!(!out.contains("deadlock"), "{out}");
}

#[test]
fn subport_closed_by_its_spawner_is_refuted() {
    let (ok, out, _) = verify(&[spec("subport")]);
    assert!(!ok, "{out}");
    refutation(
        &out,
        "component Client subport sessions: an instance ends for Client when it sends ?bye (state \
         `talking`), and Client may then reuse its key or open another at once; `dir.open` travels \
         on another ring than ?bye, so its peer can see the key still open or more than 2 instances",
    );
}

#[test]
fn bad_options_are_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_tingu"))
        .args(["verify", "--slots", "0", &spec("crossing")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "--slots 0: expected 1 to 16\n"
    );
}
