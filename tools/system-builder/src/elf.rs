//! A small reader for the one kind of ELF a PD may be: a statically linked
//! x86_64 ELF64 executable. It extracts the entry point, the loadable
//! segments and the symbol table, and rejects everything else with a reason.
//! Every offset read from the file is bounds-checked, so a truncated or
//! hostile file gives an error rather than a panic.

use std::collections::HashMap;

use crate::model::{Perms, Segment};

const EXPECTED: &str = "a statically linked, non-PIE x86_64 ELF64 executable (ELF type EXEC)";

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
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
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// File offsets of the ELF header fields that locate the program headers.
pub(crate) const E_PHOFF: usize = 32;
pub(crate) const E_PHNUM: usize = 56;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;

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
    pub(crate) fn to_bytes(self) -> [u8; PHDR_SIZE] {
        let mut b = [0u8; PHDR_SIZE];
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        let words = [
            self.offset,
            self.vaddr,
            self.paddr,
            self.filesz,
            self.memsz,
            self.align,
        ];
        for (k, w) in words.iter().enumerate() {
            b[8 + 8 * k..16 + 8 * k].copy_from_slice(&w.to_le_bytes());
        }
        b
    }
}

#[derive(Debug)]
pub(crate) struct Elf {
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
    pub expected: &'static str,
}

fn problem(what: impl Into<String>) -> ElfProblem {
    ElfProblem {
        what: what.into(),
        expected: EXPECTED,
    }
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

fn truncated(part: &str) -> ElfProblem {
    problem(format!(
        "is truncated or malformed: its {part} lie outside the file"
    ))
}

pub(crate) fn parse(data: &[u8]) -> Result<Elf, ElfProblem> {
    let b = Bytes(data);
    if !data.starts_with(ELF_MAGIC) {
        return Err(problem(
            "is not an ELF file (it does not start with the ELF magic bytes 7f 45 4c 46)",
        ));
    }
    if data.len() < EHDR_SIZE {
        return Err(problem("is too short to hold an ELF header"));
    }
    if data[4] != ELFCLASS64 {
        return Err(problem("is a 32-bit ELF file"));
    }
    if data[5] != ELFDATA2LSB {
        return Err(problem("is a big-endian ELF file"));
    }
    let header = |off| b.u16(off).expect("inside the 64-byte header");
    let machine = header(18);
    if machine != EM_X86_64 {
        return Err(problem(format!(
            "is an ELF file for machine {machine}, not x86_64 (62)"
        )));
    }
    match header(16) {
        ET_EXEC => {}
        ET_DYN => {
            return Err(problem(
                "is a position-independent executable or shared object (ELF type DYN)",
            ));
        }
        ET_REL => {
            return Err(problem(
                "is a relocatable object file (ELF type REL), not a linked executable",
            ));
        }
        other => return Err(problem(format!("has ELF type {other}, not EXEC"))),
    }
    let entry = b.u64(24).expect("inside the header");
    let phoff = b.u64(32).expect("inside the header");
    let shoff = b.u64(40).expect("inside the header");
    let phentsize = header(54);
    let phnum = header(56);
    let shentsize = header(58);
    let shnum = header(60);

    if phnum > 0 && usize::from(phentsize) != PHDR_SIZE {
        return Err(problem(format!(
            "has program headers of {phentsize} bytes instead of {PHDR_SIZE}"
        )));
    }
    let mut segments = Vec::new();
    let mut program_headers = Vec::new();
    for i in 0..u64::from(phnum) {
        let ph = phoff
            .checked_add(i * PHDR_SIZE as u64)
            .ok_or_else(|| truncated("program headers"))?;
        let ph = b
            .slice(ph, PHDR_SIZE as u64)
            .ok_or_else(|| truncated("program headers"))?;
        let ph = Bytes(ph);
        let field = |off| ph.u64(off).expect("inside the program header");
        let p_type = ph.u32(0).expect("inside the program header");
        if p_type == PT_INTERP {
            return Err(problem(
                "is dynamically linked (it names a program interpreter)",
            ));
        }
        let flags = ph.u32(4).expect("inside the program header");
        let (offset, vaddr, filesz, memsz) = (field(8), field(16), field(32), field(40));
        program_headers.push(ProgramHeader {
            p_type,
            flags,
            offset,
            vaddr,
            paddr: field(24),
            filesz,
            memsz,
            align: field(48),
        });
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
        return Err(problem("has no loadable segments"));
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
        entry,
        segments,
        program_headers,
        symbols: HashMap::new(),
        has_symtab: false,
    };
    if shoff != 0 && shnum > 0 {
        if usize::from(shentsize) != SHDR_SIZE {
            return Err(problem(format!(
                "has section headers of {shentsize} bytes instead of {SHDR_SIZE}"
            )));
        }
        read_symbols(&b, shoff, shnum, &mut elf)?;
    }
    Ok(elf)
}

fn read_symbols(b: &Bytes, shoff: u64, shnum: u16, elf: &mut Elf) -> Result<(), ElfProblem> {
    let section = |i: u64| -> Result<Bytes, ElfProblem> {
        let off = shoff
            .checked_add(i * SHDR_SIZE as u64)
            .ok_or_else(|| truncated("section headers"))?;
        b.slice(off, SHDR_SIZE as u64)
            .map(Bytes)
            .ok_or_else(|| truncated("section headers"))
    };
    for i in 0..u64::from(shnum) {
        let sh = section(i)?;
        if sh.u32(4) != Some(SHT_SYMTAB) {
            continue;
        }
        elf.has_symtab = true;
        let (sym_off, sym_size) = (sh.u64(24).unwrap_or(0), sh.u64(32).unwrap_or(0));
        let link = u64::from(sh.u32(40).unwrap_or(0));
        if link >= u64::from(shnum) {
            return Err(problem(
                "has a symbol table linked to a missing string table",
            ));
        }
        let strtab = section(link)?;
        let strings = b
            .slice(strtab.u64(24).unwrap_or(0), strtab.u64(32).unwrap_or(0))
            .ok_or_else(|| truncated("symbol names"))?;
        let syms = b
            .slice(sym_off, sym_size)
            .ok_or_else(|| truncated("symbols"))?;
        for raw in syms.chunks_exact(SYM_SIZE) {
            let s = Bytes(raw);
            let shndx = s.u16(6).expect("inside the symbol");
            if shndx == SHN_UNDEF {
                continue;
            }
            let name_off = s.u32(0).expect("inside the symbol") as usize;
            let Some(name) = strings
                .get(name_off..)
                .and_then(|rest| rest.split(|&c| c == 0).next())
                .and_then(|n| std::str::from_utf8(n).ok())
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let global = s.u8(4).expect("inside the symbol") >> 4 == STB_GLOBAL;
            let sym = Symbol {
                value: s.u64(8).expect("inside the symbol"),
                size: s.u64(16).expect("inside the symbol"),
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
