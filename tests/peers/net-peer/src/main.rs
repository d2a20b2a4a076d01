//! The host peer of the network tests (tests/boot.toml) and of the net
//! bench (bench/net): a program on the host that talks to the guest's
//! net PD and checks every byte that comes back. Every loop is bounded in
//! time; it exits 0 only if every check passed.
//!
//! ```text
//! net-peer user ECHO STATUS   QEMU's user network: UDP and TCP echo through the
//!                             forwarded host port ECHO, the status page through STATUS
//! net-peer wire PORT QMP      the raw-frame wire (QEMU at 127.0.0.1:PORT, this
//!                             station at PORT+1, 10.0.2.2): ARP, pings, UDP and TCP
//!                             echo, raw frames of every size, malformed frames, the
//!                             256-frame burst, link down and up (QMP socket QMP);
//! net-peer wire PORT QMP cplus the same with the driver in C+ mode: QEMU drops
//!                             oversized frames and what a burst finds no buffer for
//!                             (no flow control), which must be counted as missed
//! net-peer restart PORT COUNT RESEND
//!                             the raw-frame wire: COUNT UDP echoes while the guest's
//!                             driver is made to fail and is restarted; every datagram
//!                             must come back (one lost on the wire is sent again after
//!                             RESEND ms without its echo)
//! net-peer bench PORT SIZE INFLIGHT COUNT COUNTERS [PROFILE]
//!                             the net bench's load: COUNT UDP echoes of SIZE bytes,
//!                             INFLIGHT in flight; prints one `bench:` line with the
//!                             guest instructions (the TCG plugin's counter file
//!                             COUNTERS) and the PDs' busy time over the run; with
//!                             PROFILE (the plugin's profile file), copies it to
//!                             PROFILE.0 before the run and PROFILE.1 after
//! ```

use std::process::ExitCode;

mod checks;
mod user;
mod wire;

fn report(name: &str, r: Result<String, String>) -> bool {
    match r {
        Ok(s) => {
            println!("peer: PASS {name}: {s}");
            true
        }
        Err(e) => {
            println!("peer: FAIL {name}: {e}");
            false
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        panic!("net-peer: argument {i} ({what}) missing or malformed; see the crate doc")
    })
}

fn user(echo: u16, status: u16) -> bool {
    let mut ok = report("user-udp-echo", user::udp_echo(echo, 200));
    ok &= report("user-tcp-echo", user::tcp_echo(echo, 256 * 1024));
    let page = user::status(status);
    ok &= report(
        "user-status-page",
        page.and_then(|text| {
            for want in [
                "HTTP/1.0 200 OK",
                "address    10.0.2.15/24",
                "link       up",
                "EthernetController state",
            ] {
                if !text.contains(want) {
                    return Err(format!("no '{want}' in:\n{text}"));
                }
            }
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim_end();
            Ok(format!("served:\n{body}"))
        }),
    );
    ok
}

fn wire(port: u16, qmp: &str, cplus: bool) -> bool {
    let mut st = wire::Station::new(port);
    let mut ok = report("arp", checks::arp(&mut st, cplus));
    ok &= report("ping", checks::ping(&mut st, 1000, 16));
    ok &= report(
        "udp-echo",
        checks::udp_echo(&mut st, 10_000, 32, &[64, 200, 512, 1000, 1472, 18, 700]),
    );
    ok &= report(
        "tcp-echo",
        checks::tcp_echo(&mut st, 1 << 20, 41001, |_| {}),
    );
    ok &= report(
        "raw-frames",
        checks::raw_frames(&mut st, &[60, 1514, 1518], 400, 8),
    );
    ok &= report("malformed", checks::malformed(&mut st, cplus));
    ok &= report("burst", checks::burst(&mut st, cplus));
    ok &= report("link-flap", checks::link_flap(&mut st, qmp));
    match checks::status(&mut st, 41090) {
        Ok((c, text)) => {
            let body = text
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or("")
                .trim_end()
                .to_string();
            let violations = text
                .lines()
                .find(|l| l.starts_with("eth port"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok());
            ok &= report(
                "status-page",
                if violations == Some(0) && c.contains_key("rx_frames") {
                    Ok(format!("after the run:\n{body}"))
                } else {
                    Err(format!("violations {violations:?}; page:\n{body}"))
                },
            );
        }
        Err(e) => ok &= report("status-page", Err(e)),
    }
    ok
}

/// The restart test: a UDP echo stream through the driver's restarts,
/// then the status page (the network PD's view of its port afterwards).
fn restart(port: u16, count: u32, resend_ms: u64) -> bool {
    let mut st = wire::Station::new(port);
    let mut ok = report("arp", checks::arp(&mut st, false));
    ok &= report(
        "udp-through-restarts",
        checks::udp_through_restarts(
            &mut st,
            count,
            32,
            &[64, 512, 1472, 200],
            std::time::Duration::from_millis(resend_ms),
        ),
    );
    ok &= report(
        "status-page",
        checks::status(&mut st, 41091).map(|(_, text)| {
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            format!("after the run:\n{}", body.trim_end())
        }),
    );
    ok
}

/// The plugin's counters (bench/net/insn-count.c): guest instructions in
/// all, in the kernel, in busy periods (those that ran any PD) up to now,
/// and the idle thread's halts. The plugin counts a period as busy when
/// it closes; the open one is added here if user code ran in it, so that
/// a measurement in which the system never halts still counts.
fn instructions(path: &str) -> Result<[u64; 4], String> {
    const TOTAL: usize = 0;
    const KERNEL: usize = 1;
    const BUSY: usize = 2;
    const HALTS: usize = 3;
    const PERIOD_TOTAL: usize = 4;
    const PERIOD_USER: usize = 5;
    const SEQ: usize = 6;
    let read = || -> Result<[u64; 7], String> {
        let b = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut words = [0; 7];
        for (i, w) in words.iter_mut().enumerate() {
            *w = b
                .get(i * 8..i * 8 + 8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
                .ok_or("short counter file")?;
        }
        Ok(words)
    };
    // A halt between two reads (or during one) moves the period: read
    // again until the sequence word is even and unchanged.
    for _ in 0..100 {
        let w = read()?;
        if w[SEQ] % 2 == 1 || read()?[SEQ] != w[SEQ] {
            continue;
        }
        let user = w[TOTAL] - w[KERNEL];
        let open = if user != w[PERIOD_USER] {
            w[TOTAL] - w[PERIOD_TOTAL]
        } else {
            0
        };
        return Ok([w[TOTAL], w[KERNEL], w[BUSY] + open, w[HALTS]]);
    }
    Err(format!(
        "{path}: the counters kept changing under 100 reads"
    ))
}

/// Copies the plugin's profile file as it is now to `PROFILE.<n>`, for
/// bench/net/profile.py to subtract.
fn snapshot(profile: Option<&str>, n: u32) -> Result<(), String> {
    match profile {
        Some(p) => std::fs::copy(p, format!("{p}.{n}"))
            .map(|_| ())
            .map_err(|e| format!("{p}: {e}")),
        None => Ok(()),
    }
}

fn bench(
    port: u16,
    size: usize,
    inflight: u32,
    count: u32,
    counters: &str,
    profile: Option<&str>,
) -> bool {
    let mut st = wire::Station::new(port);
    if !report("arp", checks::arp(&mut st, true)) {
        return false;
    }
    if let Err(e) = checks::udp_load(&mut st, 500, inflight, size) {
        return report("warm-up", Err(e));
    }
    let mut run = || -> Result<String, String> {
        snapshot(profile, 0)?;
        let c0 = instructions(counters)?;
        let (secs, mut rtts, resent) = checks::udp_load(&mut st, count, inflight, size)?;
        let c1 = instructions(counters)?;
        snapshot(profile, 1)?;
        rtts.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            rtts.get(((rtts.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Ok(format!(
            "bench: size={size} inflight={inflight} echoed={count} resent={resent} seconds={secs:.3} insns={} kernel={} busy={} halts={} rtt_median_us={:.1} rtt_p99_us={:.1}",
            c1[0] - c0[0],
            c1[1] - c0[1],
            c1[2] - c0[2],
            c1[3] - c0[3],
            pct(0.5),
            pct(0.99)
        ))
    };
    match run() {
        Ok(line) => {
            println!("{line}");
            true
        }
        Err(e) => report("bench", Err(e)),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let ok = match args.get(1).map(String::as_str) {
        Some("user") => user(arg(&args, 2, "echo port"), arg(&args, 3, "status port")),
        Some("wire") => wire(
            arg(&args, 2, "port"),
            &arg::<String>(&args, 3, "QMP socket"),
            match args.get(4).map(String::as_str) {
                None => false,
                Some("cplus") => true,
                Some(other) => {
                    eprintln!("net-peer wire: unknown mode '{other}' (takes cplus)");
                    return ExitCode::FAILURE;
                }
            },
        ),
        Some("restart") => restart(
            arg(&args, 2, "port"),
            arg(&args, 3, "count"),
            arg(&args, 4, "resend ms"),
        ),
        Some("bench") => bench(
            arg(&args, 2, "port"),
            arg(&args, 3, "size"),
            arg(&args, 4, "in flight"),
            arg(&args, 5, "count"),
            &arg::<String>(&args, 6, "counter file"),
            args.get(7).map(String::as_str),
        ),
        _ => {
            eprintln!(
                "usage: net-peer user ECHO STATUS | wire PORT QMP [cplus] | restart PORT COUNT RESEND | bench PORT SIZE INFLIGHT COUNT COUNTERS [PROFILE]"
            );
            false
        }
    };
    println!("peer: {}", if ok { "all checks passed" } else { "FAILED" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
