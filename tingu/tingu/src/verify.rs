//! `tingu verify`: model checking of protocols and of the ports a component
//! couples with `depend` rules, with SPIN.
//!
//! Each *job* is a closed system: for every port, the provider's view and
//! the client's view of the protocol as two processes, joined by two
//! bounded FIFOs (the port's rings). A view sends only what its own state
//! allows and receives whatever arrives, so messages cross exactly as they
//! do on the rings. In a component job one party is the component (its
//! side of each port, constrained by its `depend` rules, which also judge
//! its receptions) and the other is one environment holding every other
//! end, which sends only what the same rules allow by its own views.
//!
//! SPIN (`pan`, compiled by gcc) explores the model exhaustively and prints
//! every transition; this module judges the properties on that state graph
//! (some are "can reach" properties that LTL cannot state) and prints each
//! refutation in Tingu terms.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::ast::*;
use crate::check::Model;
use crate::promela;

/// The bounds of the check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Messages a ring holds in a protocol's model (ports get 16 slots; a
    /// sender finds the ring full after this many).
    pub slots: usize,
    /// Largest magnitude a variable may reach by arithmetic; a side does
    /// not take a transition that would go beyond it.
    pub bound: i128,
    /// `slots` for component models (they multiply their ports' states).
    pub component_slots: usize,
    /// `bound` for component models.
    pub component_bound: i128,
    /// Keep the generated model and SPIN's output in this directory.
    pub keep: Option<PathBuf>,
    /// Jobs run at once.
    pub jobs: usize,
    /// Give up on a model with more states than this (inconclusive).
    pub max_states: usize,
}

impl Options {
    /// (slots, bound) for a job.
    pub fn bounds(&self, job: &Job) -> (usize, i128) {
        if job.component.is_some() {
            (self.component_slots, self.component_bound)
        } else {
            (self.slots, self.bound)
        }
    }

    fn describe(&self, job: &Job) -> String {
        let (slots, bound) = self.bounds(job);
        format!("at most {slots} messages in flight per ring, variables bounded by {bound}")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            slots: 4,
            bound: 2,
            component_slots: 2,
            component_bound: 1,
            keep: None,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_states: 2_000_000,
        }
    }
}

/// One side of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Receives `in` messages, sends `out` ones.
    Provider = 0,
    /// Sends `in` messages, receives `out` ones.
    Client = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Provider => Side::Client,
            Side::Client => Side::Provider,
        }
    }
}

/// One side's view of one port of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Index into [`Job::ports`].
    pub port: usize,
    /// Which side.
    pub side: Side,
}

impl View {
    /// The direction of the messages this view sends.
    pub fn sends(self) -> Direction {
        match self.side {
            Side::Provider => Direction::Out,
            Side::Client => Direction::In,
        }
    }
}

/// Why a reception was refused (the model's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecvError {
    /// No transition on the message in the receiver's state.
    Unexpected = 1,
    /// Transitions, but every guard false.
    GuardFailed = 2,
    /// An action's value does not fit its variable.
    Overflow = 3,
    /// A dependency forbids the message.
    Blocked = 4,
    /// An action's value is beyond the model's bound (inconclusive).
    Bound = 5,
}

/// A message with values for the arguments its guards and actions read.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Message index in the protocol.
    pub msg: usize,
    /// (argument index, value) for each argument that matters.
    pub args: Vec<(usize, i128)>,
}

/// A port of a job.
pub struct JobPort<'a> {
    /// Port name (the protocol's name in a protocol job).
    pub name: String,
    /// Its protocol.
    pub proto: &'a Protocol,
    /// The component's side, in a component job.
    pub comp_side: Option<Side>,
    /// Every message value the model distinguishes; code = index + 1.
    pub packets: Vec<Packet>,
}

/// A `depend` rule of a component job.
pub struct JobDep {
    /// Constrained (port, message); `None` is every message of the port.
    pub targets: Vec<(usize, Option<usize>)>,
    /// Port whose state decides.
    pub on: usize,
    /// Leaf states of `on` in which the messages are allowed.
    pub allowed: Vec<usize>,
    /// The rule as written, with its place.
    pub text: String,
}

/// A closed system to check.
pub struct Job<'a> {
    /// `protocol P` or `component C (ports a, b)`.
    pub title: String,
    /// The component's name, in a component job.
    pub component: Option<String>,
    /// The ports.
    pub ports: Vec<JobPort<'a>>,
    /// The dependencies among them.
    pub deps: Vec<JobDep>,
}

impl Job<'_> {
    /// Every view, provider before client, port by port.
    pub fn views(&self) -> impl Iterator<Item = View> + '_ {
        (0..self.ports.len()).flat_map(|port| {
            [Side::Provider, Side::Client]
                .into_iter()
                .map(move |side| View { port, side })
        })
    }

    /// Index of a view in the model.
    pub fn view_index(&self, v: View) -> usize {
        v.port * 2 + v.side as usize
    }

    fn view_at(&self, i: usize) -> View {
        View {
            port: i / 2,
            side: if i.is_multiple_of(2) {
                Side::Provider
            } else {
                Side::Client
            },
        }
    }

    /// (incoming FIFO, outgoing FIFO) of a view. FIFO `2p` carries port
    /// `p`'s `in` messages to its provider, `2p + 1` its `out` messages.
    pub fn channels(&self, v: View) -> (usize, usize) {
        let base = v.port * 2;
        (base + v.side as usize, base + v.side.other() as usize)
    }

    /// Rules that name message `msg` of port `port`.
    pub fn deps_of(&self, port: usize, msg: usize) -> impl Iterator<Item = (usize, &JobDep)> {
        self.deps.iter().enumerate().filter(move |(_, d)| {
            d.targets
                .iter()
                .any(|&(p, m)| p == port && m.is_none_or(|m| m == msg))
        })
    }

    fn is_component_side(&self, v: View) -> bool {
        self.ports[v.port].comp_side == Some(v.side)
    }

    /// The view of port `q` held by the party that holds `v`.
    pub fn same_party(&self, v: View, q: usize) -> View {
        let side = match (self.ports[v.port].comp_side, self.ports[q].comp_side) {
            (Some(cv), Some(cq)) if cv == v.side => cq,
            (Some(_), Some(cq)) => cq.other(),
            _ => v.side,
        };
        View { port: q, side }
    }

    /// Whether the dependencies judge this view's receptions: the
    /// component's observer does; the environment is not observed here.
    pub fn checks_receptions(&self, v: View) -> bool {
        self.component.is_some() && self.is_component_side(v)
    }

    fn party(&self, v: View) -> String {
        match &self.component {
            None => match v.side {
                Side::Provider => "provider".into(),
                Side::Client => "client".into(),
            },
            Some(c) if self.is_component_side(v) => c.clone(),
            Some(_) => "peer".into(),
        }
    }

    fn msg_name(&self, v: View, code: usize) -> String {
        let port = &self.ports[v.port];
        let pkt = &port.packets[code - 1];
        let m = &port.proto.messages[pkt.msg];
        let sigil = match m.dir {
            Direction::In => '?',
            Direction::Out => '!',
        };
        let args: Vec<String> = pkt
            .args
            .iter()
            .map(|(a, x)| {
                let arg = &m.args[*a];
                let val = if arg.ty == Ty::Bool {
                    (*x != 0).to_string()
                } else {
                    x.to_string()
                };
                format!("{}={val}", arg.name.name)
            })
            .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let prefix = if self.component.is_some() {
            format!("{} ", port.name)
        } else {
            String::new()
        };
        format!("{prefix}{sigil}{}{args}", m.name.name)
    }
}

/// What one job found.
#[derive(Debug)]
pub struct Outcome {
    /// The job's title.
    pub title: String,
    /// The bounds it was checked within.
    pub bounds: String,
    /// Distinct states of the model.
    pub states: usize,
    /// Transitions between them.
    pub transitions: usize,
    /// Seconds for generating, compiling and exploring.
    pub secs: f64,
    /// Each failed property, with its trace, in Tingu terms.
    pub refutations: Vec<String>,
    /// Where the bounds cut the exploration short of a verdict.
    pub inconclusive: Vec<String>,
}

impl Outcome {
    /// Every property holds within the bounds.
    pub fn verified(&self) -> bool {
        self.refutations.is_empty() && self.inconclusive.is_empty()
    }
}

fn names_in(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Name(n) => out.push(n.name.clone()),
        Expr::Not(a, _) | Expr::Neg(a, _) => names_in(a, out),
        Expr::Bin(_, a, b, _) => {
            names_in(a, out);
            names_in(b, out);
        }
        Expr::Int(..) | Expr::Bool(..) => {}
    }
}

fn literals_in(e: &Expr, out: &mut Vec<i128>) {
    match e {
        Expr::Int(x, _) => out.push(*x),
        Expr::Neg(a, _) => {
            if let Expr::Int(x, _) = a.as_ref() {
                out.push(-x);
            }
            literals_in(a, out)
        }
        Expr::Not(a, _) => literals_in(a, out),
        Expr::Bin(_, a, b, _) => {
            literals_in(a, out);
            literals_in(b, out);
        }
        Expr::Name(..) | Expr::Bool(..) => {}
    }
}

fn transitions(p: &Protocol) -> impl Iterator<Item = &Transition> {
    p.states.iter().flat_map(|s| s.transitions.iter())
}

fn exprs(t: &Transition) -> impl Iterator<Item = &Expr> {
    t.guard.iter().chain(t.actions.iter().map(|(_, e)| e))
}

/// The values of the message arguments the model tries: the arguments no
/// guard or action reads are left out; the others take every constant the
/// protocol compares with, and its neighbours, which covers each interval
/// between constants (exact for comparisons with constants).
fn packets(p: &Protocol) -> Result<Vec<Packet>, String> {
    let mut consts: Vec<i128> = p.consts.iter().map(|c| c.value).collect();
    for t in transitions(p) {
        exprs(t).for_each(|e| literals_in(e, &mut consts));
    }
    for v in &p.vars {
        literals_in(&v.init, &mut consts);
    }
    if let Some(big) = consts.iter().find(|x| x.abs() > promela::INT_MAX) {
        return Err(format!(
            "protocol `{}`: constant {big} does not fit SPIN's 32-bit integers",
            p.name.name
        ));
    }
    let mut out = Vec::new();
    for (mi, m) in p.messages.iter().enumerate() {
        let mut used = Vec::new();
        for t in transitions(p).filter(|t| t.msg.name == m.name.name) {
            exprs(t).for_each(|e| names_in(e, &mut used));
        }
        let mut combos: Vec<Vec<(usize, i128)>> = vec![Vec::new()];
        for (ai, a) in m.args.iter().enumerate() {
            if !used.contains(&a.name.name) {
                continue;
            }
            let (lo, hi) = promela::type_range(a.ty);
            let mut dom: Vec<i128> = if a.ty == Ty::Bool {
                vec![0, 1]
            } else {
                consts
                    .iter()
                    .flat_map(|k| [k - 1, *k, k + 1])
                    .filter(|x| (lo..=hi).contains(x))
                    .collect()
            };
            if dom.is_empty() {
                dom.push(lo.max(0));
            }
            dom.sort();
            dom.dedup();
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    dom.iter().map(move |x| {
                        let mut c = c.clone();
                        c.push((ai, *x));
                        c
                    })
                })
                .collect();
        }
        out.extend(combos.into_iter().map(|args| Packet { msg: mi, args }));
    }
    // Codes are printed as one character each, from '1'.
    if out.len() > 74 {
        return Err(format!(
            "protocol `{}`: {} message values to model, more than 74",
            p.name.name,
            out.len()
        ));
    }
    Ok(out)
}

fn leaf_set(p: &Protocol, states: &[Ident]) -> Vec<usize> {
    p.leaves()
        .filter(|&l| {
            states
                .iter()
                .filter_map(|s| p.state(&s.name))
                .any(|s| p.within(l, s))
        })
        .collect()
}

fn depend_text(d: &Depend, paths: &[String]) -> String {
    let targets: Vec<String> = d
        .targets
        .iter()
        .map(|(p, m)| format!("{}.{}", p.name, m.as_ref().map_or("*", |m| &m.name)))
        .collect();
    let states: Vec<&str> = d.states.iter().map(|s| s.name.as_str()).collect();
    let states = if states.len() == 1 {
        states[0].to_string()
    } else {
        format!("{{{}}}", states.join(", "))
    };
    let pos = d.on.pos;
    let path = paths.get(pos.file).map_or("?", |s| s.as_str());
    format!(
        "`depend {} on {} in {states}` ({path}:{})",
        targets.join(", "),
        d.on.name,
        pos.line
    )
}

/// The jobs for a checked model: one per protocol, and one per group of a
/// component's ports that its `depend` rules connect.
pub fn jobs<'a>(model: &'a Model, paths: &[String]) -> Result<Vec<Job<'a>>, String> {
    let mut cache: HashMap<&str, Vec<Packet>> = HashMap::new();
    for p in &model.protocols {
        // A view's state is one byte of the model.
        if p.states.len() > 255 {
            return Err(format!(
                "protocol `{}`: {} states, more than the 255 the model holds",
                p.name.name,
                p.states.len()
            ));
        }
        cache.insert(&p.name.name, packets(p)?);
    }
    let mut out = Vec::new();
    for p in &model.protocols {
        out.push(Job {
            title: format!("protocol {}", p.name.name),
            component: None,
            ports: vec![JobPort {
                name: p.name.name.clone(),
                proto: p,
                comp_side: None,
                packets: cache[p.name.name.as_str()].clone(),
            }],
            deps: Vec::new(),
        });
    }
    for c in &model.components {
        let idx = |n: &str| c.ports.iter().position(|p| p.name.name == n);
        // Union-find over the ports the rules connect.
        let mut group: Vec<usize> = (0..c.ports.len()).collect();
        fn root(g: &mut [usize], mut i: usize) -> usize {
            while g[i] != i {
                g[i] = g[g[i]];
                i = g[i];
            }
            i
        }
        let mut coupled = vec![false; c.ports.len()];
        for d in &c.depends {
            let Some(on) = idx(&d.on.name) else { continue };
            coupled[on] = true;
            for (t, _) in &d.targets {
                if let Some(t) = idx(&t.name) {
                    coupled[t] = true;
                    let (a, b) = (root(&mut group, t), root(&mut group, on));
                    group[a] = b;
                }
            }
        }
        let mut roots: Vec<usize> = (0..c.ports.len())
            .filter(|&i| coupled[i])
            .map(|i| root(&mut group, i))
            .collect();
        roots.sort();
        roots.dedup();
        for r in roots {
            let members: Vec<usize> = (0..c.ports.len())
                .filter(|&i| coupled[i] && root(&mut group, i) == r)
                .collect();
            let local = |n: &str| idx(n).and_then(|i| members.iter().position(|&m| m == i));
            let mut ports = Vec::new();
            for &i in &members {
                let port = &c.ports[i];
                let proto = model
                    .protocol(&port.protocol.name)
                    .ok_or_else(|| format!("unknown protocol `{}`", port.protocol.name))?;
                ports.push(JobPort {
                    name: port.name.name.clone(),
                    proto,
                    comp_side: Some(if port.mirror {
                        Side::Client
                    } else {
                        Side::Provider
                    }),
                    packets: cache[proto.name.name.as_str()].clone(),
                });
            }
            let mut deps = Vec::new();
            for d in &c.depends {
                let Some(on) = local(&d.on.name) else {
                    continue;
                };
                let targets = d
                    .targets
                    .iter()
                    .filter_map(|(p, m)| {
                        let pi = local(&p.name)?;
                        let msg = match m {
                            None => None,
                            Some(m) => Some(ports[pi].proto.message(&m.name)?),
                        };
                        Some((pi, msg))
                    })
                    .collect();
                deps.push(JobDep {
                    targets,
                    on,
                    allowed: leaf_set(ports[on].proto, &d.states),
                    text: depend_text(d, paths),
                });
            }
            // Each FIFO's emptiness is one bit of a u64.
            if ports.len() > 32 {
                return Err(format!(
                    "component `{}`: {} ports coupled by dependencies, more than the 32 the verifier handles",
                    c.name.name,
                    ports.len()
                ));
            }
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            out.push(Job {
                title: format!("component {} (ports {})", c.name.name, names.join(", ")),
                component: Some(c.name.name.clone()),
                ports,
                deps,
            });
        }
    }
    Ok(out)
}

/// Subports, judged on their protocol's graph rather than in SPIN: each
/// instance is its own copy of the protocol on its own rings (checked as
/// that protocol's job), so what a subport adds is the race between the
/// spawning message, on the parent port's ring, and the instance's first
/// and last messages, on the instance's ring.
pub fn subports(model: &Model) -> Vec<Outcome> {
    let mut out = Vec::new();
    for c in &model.components {
        for s in &c.subports {
            let (Some(port), Some(proto)) = (
                c.ports.iter().find(|p| p.name.name == s.port.name),
                model.protocol(&s.protocol.name),
            ) else {
                continue;
            };
            let Some(parent) = model.protocol(&port.protocol.name) else {
                continue;
            };
            let Some(mi) = parent.message(&s.msg.name) else {
                continue;
            };
            let comp_side = |mirror: bool| if mirror { Side::Client } else { Side::Provider };
            let sender = |d: Direction| match d {
                Direction::In => Side::Client,
                Direction::Out => Side::Provider,
            };
            let spawner_is_comp = sender(parent.messages[mi].dir) == comp_side(port.mirror);
            let spawner = if spawner_is_comp {
                comp_side(s.mirror)
            } else {
                comp_side(s.mirror).other()
            };
            let who = if spawner_is_comp {
                c.name.name.as_str()
            } else {
                "peer"
            };
            let spawn = format!("{}.{}", s.port.name, s.msg.name);
            let mut refutations = Vec::new();
            let sigil = |t: &Transition| if t.dir == Direction::In { '?' } else { '!' };
            let init = proto.initial();
            for a in proto.ancestry(init) {
                for t in &proto.states[a].transitions {
                    if sender(t.dir) == spawner {
                        refutations.push(format!(
                            "component {} subport {}: {who} may send {}{} on a new instance (state `{}`) right after `{spawn}`; the two travel on different rings, so the instance's message can arrive first, for an instance its peer has not opened",
                            c.name.name, s.name.name, sigil(t), t.msg.name, proto.states[init].name.name
                        ));
                    }
                }
            }
            for st in &proto.states {
                for t in &st.transitions {
                    let fin = t
                        .target
                        .as_ref()
                        .and_then(|n| proto.state(&n.name))
                        .is_some_and(|x| proto.states[x].is_final);
                    if fin && sender(t.dir) == spawner {
                        refutations.push(format!(
                            "component {} subport {}: an instance ends for {who} when it sends {}{} (state `{}`), and {who} may then reuse its key or open another at once; `{spawn}` travels on another ring than {}{}, so its peer can see the key still open or more than {} instances",
                            c.name.name, s.name.name, sigil(t), t.msg.name, st.name.name, sigil(t), t.msg.name, s.max
                        ));
                    }
                }
            }
            out.push(Outcome {
                title: format!(
                    "component {} subport {} ({} spawned by {spawn})",
                    c.name.name, s.name.name, proto.name.name
                ),
                bounds: format!(
                    "spawn and end of an instance against {}'s states",
                    proto.name.name
                ),
                states: proto.leaves().count(),
                transitions: transitions(proto).count(),
                secs: 0.0,
                refutations,
                inconclusive: Vec::new(),
            });
        }
    }
    out
}

/// Runs every job (several at once), in the order given.
pub fn verify(jobs: &[Job], opts: &Options) -> Result<Vec<Outcome>, String> {
    for tool in ["spin", "gcc"] {
        let found = Command::new(tool)
            .arg(if tool == "spin" { "-V" } else { "--version" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "`{tool}` not found: tingu verify needs Debian's `spin` and `gcc` packages (tools/prereqs.sh installs them)"
            ));
        }
    }
    let base = match &opts.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tingu-verify-{}", std::process::id())),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Outcome, String>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let dir = base.join(format!("{i:02}-{}", slug(&job.title)));
                    let r = run_job(job, opts, &dir);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    if opts.keep.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err("a verification thread died".into()))
        })
        .collect()
}

fn slug(title: &str) -> String {
    title
        .split_whitespace()
        .nth(1)
        .unwrap_or("job")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run_job(job: &Job, opts: &Options, dir: &Path) -> Result<Outcome, String> {
    let start = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (slots, bound) = opts.bounds(job);
    let pml = promela::model(job, slots, bound);
    std::fs::write(dir.join("model.pml"), &pml).map_err(|e| format!("{}: {e}", dir.display()))?;
    let title = &job.title;
    // The printed globals must be the state SPIN matches on: no dataflow
    // optimisation (`-o1`, it resets dead variables) and no hiding of
    // variables no guard reads (`-o2`).
    run(
        Command::new("spin")
            .args(["-o1", "-o2", "-a", "model.pml"])
            .current_dir(dir),
        &format!("{title}: spin -a"),
    )?;
    // Every transition must be explored and printed: no partial-order
    // reduction; breadth-first, so no depth limit cuts the search.
    run(
        Command::new("gcc")
            .args([
                "-O1",
                "-w",
                "-DNOREDUCE",
                "-DSAFETY",
                "-DBFS",
                "-DPRINTF",
                "-DMEMLIM=2048",
                "-o",
                "pan",
                "pan.c",
            ])
            .current_dir(dir),
        &format!("{title}: gcc pan.c"),
    )?;
    let mut child = Command::new("./pan")
        .args(["-w22"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{title}: pan: {e}"))?;
    let stdout = child.stdout.take().ok_or("pan: no output")?;
    let read = Graph::read(
        job,
        BufReader::new(stdout),
        opts.keep.is_some().then(|| dir.join("pan.out")),
        opts.max_states,
    )?;
    let (graph, summary) = match read {
        Read::Done(g, s) => (g, s),
        Read::TooBig => {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome {
                title: job.title.clone(),
                bounds: opts.describe(job),
                states: opts.max_states,
                transitions: 0,
                secs: start.elapsed().as_secs_f64(),
                refutations: Vec::new(),
                inconclusive: vec![format!(
                    "{title}: more than {} states ({}): lower the bounds or raise --max-states",
                    opts.max_states,
                    opts.describe(job)
                )],
            });
        }
    };
    let status = child.wait().map_err(|e| format!("{title}: pan: {e}"))?;
    if !status.success() || !summary.contains("errors: 0") {
        return Err(format!(
            "{title}: SPIN's search did not complete:\n{summary}"
        ));
    }
    let mut outcome = judge(job, &graph, opts);
    outcome.secs = start.elapsed().as_secs_f64();
    Ok(outcome)
}

struct Edge {
    from: u32,
    to: u32,
    kind: u8,
    view: usize,
    code: usize,
    a: i64,
    b: i64,
}

/// The state graph SPIN printed. States are kept as their printed text
/// (for traces) and, for the properties, as a compact summary.
struct Graph {
    states: Vec<Box<str>>,
    summary: Vec<Summary>,
    init: u32,
    edges: Vec<Edge>,
}

/// What the properties need of a state.
struct Summary {
    /// Leaf state of each view.
    leaf: Box<[u8]>,
    /// Bit `c` set: FIFO `c` is empty.
    empty: u64,
    /// A reception was refused.
    err: bool,
}

enum Read {
    Done(Graph, String),
    TooBig,
}

impl Graph {
    fn read(job: &Job, r: impl BufRead, copy: Option<PathBuf>, max: usize) -> Result<Read, String> {
        let mut index: HashMap<Box<str>, u32> = HashMap::new();
        let mut summary = Vec::new();
        let mut edges = Vec::new();
        let mut init = None;
        let mut text = String::new();
        let mut copy = match copy {
            Some(p) => {
                Some(std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
            None => None,
        };
        let mut id = |s: &str, summary: &mut Vec<Summary>| -> u32 {
            if let Some(&i) = index.get(s) {
                return i;
            }
            let i = summary.len() as u32;
            index.insert(s.into(), i);
            summary.push(summarize(job, s));
            i
        };
        for line in r.lines() {
            let line = line.map_err(|e| format!("reading pan's output: {e}"))?;
            if let Some(f) = copy.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
            if let Some(s) = line.strip_prefix("I ") {
                init = Some(id(s, &mut summary));
            } else if let Some(rest) = line.strip_prefix("E ") {
                let mut parts = rest.split(" | ");
                let (Some(pre), Some(ev), Some(post)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("unreadable line from pan: {line}"));
                };
                let ev: Vec<i64> = ev
                    .split_whitespace()
                    .map(|x| {
                        x.parse()
                            .map_err(|_| format!("unreadable event from pan: {line}"))
                    })
                    .collect::<Result<_, _>>()?;
                let [kind, view, code, a, b] = ev[..] else {
                    return Err(format!("unreadable event from pan: {line}"));
                };
                let from = id(pre, &mut summary);
                let to = id(post, &mut summary);
                edges.push(Edge {
                    from,
                    to,
                    kind: kind as u8,
                    view: view as usize,
                    code: code as usize,
                    a,
                    b,
                });
                if summary.len() > max {
                    return Ok(Read::TooBig);
                }
            } else {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let init = init.ok_or_else(|| format!("pan printed no initial state:\n{text}"))?;
        let mut states: Vec<Box<str>> = vec![Box::from(""); summary.len()];
        for (s, i) in index {
            states[i as usize] = s;
        }
        Ok(Read::Done(
            Graph {
                states,
                summary,
                init,
                edges,
            },
            text,
        ))
    }
}

/// The message codes in each FIFO of a printed state.
fn in_flight(job: &Job, s: &str) -> Vec<Vec<usize>> {
    let mut tok = s.split(' ');
    for v in job.views() {
        tok.next();
        for _ in &job.ports[v.port].proto.vars {
            tok.next();
        }
    }
    let mut chans = Vec::new();
    for _ in 0..job.ports.len() * 2 {
        let t = tok.next().unwrap_or("");
        chans.push(
            t.bytes()
                .map(|b| usize::from(b.saturating_sub(b'0')))
                .take_while(|&c| c != 0)
                .collect(),
        );
    }
    chans
}

fn summarize(job: &Job, s: &str) -> Summary {
    let mut tok = s.split(' ');
    let mut leaf = Vec::new();
    for v in job.views() {
        leaf.push(tok.next().and_then(|t| t.parse().ok()).unwrap_or(0));
        for _ in &job.ports[v.port].proto.vars {
            tok.next();
        }
    }
    let mut empty = 0u64;
    for c in 0..job.ports.len() * 2 {
        if tok.next().is_some_and(|t| t.starts_with('0')) {
            empty |= 1 << c;
        }
    }
    let err = tok.next().is_some_and(|t| t != "0");
    Summary {
        leaf: leaf.into(),
        empty,
        err,
    }
}

fn has_final(p: &Protocol) -> bool {
    p.states.iter().any(|s| s.is_final)
}

/// Port `p` has nothing left to do: both sides in final states with
/// nothing in flight; in a protocol without final states, both sides in
/// the same state, not a timeout state, with nothing in flight.
fn at_rest(job: &Job, p: usize, d: &Summary) -> bool {
    let proto = job.ports[p].proto;
    let (a, b) = (usize::from(d.leaf[2 * p]), usize::from(d.leaf[2 * p + 1]));
    if d.empty & (3 << (2 * p)) != 3 << (2 * p) {
        return false;
    }
    if has_final(proto) {
        proto.states[a].is_final && proto.states[b].is_final
    } else {
        a == b && proto.states[a].timeout_ms.is_none()
    }
}

/// Port `p` is over: both sides in final states, nothing in flight.
fn finished(job: &Job, p: usize, d: &Summary) -> bool {
    let proto = job.ports[p].proto;
    d.empty & (3 << (2 * p)) == 3 << (2 * p)
        && proto.states[usize::from(d.leaf[2 * p])].is_final
        && proto.states[usize::from(d.leaf[2 * p + 1])].is_final
}

/// States that reach `goal` (backwards over the edges).
fn coreach(g: &Graph, goal: &[bool]) -> Vec<bool> {
    let n = g.states.len();
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
    for e in &g.edges {
        preds[e.to as usize].push(e.from);
    }
    let mut seen = goal.to_vec();
    let mut queue: VecDeque<u32> = (0..n as u32).filter(|&i| goal[i as usize]).collect();
    while let Some(s) = queue.pop_front() {
        for &p in &preds[s as usize] {
            if !seen[p as usize] {
                seen[p as usize] = true;
                queue.push_back(p);
            }
        }
    }
    seen
}

fn judge(job: &Job, g: &Graph, opts: &Options) -> Outcome {
    let n = g.states.len();
    let decoded = &g.summary;
    // Breadth-first from the initial state: shortest traces.
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in g.edges.iter().enumerate() {
        out_edges[e.from as usize].push(i);
    }
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    seen[g.init as usize] = true;
    let mut queue = VecDeque::from([g.init]);
    while let Some(s) = queue.pop_front() {
        order.push(s);
        for &ei in &out_edges[s as usize] {
            let t = g.edges[ei].to as usize;
            if !seen[t] {
                seen[t] = true;
                parent[t] = Some(ei);
                queue.push_back(t as u32);
            }
        }
    }
    let path = |s: u32| -> Vec<usize> {
        let mut p = Vec::new();
        let mut cur = s as usize;
        while let Some(ei) = parent[cur] {
            p.push(ei);
            cur = g.edges[ei].from as usize;
        }
        p.reverse();
        p
    };
    let bounds = opts.describe(job);
    let (_, bound) = opts.bounds(job);
    let mut refutations = Vec::new();
    let mut inconclusive = Vec::new();

    // 1. Receptions: every refused one, once per (view, message, state, why).
    let mut reported: Vec<(usize, usize, usize, i64)> = Vec::new();
    for &s in &order {
        for &ei in &out_edges[s as usize] {
            let e = &g.edges[ei];
            if e.kind != 2 {
                continue;
            }
            let leaf = usize::from(decoded[e.from as usize].leaf[e.view]);
            let msg = job.ports[job.view_at(e.view).port].packets[e.code - 1].msg;
            let key = (e.view, msg, leaf, e.a);
            if reported.contains(&key) || reported.len() >= 4 {
                continue;
            }
            reported.push(key);
            let mut steps = path(e.from);
            steps.push(ei);
            let v = job.view_at(e.view);
            let proto = job.ports[v.port].proto;
            let state = &proto.states[leaf].name.name;
            let what = match e.a {
                x if x == RecvError::Unexpected as i64 && proto.states[leaf].is_final => {
                    "the protocol has ended (a final state accepts no message)".to_string()
                }
                x if x == RecvError::Unexpected as i64 => {
                    format!("unexpected message (state `{state}` has no transition on it)")
                }
                x if x == RecvError::GuardFailed as i64 => {
                    let guards: Vec<String> = proto
                        .candidates(leaf, job.ports[v.port].packets[e.code - 1].msg)
                        .iter()
                        .filter_map(|t| t.guard.as_ref().map(|g| format!("[{}]", g.text())))
                        .collect();
                    format!("guard failed ({})", guards.join(", "))
                }
                x if x == RecvError::Overflow as i64 => "variable overflow".into(),
                x if x == RecvError::Blocked as i64 => {
                    let d = &job.deps[e.b as usize];
                    let on = job.same_party(v, d.on);
                    let on_state = &job.ports[d.on].proto.states
                        [usize::from(decoded[e.from as usize].leaf[job.view_index(on)])]
                    .name
                    .name;
                    format!(
                        "blocked by dependency {} ({} is in `{on_state}`)",
                        d.text, job.ports[d.on].name
                    )
                }
                _ => {
                    let text = format!(
                        "{}: {} receives {} in state `{state}`: a variable would pass the bound {bound} ({bounds}); raise the bound\n{}",
                        job.title,
                        job.party(v),
                        job.msg_name(v, e.code),
                        render(job, g, &steps)
                    );
                    inconclusive.push(text);
                    continue;
                }
            };
            refutations.push(format!(
                "{}: {} receives {} in state `{state}`: {what}\n{}",
                job.title,
                job.party(v),
                job.msg_name(v, e.code),
                render(job, g, &steps)
            ));
        }
    }

    // 2. Deadlocks: no transition at all (a send the bound forbids is a
    // self-loop, so it does not count), unless every port that can end has
    // ended and the others are at rest (a stopped driver's other ports may
    // stay idle). Without a port that ends, waiting for ever is a deadlock.
    let ending: Vec<usize> = (0..job.ports.len())
        .filter(|&p| has_final(job.ports[p].proto))
        .collect();
    let over = |d: &Summary| {
        !ending.is_empty()
            && (0..job.ports.len()).all(|p| {
                if ending.contains(&p) {
                    finished(job, p, d)
                } else {
                    at_rest(job, p, d)
                }
            })
    };
    let stuck: Vec<bool> = (0..n)
        .map(|s| out_edges[s].is_empty() && !decoded[s].err && !over(&decoded[s]))
        .collect();
    if let Some(&s) = order.iter().find(|&&s| stuck[s as usize]) {
        let d = &decoded[s as usize];
        let states: Vec<String> = job
            .views()
            .map(|v| {
                let proto = job.ports[v.port].proto;
                let port = if job.component.is_some() {
                    format!(" {}", job.ports[v.port].name)
                } else {
                    String::new()
                };
                format!(
                    "{}{port} in `{}`",
                    job.party(v),
                    proto.states[usize::from(d.leaf[job.view_index(v)])]
                        .name
                        .name
                )
            })
            .collect();
        refutations.push(format!(
            "{}: deadlock: every side waits and nothing is in flight ({})\n{}",
            job.title,
            states.join(", "),
            render(job, g, &path(s))
        ));
    }

    // 3. From every state, each port can come to rest. Violations and
    // deadlocks are reported above and count as ends here.
    // A state where the variable bound forbade a send may go on beyond the
    // bound, where this model cannot follow: it counts as coming to rest,
    // so no refutation rests on the variable bound. (A full ring is no such
    // frontier: the receiver can always make room.)
    let frontier: Vec<bool> = (0..n)
        .map(|s| out_edges[s].iter().any(|&e| g.edges[e].kind == 3))
        .collect();
    let ends: Vec<bool> = (0..n)
        .map(|s| decoded[s].err || stuck[s] || frontier[s])
        .collect();
    for p in 0..job.ports.len() {
        let goal: Vec<bool> = (0..n)
            .map(|s| ends[s] || at_rest(job, p, &decoded[s]))
            .collect();
        let can = coreach(g, &goal);
        if let Some(&s) = order.iter().find(|&&s| !can[s as usize]) {
            let proto = job.ports[p].proto;
            let rest = if has_final(proto) {
                "both sides in a final state with nothing in flight"
            } else {
                "both sides in the same state, not a timeout state, with nothing in flight"
            };
            let port = if job.component.is_some() {
                format!("port {} ({}): ", job.ports[p].name, proto.name.name)
            } else {
                String::new()
            };
            refutations.push(format!(
                "{}: {port}from this state it can never come to rest ({rest})\n{}",
                job.title,
                render(job, g, &path(s))
            ));
        }
    }

    // 4. Component jobs: the component's view never stays in a timeout
    // state for good because its dependencies close every way out (a
    // deadlock in that state counts too).
    if job.component.is_some() {
        for v in job.views().filter(|&v| job.is_component_side(v)) {
            let vi = job.view_index(v);
            let proto = job.ports[v.port].proto;
            for t_state in proto
                .leaves()
                .filter(|&l| proto.states[l].timeout_ms.is_some())
            {
                let goal: Vec<bool> = (0..n)
                    .map(|s| {
                        decoded[s].err || frontier[s] || usize::from(decoded[s].leaf[vi]) != t_state
                    })
                    .collect();
                let can = coreach(g, &goal);
                let Some(&s) = order.iter().find(|&&s| !can[s as usize]) else {
                    continue;
                };
                let st = &proto.states[t_state];
                let mut exits = Vec::new();
                let mut rules = Vec::new();
                for a in proto.ancestry(t_state) {
                    for t in &proto.states[a].transitions {
                        let leaves = t.target.as_ref().and_then(|n| proto.state(&n.name));
                        if leaves.is_none_or(|x| x == t_state) {
                            continue;
                        }
                        let Some(mi) = proto.message(&t.msg.name) else {
                            continue;
                        };
                        let sigil = if t.dir == Direction::In { '?' } else { '!' };
                        exits.push(format!("{sigil}{}", t.msg.name));
                        for (_, d) in job.deps_of(v.port, mi) {
                            if !rules.contains(&d.text) {
                                rules.push(d.text.clone());
                            }
                        }
                    }
                }
                let by = if rules.is_empty() {
                    String::new()
                } else {
                    format!("; rules on them: {}", rules.join(", "))
                };
                refutations.push(format!(
                    "{}: {} stays in timeout state `{}` of port {} ({} ms) for good: no way out ({}) can ever be taken{by}\n{}",
                    job.title,
                    job.party(v),
                    st.name.name,
                    job.ports[v.port].name,
                    st.timeout_ms.unwrap_or(0),
                    exits.join(", "),
                    render(job, g, &path(s))
                ));
            }
        }
    }
    let transitions = g.edges.iter().filter(|e| e.kind != 3).count();
    Outcome {
        title: job.title.clone(),
        bounds,
        states: n,
        transitions,
        secs: 0.0,
        refutations,
        inconclusive,
    }
}

/// A trace in Tingu terms: the steps in order, then the sequence each side
/// saw (states and messages), then what is still in flight.
fn render(job: &Job, g: &Graph, steps: &[usize]) -> String {
    let decoded = &g.summary;
    let mut out = String::new();
    let mut seqs: Vec<String> = job
        .views()
        .map(|v| {
            let proto = job.ports[v.port].proto;
            proto.states[proto.initial()].name.name.clone()
        })
        .collect();
    if steps.is_empty() {
        out.push_str("  (in the initial state)\n");
    }
    for (k, &ei) in steps.iter().enumerate() {
        let e = &g.edges[ei];
        let v = job.view_at(e.view);
        let proto = job.ports[v.port].proto;
        let before = usize::from(decoded[e.from as usize].leaf[e.view]);
        let after = usize::from(decoded[e.to as usize].leaf[e.view]);
        let msg = job.msg_name(v, e.code);
        let verb = if e.kind == 0 { "sends" } else { "receives" };
        let change = if e.kind == 2 {
            format!("refused in `{}`", proto.states[before].name.name)
        } else if before == after {
            format!("stays in `{}`", proto.states[after].name.name)
        } else {
            format!(
                "`{}` -> `{}`",
                proto.states[before].name.name, proto.states[after].name.name
            )
        };
        let _ = writeln!(
            out,
            "  {:>3}. {} {verb} {msg}: {change}",
            k + 1,
            job.party(v)
        );
        let arrow = if e.kind == 2 {
            format!(" --{msg}--> REFUSED")
        } else if before == after {
            format!(" ({msg})")
        } else {
            format!(" --{msg}--> {}", proto.states[after].name.name)
        };
        let mut arrow = arrow;
        if job.component.is_some() {
            // The port is in the sequence's label already.
            arrow = arrow.replacen(&format!("{} ", job.ports[v.port].name), "", 1);
        }
        seqs[e.view].push_str(&arrow);
    }
    for v in job.views() {
        let label = if job.component.is_some() {
            format!("{} {}", job.party(v), job.ports[v.port].name)
        } else {
            job.party(v)
        };
        let _ = writeln!(out, "  {label:<14} {}", seqs[job.view_index(v)]);
    }
    let last = steps
        .last()
        .map_or(g.init as usize, |&ei| g.edges[ei].to as usize);
    let chans = in_flight(job, &g.states[last]);
    let mut flight = Vec::new();
    for v in job.views() {
        let (cin, _) = job.channels(v);
        if chans[cin].is_empty() {
            continue;
        }
        // The message that sent the refused one is not in flight any more.
        let sender = View {
            port: v.port,
            side: v.side.other(),
        };
        let prefix = format!("{} ", job.ports[v.port].name);
        let msgs: Vec<String> = chans[cin]
            .iter()
            .map(|&c| {
                let m = job.msg_name(sender, c);
                match m.strip_prefix(&prefix) {
                    Some(rest) if job.component.is_some() => rest.to_string(),
                    _ => m,
                }
            })
            .collect();
        flight.push(format!("to {}: {}", label_of(job, v), msgs.join(" ")));
    }
    if !flight.is_empty() {
        let _ = writeln!(out, "  in flight      {}", flight.join("; "));
    }
    out
}

fn label_of(job: &Job, v: View) -> String {
    if job.component.is_some() {
        format!("{} {}", job.party(v), job.ports[v.port].name)
    } else {
        job.party(v)
    }
}
