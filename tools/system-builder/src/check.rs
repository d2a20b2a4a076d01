//! Second pass: checks that span elements (names, references, overlaps,
//! id spaces, priorities, program images and their symbols) and, when
//! nothing is wrong, assembles the validated `System`.
//!
//! Items that already failed the first pass are skipped quietly, and a
//! failed lookup removes the item from later checks, so one mistake yields
//! one diagnostic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound::Excluded;
use std::path::{Path, PathBuf};

use crate::diag::Diags;
use crate::elf::{self, Elf};
use crate::model::IMPLICIT_TSC_MHZ_SYMBOL;
use crate::model::{
    Board, Channel, ChannelEnd, EmbeddedConfig, IoPort, Irq, IrqKind, Map, MemoryRegion,
    PciAddress, ProgramImage, ProtectionDomain, Recovery, ReservedArea, SetVar, SetVarValue,
    SourcePos, System, reserved_areas,
};
use crate::xml::{
    ChannelDraft, Draft, MAX_RAM_BYTES, PdDraft, RegionDraft, SetVarDraft, SetVarSource, bytes_text,
};

/// The PD name Microkit reserves for its own root task.
const MONITOR_NAME: &str = "monitor";
/// Setvar targets are patched as one 64-bit word.
const WORD_SIZE: u64 = 8;

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn range(r: (u64, u64)) -> String {
    format!("[{:#x}..{:#x})", r.0, r.1)
}

/// Names for a hint, the first few of them: one hint per mistake must not
/// grow with the size of the system.
fn known_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    const SHOWN: usize = 10;
    let mut names = names;
    let list: Vec<&str> = names.by_ref().take(SHOWN).collect();
    let more = names.count();
    if list.is_empty() {
        "none are declared".into()
    } else if more == 0 {
        format!("declared: {}", list.join(", "))
    } else {
        format!("declared: {} and {more} more", list.join(", "))
    }
}

/// Address spans already claimed, disjoint and keyed by start, so that
/// finding one a new span overlaps is a logarithmic lookup and checking N
/// spans costs N log N. A span that overlaps is reported by the caller and
/// not claimed: each clash is reported once, against the lowest claimed
/// span it overlaps.
struct Claimed<T> {
    spans: BTreeMap<u64, (u64, T)>,
}

impl<T: Copy> Claimed<T> {
    fn new() -> Self {
        Claimed {
            spans: BTreeMap::new(),
        }
    }

    fn overlap(&self, span: (u64, u64)) -> Option<((u64, u64), T)> {
        let below = self
            .spans
            .range(..=span.0)
            .next_back()
            .filter(|(_, (end, _))| *end > span.0);
        below
            .or_else(|| {
                self.spans
                    .range((Excluded(span.0), Excluded(span.1)))
                    .next()
            })
            .map(|(&start, &(end, t))| ((start, end), t))
    }

    /// Claims `span` unless it overlaps; returns what it overlaps.
    fn claim(&mut self, span: (u64, u64), t: T) -> Option<((u64, u64), T)> {
        let clash = self.overlap(span);
        if clash.is_none() {
            self.spans.insert(span.0, (span.1, t));
        }
        clash
    }
}

/// Per-PD results the assembly step needs.
#[derive(Default)]
struct PdState {
    /// Resolved maps, by draft index; `None` for a map that failed.
    maps: Vec<Option<Map>>,
    image: Option<(ProgramImage, Elf)>,
    setvars: Vec<SetVar>,
    /// Setvars added by channel ends, which live outside the PD element.
    extra_setvars: Vec<SetVarDraft>,
}

pub(crate) fn check(
    draft: Draft,
    search_paths: &[PathBuf],
    d: &mut Diags,
    file: &str,
    board: Board,
) -> Option<System> {
    let Draft {
        pds,
        regions,
        channels,
    } = draft;

    let pd_index = unique_names(
        d,
        pds.iter().map(|p| (p.name.as_str(), p.name_pos)),
        "protection domain",
        "<protection_domain>",
    );
    let pd_usable: Vec<bool> = pds
        .iter()
        .enumerate()
        .map(|(i, p)| p.ok && pd_index[p.name.as_str()] == i)
        .collect();
    for pd in &pds {
        if pd.name == MONITOR_NAME {
            d.error(
                pd.name_pos,
                "the protection domain name 'monitor' is reserved for the monitor".into(),
                "another name".into(),
            );
        }
    }
    let region_index = unique_names(
        d,
        regions.iter().map(|r| (r.name.as_str(), r.name_pos)),
        "memory region",
        "<memory_region>",
    );
    let region_usable: Vec<bool> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| r.ok && region_index[r.name.as_str()] == i)
        .collect();
    check_ram_total(d, &regions, &region_usable);
    let regions_known = || known_names(regions.iter().map(|r| r.name.as_str()));
    // A reference to a region that exists but is broken is dropped quietly.
    let resolve_region = |d: &mut Diags, name: &str, pos: SourcePos| -> Option<usize> {
        match region_index.get(name) {
            Some(&i) => region_usable[i].then_some(i),
            None => {
                d.error(
                    pos,
                    format!("unknown memory region '{name}'"),
                    format!("the name of a <memory_region> ({})", regions_known()),
                );
                None
            }
        }
    };

    let mut states: Vec<PdState> = pds.iter().map(|_| PdState::default()).collect();

    let channels = check_channels(d, &pds, &pd_index, &pd_usable, &mut states, channels);

    check_phys_overlap(d, &regions, &region_usable);

    for (i, pd) in pds.iter().enumerate() {
        if !pd_usable[i] {
            continue;
        }
        let state = &mut states[i];
        let reserved = reserved_areas(board, pd.stack_size);
        state.maps = check_maps(d, pd, board, &regions, &reserved, |d, name, pos| {
            resolve_region(d, name, pos)
        });
        state.image = load_image(d, pd, board, search_paths, &reserved);
        if let Some((image, _)) = &state.image {
            check_maps_vs_segments(d, pd, &state.maps, &regions, image);
        }
        state.setvars = resolve_setvars(d, pd, state, &regions, &resolve_region);
    }

    check_ids(d, board, &pds, &pd_usable, &channels);
    let channels = channels.into_iter().map(|(c, _)| c).collect();
    check_irqs(d, &pds, &pd_usable);
    check_ioports(d, &pds, &pd_usable);

    let mapped: HashSet<&str> = pds
        .iter()
        .flat_map(|p| p.maps.iter().map(|m| m.mr.as_str()))
        .collect();
    for (i, r) in regions.iter().enumerate() {
        if region_usable[i] && !mapped.contains(r.name.as_str()) {
            d.warning(
                r.name_pos,
                format!(
                    "memory region '{}' is not mapped by any protection domain",
                    r.name
                ),
                format!(
                    "a <map mr=\"{}\" .../> in some protection domain, or no such region",
                    r.name
                ),
            );
        }
    }

    if d.error_count() > 0 {
        return None;
    }
    Some(assemble(file, board, pds, regions, channels, states))
}

/// Resolves the setvars of one PD (its own and those its channel ends add)
/// to values and symbol addresses, in file order.
fn resolve_setvars(
    d: &mut Diags,
    pd: &PdDraft,
    state: &PdState,
    regions: &[RegionDraft],
    resolve_region: &dyn Fn(&mut Diags, &str, SourcePos) -> Option<usize>,
) -> Vec<SetVar> {
    let mut setvar_drafts: Vec<&SetVarDraft> = pd.setvars.iter().collect();
    setvar_drafts.extend(state.extra_setvars.iter());
    setvar_drafts.sort_by_key(|s| s.pos);
    let mut set: HashMap<&str, SourcePos> = HashMap::new();
    let mut resolved = Vec::new();
    for sv in setvar_drafts {
        if let Some(first) = set.get(sv.symbol.as_str()) {
            d.error(
                sv.pos,
                format!(
                    "setvar symbol '{}' is already set at {first} in protection domain '{}'",
                    sv.symbol, pd.name
                ),
                "each symbol set at most once per protection domain".into(),
            );
            continue;
        }
        set.insert(&sv.symbol, sv.pos);
        let value = match &sv.source {
            SetVarSource::MapVaddr { map } => state.maps[*map]
                .as_ref()
                .map(|m| SetVarValue::Vaddr(m.vaddr)),
            SetVarSource::MapSize { map } => state.maps[*map]
                .as_ref()
                .map(|m| SetVarValue::Size(regions[m.mr].size)),
            SetVarSource::RegionPaddr { mr, mr_pos } => {
                resolve_region(d, mr, *mr_pos).map(|mr| SetVarValue::RegionPaddr { mr })
            }
            SetVarSource::Id(id) => Some(SetVarValue::Id(*id)),
            SetVarSource::IoPortAddr(a) => Some(SetVarValue::IoPortAddr(*a)),
        };
        let (Some(value), Some((image, elf))) = (value, &state.image) else {
            continue;
        };
        if let Some(symbol_vaddr) = check_symbol(d, sv, image, elf) {
            resolved.push(SetVar {
                symbol: sv.symbol.clone(),
                symbol_vaddr,
                value,
                pos: sv.pos,
            });
        }
    }
    // Implicit setvars: symbols the runtime defines by name.
    if let Some((image, elf)) = &state.image
        && !set.contains_key(IMPLICIT_TSC_MHZ_SYMBOL)
        && let Some(sym) = elf.symbol(IMPLICIT_TSC_MHZ_SYMBOL)
    {
        if sym.size == WORD_SIZE {
            resolved.push(SetVar {
                symbol: IMPLICIT_TSC_MHZ_SYMBOL.into(),
                symbol_vaddr: sym.value,
                value: SetVarValue::BootInfoTscMhz,
                pos: image.pos,
            });
        } else {
            d.error(
                image.pos,
                format!(
                    "program image '{}' defines '{IMPLICIT_TSC_MHZ_SYMBOL}' with {} bytes; the monitor fills that symbol with a word",
                    image.declared_path, sym.size
                ),
                "an 8-byte variable".into(),
            );
        }
    }
    resolved
}

/// Reports every name after the first use of it; returns name -> first index.
fn unique_names<'a>(
    d: &mut Diags,
    names: impl Iterator<Item = (&'a str, SourcePos)>,
    what: &str,
    element: &str,
) -> HashMap<&'a str, usize> {
    let mut first: HashMap<&str, (usize, SourcePos)> = HashMap::new();
    for (i, (name, pos)) in names.enumerate() {
        if let Some((_, at)) = first.get(name) {
            d.error(
                pos,
                format!("duplicate {what} name '{name}' (first declared at {at})"),
                format!("a unique name for every {element}"),
            );
        } else {
            first.insert(name, (i, pos));
        }
    }
    first.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

fn check_channels(
    d: &mut Diags,
    pds: &[PdDraft],
    pd_index: &HashMap<&str, usize>,
    pd_usable: &[bool],
    states: &mut [PdState],
    channels: Vec<ChannelDraft>,
) -> Vec<(Channel, [SourcePos; 2])> {
    let mut out = Vec::new();
    for ch in channels {
        let mut idx = [0usize; 2];
        let mut resolved = true;
        for (k, end) in ch.ends.iter().enumerate() {
            match pd_index.get(end.pd.as_str()) {
                Some(&i) => {
                    idx[k] = i;
                    resolved &= pd_usable[i];
                }
                None => {
                    d.error(
                        end.pd_pos,
                        format!("channel end names unknown protection domain '{}'", end.pd),
                        format!(
                            "the name of a <protection_domain> ({})",
                            known_names(pds.iter().map(|p| p.name.as_str()))
                        ),
                    );
                    resolved = false;
                }
            }
        }
        if !resolved {
            continue;
        }
        let [a, b] = &ch.ends;
        if idx[0] == idx[1] {
            d.error(
                b.pd_pos,
                format!("both ends of the channel are protection domain '{}'", a.pd),
                "a channel between two different protection domains".into(),
            );
            continue;
        }
        let mut ok = true;
        for (caller, callee, k) in [(a, b, 0), (b, a, 1)] {
            let (pc, pe) = (&pds[idx[k]], &pds[idx[1 - k]]);
            if caller.pp && pe.priority <= pc.priority {
                d.error(
                    caller.pp_pos,
                    format!(
                        "'{}' (priority {}) calls '{}' (priority {}) through pp=\"true\", but a protected procedure call must go to a strictly higher priority",
                        caller.pd, pc.priority, callee.pd, pe.priority
                    ),
                    format!(
                        "'{}' to have a priority above {}",
                        callee.pd, pc.priority
                    ),
                );
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        for (k, end) in ch.ends.iter().enumerate() {
            if let Some((symbol, pos)) = &end.setvar_id {
                states[idx[k]].extra_setvars.push(SetVarDraft {
                    symbol: symbol.clone(),
                    pos: *pos,
                    source: SetVarSource::Id(end.id),
                });
            }
        }
        let end = |k: usize| ChannelEnd {
            pd: idx[k],
            id: ch.ends[k].id,
            pp: ch.ends[k].pp,
            notify: ch.ends[k].notify,
            pos: ch.ends[k].pos,
        };
        out.push((
            Channel {
                ends: [end(0), end(1)],
                pos: ch.pos,
            },
            [a.id_pos, b.id_pos],
        ));
    }
    out
}

fn check_phys_overlap(d: &mut Diags, regions: &[RegionDraft], usable: &[bool]) {
    let mut claimed = Claimed::new();
    for (i, r) in regions.iter().enumerate().filter(|(i, _)| usable[*i]) {
        let Some(pa) = r.phys_addr else { continue };
        let span = (pa, pa + r.size);
        if let Some((o, other)) = claimed.claim(span, i) {
            let other = &regions[other];
            d.error(
                r.phys_pos,
                format!(
                    "memory region '{}' at physical {} overlaps memory region '{}' at physical {} (declared at {})",
                    r.name,
                    range(span),
                    other.name,
                    range(o),
                    other.pos
                ),
                "disjoint physical ranges for regions with phys_addr".into(),
            );
        }
    }
}

/// The regions the monitor allocates from RAM must fit in the RAM the
/// kernel can hand out, together: reported at the region that crosses it.
fn check_ram_total(d: &mut Diags, regions: &[RegionDraft], usable: &[bool]) {
    let mut total: u128 = 0;
    for (r, _) in regions.iter().zip(usable).filter(|(_, u)| **u) {
        if r.phys_addr.is_some() {
            continue;
        }
        let before = total;
        total += u128::from(r.size);
        if before <= u128::from(MAX_RAM_BYTES) && total > u128::from(MAX_RAM_BYTES) {
            let shown =
                u64::try_from(total).map_or_else(|_| format!("{total:#x} bytes"), bytes_text);
            d.error(
                r.pos,
                format!(
                    "with memory region '{}' the regions without phys_addr need {shown} of RAM, more than seL4 5.0.0 on x86_64 can hand out ({}) on any machine",
                    r.name,
                    bytes_text(MAX_RAM_BYTES)
                ),
                format!("at most {MAX_RAM_BYTES:#x} bytes of memory regions without phys_addr in all"),
            );
        }
    }
}

fn describe_reserved(reserved: &[ReservedArea; 4]) -> String {
    reserved
        .iter()
        .map(|a| format!("{} {}", a.what, range((a.start, a.end))))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_maps(
    d: &mut Diags,
    pd: &PdDraft,
    board: Board,
    regions: &[RegionDraft],
    reserved: &[ReservedArea; 4],
    mut resolve: impl FnMut(&mut Diags, &str, SourcePos) -> Option<usize>,
) -> Vec<Option<Map>> {
    let mut out: Vec<Option<Map>> = Vec::new();
    let mut claimed = Claimed::new();
    for m in &pd.maps {
        let Some(mr) = resolve(d, &m.mr, m.mr_pos) else {
            out.push(None);
            continue;
        };
        let region = &regions[mr];
        let page = region.page_size.bytes();
        if m.vaddr % page != 0 {
            d.error(
                m.vaddr_pos,
                format!(
                    "map of '{}' at vaddr {:#x} is not aligned to the region's page size {page:#x}",
                    m.mr, m.vaddr
                ),
                format!("a vaddr that is a multiple of {page:#x}"),
            );
        }
        let limit = board.layout().user_vaddr_limit;
        let span = match m.vaddr.checked_add(region.size) {
            Some(end) if end <= limit => (m.vaddr, end),
            _ => {
                d.error(
                    m.vaddr_pos,
                    format!(
                        "map of '{}' at vaddr {:#x} (size {:#x}) reaches past the end of user address space {limit:#x}",
                        m.mr, m.vaddr, region.size
                    ),
                    format!("vaddr + size <= {limit:#x}"),
                );
                out.push(None);
                continue;
            }
        };
        if let Some((o_span, other)) = claimed.claim(span, out.len()) {
            let other = out[other].as_ref().expect("only resolved maps claim");
            d.error(
                m.pos,
                format!(
                    "map of '{}' {} overlaps the map of '{}' {} at {} in protection domain '{}'",
                    m.mr,
                    range(span),
                    regions[other.mr].name,
                    range(o_span),
                    other.pos,
                    pd.name
                ),
                "the maps of one protection domain at disjoint virtual ranges".into(),
            );
        }
        if let Some(area) = reserved.iter().find(|a| overlaps(span, (a.start, a.end))) {
            d.error(
                m.pos,
                format!(
                    "map of '{}' {} overlaps the {} {} that the monitor reserves in every protection domain",
                    m.mr,
                    range(span),
                    area.what,
                    range((area.start, area.end))
                ),
                format!("maps outside the reserved areas ({})", describe_reserved(reserved)),
            );
        }
        // A misaligned map still claims its span for the checks of later
        // maps (an overlapping one does not: its clash is reported once);
        // their errors keep the system from assembling.
        out.push(Some(Map {
            mr,
            vaddr: m.vaddr,
            perms: m.perms,
            cached: m.cached,
            pos: m.pos,
        }));
    }
    out
}

fn find_image(path: &str, search_paths: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    search_paths
        .iter()
        .map(|dir| dir.join(p))
        .find(|c| c.is_file())
}

fn load_image(
    d: &mut Diags,
    pd: &PdDraft,
    board: Board,
    search_paths: &[PathBuf],
    reserved: &[ReservedArea; 4],
) -> Option<(ProgramImage, Elf)> {
    let img = pd.image.as_ref()?;
    let Some(path) = find_image(&img.path, search_paths) else {
        let dirs: Vec<String> = search_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        d.error(
            img.path_pos,
            format!(
                "program image '{}' of protection domain '{}' was not found (searched: {})",
                img.path,
                pd.name,
                if dirs.is_empty() {
                    "no search directories given".to_string()
                } else {
                    dirs.join(", ")
                }
            ),
            "the path of an existing ELF file, relative to one of the search directories".into(),
        );
        return None;
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            d.error(
                img.path_pos,
                format!("program image '{}' cannot be read: {e}", path.display()),
                "a readable ELF file".into(),
            );
            return None;
        }
    };
    let elf = match elf::parse_for(&bytes, elf::Machine::of(board)) {
        Ok(elf) => elf,
        Err(p) => {
            d.error(
                img.path_pos,
                format!("program image '{}' {}", path.display(), p.what),
                p.expected,
            );
            return None;
        }
    };
    // One report per image is enough: a misplaced image usually has all of
    // its segments in the wrong place.
    let limit = board.layout().user_vaddr_limit;
    for seg in &elf.segments {
        let span = seg.page_range();
        if span.1 > limit {
            d.error(
                img.path_pos,
                format!(
                    "program image '{}' has a loadable segment {} beyond the user address space limit {limit:#x}",
                    img.path,
                    range(span)
                ),
                format!("segments below {limit:#x}"),
            );
            return None;
        } else if let Some(area) = reserved.iter().find(|a| overlaps(span, (a.start, a.end))) {
            d.error(
                img.path_pos,
                format!(
                    "program image '{}' has a loadable segment {} ({}) that overlaps the {} {} of protection domain '{}'",
                    img.path,
                    range(span),
                    seg.perms,
                    area.what,
                    range((area.start, area.end)),
                    pd.name
                ),
                format!("segments outside the reserved areas ({})", describe_reserved(reserved)),
            );
            return None;
        }
    }
    let embedded = embedded_config(&elf, &bytes);
    let image = ProgramImage {
        declared_path: img.path.clone(),
        path,
        entry: elf.entry,
        segments: elf.segments.clone(),
        embedded,
        pos: img.path_pos,
    };
    Some((image, elf))
}

/// The manifest and config block of a program built with a `pd.toml`: the
/// two symbols its generated config defines, the manifest read from the
/// file bytes of the segment that holds it.
fn embedded_config(elf: &Elf, bytes: &[u8]) -> Option<EmbeddedConfig> {
    let manifest = elf.symbol(pd_manifest::codegen::MANIFEST_SYMBOL)?;
    let block = elf.symbol(pd_manifest::codegen::CONFIG_SYMBOL)?;
    let seg = elf.segments.iter().find(|s| {
        s.vaddr <= manifest.value && manifest.value + manifest.size <= s.vaddr + s.filesz
    })?;
    let start = usize::try_from(seg.offset + (manifest.value - seg.vaddr)).ok()?;
    let end = start.checked_add(usize::try_from(manifest.size).ok()?)?;
    Some(EmbeddedConfig {
        manifest: bytes.get(start..end)?.to_vec(),
        block_vaddr: block.value,
        block_size: block.size,
    })
}

fn check_maps_vs_segments(
    d: &mut Diags,
    pd: &PdDraft,
    maps: &[Option<Map>],
    regions: &[RegionDraft],
    image: &ProgramImage,
) {
    for m in maps.iter().flatten() {
        let span = (m.vaddr, m.vaddr + regions[m.mr].size);
        if let Some(seg) = image
            .segments
            .iter()
            .find(|s| overlaps(span, s.page_range()))
        {
            d.error(
                m.pos,
                format!(
                    "map of '{}' {} overlaps the loadable segment {} ({}) of program image '{}' in protection domain '{}'",
                    regions[m.mr].name,
                    range(span),
                    range(seg.page_range()),
                    seg.perms,
                    image.declared_path,
                    pd.name
                ),
                "maps outside the pages of the program image's segments".into(),
            );
        }
    }
}

/// Checks that the setvar's symbol is an 8-byte variable inside a loaded
/// segment; returns its address.
fn check_symbol(d: &mut Diags, sv: &SetVarDraft, image: &ProgramImage, elf: &Elf) -> Option<u64> {
    let Some(sym) = elf.symbol(&sv.symbol) else {
        let why = if elf.has_symtab {
            String::new()
        } else {
            " (it has no symbol table; was it stripped?)".into()
        };
        d.error(
            sv.pos,
            format!(
                "setvar symbol '{}' is not defined in program image '{}'{why}",
                sv.symbol, image.declared_path
            ),
            format!(
                "a word-sized (8-byte) global variable named '{}' in the program",
                sv.symbol
            ),
        );
        return None;
    };
    if sym.size != WORD_SIZE {
        d.error(
            sv.pos,
            format!(
                "setvar symbol '{}' in program image '{}' is {} bytes, not word-sized",
                sv.symbol, image.declared_path, sym.size
            ),
            "an 8-byte variable (for example uintptr_t or u64)".into(),
        );
        return None;
    }
    let inside = image
        .segments
        .iter()
        .any(|s| sym.value >= s.vaddr && sym.value.saturating_add(WORD_SIZE) <= s.vaddr + s.memsz);
    if !inside {
        d.error(
            sv.pos,
            format!(
                "setvar symbol '{}' at {:#x} lies outside every loadable segment of program image '{}'",
                sv.symbol, sym.value, image.declared_path
            ),
            "a variable in the program's data or bss".into(),
        );
        return None;
    }
    Some(sym.value)
}

/// Channel ids and irq ids share one id space per PD.
fn check_ids(
    d: &mut Diags,
    board: Board,
    pds: &[PdDraft],
    usable: &[bool],
    channels: &[(Channel, [SourcePos; 2])],
) {
    // (position of the id attribute, pd, id, description)
    let mut uses: Vec<(SourcePos, usize, u64, String)> = Vec::new();
    for (i, pd) in pds.iter().enumerate().filter(|(i, _)| usable[*i]) {
        for (irq, id_pos) in &pd.irqs {
            uses.push((*id_pos, i, irq.id, "an irq".into()));
        }
    }
    for (ch, id_pos) in channels {
        for (k, end) in ch.ends.iter().enumerate() {
            let peer = &pds[ch.ends[1 - k].pd].name;
            uses.push((
                id_pos[k],
                end.pd,
                end.id,
                format!("the channel to '{peer}'"),
            ));
        }
    }
    uses.sort_by_key(|u| u.0);
    let mut first: HashMap<(usize, u64), (SourcePos, String)> = HashMap::new();
    for (pos, pd, id, what) in uses {
        if let Some((at, by)) = first.get(&(pd, id)) {
            d.error(
                pos,
                format!(
                    "id {id} is already used in protection domain '{}' by {by} at {at}",
                    pds[pd].name
                ),
                format!(
                    "ids unique within a protection domain across its channels and irqs (0..={})",
                    board.layout().max_channel_id
                ),
            );
        } else {
            first.insert((pd, id), (pos, what));
        }
    }
}

fn pd_irqs<'a>(pds: &'a [PdDraft], usable: &'a [bool]) -> Vec<(&'a str, &'a Irq)> {
    let mut all: Vec<(&str, &Irq)> = pds
        .iter()
        .zip(usable)
        .filter(|(_, u)| **u)
        .flat_map(|(pd, _)| pd.irqs.iter().map(move |(irq, _)| (pd.name.as_str(), irq)))
        .collect();
    all.sort_by_key(|(_, irq)| irq.pos);
    all
}

fn check_irqs(d: &mut Diags, pds: &[PdDraft], usable: &[bool]) {
    // The first irq (in file order) to claim each vector, pin and handle.
    let mut vectors: HashMap<u64, (&str, &Irq)> = HashMap::new();
    let mut pins: HashMap<(u64, u64), (&str, &Irq)> = HashMap::new();
    let mut handles: HashMap<(PciAddress, u64), (&str, &Irq)> = HashMap::new();
    let mut gics: HashMap<u64, (&str, &Irq)> = HashMap::new();
    for (pd, irq) in pd_irqs(pds, usable) {
        let vector = irq.vector();
        // GIC interrupts have no vector (all 0); their IDs are checked below.
        let gic = matches!(irq.kind, IrqKind::Gic { .. });
        if let Some((other_pd, other)) = vectors.get(&vector).filter(|_| !gic) {
            d.error(
                irq.pos,
                format!(
                    "irq vector {vector} of protection domain '{pd}' is already used by the irq of '{other_pd}' at {}",
                    other.pos
                ),
                "a distinct vector for every irq in the system".into(),
            );
        } else {
            vectors.insert(vector, (pd, irq));
        }
        match irq.kind {
            IrqKind::Ioapic { ioapic, pin, .. } => {
                if let Some((other_pd, other)) = pins.get(&(ioapic, pin)) {
                    d.error(
                        irq.pos,
                        format!(
                            "IOAPIC {ioapic} pin {pin} of protection domain '{pd}' is already used by the irq of '{other_pd}' at {}",
                            other.pos
                        ),
                        "each IOAPIC pin claimed by one irq only".into(),
                    );
                } else {
                    pins.insert((ioapic, pin), (pd, irq));
                }
            }
            IrqKind::Gic { irq: n } => {
                if let Some((other_pd, other)) = gics.get(&n) {
                    d.error(
                        irq.pos,
                        format!(
                            "GIC interrupt {n} of protection domain '{pd}' is already used by the irq of '{other_pd}' at {}",
                            other.pos
                        ),
                        "each GIC interrupt claimed by one irq only".into(),
                    );
                } else {
                    gics.insert(n, (pd, irq));
                }
            }
            IrqKind::Msi { pci, handle, .. } => {
                if let Some((other_pd, other)) = handles.get(&(pci, handle)) {
                    d.error(
                        irq.pos,
                        format!(
                            "MSI handle {handle} of PCI device {pci} in protection domain '{pd}' is already used by the irq of '{other_pd}' at {}",
                            other.pos
                        ),
                        "each PCI device MSI handle claimed by one irq only".into(),
                    );
                } else {
                    handles.insert((pci, handle), (pd, irq));
                }
            }
        }
    }
}

fn check_ioports(d: &mut Diags, pds: &[PdDraft], usable: &[bool]) {
    let mut all: Vec<(usize, &IoPort, SourcePos)> = pds
        .iter()
        .enumerate()
        .filter(|(i, _)| usable[*i])
        .flat_map(|(i, pd)| pd.ioports.iter().map(move |(p, id_pos)| (i, p, *id_pos)))
        .collect();
    all.sort_by_key(|(_, p, _)| p.pos);
    let mut ids: HashMap<(usize, u64), &IoPort> = HashMap::new();
    let mut claimed = Claimed::new();
    for (pd, port, id_pos) in &all {
        let span = (port.addr, port.addr + port.size);
        if let Some(other) = ids.get(&(*pd, port.id)) {
            d.error(
                *id_pos,
                format!(
                    "ioport id {} is already used in protection domain '{}' by the ioport at {}",
                    port.id, pds[*pd].name, other.pos
                ),
                "ioport ids unique within a protection domain".into(),
            );
        } else {
            ids.insert((*pd, port.id), port);
        }
        if let Some((o_span, (other_pd, other))) = claimed.claim(span, (*pd, *port)) {
            d.error(
                port.pos,
                format!(
                    "I/O ports {} of protection domain '{}' overlap the I/O ports {} of '{}' at {}",
                    range(span),
                    pds[*pd].name,
                    range(o_span),
                    pds[other_pd].name,
                    other.pos
                ),
                "disjoint I/O port ranges across the whole system".into(),
            );
        }
    }
}

fn assemble(
    file: &str,
    board: Board,
    pds: Vec<PdDraft>,
    regions: Vec<RegionDraft>,
    channels: Vec<Channel>,
    states: Vec<PdState>,
) -> System {
    let protection_domains = pds
        .into_iter()
        .zip(states)
        .map(|(pd, state)| {
            let (program_image, _) = state.image.expect("no errors, so every image loaded");
            ProtectionDomain {
                name: pd.name,
                board,
                priority: pd.priority,
                stack_size: pd.stack_size,
                budget_us: pd.budget_us,
                period_us: pd.period_us,
                program_image,
                maps: state
                    .maps
                    .into_iter()
                    .map(|m| m.expect("no errors, so every map resolved"))
                    .collect(),
                irqs: pd.irqs.into_iter().map(|(irq, _)| irq).collect(),
                ioports: pd.ioports.into_iter().map(|(p, _)| p).collect(),
                setvars: state.setvars,
                config: None,
                recovery: Recovery::default(),
                pci: Vec::new(),
                pos: pd.pos,
            }
        })
        .collect();
    let memory_regions = regions
        .into_iter()
        .map(|r| MemoryRegion {
            name: r.name,
            size: r.size,
            page_size: r.page_size,
            phys_addr: r.phys_addr,
            pos: r.pos,
        })
        .collect();
    System {
        file: file.to_string(),
        board,
        protection_domains,
        memory_regions,
        channels,
        tick: None,
    }
}
