//! A small reader for the kind of ELF a PD may be: a statically linked
//! executable for the board's machine, an x86_64 ELF64 or a 32-bit ARM
//! ELF32 one. It extracts the entry point, the loadable segments and the
//! symbol table, and rejects everything else with a reason. Every offset
//! read from the file is bounds-checked, so a truncated or hostile file
//! gives an error rather than a panic.

use std::collections::HashMap;

use crate::model::{Board, Perms, Segment};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
pub(crate) const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
pub(crate) const PT_PHDR: u32 = 6;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
pub(crate) const PF_R: u32 = 4;
const SHT_SYMTAB: u32 = 2;
const SHN_UNDEF: u16 = 0;
const STB_GLOBAL: u8 = 1;

/// The machine a board's programs are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Machine {
    X86_64,
    Arm,
}

impl Machine {
    pub(crate) fn of(board: Board) -> Machine {
        if board.is_arm() {
            Machine::Arm
        } else {
            Machine::X86_64
        }
    }
    fn number(self) -> u16 {
        match self {
            Machine::X86_64 => EM_X86_64,
            Machine::Arm => EM_ARM,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64",
            Machine::Arm => "32-bit ARM",
        }
    }
    fn class(self) -> Class {
        match self {
            Machine::X86_64 => Class::Elf64,
            Machine::Arm => Class::Elf32,
        }
    }
    fn expected(self) -> String {
        let class = match self.class() {
            Class::Elf32 => "ELF32",
            Class::Elf64 => "ELF64",
        };
        format!(
            "a statically linked, non-PIE {} {class} executable (ELF type EXEC)",
            self.name()
        )
    }
}

/// Where the fields of the headers are: ELF32 and ELF64 differ in word
/// width and, for program headers and symbols, in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Elf32,
    Elf64,
}

impl Class {
    const fn ehdr_size(self) -> usize {
        match self {
            Class::Elf32 => 52,
            Class::Elf64 => 64,
        }
    }
    const fn phdr_size(self) -> usize {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        }
    }
    const fn shdr_size(self) -> usize {
        match self {
            Class::Elf32 => 40,
            Class::Elf64 => 64,
        }
    }
    const fn sym_size(self) -> usize {
        match self {
            Class::Elf32 => 16,
            Class::Elf64 => 24,
        }
    }
    /// File offset of e_phoff, and its width.
    pub(crate) const fn e_phoff(self) -> (usize, usize) {
        match self {
            Class::Elf32 => (28, 4),
            Class::Elf64 => (32, 8),
        }
    }
    /// File offset of e_phnum (two bytes).
    pub(crate) const fn e_phnum(self) -> usize {
        match self {
            Class::Elf32 => 44,
            Class::Elf64 => 56,
        }
    }
    /// A word-wide field of the file at `off`.
    fn word(self, b: &Bytes, off: u64) -> Option<u64> {
        match self {
            Class::Elf32 => b.u32(off).map(u64::from),
            Class::Elf64 => b.u64(off),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol {
    pub value: u64,
    pub size: u64,
}

/// A program header of any type, as stored in the file, so that the image
/// packer can write the table out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgramHeader {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl ProgramHeader {
    /// The header in the file format of `class` (fields wider than an
    /// ELF32 word are truncated; the packer only writes values that fit).
    pub(crate) fn to_bytes(self, class: Class) -> Vec<u8> {
        let mut b = Vec::with_capacity(class.phdr_size());
        b.extend_from_slice(&self.p_type.to_le_bytes());
        match class {
            Class::Elf64 => {
                b.extend_from_slice(&self.flags.to_le_bytes());
                for w in [
                    self.offset,
                    self.vaddr,
                    self.paddr,
                    self.filesz,
                    self.memsz,
                    self.align,
                ] {
                    b.extend_from_slice(&w.to_le_bytes());
                }
            }
            Class::Elf32 => {
                for w in [self.offset, self.vaddr, self.paddr, self.filesz, self.memsz] {
                    b.extend_from_slice(&(w as u32).to_le_bytes());
                }
                b.extend_from_slice(&self.flags.to_le_bytes());
                b.extend_from_slice(&(self.align as u32).to_le_bytes());
            }
        }
        b
    }
}

#[derive(Debug)]
pub(crate) struct Elf {
    pub class: Class,
    pub entry: u64,
    /// Loadable segments that occupy memory.
    pub segments: Vec<Segment>,
    /// Every program header, in file order.
    pub program_headers: Vec<ProgramHeader>,
    /// Defined symbols by name; a global definition wins over locals of the
    /// same name.
    symbols: HashMap<String, (Symbol, bool)>,
    pub has_symtab: bool,
}

impl Elf {
    pub(crate) fn symbol(&self, name: &str) -> Option<Symbol> {
        self.symbols.get(name).map(|&(s, _)| s)
    }
}

/// Why a file is not a usable program image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfProblem {
    /// Completes "program image '<path>' ...".
    pub what: String,
    pub expected: String,
}

/// Bounds-checked little-endian field reads.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn slice(&self, off: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.0.get(start..end)
    }

    fn u8(&self, off: u64) -> Option<u8> {
        self.slice(off, 1).map(|b| b[0])
    }

    fn u16(&self, off: u64) -> Option<u16> {
        self.slice(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, off: u64) -> Option<u32> {
        self.slice(off, 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&self, off: u64) -> Option<u64> {
        self.slice(off, 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// A program for `machine`.
pub(crate) fn parse_for(data: &[u8], machine: Machine) -> Result<Elf, ElfProblem> {
    let problem = |what: String| ElfProblem {
        what,
        expected: machine.expected(),
    };
    let truncated = |part: &str| {
        problem(format!(
            "is truncated or malformed: its {part} lie outside the file"
        ))
    };
    let b = Bytes(data);
    let class = machine.class();
    if !data.starts_with(ELF_MAGIC) {
        return Err(problem(
            "is not an ELF file (it does not start with the ELF magic bytes 7f 45 4c 46)".into(),
        ));
    }
    if data.len() < 6 {
        return Err(problem("is too short to hold an ELF header".into()));
    }
    match (data[4], class) {
        (ELFCLASS64, Class::Elf64) | (ELFCLASS32, Class::Elf32) => {}
        (ELFCLASS32, Class::Elf64) => return Err(problem("is a 32-bit ELF file".into())),
        (ELFCLASS64, Class::Elf32) => return Err(problem("is a 64-bit ELF file".into())),
        (other, _) => return Err(problem(format!("has ELF class {other}"))),
    }
    if data.len() < class.ehdr_size() {
        return Err(problem("is too short to hold an ELF header".into()));
    }
    if data[5] != ELFDATA2LSB {
        return Err(problem("is a big-endian ELF file".into()));
    }
    let header = |off| b.u16(off).expect("inside the header");
    let word = |off| class.word(&b, off).expect("inside the header");
    let found = header(18);
    if found != machine.number() {
        return Err(problem(format!(
            "is an ELF file for machine {found}, not {} ({})",
            machine.name(),
            machine.number()
        )));
    }
    match header(16) {
        ET_EXEC => {}
        ET_DYN => {
            return Err(problem(
                "is a position-independent executable or shared object (ELF type DYN)".into(),
            ));
        }
        ET_REL => {
            return Err(problem(
                "is a relocatable object file (ELF type REL), not a linked executable".into(),
            ));
        }
        other => return Err(problem(format!("has ELF type {other}, not EXEC"))),
    }
    // The fields after e_entry sit one word further on in ELF64.
    let (entry, phoff, shoff, rest) = match class {
        Class::Elf32 => (word(24), word(28), word(32), 42),
        Class::Elf64 => (word(24), word(32), word(40), 54),
    };
    let phentsize = header(rest);
    let phnum = header(rest + 2);
    let shentsize = header(rest + 4);
    let shnum = header(rest + 6);

    let phdr_size = class.phdr_size();
    if phnum > 0 && usize::from(phentsize) != phdr_size {
        return Err(problem(format!(
            "has program headers of {phentsize} bytes instead of {phdr_size}"
        )));
    }
    let mut segments = Vec::new();
    let mut program_headers = Vec::new();
    for i in 0..u64::from(phnum) {
        let ph = phoff
            .checked_add(i * phdr_size as u64)
            .ok_or_else(|| truncated("program headers"))?;
        let ph = b
            .slice(ph, phdr_size as u64)
            .ok_or_else(|| truncated("program headers"))?;
        let ph = Bytes(ph);
        let field = |off| class.word(&ph, off).expect("inside the program header");
        let small = |off| ph.u32(off).expect("inside the program header");
        let p_type = small(0);
        if p_type == PT_INTERP {
            return Err(problem(
                "is dynamically linked (it names a program interpreter)".into(),
            ));
        }
        let header = match class {
            Class::Elf64 => ProgramHeader {
                p_type,
                flags: small(4),
                offset: field(8),
                vaddr: field(16),
                paddr: field(24),
                filesz: field(32),
                memsz: field(40),
                align: field(48),
            },
            Class::Elf32 => ProgramHeader {
                p_type,
                offset: field(4),
                vaddr: field(8),
                paddr: field(12),
                filesz: field(16),
                memsz: field(20),
                flags: small(24),
                align: field(28),
            },
        };
        program_headers.push(header);
        let ProgramHeader {
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
            ..
        } = header;
        if p_type != PT_LOAD {
            continue;
        }
        if filesz > memsz {
            return Err(problem(format!(
                "has a loadable segment at {vaddr:#x} whose file size {filesz:#x} exceeds its memory size {memsz:#x}"
            )));
        }
        if b.slice(offset, filesz).is_none() {
            return Err(truncated(&format!("segment bytes (at {vaddr:#x})")));
        }
        if vaddr.checked_add(memsz).is_none() {
            return Err(problem(format!(
                "has a loadable segment at {vaddr:#x} that wraps around the address space"
            )));
        }
        if memsz == 0 {
            continue;
        }
        segments.push(Segment {
            vaddr,
            memsz,
            filesz,
            offset,
            perms: Perms::new(flags & PF_R != 0, flags & PF_W != 0, flags & PF_X != 0),
        });
    }
    if segments.is_empty() {
        return Err(problem("has no loadable segments".into()));
    }
    if !segments
        .iter()
        .any(|s| s.perms.execute && (s.vaddr..s.vaddr + s.memsz).contains(&entry))
    {
        return Err(problem(format!(
            "has its entry point {entry:#x} outside every executable loadable segment"
        )));
    }

    let mut elf = Elf {
        class,
        entry,
        segments,
        program_headers,
        symbols: HashMap::new(),
        has_symtab: false,
    };
    if shoff != 0 && shnum > 0 {
        let shdr_size = class.shdr_size();
        if usize::from(shentsize) != shdr_size {
            return Err(problem(format!(
                "has section headers of {shentsize} bytes instead of {shdr_size}"
            )));
        }
        read_symbols(&b, shoff, shnum, &mut elf).map_err(|what| problem(what.into()))?;
    }
    Ok(elf)
}

fn read_symbols(b: &Bytes, shoff: u64, shnum: u16, elf: &mut Elf) -> Result<(), &'static str> {
    const TRUNCATED: &str = "is truncated or malformed: its symbols lie outside the file";
    let class = elf.class;
    let shdr_size = class.shdr_size() as u64;
    let section = |i: u64| -> Result<Bytes, &'static str> {
        let off = shoff
            .checked_add(i * shdr_size)
            .ok_or("is truncated or malformed: its section headers lie outside the file")?;
        b.slice(off, shdr_size)
            .map(Bytes)
            .ok_or("is truncated or malformed: its section headers lie outside the file")
    };
    // (offset, size, link) of a section header.
    let place = |sh: &Bytes| -> (u64, u64, u64) {
        match class {
            Class::Elf64 => (
                sh.u64(24).unwrap_or(0),
                sh.u64(32).unwrap_or(0),
                u64::from(sh.u32(40).unwrap_or(0)),
            ),
            Class::Elf32 => (
                u64::from(sh.u32(16).unwrap_or(0)),
                u64::from(sh.u32(20).unwrap_or(0)),
                u64::from(sh.u32(24).unwrap_or(0)),
            ),
        }
    };
    for i in 0..u64::from(shnum) {
        let sh = section(i)?;
        if sh.u32(4) != Some(SHT_SYMTAB) {
            continue;
        }
        elf.has_symtab = true;
        let (sym_off, sym_size, link) = place(&sh);
        if link >= u64::from(shnum) {
            return Err("has a symbol table linked to a missing string table");
        }
        let (str_off, str_size, _) = place(&section(link)?);
        let strings = b
            .slice(str_off, str_size)
            .ok_or("is truncated or malformed: its symbol names lie outside the file")?;
        let syms = b.slice(sym_off, sym_size).ok_or(TRUNCATED)?;
        for raw in syms.chunks_exact(class.sym_size()) {
            let s = Bytes(raw);
            // (name, value, size, info, shndx)
            let (name_off, value, size, info, shndx) = match class {
                Class::Elf64 => (s.u32(0), s.u64(8), s.u64(16), s.u8(4), s.u16(6)),
                Class::Elf32 => (
                    s.u32(0),
                    s.u32(4).map(u64::from),
                    s.u32(8).map(u64::from),
                    s.u8(12),
                    s.u16(14),
                ),
            };
            let inside = "inside the symbol";
            if shndx.expect(inside) == SHN_UNDEF {
                continue;
            }
            let name_off = name_off.expect(inside) as usize;
            let Some(name) = strings
                .get(name_off..)
                .and_then(|rest| rest.split(|&c| c == 0).next())
                .and_then(|n| std::str::from_utf8(n).ok())
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let global = info.expect(inside) >> 4 == STB_GLOBAL;
            let sym = Symbol {
                value: value.expect(inside),
                size: size.expect(inside),
            };
            match elf.symbols.get(name) {
                Some(&(_, true)) => {}
                Some(&(_, false)) if !global => {}
                _ => {
                    elf.symbols.insert(name.to_string(), (sym, global));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz)
    type Phdr = (u32, u32, u64, u64, u64, u64);

    const TEXT: Phdr = (PT_LOAD, PF_R | PF_X, 0x1000, 0x40_1000, 0x800, 0x1000);

    /// A minimal little-endian ELF64 x86_64 executable of 0x2000 bytes,
    /// without sections.
    fn image(entry: u64, phdrs: &[Phdr]) -> Vec<u8> {
        let mut b = vec![0u8; 0x2000];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[6] = 1;
        b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        b[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, &(ty, flags, off, vaddr, filesz, memsz)) in phdrs.iter().enumerate() {
            let p = EHDR_SIZE + i * PHDR_SIZE;
            b[p..p + 4].copy_from_slice(&ty.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            for (k, v) in [off, vaddr, vaddr, filesz, memsz, 0x1000]
                .iter()
                .enumerate()
            {
                b[p + 8 + 8 * k..p + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    const EHDR_SIZE: usize = 64;
    const PHDR_SIZE: usize = 56;

    fn parse(data: &[u8]) -> Result<Elf, ElfProblem> {
        parse_for(data, Machine::X86_64)
    }

    fn why(bytes: &[u8]) -> String {
        parse(bytes).expect_err("should be rejected").what
    }

    #[test]
    fn minimal_executable_gives_entry_and_segments() {
        let data: Phdr = (PT_LOAD, PF_R | PF_W, 0x1800, 0x40_2000, 0x10, 0x3000);
        let elf = parse(&image(0x40_1010, &[TEXT, data])).unwrap();
        assert_eq!(elf.entry, 0x40_1010);
        assert_eq!(
            elf.segments,
            [
                Segment {
                    vaddr: 0x40_1000,
                    memsz: 0x1000,
                    filesz: 0x800,
                    offset: 0x1000,
                    perms: Perms::new(true, false, true),
                },
                Segment {
                    vaddr: 0x40_2000,
                    memsz: 0x3000,
                    filesz: 0x10,
                    offset: 0x1800,
                    perms: Perms::new(true, true, false),
                },
            ]
        );
        assert!(!elf.has_symtab);
        assert_eq!(elf.symbol("anything"), None);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        // The segment's file bytes run to the very end of the image, so
        // every shorter prefix lacks something.
        let seg: Phdr = (PT_LOAD, PF_R | PF_X, 0x1000, 0x40_1000, 0x1000, 0x1000);
        let full = image(0x40_1000, &[seg]);
        assert!(parse(&full).is_ok());
        for len in 0..full.len() {
            assert!(parse(&full[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn wrong_kinds_of_elf_are_named() {
        let good = image(0x40_1000, &[TEXT]);
        let with = |off: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[off..off + bytes.len()].copy_from_slice(bytes);
            b
        };
        assert_eq!(why(&with(5, &[2])), "is a big-endian ELF file");
        assert_eq!(
            why(&with(18, &40u16.to_le_bytes())),
            "is an ELF file for machine 40, not x86_64 (62)"
        );
        assert_eq!(
            why(&with(16, &ET_REL.to_le_bytes())),
            "is a relocatable object file (ELF type REL), not a linked executable"
        );
        assert_eq!(why(&good[..40]), "is too short to hold an ELF header");
    }

    #[test]
    fn unusable_segments_are_named() {
        let interp: Phdr = (PT_INTERP, PF_R, 0x100, 0x40_0100, 0x10, 0x10);
        assert_eq!(
            why(&image(0x40_1000, &[interp, TEXT])),
            "is dynamically linked (it names a program interpreter)"
        );
        let fat: Phdr = (PT_LOAD, PF_R, 0x1000, 0x40_1000, 0x2000, 0x1000);
        assert_eq!(
            why(&image(0x40_1000, &[fat])),
            "has a loadable segment at 0x401000 whose file size 0x2000 exceeds its memory size 0x1000"
        );
        assert_eq!(
            why(&image(0x40_3000, &[TEXT])),
            "has its entry point 0x403000 outside every executable loadable segment"
        );
        let data_only: Phdr = (PT_LOAD, PF_R | PF_W, 0x1000, 0x40_1000, 0x10, 0x1000);
        assert_eq!(
            why(&image(0x40_1000, &[data_only])),
            "has its entry point 0x401000 outside every executable loadable segment"
        );
        assert_eq!(why(&image(0, &[])), "has no loadable segments");
    }
}
