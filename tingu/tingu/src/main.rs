//! `tingu` command line: check specs, draw statecharts, generate Rust.

use std::process::ExitCode;

use tingu::Sources;

const USAGE: &str = "usage:
  tingu check <files...>               check protocols and components
  tingu dot <file> [-o out.dot]        statecharts of the file's protocols (several
                                       protocols: -o names a directory, one <Name>.dot each)
  tingu rust <files...> -o out.rs      generate Rust for tingu-rt";

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
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command `{cmd}`\n{USAGE}")),
    }
}
