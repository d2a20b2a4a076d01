//! Third pass: each PD's generated config. A program built with a
//! `pd.toml` declares roles (see the `pd-manifest` crate); this pass binds
//! each role of each instance to what system.xml gives that PD, using the
//! Dingo wiring file beside system.xml (`<name>.dingo.toml`) for what SDF
//! cannot say, checks every binding, and encodes the values.
//!
//! ```toml
//! # Dingo ports: a channel and a shared region joining a provider and a
//! # client, each end naming "<pd>.<port role>".
//! [[port]]
//! protocol = "Timer"
//! region = "port_a"
//! provider = "timer.clients"
//! client = "timer-client-a.timer"
//! slots = 16        # optional (16): ring slots, the same for both ends
//! channel = 3       # optional: the provider's channel end, where two
//!                   # channels join the same PDs
//!
//! # PCI functions, each claimed by one driver, served by the PD whose
//! # program has a pci_service role.
//! [[pci]]
//! function = "00:03.0"
//! driver = "rtl8139.nic"
//! bars = { 1 = "regs" }   # optional: the pci PD moves memory BAR1 to the
//!                         # driver's device region `regs` (firmware picks
//!                         # its own addresses, which differ between PCs)
//!
//! # Per PD: the other roles. Unbound region roles default to the region
//! # of the same name; a lone irq or ioport role to the PD's only one.
//! [pd.timer-client-a]
//! regions = { results = "results_a" }     # role -> memory region (or a list)
//! channels = { check = "timer-check" }     # role -> peer PD, or own end id
//! irqs = { hpet = 40 }                     # role -> irq id
//! ioports = { debug_exit = 0 }             # role -> ioport id
//! params = { index = 0 }                   # role -> value
//!
//! # Per PD, for any program: how the monitor supervises it. The PD is
//! # restarted when it faults (a protocol violation under its ports'
//! # fatal policy is a fault) or overruns its handler budget, with the
//! # backoff doubling from backoff_ms to max_backoff_ms; after `limit`
//! # failures within window_ms it is given up on and reported.
//! [pd.rtl8139]
//! restart = { backoff_ms = 10, max_backoff_ms = 1000, limit = 5, window_ms = 10000 }
//! budget_ms = 100      # longest time one event may take, 1..=60000
//!
//! # The monitor's clock for budgets and backoff: timer 1 of the HPET in
//! # this region (pc only), which under the timer PD's LegacyReplacement
//! # route interrupts on IOAPIC pin 8.
//! [monitor]
//! hpet = "hpet"
//! ```
//!
//! Diagnostics name the wiring file, the manifest or system.xml at the
//! place that has to change.

use std::collections::HashMap;
use std::ops::Range;

use pd_config::Bdf;
use pd_config::layout::{DEFAULT_SLOTS, IRQ_ACTIVE_LOW, IRQ_GIC, IRQ_LEVEL, IRQ_MSI};
use pd_manifest::encode::{Item, Paddr, encode, total_words};
use pd_manifest::manifest::{self, Count, Kind, Program, RegionKind, Role, Side, Spec};
use pd_manifest::source::{Diag, Source, Table};
use pd_manifest::{codegen, encode};

use crate::diag::{Diagnostic, Severity};
use crate::model::{
    Board, ChannelEnd, IrqKind, IrqPolarity, IrqTrigger, MonitorTick, PAGE_SIZE_4K, PciLink,
    PdConfig, ProtectionDomain, Recovery, SourcePos, System, x86_64,
};

/// Ring slot size of every Dingo port (dingo-rt's `Port<64>`).
const SLOT_BYTES: usize = 64;

fn convert(d: Diag) -> Diagnostic {
    Diagnostic {
        severity: if d.warning {
            Severity::Warning
        } else {
            Severity::Error
        },
        file: d.file,
        pos: SourcePos {
            line: d.pos.line,
            col: d.pos.col,
        },
        message: d.message,
        expected: d.expected,
    }
}

/// A `<pd>.<role>` reference in the wiring file.
struct EndRef {
    pd: usize,
    role: String,
    span: Range<usize>,
}

struct PortDecl {
    protocol: String,
    protocol_span: Range<usize>,
    region: usize,
    region_span: Range<usize>,
    provider: EndRef,
    client: EndRef,
    slots: u32,
    channel: Option<(u64, Range<usize>)>,
    span: Range<usize>,
}

struct PciDecl {
    function: Bdf,
    function_span: Range<usize>,
    driver: EndRef,
    server: Option<EndRef>,
    /// Memory BARs placed at the driver's device regions: (BAR index, the
    /// driver's region role, its place).
    bars: Vec<(u8, String, Range<usize>)>,
}

/// A role's binding in `[pd.<name>]`: its values, each with its place, and
/// the place of the role's key.
type Binding<'a> = (Vec<(&'a toml::de::DeValue<'a>, Range<usize>)>, Range<usize>);
/// A `[pd.<name>]` table of one kind: role -> binding.
type Bindings<'a> = HashMap<String, Binding<'a>>;

#[derive(Default)]
struct PdDecl<'a> {
    tables: HashMap<Kind, Bindings<'a>>,
    span: Range<usize>,
}

/// A PD's `restart` and `budget_ms`, with their places.
#[derive(Default)]
struct RecoveryDecl {
    restart: Option<(boot_plan::Restart, Range<usize>)>,
    budget: Option<(u32, Range<usize>)>,
}

/// `[monitor]`: the region of the HPET whose timer 1 is the monitor's.
struct MonitorDecl {
    hpet: usize,
    span: Range<usize>,
}

/// The wiring file, read.
struct Wiring<'a> {
    ports: Vec<PortDecl>,
    pcis: Vec<PciDecl>,
    pds: HashMap<usize, PdDecl<'a>>,
    recovery: HashMap<usize, RecoveryDecl>,
    monitor: Option<MonitorDecl>,
}

/// Restart policy defaults, for keys `restart = { ... }` leaves out.
const DEFAULT_RESTART: boot_plan::Restart = boot_plan::Restart {
    backoff_ms: 10,
    max_backoff_ms: 1000,
    limit: 5,
    window_ms: 10_000,
};
/// The longest handler budget and backoff the wiring file may ask for.
const MAX_BUDGET_MS: u64 = 60_000;
/// The IOAPIC pin HPET timer 1 interrupts on under LegacyReplacement.
const HPET_TIMER1_PIN: u64 = 8;
/// The monitor's tick period: half the smallest budget (so an overrun is
/// seen within twice the budget), at most this, at least 1 ms.
const MAX_TICK_US: u64 = 10_000;

/// Reads every program's manifest, binds and checks every role, and sets
/// each PD's config. `wiring` is the wiring file (name, text) if there is
/// one. Returns the diagnostics (errors and warnings) of this pass.
pub(crate) fn wire(system: &mut System, wiring: Option<(&str, &str)>) -> Vec<Diagnostic> {
    let mut d: Vec<Diag> = Vec::new();
    let mut out: Vec<Diagnostic> = Vec::new();

    // The programs, from the manifests embedded in their images.
    let mut programs: Vec<Option<Program>> = Vec::new();
    for pd in &system.protection_domains {
        programs.push(program_of(system, pd, &mut out));
    }
    if out.iter().any(Diagnostic::is_error) {
        // Bindings to a program whose manifest is broken would only repeat
        // the problem.
        return out;
    }

    let empty = ("", "");
    let (wfile, wtext) = wiring.unwrap_or(empty);
    let src = Source::new(wfile, wtext);
    let doc = if wiring.is_some() {
        match src.parse() {
            Ok(doc) => Some(doc),
            Err(e) => {
                out.push(convert(e));
                return out;
            }
        }
    } else {
        None
    };
    let w = match &doc {
        Some(doc) => read_wiring(&src, doc.get_ref(), system, &programs, &mut d),
        None => Wiring {
            ports: Vec::new(),
            pcis: Vec::new(),
            pds: HashMap::new(),
            recovery: HashMap::new(),
            monitor: None,
        },
    };
    if !d.is_empty() {
        out.extend(d.drain(..).map(convert));
        return out;
    }
    let tick = supervision(&src, system, &w, &mut d);
    if !d.is_empty() {
        out.extend(d.drain(..).map(convert));
        return out;
    }

    let mut configs = Vec::new();
    let mut dma = Vec::new();
    for (i, program) in programs.iter().enumerate() {
        let Some(program) = program else {
            configs.push(None);
            if let Some(decl) = w.pds.get(&i)
                && decl.tables.values().any(|t| !t.is_empty())
            {
                d.push(src.diag(
                    &decl.span,
                    format!(
                        "protection domain '{}' has bindings, but its program image '{}' has no PD manifest",
                        system.protection_domains[i].name,
                        system.protection_domains[i].program_image.declared_path
                    ),
                    "bindings only for PDs whose program was built with a pd.toml (pd_config::program!)",
                ));
            }
            continue;
        };
        let mut r = Resolver {
            system,
            src: &src,
            wiring: &w,
            programs: &programs,
            pd: i,
            program,
            d: &mut d,
            sys_diags: &mut out,
            dma: &mut dma,
            pci: Vec::new(),
        };
        let config = r.resolve();
        let links = r.pci;
        configs.push(config.map(|c| (c, links)));
    }
    out.extend(d.drain(..).map(convert));
    uncached_dma(system, &dma, &mut out);
    if out.iter().any(Diagnostic::is_error) {
        return out;
    }
    for (i, (pd, config)) in system
        .protection_domains
        .iter_mut()
        .zip(configs)
        .enumerate()
    {
        if let Some((config, links)) = config {
            pd.config = Some(config);
            pd.pci = links;
        }
        if let Some(r) = w.recovery.get(&i) {
            pd.recovery = Recovery {
                restart: r.restart.as_ref().map(|(p, _)| *p),
                budget_ms: r.budget.as_ref().map(|(b, _)| *b),
            };
        }
    }
    system.tick = tick;
    out
}

/// Checks what supervision needs of the whole system and works out the
/// monitor's tick: its interrupt, vector and period.
fn supervision(
    src: &Source<'_>,
    system: &System,
    w: &Wiring<'_>,
    d: &mut Vec<Diag>,
) -> Option<MonitorTick> {
    let needs_clock = w.recovery.iter().flat_map(|(&pd, r)| {
        let budget = r
            .budget
            .as_ref()
            .map(|(_, span)| (pd, span, "a handler budget"));
        let backoff = r
            .restart
            .as_ref()
            .filter(|(p, _)| p.backoff_ms > 0)
            .map(|(_, span)| (pd, span, "a restart backoff"));
        budget.into_iter().chain(backoff)
    });
    let Some(m) = &w.monitor else {
        for (pd, span, what) in needs_clock {
            d.push(src.diag(
                span,
                format!(
                    "{what} for '{}' needs the monitor's clock, which the wiring file does not give",
                    system.protection_domains[pd].name
                ),
                "[monitor] hpet = \"<the HPET's memory_region>\" (or backoff_ms = 0 for a restart without delay)",
            ));
        }
        return None;
    };
    let region = &system.memory_regions[m.hpet];
    if system.board != Board::Pc {
        d.push(src.diag(
            &m.span,
            format!(
                "the monitor's clock is HPET timer 1, and the {} board has no HPET",
                system.board
            ),
            "no [monitor] table (budgets and backoff are for the pc board)",
        ));
        return None;
    }
    if region.phys_addr.is_none() || region.size < PAGE_SIZE_4K {
        d.push(src.diag(
            &m.span,
            format!(
                "[monitor] hpet names region '{}', which is not a device page (no phys_addr, or under 4 KiB)",
                region.name
            ),
            "the memory_region of the HPET's registers (phys_addr=\"0xfed00000\" on a PC)",
        ));
        return None;
    }
    let mut used = Vec::new();
    for pd in &system.protection_domains {
        for irq in &pd.irqs {
            if let IrqKind::Ioapic { pin, .. } = irq.kind
                && pin == HPET_TIMER1_PIN
            {
                d.push(src.diag(
                    &m.span,
                    format!(
                        "the monitor's clock (HPET timer 1) interrupts on IOAPIC pin {HPET_TIMER1_PIN}, which protection domain '{}' takes for irq {} ({}:{})",
                        pd.name, irq.id, system.file, irq.pos
                    ),
                    format!("no PD irq on pin {HPET_TIMER1_PIN} while [monitor] is given"),
                ));
            }
            used.push(irq.vector());
        }
    }
    let Some(vector) = (0..=x86_64::MAX_IRQ_VECTOR).find(|v| !used.contains(v)) else {
        d.push(src.diag(
            &m.span,
            "every IRQ vector is taken by a PD; the monitor's clock needs one",
            "fewer PD interrupts",
        ));
        return None;
    };
    let smallest = w
        .recovery
        .values()
        .filter_map(|r| r.budget.as_ref().map(|(b, _)| u64::from(*b)))
        .min();
    let period_us = smallest.map_or(MAX_TICK_US, |b| (b * 1000 / 2).clamp(1000, MAX_TICK_US));
    Some(MonitorTick {
        hpet: m.hpet,
        pin: HPET_TIMER1_PIN,
        vector,
        period_us: period_us as u32,
    })
}

/// Reads `restart = { ... }` and `budget_ms = N` of `[pd.<name>]`.
fn read_recovery(t: &Table<'_, '_>, name: &str, d: &mut Vec<Diag>) -> RecoveryDecl {
    let src = t.src;
    let mut r = RecoveryDecl::default();
    if let Some(v) = t.get("restart") {
        let Some(table) = v.get_ref().as_table() else {
            d.push(src.diag(
                &v.span(),
                format!("'restart' in [pd.{name}] is not a table"),
                "restart = { backoff_ms = 10, max_backoff_ms = 1000, limit = 5, window_ms = 10000 } (each key optional)",
            ));
            return r;
        };
        let rt = Table::new(src, table, v.span(), format!("[pd.{name}] restart"));
        let keys = ["backoff_ms", "max_backoff_ms", "limit", "window_ms"];
        rt.check_keys(&keys, d);
        let before = d.len();
        let value = |key: &str, default: u32, lo: u64, hi: u64, d: &mut Vec<Diag>| match rt
            .opt_u64(key, d)
        {
            None => default,
            Some((n, _)) if (lo..=hi).contains(&n) => n as u32,
            Some((n, span)) => {
                d.push(src.diag(
                    &span,
                    format!("{key} = {n} in [pd.{name}] restart"),
                    format!("{lo} to {hi}"),
                ));
                default
            }
        };
        let backoff_ms = value(
            "backoff_ms",
            DEFAULT_RESTART.backoff_ms,
            0,
            MAX_BUDGET_MS,
            d,
        );
        let max_backoff_ms = value(
            "max_backoff_ms",
            DEFAULT_RESTART.max_backoff_ms.max(backoff_ms),
            0,
            MAX_BUDGET_MS,
            d,
        );
        let limit = value("limit", DEFAULT_RESTART.limit, 1, 100_000, d);
        let window_ms = value("window_ms", DEFAULT_RESTART.window_ms, 1, 3_600_000, d);
        if max_backoff_ms < backoff_ms {
            let span = rt.get("max_backoff_ms").map_or(v.span(), |m| m.span());
            d.push(src.diag(
                &span,
                format!(
                    "max_backoff_ms = {max_backoff_ms} in [pd.{name}] restart is below backoff_ms = {backoff_ms}"
                ),
                "a maximum backoff at least the first",
            ));
        }
        if d.len() == before {
            r.restart = Some((
                boot_plan::Restart {
                    backoff_ms,
                    max_backoff_ms,
                    limit,
                    window_ms,
                },
                v.span(),
            ));
        }
    }
    if let Some((ms, span)) = t.opt_u64("budget_ms", d) {
        if (1..=MAX_BUDGET_MS).contains(&ms) {
            r.budget = Some((ms as u32, span));
        } else {
            d.push(src.diag(
                &span,
                format!("budget_ms = {ms} in [pd.{name}]"),
                format!("a handler budget of 1 to {MAX_BUDGET_MS} ms"),
            ));
        }
    }
    r
}

/// The program of `pd`, if its image has a manifest; problems with the
/// manifest itself are reported at the manifest's own file:line:col.
fn program_of(
    system: &System,
    pd: &ProtectionDomain,
    out: &mut Vec<Diagnostic>,
) -> Option<Program> {
    let img = &pd.program_image;
    let emb = img.embedded.as_ref()?;
    let Some((path, name, text)) = codegen::split_embedded(&emb.manifest) else {
        out.push(Diagnostic {
            severity: Severity::Error,
            file: system.file.clone(),
            pos: img.pos,
            message: format!(
                "program image '{}' has a PD manifest symbol, but its contents are not a manifest",
                img.declared_path
            ),
            expected: "a program built with pd-manifest's generated config".into(),
        });
        return None;
    };
    let manifest = match manifest::parse(path, text) {
        Ok(m) => m,
        Err(diags) => {
            out.extend(diags.into_iter().map(convert));
            return None;
        }
    };
    let program = manifest.programs.get(name)?.clone();
    let words = total_words(&program) as u64;
    if emb.block_size != words * 8 {
        out.push(Diagnostic {
            severity: Severity::Error,
            file: system.file.clone(),
            pos: img.pos,
            message: format!(
                "program image '{}' has a config block of {} bytes where its manifest needs {}",
                img.declared_path,
                emb.block_size,
                words * 8
            ),
            expected: "an image built from the same pd.toml (rebuild the program)".into(),
        });
        return None;
    }
    Some(program)
}

/// What a reference in the wiring file is resolved against.
struct Ctx<'a> {
    src: &'a Source<'a>,
    system: &'a System,
    programs: &'a [Option<Program>],
}

fn parse_end(
    cx: &Ctx<'_>,
    s: &str,
    span: Range<usize>,
    what: &str,
    kind: Kind,
    d: &mut Vec<Diag>,
) -> Option<EndRef> {
    let (src, system, programs) = (cx.src, cx.system, cx.programs);
    let Some((pd, role)) = s.rsplit_once('.') else {
        d.push(src.diag(
            &span,
            format!("{what} '{s}' names no role"),
            format!("\"<protection domain>.<{} role>\"", kind.noun()),
        ));
        return None;
    };
    let Some(index) = system.pd_index(pd) else {
        d.push(src.diag(
            &span,
            format!("{what} names unknown protection domain '{pd}'"),
            format!("the name of a <protection_domain> in {}", system.file),
        ));
        return None;
    };
    let Some(program) = &programs[index] else {
        d.push(src.diag(
            &span,
            format!(
                "{what} names protection domain '{pd}', whose program image '{}' has no PD manifest",
                system.protection_domains[index].program_image.declared_path
            ),
            "a PD whose program declares its roles in a pd.toml",
        ));
        return None;
    };
    if program.role(kind, role).is_none() {
        let known: Vec<&str> = program.roles_of(kind).map(|r| r.name.as_str()).collect();
        d.push(src.diag(
            &span,
            format!(
                "{what} names {} role '{role}', which program '{}' ({}) does not have",
                kind.noun(),
                program.name,
                program.file
            ),
            if known.is_empty() {
                format!("a program with a {} role", kind.noun())
            } else {
                format!("one of its {} roles: {}", kind.noun(), known.join(", "))
            },
        ));
        return None;
    }
    Some(EndRef {
        pd: index,
        role: role.to_string(),
        span,
    })
}

fn parse_bdf(s: &str) -> Option<Bdf> {
    let (bus, rest) = s.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let bdf = Bdf {
        bus: u8::from_str_radix(bus, 16).ok()?,
        dev: u8::from_str_radix(dev, 16).ok()?,
        func: u8::from_str_radix(func, 16).ok()?,
    };
    (bdf.dev < 32 && bdf.func < 8 && bus.len() <= 2 && dev.len() <= 2 && func.len() == 1)
        .then_some(bdf)
}

fn read_wiring<'a>(
    src: &'a Source<'a>,
    doc: &'a toml::de::DeTable<'a>,
    system: &System,
    programs: &[Option<Program>],
    d: &mut Vec<Diag>,
) -> Wiring<'a> {
    let cx = Ctx {
        src,
        system,
        programs,
    };
    let top = Table::new(src, doc, 0..0, "the wiring file");
    top.check_keys(&["port", "pci", "pd", "monitor"], d);
    let mut w = Wiring {
        ports: Vec::new(),
        pcis: Vec::new(),
        pds: HashMap::new(),
        recovery: HashMap::new(),
        monitor: None,
    };
    if let Some(mt) = top.opt_table("monitor", d) {
        mt.check_keys(&["hpet"], d);
        if let Some((name, span)) =
            mt.str("hpet", "\"<the memory_region of the HPET's registers>\"", d)
        {
            match system.region_index(name) {
                Some(hpet) => w.monitor = Some(MonitorDecl { hpet, span }),
                None => d.push(src.diag(
                    &span,
                    format!("[monitor] hpet names unknown memory region '{name}'"),
                    format!("the name of a <memory_region> in {}", system.file),
                )),
            }
        }
    }
    let array = |key: &str, d: &mut Vec<Diag>| -> Vec<Table<'a, 'a>> {
        let Some(v) = doc.get(key) else {
            return Vec::new();
        };
        let Some(items) = v.get_ref().as_array() else {
            d.push(src.diag(
                &v.span(),
                format!("'{key}' is not an array of tables"),
                format!("[[{key}]] tables"),
            ));
            return Vec::new();
        };
        let mut tables = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_table() {
                Some(t) => tables.push(Table::new(src, t, item.span(), format!("[[{key}]]"))),
                None => d.push(src.diag(
                    &item.span(),
                    format!("an entry of '{key}' is not a table"),
                    format!("[[{key}]] tables"),
                )),
            }
        }
        tables
    };

    for t in array("port", d) {
        t.check_keys(
            &[
                "protocol", "region", "provider", "client", "slots", "channel",
            ],
            d,
        );
        let protocol = t.str("protocol", "\"<Tingu protocol name>\"", d);
        let region = t.str("region", "\"<memory_region name>\"", d);
        let provider = t.str("provider", "\"<pd>.<port role>\"", d);
        let client = t.str("client", "\"<pd>.<port role>\"", d);
        let slots = t.opt_u64("slots", d);
        let channel = t.opt_u64("channel", d);
        let (Some(protocol), Some(region), Some(provider), Some(client)) =
            (protocol, region, provider, client)
        else {
            continue;
        };
        let Some(mr) = system.region_index(region.0) else {
            d.push(src.diag(
                &region.1,
                format!("[[port]] names unknown memory region '{}'", region.0),
                format!("the name of a <memory_region> in {}", system.file),
            ));
            continue;
        };
        let slots = match slots {
            None => DEFAULT_SLOTS,
            Some((n, s)) => {
                if !n.is_power_of_two() || n > 1 << 16 {
                    d.push(src.diag(
                        &s,
                        format!("[[port]] has slots = {n}"),
                        "a power of two up to 65536",
                    ));
                    continue;
                }
                n as u32
            }
        };
        let provider = parse_end(&cx, provider.0, provider.1, "provider", Kind::Ports, d);
        let client = parse_end(&cx, client.0, client.1, "client", Kind::Ports, d);
        if let (Some(provider), Some(client)) = (provider, client) {
            w.ports.push(PortDecl {
                protocol: protocol.0.to_string(),
                protocol_span: protocol.1,
                region: mr,
                region_span: region.1,
                provider,
                client,
                slots,
                channel,
                span: t.span.clone(),
            });
        }
    }

    for t in array("pci", d) {
        t.check_keys(&["function", "driver", "server", "bars"], d);
        let function = t.str(
            "function",
            "\"<bus>:<dev>.<func>\" in hex, as lspci prints it",
            d,
        );
        let driver = t.str("driver", "\"<pd>.<pci role>\"", d);
        let server = t.opt_str("server", d);
        let (Some(function), Some(driver)) = (function, driver) else {
            continue;
        };
        let Some(bdf) = parse_bdf(function.0) else {
            d.push(src.diag(
                &function.1,
                format!("[[pci]] function '{}' is not a PCI address", function.0),
                "\"<bus>:<dev>.<func>\" in hex, as lspci prints it (e.g. \"00:03.0\")",
            ));
            continue;
        };
        let Some(driver) = parse_end(&cx, driver.0, driver.1, "driver", Kind::Pci, d) else {
            continue;
        };
        if let Some(first) = w.pcis.iter().find(|p| p.function == bdf) {
            let pos = src.pos(first.function_span.start);
            d.push(src.diag(
                &function.1,
                format!(
                    "PCI function {bdf} is claimed by '{}' here and by '{}' at {pos}",
                    system.protection_domains[driver.pd].name,
                    system.protection_domains[first.driver.pd].name
                ),
                "each PCI function driven by one PD",
            ));
            continue;
        }
        let server =
            server.and_then(|(s, span)| parse_end(&cx, s, span, "server", Kind::PciService, d));
        let mut bars = Vec::new();
        if let Some(bt) = t.opt_table("bars", d) {
            for (key, kspan, v) in bt.entries() {
                let index = key.parse::<u8>().ok().filter(|&i| i < 6);
                let role = v.get_ref().as_str();
                match (index, role) {
                    (Some(i), Some(r)) => bars.push((i, r.to_string(), v.span())),
                    (None, _) => d.push(src.diag(
                        &kspan,
                        format!("[[pci]] bars names BAR '{key}'"),
                        "a BAR index 0 to 5",
                    )),
                    (_, None) => d.push(src.diag(
                        &v.span(),
                        format!("[[pci]] bars gives BAR{key} no region role"),
                        "the name of one of the driver's device region roles",
                    )),
                }
            }
        }
        w.pcis.push(PciDecl {
            function: bdf,
            function_span: function.1,
            driver,
            server,
            bars,
        });
    }

    if let Some(pds) = top.opt_table("pd", d) {
        for (name, span, v) in pds.entries() {
            let Some(index) = system.pd_index(name) else {
                d.push(src.diag(
                    &span,
                    format!("[pd.{name}] names unknown protection domain '{name}'"),
                    format!("the name of a <protection_domain> in {}", system.file),
                ));
                continue;
            };
            let Some(t) = v.get_ref().as_table() else {
                d.push(src.diag(
                    &v.span(),
                    format!("[pd.{name}] is not a table"),
                    "a table of role bindings",
                ));
                continue;
            };
            let t = Table::new(src, t, span.clone(), format!("[pd.{name}]"));
            let kinds = [
                Kind::Regions,
                Kind::Irqs,
                Kind::Channels,
                Kind::IoPorts,
                Kind::Params,
            ];
            let mut keys = kinds.map(|k| k.table()).to_vec();
            keys.extend(["restart", "budget_ms"]);
            t.check_keys(&keys, d);
            let recovery = read_recovery(&t, name, d);
            if recovery.restart.is_some() || recovery.budget.is_some() {
                w.recovery.insert(index, recovery);
            }
            let mut decl = PdDecl {
                span,
                ..PdDecl::default()
            };
            for kind in kinds {
                let Some(kt) = t.opt_table(kind.table(), d) else {
                    continue;
                };
                let mut b = Bindings::new();
                for (role, rspan, value) in kt.entries() {
                    let values = match value.get_ref().as_array() {
                        Some(a) if kind != Kind::Params => {
                            a.iter().map(|v| (v.get_ref(), v.span())).collect()
                        }
                        _ => vec![(value.get_ref(), value.span())],
                    };
                    b.insert(role.to_string(), (values, rspan));
                }
                decl.tables.insert(kind, b);
            }
            w.pds.insert(index, decl);
        }
    }
    w
}

struct Resolver<'s, 'w> {
    system: &'s System,
    src: &'s Source<'w>,
    wiring: &'s Wiring<'w>,
    programs: &'s [Option<Program>],
    pd: usize,
    program: &'s Program,
    d: &'s mut Vec<Diag>,
    sys_diags: &'s mut Vec<Diagnostic>,
    /// The memory regions DMA roles bind (by index), for
    /// [`uncached_dma`].
    dma: &'s mut Vec<usize>,
    /// The PCI functions the PD's roles reach.
    pci: Vec<PciLink>,
}

/// On the ARM board devices do not snoop the CPU's caches, and a PD cannot
/// clean or invalidate them (no cache maintenance by address at user level
/// on 32-bit ARM): memory a device reads or writes must be mapped uncached
/// by every PD that maps it, the device's driver and its clients alike.
/// QEMU models no caches, so nothing else would catch a cached map before
/// real hardware corrupts frames.
fn uncached_dma(system: &System, dma: &[usize], out: &mut Vec<Diagnostic>) {
    if !system.board.is_arm() {
        return;
    }
    for pd in &system.protection_domains {
        for m in pd.maps.iter().filter(|m| m.cached && dma.contains(&m.mr)) {
            out.push(Diagnostic {
                severity: Severity::Error,
                file: system.file.clone(),
                pos: m.pos,
                message: format!(
                    "protection domain '{}' maps memory region '{}' cached, but a device reads \
                     and writes it (a DMA role binds it), and on board {} devices do not see \
                     the CPU's caches, which PDs cannot clean",
                    pd.name, system.memory_regions[m.mr].name, system.board
                ),
                expected: "cached=\"false\" on every map of the region".into(),
            });
        }
    }
}

impl Resolver<'_, '_> {
    fn pd(&self) -> &ProtectionDomain {
        &self.system.protection_domains[self.pd]
    }

    fn name(&self, pd: usize) -> &str {
        &self.system.protection_domains[pd].name
    }

    /// An error about system.xml, at the PD's element.
    fn sys_error(&mut self, pos: SourcePos, message: String, expected: String) {
        self.sys_diags.push(Diagnostic {
            severity: Severity::Error,
            file: self.system.file.clone(),
            pos,
            message,
            expected,
        });
    }

    fn role_name(&self, role: &Role) -> String {
        format!(
            "{} of program '{}' ({}:{})",
            role.describe(),
            self.program.name,
            self.program.file,
            role.pos
        )
    }

    fn resolve(&mut self) -> Option<PdConfig> {
        let before = self.d.len() + self.sys_diags.len();
        let mut failed_elsewhere = false;
        let mut values = Vec::new();
        let mut bindings = Vec::new();
        let decl = self.wiring.pds.get(&self.pd);
        // Every binding must name a role the program has.
        if let Some(decl) = decl {
            for (kind, table) in &decl.tables {
                for (role, (_, span)) in table {
                    if self.program.role(*kind, role).is_none() {
                        let known: Vec<&str> = self
                            .program
                            .roles_of(*kind)
                            .map(|r| r.name.as_str())
                            .collect();
                        self.d.push(self.src.diag(
                            span,
                            format!(
                                "[pd.{}] binds {} role '{role}', which program '{}' ({}) does not have",
                                self.pd().name,
                                kind.noun(),
                                self.program.name,
                                self.program.file
                            ),
                            if known.is_empty() {
                                format!("no {} bindings for this PD", kind.noun())
                            } else {
                                format!("one of: {}", known.join(", "))
                            },
                        ));
                    }
                }
            }
        }
        for role in &self.program.roles {
            let errors_before = self.d.len() + self.sys_diags.len();
            let bound = decl
                .and_then(|d| d.tables.get(&role.kind))
                .and_then(|t| t.get(&role.name));
            let (items, text) = match role.kind {
                Kind::Regions => self.regions(role, bound),
                Kind::Irqs => self.irqs(role, bound),
                Kind::Channels => self.channels(role, bound),
                Kind::IoPorts => self.ioports(role, bound),
                Kind::Ports => self.ports(role),
                Kind::Pci => self.pci(role),
                Kind::PciService => self.pci_service(role),
                Kind::Params => self.param(role, bound),
            };
            // A binding that failed was reported (by this PD or, for ports
            // and PCI, by the other end); "not bound" would repeat it.
            if items.len() < self.declared(role) {
                failed_elsewhere = true;
            } else if self.d.len() + self.sys_diags.len() == errors_before {
                self.count(role, items.len());
            }
            bindings.push(format!("{}: {}", role.describe(), text));
            values.push(items);
        }
        if failed_elsewhere || self.d.len() + self.sys_diags.len() != before {
            return None;
        }
        let pd = self.pd();
        let emb = pd
            .program_image
            .embedded
            .as_ref()
            .expect("programs come with a block");
        match encode(self.program, &pd.name, &values) {
            Ok(words) => Some(PdConfig {
                program: self.program.clone(),
                block_vaddr: emb.block_vaddr,
                words,
                bindings,
            }),
            Err(e) => {
                let pos = pd.pos;
                self.sys_error(
                    pos,
                    format!(
                        "the config of protection domain '{}' cannot be written: {e}",
                        pd.name
                    ),
                    "names of at most 56 bytes".into(),
                );
                None
            }
        }
    }

    /// How many port or PCI declarations name `role` of this PD.
    fn declared(&self, role: &Role) -> usize {
        let me = |e: &EndRef| e.pd == self.pd && e.role == role.name;
        match role.kind {
            Kind::Ports => self
                .wiring
                .ports
                .iter()
                .filter(|p| me(&p.provider) || me(&p.client))
                .count(),
            Kind::Pci => self.wiring.pcis.iter().filter(|p| me(&p.driver)).count(),
            _ => 0,
        }
    }

    /// Where this PD's bindings are, or the file's start: the place a
    /// default binding's problem is reported at.
    fn wiring_span_of_pd(&self) -> Range<usize> {
        self.wiring
            .pds
            .get(&self.pd)
            .map_or(0..0, |d| d.span.clone())
    }

    fn count(&mut self, role: &Role, n: usize) {
        let wrong = match role.count {
            Count::One => n != 1,
            Count::Optional => n > 1,
            Count::List { max } => n > max as usize,
        };
        if !wrong {
            return;
        }
        let how = match role.kind {
            Kind::Ports => format!(
                "a [[port]] naming \"{}.{}\" in the wiring file",
                self.pd().name,
                role.name
            ),
            Kind::Pci => format!(
                "a [[pci]] with driver = \"{}.{}\" in the wiring file",
                self.pd().name,
                role.name
            ),
            Kind::PciService => "[[pci]] entries served by this PD".into(),
            _ => format!(
                "[pd.{}] {} = {{ {} = ... }} in the wiring file",
                self.pd().name,
                role.kind.table(),
                role.name
            ),
        };
        let (message, expected) = match role.count {
            Count::List { max } => (
                format!("{} is given {n} values", self.role_name(role)),
                format!("at most {max}"),
            ),
            _ if n == 0 => (
                format!(
                    "{} of protection domain '{}' is not bound",
                    self.role_name(role),
                    self.pd().name
                ),
                how,
            ),
            _ => (
                format!("{} is given {n} values", self.role_name(role)),
                "one".into(),
            ),
        };
        let pos = self.pd().pos;
        match self.wiring.pds.get(&self.pd) {
            Some(decl) => self.d.push(self.src.diag(&decl.span, message, expected)),
            None => self.sys_error(pos, message, expected),
        }
    }

    /// The bound strings (or the error that they are not strings).
    fn strings<'v>(
        &mut self,
        role: &Role,
        bound: Option<&'v Binding<'v>>,
    ) -> Option<Vec<(&'v str, Range<usize>)>> {
        let (values, _) = bound?;
        let mut out = Vec::new();
        for (v, span) in values {
            match v.as_str() {
                Some(s) => out.push((s, span.clone())),
                None => self.d.push(self.src.diag(
                    span,
                    format!("the binding of {} is not a name", role.describe()),
                    "a memory region's name, or an array of names".to_string(),
                )),
            }
        }
        Some(out)
    }

    fn integers(
        &mut self,
        role: &Role,
        bound: Option<&Binding<'_>>,
        what: &str,
    ) -> Option<Vec<(u64, Range<usize>)>> {
        let (values, _) = bound?;
        let mut out = Vec::new();
        for (v, span) in values {
            match pd_manifest::source::integer(v) {
                Some(n) => out.push((n, span.clone())),
                None => self.d.push(self.src.diag(
                    span,
                    format!("the binding of {} is not an id", role.describe()),
                    format!(
                        "the id of an {what} of protection domain '{}', or an array of ids",
                        self.pd().name
                    ),
                )),
            }
        }
        Some(out)
    }

    fn regions(&mut self, role: &Role, bound: Option<&Binding<'_>>) -> (Vec<Item>, String) {
        let Spec::Region {
            kind,
            writable,
            min_size,
        } = role.spec
        else {
            unreachable!()
        };
        let names: Vec<(String, Option<Range<usize>>)> = match self.strings(role, bound) {
            Some(list) => list
                .into_iter()
                .map(|(s, sp)| (s.to_string(), Some(sp)))
                .collect(),
            // Default: the region with the role's name, if this PD maps it.
            None if !matches!(role.count, Count::List { .. })
                && self
                    .system
                    .region_index(&role.name)
                    .is_some_and(|mr| self.pd().maps.iter().any(|m| m.mr == mr)) =>
            {
                vec![(role.name.clone(), None)]
            }
            None => Vec::new(),
        };
        let mut items = Vec::new();
        let mut text = Vec::new();
        for (name, span) in names {
            let here = |r: &Self| match &span {
                Some(s) => Err(s.clone()),
                None => Ok(r.pd().pos),
            };
            let Some(mr) = self.system.region_index(&name) else {
                let span = span.expect("defaults name existing regions");
                self.d.push(self.src.diag(
                    &span,
                    format!(
                        "{} is bound to unknown memory region '{name}'",
                        role.describe()
                    ),
                    format!("the name of a <memory_region> in {}", self.system.file),
                ));
                continue;
            };
            let maps: Vec<_> = self.pd().maps.iter().filter(|m| m.mr == mr).collect();
            let region = &self.system.memory_regions[mr];
            let problem = |msg: String, exp: String, r: &mut Self| match here(r) {
                Err(s) => r.d.push(r.src.diag(&s, msg, exp)),
                Ok(pos) => r.sys_error(pos, msg, exp),
            };
            let [map] = maps[..] else {
                problem(
                    format!(
                        "{} is bound to memory region '{name}', which protection domain '{}' maps {} times",
                        self.role_name(role),
                        self.pd().name,
                        maps.len()
                    ),
                    format!(
                        "one <map mr=\"{name}\" .../> in protection domain '{}'",
                        self.pd().name
                    ),
                    self,
                );
                continue;
            };
            let map = map.clone();
            let at = map.pos;
            let bad = |msg: String, exp: String, r: &mut Self| r.sys_error(at, msg, exp);
            if !map.perms.read || (writable && !map.perms.write) {
                bad(
                    format!(
                        "the map of '{name}' is {}, but {} needs it {}",
                        map.perms,
                        self.role_name(role),
                        if writable { "read-write" } else { "readable" }
                    ),
                    format!("perms=\"{}\"", if writable { "rw" } else { "r" }),
                    self,
                );
            }
            if region.size < min_size {
                let pos = region.pos;
                self.sys_error(
                    pos,
                    format!("memory region '{name}' is {:#x} bytes, but {} needs at least {min_size:#x}", region.size, self.role_name(role)),
                    format!("size=\"{:#x}\" or more", min_size.next_multiple_of(0x1000)),
                );
            }
            let paddr = match kind {
                RegionKind::Shared => Paddr::None,
                RegionKind::Device => {
                    if map.cached {
                        bad(
                            format!(
                                "the map of device region '{name}' is cached, but {} is device memory",
                                self.role_name(role)
                            ),
                            "cached=\"false\"".into(),
                            self,
                        );
                    }
                    match region.phys_addr {
                        Some(p) => Paddr::Known(p),
                        None => {
                            let pos = region.pos;
                            self.sys_error(pos, format!("memory region '{name}' has no phys_addr, but {} is device memory", self.role_name(role)), "phys_addr=\"<the device's address>\"".into());
                            Paddr::None
                        }
                    }
                }
                RegionKind::Dma { address_bits } => {
                    if !self.dma.contains(&mr) {
                        self.dma.push(mr);
                    }
                    if let Some(p) = region.phys_addr {
                        let limit = if address_bits >= 64 {
                            u64::MAX
                        } else {
                            (1u64 << address_bits) - 1
                        };
                        if p.checked_add(region.size - 1).is_none_or(|end| end > limit) {
                            let pos = region.pos;
                            self.sys_error(pos, format!("memory region '{name}' at {p:#x} ends beyond what the {address_bits}-bit DMA of {} reaches", self.role_name(role)), format!("a region below {:#x}", limit as u128 + 1));
                        }
                        Paddr::Known(p)
                    } else {
                        Paddr::Region(mr)
                    }
                }
            };
            text.push(format!(
                "'{name}' at {:#x}, {:#x} bytes{}",
                map.vaddr,
                region.size,
                match paddr {
                    Paddr::Known(p) => format!(", paddr {p:#x}"),
                    Paddr::Region(_) => ", paddr filled in by the monitor (contiguous)".into(),
                    Paddr::None => String::new(),
                }
            ));
            items.push(Item::Region {
                vaddr: map.vaddr,
                size: region.size,
                paddr,
            });
        }
        (items, join(text))
    }

    fn irqs(&mut self, role: &Role, bound: Option<&Binding<'_>>) -> (Vec<Item>, String) {
        let ids: Vec<(u64, Option<Range<usize>>)> = match self.integers(role, bound, "<irq>") {
            Some(l) => l.into_iter().map(|(n, s)| (n, Some(s))).collect(),
            None if self.program.roles_of(Kind::Irqs).count() == 1
                && self.pd().irqs.len() == 1
                && !matches!(role.count, Count::List { .. }) =>
            {
                vec![(self.pd().irqs[0].id, None)]
            }
            None => Vec::new(),
        };
        let mut items = Vec::new();
        let mut text = Vec::new();
        for (id, span) in ids {
            let Some(irq) = self.pd().irqs.iter().find(|i| i.id == id).cloned() else {
                let span = span.expect("defaults name existing irqs");
                let known: Vec<String> = self.pd().irqs.iter().map(|i| i.id.to_string()).collect();
                self.d.push(self.src.diag(
                    &span,
                    format!(
                        "{} is bound to irq {id}, which protection domain '{}' does not have",
                        role.describe(),
                        self.pd().name
                    ),
                    if known.is_empty() {
                        format!(
                            "an <irq id=\"{id}\" .../> in protection domain '{}'",
                            self.pd().name
                        )
                    } else {
                        format!("one of its irq ids: {}", known.join(", "))
                    },
                ));
                continue;
            };
            let (at, flags, vector, desc) = match irq.kind {
                IrqKind::Ioapic {
                    ioapic,
                    pin,
                    trigger,
                    polarity,
                    vector,
                } => {
                    let mut flags = 0;
                    if trigger == IrqTrigger::Level {
                        flags |= IRQ_LEVEL;
                    }
                    if polarity == IrqPolarity::ActiveLow {
                        flags |= IRQ_ACTIVE_LOW;
                    }
                    (
                        ioapic << 8 | pin,
                        flags,
                        vector,
                        format!("IOAPIC {ioapic} pin {pin}"),
                    )
                }
                IrqKind::Msi {
                    pci,
                    handle,
                    vector,
                } => {
                    let bdf = Bdf {
                        bus: pci.bus,
                        dev: pci.dev,
                        func: pci.func,
                    };
                    // An MSI comes from the function the PD drives: from
                    // another, it would be that function's driver's.
                    let driven: Vec<Bdf> = self
                        .wiring
                        .pcis
                        .iter()
                        .filter(|p| p.driver.pd == self.pd)
                        .map(|p| p.function)
                        .collect();
                    if !driven.is_empty() && !driven.contains(&bdf) {
                        let list: Vec<String> = driven.iter().map(|f| f.to_string()).collect();
                        self.sys_error(
                            irq.pos,
                            format!(
                                "<irq id=\"{id}\">: an MSI from {bdf}, but protection domain '{}' drives {} (the wiring file's [[pci]])",
                                self.pd().name,
                                list.join(", ")
                            ),
                            format!("pcidev=\"{}\"", list[0]),
                        );
                    }
                    (
                        u64::from(bdf.packed()) << 48 | handle,
                        IRQ_MSI,
                        vector,
                        format!("MSI from {bdf}"),
                    )
                }
                IrqKind::Gic { irq } => {
                    (irq, IRQ_LEVEL | IRQ_GIC, 0, format!("GIC interrupt {irq}"))
                }
            };
            text.push(format!("irq {id} ({desc})"));
            items.push(Item::Irq {
                id: id as u8,
                at,
                flags,
                vector: vector as u8,
            });
        }
        (items, join(text))
    }

    /// The channels joining this PD and `peer`.
    fn channels_between(&self, peer: usize) -> Vec<(ChannelEnd, ChannelEnd)> {
        self.system
            .ends_of(self.pd)
            .filter(|(_, other)| other.pd == peer)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect()
    }

    fn channels(&mut self, role: &Role, bound: Option<&Binding<'_>>) -> (Vec<Item>, String) {
        let Spec::Channel { notify, pp } = role.spec else {
            unreachable!()
        };
        // Default: the PD named like the role ('_' read as '-').
        let default_peer;
        let defaulted;
        let values = match bound {
            Some((values, _)) => values,
            None => {
                let peer = role.name.replace('_', "-");
                let found = [role.name.as_str(), peer.as_str()].into_iter().find(|n| {
                    self.system
                        .pd_index(n)
                        .is_some_and(|p| self.channels_between(p).len() == 1)
                });
                let Some(name) = found else {
                    return (Vec::new(), "(not bound)".into());
                };
                default_peer = toml::de::DeValue::String(name.to_string().into());
                defaulted = vec![(&default_peer, self.wiring_span_of_pd())];
                &defaulted
            }
        };
        let mut items = Vec::new();
        let mut text = Vec::new();
        for (v, span) in values {
            let end = if let Some(peer) = v.as_str() {
                let Some(p) = self.system.pd_index(peer) else {
                    self.d.push(self.src.diag(
                        span,
                        format!(
                            "{} is bound to unknown protection domain '{peer}'",
                            role.describe()
                        ),
                        format!("the name of a <protection_domain> in {}", self.system.file),
                    ));
                    continue;
                };
                match &self.channels_between(p)[..] {
                    [(mine, _)] => mine.clone(),
                    [] => {
                        self.d.push(self.src.diag(span, format!("{} is bound to '{peer}', but system.xml has no channel between '{}' and '{peer}'", role.describe(), self.pd().name), format!("a <channel> with ends in '{}' and '{peer}'", self.pd().name)));
                        continue;
                    }
                    many => {
                        let ids: Vec<String> = many.iter().map(|(m, _)| m.id.to_string()).collect();
                        self.d.push(self.src.diag(
                            span,
                            format!(
                                "{} is bound to '{peer}', but {} channels join '{}' and '{peer}'",
                                role.describe(),
                                many.len(),
                                self.pd().name
                            ),
                            format!(
                                "this PD's end id instead of the peer's name (one of {})",
                                ids.join(", ")
                            ),
                        ));
                        continue;
                    }
                }
            } else if let Some(id) = pd_manifest::source::integer(v) {
                match self.system.ends_of(self.pd).find(|(mine, _)| mine.id == id) {
                    Some((mine, _)) => mine.clone(),
                    None => {
                        self.d.push(self.src.diag(span, format!("{} is bound to channel {id}, which system.xml does not give protection domain '{}'", role.describe(), self.pd().name), format!("the id of one of its <channel> ends: {}", join(self.system.ends_of(self.pd).map(|(m, _)| m.id.to_string()).collect()))));
                        continue;
                    }
                }
            } else {
                self.d.push(self.src.diag(
                    span,
                    format!(
                        "the binding of {} is neither a PD name nor an id",
                        role.describe()
                    ),
                    "the peer PD's name, or this PD's channel end id",
                ));
                continue;
            };
            if (notify && !end.notify) || (pp && !end.pp) {
                let pos = end.pos;
                self.sys_error(
                    pos,
                    format!(
                        "channel end {} of protection domain '{}' lacks the {} right that {} needs",
                        end.id,
                        self.pd().name,
                        if pp && !end.pp { "pp" } else { "notify" },
                        self.role_name(role)
                    ),
                    if pp && !end.pp {
                        "pp=\"true\"".into()
                    } else {
                        "notify=\"true\" (the default)".into()
                    },
                );
            }
            let peer = self
                .system
                .ends_of(self.pd)
                .find(|(m, _)| m.id == end.id)
                .map(|(_, o)| o.pd)
                .unwrap();
            text.push(format!("channel {} (to '{}')", end.id, self.name(peer)));
            items.push(Item::Channel { id: end.id as u8 });
        }
        (items, join(text))
    }

    fn ioports(&mut self, role: &Role, bound: Option<&Binding<'_>>) -> (Vec<Item>, String) {
        let Spec::IoPort { min_size } = role.spec else {
            unreachable!()
        };
        let ids: Vec<(u64, Option<Range<usize>>)> = match self.integers(role, bound, "<ioport>") {
            Some(l) => l.into_iter().map(|(n, s)| (n, Some(s))).collect(),
            None if self.program.roles_of(Kind::IoPorts).count() == 1
                && self.pd().ioports.len() == 1 =>
            {
                vec![(self.pd().ioports[0].id, None)]
            }
            None => Vec::new(),
        };
        let mut items = Vec::new();
        let mut text = Vec::new();
        for (id, span) in ids {
            let Some(p) = self.pd().ioports.iter().find(|p| p.id == id).cloned() else {
                let span = span.expect("defaults name existing ioports");
                self.d.push(self.src.diag(
                    &span,
                    format!(
                        "{} is bound to ioport {id}, which protection domain '{}' does not have",
                        role.describe(),
                        self.pd().name
                    ),
                    format!(
                        "an <ioport id=\"{id}\" .../> in protection domain '{}'",
                        self.pd().name
                    ),
                ));
                continue;
            };
            if p.size < min_size {
                self.sys_error(p.pos, format!("ioport {id} of protection domain '{}' spans {} ports, but {} needs {min_size}", self.pd().name, p.size, self.role_name(role)), format!("size=\"{min_size}\" or more"));
            }
            text.push(format!("ioport {id} ({:#x}, {} ports)", p.addr, p.size));
            items.push(Item::IoPort {
                id: id as u8,
                base: p.addr as u16,
                size: p.size.min(0xffff) as u16,
            });
        }
        (items, join(text))
    }

    fn ports(&mut self, role: &Role) -> (Vec<Item>, String) {
        let Spec::Port {
            protocol,
            side,
            data,
        } = &role.spec
        else {
            unreachable!()
        };
        let mut items = Vec::new();
        let mut text = Vec::new();
        for decl in &self.wiring.ports {
            let (mine, other, decl_side) =
                if decl.provider.pd == self.pd && decl.provider.role == role.name {
                    (&decl.provider, &decl.client, Side::Provider)
                } else if decl.client.pd == self.pd && decl.client.role == role.name {
                    (&decl.client, &decl.provider, Side::Client)
                } else {
                    continue;
                };
            let _ = mine;
            let peer = other.pd;
            let peer_role = self.programs[peer]
                .as_ref()
                .and_then(|p| p.role(Kind::Ports, &other.role))
                .expect("checked when read");
            let Spec::Port {
                protocol: peer_protocol,
                side: peer_side,
                data: peer_data,
            } = &peer_role.spec
            else {
                unreachable!()
            };
            let here = if decl_side == Side::Provider {
                &decl.provider.span
            } else {
                &decl.client.span
            };
            if *side != decl_side {
                self.d.push(self.src.diag(
                    here,
                    format!(
                        "[[port]] makes '{}.{}' the {}, but {} is a {} end",
                        self.pd().name,
                        role.name,
                        decl_side.name(),
                        self.role_name(role),
                        side.name()
                    ),
                    format!(
                        "\"{}.{}\" as the port's {}",
                        self.pd().name,
                        role.name,
                        side.name()
                    ),
                ));
                continue;
            }
            if self.pd == decl.provider.pd && *peer_side == Side::Provider {
                // Reported once, from the provider's side.
                self.d.push(self.src.diag(
                    &decl.client.span,
                    format!(
                        "both ends of the [[port]] are providers: '{}.{}' and '{}.{}'",
                        self.pd().name,
                        role.name,
                        self.name(peer),
                        other.role
                    ),
                    "one provider and one client (the mirror)",
                ));
                continue;
            }
            if decl.protocol != *protocol || decl.protocol != *peer_protocol {
                let (who, what) = if decl.protocol != *protocol {
                    (format!("'{}.{}'", self.pd().name, role.name), protocol)
                } else {
                    (
                        format!("'{}.{}'", self.name(peer), other.role),
                        peer_protocol,
                    )
                };
                if decl.protocol == *protocol || self.pd == decl.provider.pd {
                    self.d.push(self.src.diag(
                        &decl.protocol_span,
                        format!("[[port]] speaks {}, but {who} speaks {what}", decl.protocol),
                        "both ends and the port to name the same Tingu protocol",
                    ));
                }
                continue;
            }
            // The region: mapped read-write by both.
            let region = &self.system.memory_regions[decl.region];
            let my_maps: Vec<_> = self
                .pd()
                .maps
                .iter()
                .filter(|m| m.mr == decl.region)
                .cloned()
                .collect();
            let [map] = &my_maps[..] else {
                self.d.push(self.src.diag(
                    &decl.region_span,
                    format!(
                        "the [[port]]'s region '{}' is mapped {} times by protection domain '{}'",
                        region.name,
                        my_maps.len(),
                        self.pd().name
                    ),
                    format!(
                        "one read-write <map mr=\"{}\" .../> in '{}'",
                        region.name,
                        self.pd().name
                    ),
                ));
                continue;
            };
            if !(map.perms.read && map.perms.write) {
                self.sys_error(
                    map.pos,
                    format!(
                        "the map of port region '{}' is {}, but a port end writes its ring",
                        region.name, map.perms
                    ),
                    "perms=\"rw\"".into(),
                );
                continue;
            }
            let need = port_bytes(decl.slots, (*data).max(*peer_data));
            if region.size < need as u64 {
                if self.pd == decl.provider.pd {
                    let pos = region.pos;
                    self.sys_error(pos, format!("memory region '{}' is {:#x} bytes, too small for its {} port: two rings of {} slots and a data area of {:#x} bytes need {need:#x}", region.name, region.size, decl.protocol, decl.slots, (*data).max(*peer_data)), format!("size=\"{:#x}\" or more", (need as u64).next_multiple_of(0x1000)));
                }
                continue;
            }
            // The channel.
            let between = self.channels_between(peer);
            let chosen = match &decl.channel {
                Some((id, span)) => {
                    let provider_id = *id;
                    let found = between.iter().find(|(m, o)| {
                        if decl_side == Side::Provider {
                            m.id == provider_id
                        } else {
                            o.id == provider_id
                        }
                    });
                    match found {
                        Some(c) => c.clone(),
                        None => {
                            if self.pd == decl.provider.pd {
                                self.d.push(self.src.diag(span, format!("[[port]] names channel {provider_id} of '{}', which is not a channel to '{}'", self.name(decl.provider.pd), self.name(decl.client.pd)), format!("one of the provider's ends to the client: {}", join(self.system.ends_of(decl.provider.pd).filter(|(_, o)| o.pd == decl.client.pd).map(|(m, _)| m.id.to_string()).collect()))));
                            }
                            continue;
                        }
                    }
                }
                None => match &between[..] {
                    [one] => one.clone(),
                    [] => {
                        if self.pd == decl.provider.pd {
                            self.d.push(self.src.diag(&decl.span, format!("[[port]] joins '{}' and '{}', but system.xml has no channel between them", self.pd().name, self.name(peer)), format!("a <channel> with ends in '{}' and '{}'", self.pd().name, self.name(peer))));
                        }
                        continue;
                    }
                    many => {
                        if self.pd == decl.provider.pd {
                            let ids: Vec<String> =
                                many.iter().map(|(m, _)| m.id.to_string()).collect();
                            self.d.push(self.src.diag(
                                &decl.span,
                                format!(
                                    "[[port]] joins '{}' and '{}', which {} channels join",
                                    self.pd().name,
                                    self.name(peer),
                                    many.len()
                                ),
                                format!(
                                    "channel = <the provider's end id> (one of {})",
                                    ids.join(", ")
                                ),
                            ));
                        }
                        continue;
                    }
                },
            };
            let (end, _) = chosen;
            if !end.notify {
                self.sys_error(
                    end.pos,
                    format!(
                        "channel end {} of '{}' cannot notify, but it carries the {} port",
                        end.id,
                        self.pd().name,
                        decl.protocol
                    ),
                    "notify=\"true\" (the default)".into(),
                );
                continue;
            }
            text.push(format!(
                "{} {} end on channel {} with '{}', region '{}' at {:#x} ({:#x} bytes, {} slots)",
                decl.protocol,
                side.name(),
                end.id,
                self.name(peer),
                region.name,
                map.vaddr,
                region.size,
                decl.slots
            ));
            items.push(Item::Port {
                vaddr: map.vaddr,
                size: region.size,
                channel: end.id as u8,
                slots: decl.slots,
                side: *side,
                protocol: protocol.clone(),
                peer: self.name(peer).to_string(),
                peer_restarts: self
                    .wiring
                    .recovery
                    .get(&peer)
                    .is_some_and(|r| r.restart.is_some()),
            });
        }
        (items, join(text))
    }

    /// The PD serving PCI to `decl`'s driver, and the channel ends (driver's,
    /// server's).
    fn pci_link(&mut self, decl: &PciDecl) -> Option<(usize, ChannelEnd, ChannelEnd)> {
        let driver = decl.driver.pd;
        let server = match &decl.server {
            Some(s) => s.pd,
            None => {
                let servers: Vec<usize> = (0..self.programs.len())
                    .filter(|&i| {
                        self.programs[i]
                            .as_ref()
                            .is_some_and(|p| p.roles_of(Kind::PciService).next().is_some())
                    })
                    .collect();
                match servers[..] {
                    [one] => one,
                    [] => {
                        if self.pd == driver {
                            self.d.push(self.src.diag(&decl.function_span, format!("[[pci]] claims {} for '{}', but no protection domain serves PCI configuration space", decl.function, self.name(driver)), "a PD running the pci program (a pci_service role) in system.xml"));
                        }
                        return None;
                    }
                    _ => {
                        if self.pd == driver {
                            self.d.push(self.src.diag(&decl.function_span, format!("[[pci]] for '{}' does not say which of several PCI servers serves it", self.name(driver)), "server = \"<pd>.<pci_service role>\""));
                        }
                        return None;
                    }
                }
            }
        };
        let ends: Vec<(ChannelEnd, ChannelEnd)> = self
            .system
            .ends_of(driver)
            .filter(|(_, o)| o.pd == server)
            .filter(|(m, _)| m.pp)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        match &ends[..] {
            [(mine, theirs)] => Some((server, mine.clone(), theirs.clone())),
            [] => {
                if self.pd == driver {
                    self.d.push(self.src.diag(&decl.function_span, format!("[[pci]] gives {} to '{}', but system.xml has no channel on which '{}' calls '{}'", decl.function, self.name(driver), self.name(driver), self.name(server)), format!("a <channel> between them with pp=\"true\" on the end in '{}'", self.name(driver))));
                }
                None
            }
            _ => {
                if self.pd == driver {
                    self.d.push(self.src.diag(
                        &decl.function_span,
                        format!(
                            "'{}' calls '{}' on several channels",
                            self.name(driver),
                            self.name(server)
                        ),
                        "one pp channel from a driver to its PCI server",
                    ));
                }
                None
            }
        }
    }

    /// The physical address and size of `driver`'s device region role
    /// `role`, as its own bindings resolve it (explicit, or the region of
    /// the role's name), for placing a BAR there.
    fn driver_region(
        &mut self,
        driver: usize,
        role: &str,
        span: &Range<usize>,
    ) -> Option<(u64, u64)> {
        let pd = &self.system.protection_domains[driver];
        let program = self.programs[driver].as_ref()?;
        let what = format!(
            "[[pci]] bars places a BAR at region role '{role}' of '{}'",
            pd.name
        );
        let Some(r) = program.role(Kind::Regions, role) else {
            let known: Vec<&str> = program
                .roles_of(Kind::Regions)
                .filter(|r| {
                    matches!(
                        r.spec,
                        Spec::Region {
                            kind: RegionKind::Device,
                            ..
                        }
                    )
                })
                .map(|r| r.name.as_str())
                .collect();
            self.d.push(self.src.diag(
                span,
                format!("{what}, which program '{}' does not have", program.name),
                format!(
                    "one of its device region roles: {}",
                    join(known.into_iter().map(String::from).collect())
                ),
            ));
            return None;
        };
        if !matches!(
            r.spec,
            Spec::Region {
                kind: RegionKind::Device,
                ..
            }
        ) {
            self.d.push(self.src.diag(
                span,
                format!("{what}, which is not a device region"),
                "a region role with kind = \"device\" (a phys_addr region mapped uncached)",
            ));
            return None;
        }
        let bound = self
            .wiring
            .pds
            .get(&driver)
            .and_then(|d| d.tables.get(&Kind::Regions))
            .and_then(|t| t.get(role))
            .and_then(|(v, _)| v.first())
            .and_then(|(v, _)| v.as_str())
            .unwrap_or(role);
        let mr = self.system.region_index(bound)?;
        let region = &self.system.memory_regions[mr];
        // The driver's own binding is checked (phys_addr, caching) when
        // its config is resolved; here only the place is needed.
        region.phys_addr.map(|p| (p, region.size))
    }

    fn pci(&mut self, role: &Role) -> (Vec<Item>, String) {
        let mut items = Vec::new();
        let mut text = Vec::new();
        let decls: Vec<&PciDecl> = self
            .wiring
            .pcis
            .iter()
            .filter(|p| p.driver.pd == self.pd && p.driver.role == role.name)
            .collect();
        for decl in decls {
            if let Some((server, mine, theirs)) = self.pci_link(decl) {
                self.pci.push(PciLink {
                    bdf: decl.function,
                    server,
                    server_channel: theirs.id as u8,
                });
                text.push(format!(
                    "{} through '{}' on channel {}",
                    decl.function,
                    self.name(server),
                    mine.id
                ));
                items.push(Item::Pci {
                    channel: mine.id as u8,
                    bdf: decl.function.packed(),
                });
            }
        }
        (items, join(text))
    }

    fn pci_service(&mut self, role: &Role) -> (Vec<Item>, String) {
        let mut items = Vec::new();
        let mut text = Vec::new();
        for decl in &self.wiring.pcis {
            let serves = match &decl.server {
                Some(s) => s.pd == self.pd && s.role == role.name,
                None => true,
            };
            if !serves {
                continue;
            }
            if let Some((server, _, theirs)) = self.pci_link(decl)
                && server == self.pd
            {
                let mut bars = [(0, 0); 6];
                let mut placed = String::new();
                for (i, role, span) in &decl.bars {
                    if let Some((paddr, size)) = self.driver_region(decl.driver.pd, role, span) {
                        bars[usize::from(*i)] = (paddr, size);
                        placed.push_str(&format!(", BAR{i} at {paddr:#x}"));
                    }
                }
                text.push(format!(
                    "{} to '{}' on channel {}{placed}",
                    decl.function,
                    self.name(decl.driver.pd),
                    theirs.id
                ));
                items.push(Item::PciClient {
                    channel: theirs.id as u8,
                    bdf: decl.function.packed(),
                    bars,
                    pd: self.name(decl.driver.pd).to_string(),
                });
            }
        }
        (items, join(text))
    }

    fn param(&mut self, role: &Role, bound: Option<&Binding<'_>>) -> (Vec<Item>, String) {
        let Spec::Param { ty, default } = role.spec else {
            unreachable!()
        };
        let value = match bound {
            Some((values, _)) => {
                let (v, span) = &values[0];
                match manifest::param_value(ty, v) {
                    Some(x) => Some(x),
                    None => {
                        self.d.push(self.src.diag(
                            span,
                            format!("the value of {} is not a {}", role.describe(), ty.rust()),
                            format!("a {} value", ty.rust()),
                        ));
                        return (Vec::new(), String::new());
                    }
                }
            }
            None => default,
        };
        match value {
            Some(v) => (vec![Item::Param(v)], format!("{v}")),
            None => (Vec::new(), String::new()),
        }
    }
}

fn join(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join("; ")
    }
}

/// Bytes a port region needs: two rings of `slots` slots (dingo-rt's
/// layout) and the data area.
fn port_bytes(slots: u32, data: u64) -> usize {
    let layout = dingo_rt::port::PortLayout::new::<SLOT_BYTES>(usize::MAX / 2, slots)
        .expect("slot counts are checked to be powers of two");
    layout.data_offset + data as usize
}

/// The words each PD's plan setvars carry (the block is zero in the
/// image, so only non-zero words are written).
pub(crate) fn config_setvars(
    pd: &ProtectionDomain,
) -> impl Iterator<Item = (u64, encode::Word)> + '_ {
    pd.config.iter().flat_map(|c| {
        c.words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != encode::Word::Value(0))
            .map(move |(i, w)| (c.block_vaddr + 8 * i as u64, *w))
    })
}
