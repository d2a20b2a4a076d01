//! `tingu` command line: check specs, draw statecharts, generate Rust.

use std::process::ExitCode;

use tingu::Sources;

const USAGE: &str = "usage:
  tingu check <files...>               check protocols and components
  tingu dot <file> [-o out.dot]        statecharts of the file's protocols (several
                                       protocols: -o names a directory, one <Name>.dot each)
  tingu rust <files...> -o out.rs      generate Rust for tingu-rt
  tingu verify [options] <files...>    model-check every protocol, and every group of
                                       ports a component's `depend` rules couple, with SPIN
    --slots N              messages in flight per ring, protocols (default 4)
    --bound N              variable bound, protocols (default 2)
    --component-slots N    the same for components (default 2)
    --component-bound N    (default 1)
    --max-states N         give up on a larger model (default 2000000)
    --keep DIR             keep each model, pan's output and the compiled verifier";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn split_output(args: &[String]) -> Result<(Vec<String>, Option<String>), String> {
    let mut files = Vec::new();
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-o" {
            out = Some(it.next().ok_or("-o needs a path")?.clone());
        } else if a.starts_with('-') {
            return Err(format!("unknown option `{a}`\n{USAGE}"));
        } else {
            files.push(a.clone());
        }
    }
    if files.is_empty() {
        return Err(format!("no input files\n{USAGE}"));
    }
    Ok((files, out))
}

fn run(args: Vec<String>) -> Result<(), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    let render = |d: Vec<tingu::Diagnostic>| tingu::diag::render(&d);
    match cmd.as_str() {
        "check" => {
            let (files, out) = split_output(rest)?;
            if out.is_some() {
                return Err("`check` writes no output".into());
            }
            let model = Sources::load(&files)?.check().map_err(render)?;
            println!(
                "ok: {} protocols, {} components",
                model.protocols.len(),
                model.components.len()
            );
            Ok(())
        }
        "dot" => {
            let (files, out) = split_output(rest)?;
            if files.len() != 1 {
                return Err(format!("`dot` takes one file\n{USAGE}"));
            }
            let charts = Sources::load(&files)?.dot().map_err(render)?;
            match (out, charts.as_slice()) {
                (None, _) => charts.iter().for_each(|(_, d)| print!("{d}")),
                (Some(path), [(_, d)]) => {
                    if let Some(dir) = std::path::Path::new(&path)
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                    {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("{}: {e}", dir.display()))?;
                    }
                    std::fs::write(&path, d).map_err(|e| format!("{path}: {e}"))?
                }
                (Some(dir), _) => {
                    std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
                    for (name, d) in &charts {
                        let path = format!("{dir}/{name}.dot");
                        std::fs::write(&path, d).map_err(|e| format!("{path}: {e}"))?;
                    }
                }
            }
            Ok(())
        }
        "rust" => {
            let (files, out) = split_output(rest)?;
            let out = out.ok_or(format!("`rust` needs -o out.rs\n{USAGE}"))?;
            let code = Sources::load(&files)?.rust().map_err(render)?;
            std::fs::write(&out, code).map_err(|e| format!("{out}: {e}"))
        }
        "verify" => verify(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command `{cmd}`\n{USAGE}")),
    }
}

fn verify(args: &[String]) -> Result<(), String> {
    let mut opts = tingu::verify::Options::default();
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
                .cloned()
        };
        let mut number = |name: &str, max: usize| -> Result<usize, String> {
            let v = value(name)?;
            v.parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(format!("{name} {v}: expected 1 to {max}"))
        };
        match a.as_str() {
            "--slots" => opts.slots = number("--slots", 16)?,
            "--component-slots" => opts.component_slots = number("--component-slots", 16)?,
            "--bound" => opts.bound = number("--bound", 1000)? as i128,
            "--component-bound" => {
                opts.component_bound = number("--component-bound", 1000)? as i128
            }
            "--max-states" => opts.max_states = number("--max-states", usize::MAX)?,
            "--keep" => opts.keep = Some(value("--keep")?.into()),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`\n{USAGE}")),
            _ => files.push(a.clone()),
        }
    }
    if files.is_empty() {
        return Err(format!("no input files\n{USAGE}"));
    }
    let start = std::time::Instant::now();
    let outcomes = Sources::load(&files)?
        .verify(&opts)
        .map_err(|d| tingu::diag::render(&d))??;
    let mut failed = 0;
    for o in &outcomes {
        let stats = format!(
            "{} states, {} transitions, {:.1} s; {}",
            o.states, o.transitions, o.secs, o.bounds
        );
        if o.verified() {
            println!("verified {}: {stats}", o.title);
            continue;
        }
        failed += 1;
        for r in &o.refutations {
            println!("REFUTED {r}");
        }
        for r in &o.inconclusive {
            println!("INCONCLUSIVE {r}");
        }
        println!("  ({stats})");
    }
    if failed == 0 {
        println!(
            "ok: {} models verified in {:.1} s",
            outcomes.len(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        Err(format!("{failed} of {} models failed", outcomes.len()))
    }
}
