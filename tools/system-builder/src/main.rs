//! `system-builder`: system.xml + monitor ELF -> one bootable image and a
//! report, for one board; on an ARM board also the boot image (the loader
//! with the kernel and the system image). Every check runs before anything
//! is written, so a failed build leaves no stale image behind that could be
//! booted by mistake.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use system_builder::{Board, Diagnostic, boot_image, image, load_file_for, plan, report};

const USAGE: &str = "usage: system-builder <system.xml> --monitor <monitor ELF> [--search-path <dir>...] -o <image ELF> --report <report.txt> [--monitor-bench] [--board pc|sabrelite] [--loader <loader ELF> --kernel <kernel ELF> --boot-image <boot ELF>]
       system-builder --boot-only --board <ARM board> --monitor <monitor ELF> --loader <loader ELF> --kernel <kernel ELF> --boot-image <boot ELF>
         (the bare monitor, no system: its self-test)";

/// What an ARM board's boot image is made of, and where it goes.
struct BootImage {
    loader: PathBuf,
    kernel: PathBuf,
    output: PathBuf,
}

struct Args {
    board: Board,
    boot: Option<BootImage>,
    /// No system: the monitor alone goes into the boot image.
    boot_only: bool,
    system: PathBuf,
    monitor: PathBuf,
    search_paths: Vec<PathBuf>,
    output: PathBuf,
    report: PathBuf,
    /// Ask the monitor to measure the raw kernel baseline of `make bench`.
    monitor_bench: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut system, mut monitor, mut output, mut report) = (None, None, None, None);
    let (mut loader, mut kernel, mut boot_out) = (None, None, None);
    let mut search_paths = Vec::new();
    let mut monitor_bench = false;
    let mut boot_only = false;
    let mut board = Board::Pc;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--monitor" => monitor = Some(value("--monitor")?),
            "--search-path" => search_paths.push(value("--search-path")?),
            "-o" => output = Some(value("-o")?),
            "--report" => report = Some(value("--report")?),
            "--monitor-bench" => monitor_bench = true,
            "--boot-only" => boot_only = true,
            "--board" => {
                let name = value("--board")?;
                let name = name.to_string_lossy();
                board = Board::from_name(&name).ok_or_else(|| {
                    let known: Vec<_> = Board::ALL.iter().map(|b| b.name()).collect();
                    format!("unknown board '{name}' (known: {})", known.join(", "))
                })?;
            }
            "--loader" => loader = Some(value("--loader")?),
            "--kernel" => kernel = Some(value("--kernel")?),
            "--boot-image" => boot_out = Some(value("--boot-image")?),
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            path if system.is_none() => system = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    let missing = |what: &str| format!("missing {what}");
    let boot = match (loader, kernel, boot_out) {
        (None, None, None) => None,
        (Some(loader), Some(kernel), Some(output)) if board.is_arm() => Some(BootImage {
            loader,
            kernel,
            output,
        }),
        (Some(_), Some(_), Some(_)) => {
            return Err(format!(
                "board {board} boots the system image itself; --loader, --kernel and --boot-image are for ARM boards"
            ));
        }
        _ => return Err("--loader, --kernel and --boot-image go together".into()),
    };
    if boot_only {
        if boot.is_none() {
            return Err(
                "--boot-only needs an ARM --board, --loader, --kernel and --boot-image".into(),
            );
        }
        return Ok(Args {
            board,
            boot,
            boot_only,
            system: PathBuf::new(),
            monitor: monitor.ok_or_else(|| missing("--monitor"))?,
            search_paths,
            output: PathBuf::new(),
            report: PathBuf::new(),
            monitor_bench,
        });
    }
    Ok(Args {
        board,
        boot,
        boot_only,
        system: system.ok_or_else(|| missing("<system.xml>"))?,
        monitor: monitor.ok_or_else(|| missing("--monitor"))?,
        search_paths,
        output: output.ok_or_else(|| missing("-o"))?,
        report: report.ok_or_else(|| missing("--report"))?,
        monitor_bench,
    })
}

fn print_all(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("system-builder: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ()> {
    std::fs::read(path).map_err(|e| {
        eprintln!(
            "system-builder: error: cannot read the {what} '{}': {e}",
            path.display()
        );
    })
}

/// The boot image of `image` (a root task ELF) for an ARM board.
fn boot_image(args: &Args, b: &BootImage, image: &[u8]) -> Result<Vec<u8>, ()> {
    let loader = read(&b.loader, "loader ELF")?;
    let kernel = read(&b.kernel, "kernel ELF")?;
    boot_image::pack(&loader, &kernel, image)
        .map(|p| p.bytes)
        .map_err(|e| {
            eprintln!("system-builder: error: boot image for {}: {e}", args.board);
        })
}

/// Builds everything in memory, then writes; errors are printed here.
fn run(args: &Args) -> Result<(), ()> {
    if args.boot_only {
        let b = args.boot.as_ref().expect("checked by parse_args");
        let monitor = read(&args.monitor, "monitor ELF")?;
        let image = boot_image(args, b, &monitor)?;
        write(&b.output, &image)?;
        println!(
            "system-builder: {} (loader, kernel and the bare monitor for {})",
            b.output.display(),
            args.board
        );
        return Ok(());
    }
    // Microkit looks beside system.xml first, then in --search-path order.
    let home = match args.system.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut search = vec![home];
    search.extend(args.search_paths.iter().cloned());

    let loaded = load_file_for(args.board, &args.system, &search).map_err(|d| print_all(&d))?;
    print_all(&loaded.warnings);
    let system = &loaded.system;
    let files = plan::read_images(system).map_err(|d| print_all(&d))?;
    let mut boot_plan = plan::build_plan(system, &files).map_err(|d| print_all(&d))?;
    boot_plan.monitor_bench = args.monitor_bench;
    let plan_bytes = boot_plan.encode();

    let monitor = std::fs::read(&args.monitor).map_err(|e| {
        eprintln!(
            "system-builder: error: cannot read the monitor ELF '{}': {e}",
            args.monitor.display()
        );
    })?;
    let packed = image::pack_for(args.board, &monitor, &plan_bytes).map_err(|e| {
        eprintln!(
            "system-builder: error: monitor ELF '{}' {e}",
            args.monitor.display()
        );
    })?;
    let text = report::render(system, Some(&packed));
    let boot = match &args.boot {
        None => None,
        Some(b) => Some((&b.output, boot_image(args, b, &packed.bytes)?)),
    };

    write(&args.output, &packed.bytes)?;
    write(&args.report, text.as_bytes())?;
    if let Some((path, image)) = &boot {
        write(path, image)?;
    }
    println!(
        "system-builder: {} ({} PDs, {} regions, plan {} bytes); report {}",
        args.output.display(),
        system.protection_domains.len(),
        system.memory_regions.len(),
        plan_bytes.len(),
        args.report.display()
    );
    if let Some((path, _)) = &boot {
        println!(
            "system-builder: {} (loader, kernel and system image for {})",
            path.display(),
            args.board
        );
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ()> {
    std::fs::write(path, bytes).map_err(|e| {
        eprintln!(
            "system-builder: error: cannot write '{}': {e}",
            path.display()
        );
    })
}
