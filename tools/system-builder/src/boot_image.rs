//! The boot image of an ARM board: the loader program (`sel4/loader`) with
//! the kernel and the system image in one more segment, which QEMU's
//! `-kernel` and U-Boot's `bootelf` load as they are. seL4 5.0.0 on ARM is
//! entered by such a loader: the kernel is not an ELF loader there, it
//! takes the root task as one physical range placed right after its own
//! image.
//!
//! The payload's format is the crate `boot-payload`'s, which the loader
//! reads it with.
//!
//! The root task's physical start must be the kernel's `ki_end` (the
//! kernel's `init_freemem` asserts it), which the kernel ELF's symbol
//! table gives.

use crate::elf::{self, Machine, PT_LOAD};
use crate::image::{self, MonitorError, PackedImage};
use crate::model::PAGE_SIZE_4K;

use boot_payload::{COPY_WORDS, HEADER_WORDS, MAGIC};

/// The loader symbols that receive the payload's address and size.
pub const PAYLOAD_VADDR_SYMBOL: &str = "DINGO_PAYLOAD_VADDR";
pub const PAYLOAD_SIZE_SYMBOL: &str = "DINGO_PAYLOAD_SIZE";
/// The kernel symbol of the end of its image, where the root task goes.
pub const KI_END_SYMBOL: &str = "ki_end";

/// Why the boot image cannot be made: which input, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImageError {
    /// "kernel ELF", "system image" or "loader ELF".
    pub input: &'static str,
    pub problem: MonitorError,
}

impl std::fmt::Display for BootImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.input, self.problem)
    }
}

fn fail(
    input: &'static str,
    what: impl Into<String>,
    expected: impl Into<String>,
) -> BootImageError {
    BootImageError {
        input,
        problem: MonitorError {
            what: what.into(),
            expected: expected.into(),
        },
    }
}

/// What the loader must do: the copies and the kernel's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLayout {
    pub kernel_entry: u32,
    pub kernel_vbase: u32,
    pub kernel_pbase: u32,
    pub ui_p_start: u32,
    pub ui_p_end: u32,
    pub pv_offset: u32,
    pub v_entry: u32,
    /// (destination, bytes, size in memory) in copy order.
    pub copies: Vec<(u32, Vec<u8>, u32)>,
}

fn word(v: u64, input: &'static str, what: &str) -> Result<u32, BootImageError> {
    u32::try_from(v).map_err(|_| {
        fail(
            input,
            format!("has {what} {v:#x}, beyond 32 bits"),
            "a 32-bit ARM image",
        )
    })
}

/// Plans the loader's copies from the kernel ELF and the system image (the
/// monitor with its plan), both 32-bit ARM ELF files.
pub fn layout(kernel: &[u8], system: &[u8]) -> Result<BootLayout, BootImageError> {
    let k =
        elf::parse_for(kernel, Machine::Arm).map_err(|p| fail("kernel ELF", p.what, p.expected))?;
    let loads: Vec<_> = k
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.memsz > 0)
        .collect();
    let first = loads
        .iter()
        .min_by_key(|p| p.vaddr)
        .expect("parse accepts only files with a loadable segment");
    let (kernel_vbase, kernel_pbase) = (first.vaddr, first.paddr);
    // The loader maps one window, so every segment must sit in it.
    if let Some(odd) = loads
        .iter()
        .find(|p| p.vaddr.wrapping_sub(p.paddr) != kernel_vbase.wrapping_sub(kernel_pbase))
    {
        return Err(fail(
            "kernel ELF",
            format!(
                "has a segment at {:#x} loaded at {:#x}, not in the window {kernel_vbase:#x} -> {kernel_pbase:#x} of its first",
                odd.vaddr, odd.paddr
            ),
            "one virtual-to-physical offset for all of the kernel's segments",
        ));
    }
    if kernel_vbase % (1 << 20) != 0 || kernel_pbase % (1 << 20) != 0 {
        return Err(fail(
            "kernel ELF",
            format!("has its window at {kernel_vbase:#x} -> {kernel_pbase:#x}"),
            "a kernel linked and loaded at 1 MiB boundaries (the loader maps sections)",
        ));
    }
    let ki_end = k.symbol(KI_END_SYMBOL).ok_or_else(|| {
        fail(
            "kernel ELF",
            format!("has no symbol {KI_END_SYMBOL}"),
            "the unstripped kernel.elf of the kernel build (it defines ki_end)",
        )
    })?;
    let ui_p_start = ki_end
        .value
        .checked_sub(kernel_vbase)
        .map(|off| kernel_pbase + off)
        .filter(|p| p % PAGE_SIZE_4K == 0)
        .ok_or_else(|| {
            fail(
                "kernel ELF",
                format!(
                    "has {KI_END_SYMBOL} at {:#x}, not page aligned inside its window from {kernel_vbase:#x}",
                    ki_end.value
                ),
                "ki_end page aligned, above the kernel's link address",
            )
        })?;
    let mut copies = Vec::new();
    for p in &loads {
        let bytes = kernel[p.offset as usize..(p.offset + p.filesz) as usize].to_vec();
        copies.push((
            word(p.paddr, "kernel ELF", "a segment at")?,
            bytes,
            word(p.memsz, "kernel ELF", "a segment size")?,
        ));
    }

    let s = elf::parse_for(system, Machine::Arm)
        .map_err(|p| fail("system image", p.what, p.expected))?;
    let v_start = s
        .segments
        .iter()
        .map(|g| g.vaddr & !(PAGE_SIZE_4K - 1))
        .min()
        .expect("parse accepts only files with a loadable segment");
    let v_end = s
        .segments
        .iter()
        .map(|g| (g.vaddr + g.memsz).next_multiple_of(PAGE_SIZE_4K))
        .max()
        .expect("parse accepts only files with a loadable segment");
    let ui_p_end = ui_p_start + (v_end - v_start);
    // The whole range first, zeroed: the kernel hands every frame of it to
    // the root task, the gaps between segments too.
    copies.push((
        word(ui_p_start, "system image", "a start")?,
        Vec::new(),
        word(v_end - v_start, "system image", "a size")?,
    ));
    for g in &s.segments {
        let bytes = system[g.offset as usize..(g.offset + g.filesz) as usize].to_vec();
        let dest = ui_p_start + (g.vaddr - v_start);
        copies.push((
            word(dest, "system image", "a segment at")?,
            bytes,
            word(g.memsz, "system image", "a segment size")?,
        ));
    }
    Ok(BootLayout {
        kernel_entry: word(k.entry, "kernel ELF", "its entry")?,
        kernel_vbase: word(kernel_vbase, "kernel ELF", "its base")?,
        kernel_pbase: word(kernel_pbase, "kernel ELF", "its physical base")?,
        ui_p_start: word(ui_p_start, "kernel ELF", "ki_end")?,
        ui_p_end: word(ui_p_end, "system image", "an end")?,
        pv_offset: (ui_p_start.wrapping_sub(v_start)) as u32,
        v_entry: word(s.entry, "system image", "its entry")?,
        copies,
    })
}

impl BootLayout {
    /// The payload: header, copy table, then the bytes.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::from(MAGIC);
        let table = 4 * (HEADER_WORDS + COPY_WORDS * self.copies.len());
        for w in [
            self.kernel_entry,
            self.kernel_vbase,
            self.kernel_pbase,
            self.ui_p_start,
            self.ui_p_end,
            self.pv_offset,
            self.v_entry,
            self.copies.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let mut data = Vec::new();
        for (dest, bytes, size) in &self.copies {
            let src = (table + data.len()) as u32;
            for w in [*dest, src, bytes.len() as u32, *size] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            data.extend_from_slice(bytes);
            // Word-aligned sources copy faster.
            data.resize(data.len().next_multiple_of(4), 0);
        }
        out.extend_from_slice(&data);
        out
    }

    /// The physical ranges the loader writes.
    pub fn destinations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.copies
            .iter()
            .map(|(d, _, size)| (u64::from(*d), u64::from(*d) + u64::from(*size)))
    }
}

/// The boot image: `loader` with the payload of `kernel` and `system`.
/// Fails if the loader (or its payload) lies where it would copy to.
pub fn pack(loader: &[u8], kernel: &[u8], system: &[u8]) -> Result<PackedImage, BootImageError> {
    let layout = layout(kernel, system)?;
    let packed = image::append(
        loader,
        Machine::Arm,
        &layout.payload(),
        PAYLOAD_VADDR_SYMBOL,
        PAYLOAD_SIZE_SYMBOL,
    )
    .map_err(|problem| BootImageError {
        input: "loader ELF",
        problem,
    })?;
    // The loader runs with the MMU off at first: its addresses are physical.
    let l = elf::parse_for(&packed.bytes, Machine::Arm)
        .map_err(|p| fail("loader ELF", p.what, p.expected))?;
    for seg in &l.segments {
        let own = (seg.vaddr, seg.vaddr + seg.memsz);
        if let Some(dest) = layout.destinations().find(|d| d.0 < own.1 && own.0 < d.1) {
            return Err(fail(
                "loader ELF",
                format!(
                    "has a segment [{:#x}..{:#x}) where it would copy [{:#x}..{:#x}) of the kernel or system image",
                    own.0, own.1, dest.0, dest.1
                ),
                "a loader linked above the kernel and the system image (sel4/loader/loader.ld)",
            ));
        }
    }
    Ok(packed)
}
