//! Packs the bootable image: the monitor ELF with the encoded boot plan
//! appended as one more read-only PT_LOAD segment, and the monitor's
//! `DINGO_PLAN_VADDR` / `DINGO_PLAN_SIZE` words patched to point at it.
//! The same operation, with other symbols, puts the kernel and the system
//! image into the ARM loader ([`crate::boot_image`]).
//!
//! seL4 loads the root task as the single virtual range from its lowest to
//! its highest segment, so the plan goes on the first page after the
//! monitor's end: no hole is wasted and the monitor finds the plan in its
//! own address space. The program header table cannot grow in place (the
//! first segment starts right after it), so a new table is written at the
//! end of the file. Every original byte stays where it was, apart from the
//! ELF header's table location and the two patched words.

use std::fmt;

use crate::elf::{self, Machine, PF_R, PT_LOAD, PT_PHDR, ProgramHeader};
use crate::model::{Board, PAGE_SIZE_4K};

/// The monitor symbol that receives the plan's virtual address.
pub const PLAN_VADDR_SYMBOL: &str = "DINGO_PLAN_VADDR";
/// The monitor symbol that receives the plan's length in bytes.
pub const PLAN_SIZE_SYMBOL: &str = "DINGO_PLAN_SIZE";

/// The packed image and where the plan ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedImage {
    pub bytes: Vec<u8>,
    pub plan_vaddr: u64,
    pub plan_offset: u64,
    pub plan_size: u64,
}

/// Why the monitor ELF cannot carry a plan. Displays as a sentence that
/// completes "monitor ELF '<path>' ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorError {
    pub what: String,
    pub expected: String,
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; expected {}", self.what, self.expected)
    }
}

fn error(what: impl Into<String>, expected: impl Into<String>) -> MonitorError {
    MonitorError {
        what: what.into(),
        expected: expected.into(),
    }
}

const fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

/// Appends `plan` to `monitor` (an x86_64 one, for the `pc` board) as a
/// new segment and patches the two plan symbols.
pub fn pack(monitor: &[u8], plan: &[u8]) -> Result<PackedImage, MonitorError> {
    pack_for(Board::Pc, monitor, plan)
}

/// As [`pack`], for a monitor built for `board`.
pub fn pack_for(board: Board, monitor: &[u8], plan: &[u8]) -> Result<PackedImage, MonitorError> {
    append(
        monitor,
        Machine::of(board),
        plan,
        PLAN_VADDR_SYMBOL,
        PLAN_SIZE_SYMBOL,
    )
}

/// Appends `payload` to the program `elf_bytes` as a new read-only
/// segment on the first page after its end, and writes the segment's
/// address and size into its 8-byte variables `vaddr_symbol` and
/// `size_symbol`.
pub(crate) fn append(
    elf_bytes: &[u8],
    machine: Machine,
    payload: &[u8],
    vaddr_symbol: &str,
    size_symbol: &str,
) -> Result<PackedImage, MonitorError> {
    let elf = elf::parse_for(elf_bytes, machine).map_err(|p| error(p.what, p.expected))?;
    let symbol_offset = |name: &str| -> Result<usize, MonitorError> {
        let expected = format!(
            "a writable, initialised 8-byte variable named {name} (for example `#[unsafe(no_mangle)] static mut {name}: u64 = 1;`)"
        );
        let Some(sym) = elf.symbol(name) else {
            let what = if elf.has_symtab {
                format!("does not define the symbol {name}")
            } else {
                format!("has no symbol table (was it stripped?), so it has no symbol {name}")
            };
            return Err(error(what, expected));
        };
        if sym.size != 8 {
            return Err(error(
                format!("defines {name} with {} bytes, not 8", sym.size),
                expected,
            ));
        }
        let end = sym.value.checked_add(8);
        let Some(seg) = elf
            .segments
            .iter()
            .find(|s| s.vaddr <= sym.value && end.is_some_and(|e| e <= s.vaddr + s.memsz))
        else {
            return Err(error(
                format!(
                    "has {name} at {:#x}, outside every loadable segment",
                    sym.value
                ),
                expected,
            ));
        };
        if end.is_some_and(|e| e > seg.vaddr + seg.filesz) {
            return Err(error(
                format!(
                    "has {name} at {:#x} in .bss, not backed by file bytes, so the kernel would zero what the builder writes",
                    sym.value
                ),
                expected,
            ));
        }
        if !seg.perms.write {
            return Err(error(
                format!(
                    "has {name} at {:#x} in a read-only segment, where the compiler may fold its value into the code",
                    sym.value
                ),
                expected,
            ));
        }
        Ok(usize::try_from(seg.offset + (sym.value - seg.vaddr)).expect("inside the file"))
    };
    let vaddr_at = symbol_offset(vaddr_symbol)?;
    let size_at = symbol_offset(size_symbol)?;

    // The kernel's loader takes every header with a memory size as part of
    // the image, so the end is measured the same way.
    let (end, paddr_delta) = elf
        .program_headers
        .iter()
        .filter(|ph| ph.memsz > 0)
        .map(|ph| (ph.vaddr + ph.memsz, ph.paddr.wrapping_sub(ph.vaddr)))
        .max_by_key(|&(end, _)| end)
        .expect("parse accepts only files with a loadable segment");
    let plan_vaddr = align_up(end, PAGE_SIZE_4K);
    let plan_size = payload.len() as u64;

    let mut bytes = elf_bytes.to_vec();
    // The file offset must be congruent to the vaddr modulo the page size;
    // the vaddr is page aligned, so the offset is too.
    bytes.resize(align_up(bytes.len() as u64, PAGE_SIZE_4K) as usize, 0);
    let plan_offset = bytes.len() as u64;
    bytes.extend_from_slice(payload);

    // A PT_PHDR entry would claim that the table is loaded at its old
    // place; the kernel loads every header, so it is dropped rather than
    // left to describe bytes that are no longer the table.
    let mut headers: Vec<ProgramHeader> = elf
        .program_headers
        .iter()
        .copied()
        .filter(|ph| ph.p_type != PT_PHDR)
        .collect();
    headers.push(ProgramHeader {
        p_type: PT_LOAD,
        flags: PF_R,
        offset: plan_offset,
        vaddr: plan_vaddr,
        paddr: plan_vaddr.wrapping_add(paddr_delta),
        filesz: plan_size,
        memsz: plan_size,
        align: PAGE_SIZE_4K,
    });
    let phnum = u16::try_from(headers.len())
        .ok()
        .filter(|&n| n < u16::MAX)
        .ok_or_else(|| {
            error(
                format!("has {} program headers", headers.len() - 1),
                "fewer than 65535 program headers",
            )
        })?;
    bytes.resize(align_up(bytes.len() as u64, 8) as usize, 0);
    let phoff = bytes.len() as u64;
    for ph in &headers {
        bytes.extend_from_slice(&ph.to_bytes(elf.class));
    }

    let (at, width) = elf.class.e_phoff();
    bytes[at..at + width].copy_from_slice(&phoff.to_le_bytes()[..width]);
    let at = elf.class.e_phnum();
    bytes[at..at + 2].copy_from_slice(&phnum.to_le_bytes());
    bytes[vaddr_at..vaddr_at + 8].copy_from_slice(&plan_vaddr.to_le_bytes());
    bytes[size_at..size_at + 8].copy_from_slice(&plan_size.to_le_bytes());
    Ok(PackedImage {
        bytes,
        plan_vaddr,
        plan_offset,
        plan_size,
    })
}
