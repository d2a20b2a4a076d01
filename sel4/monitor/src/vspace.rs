//! Address spaces built page by page: mapping a frame first creates
//! whatever paging structures above it are still missing. Which structures
//! those are is the architecture's: on x86_64 a PDPT, a page directory and
//! a page table below the PML4; on 32-bit ARM one page table (1 MiB of
//! address space) below the page directory, and none for a 1 MiB section.

use crate::error::{Context, Setup};
use crate::resources::{Object, Resources};
use alloc::vec::Vec;
use sel4::cap::{Cap, Rights, VSpaceKind, VmAttributes, kind};

/// The paging structures below the top level, with the log2 of the span
/// each covers.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Pdpt = 39,
    PageDirectory = 30,
    PageTable = 21,
}

#[cfg(target_arch = "x86_64")]
impl Level {
    /// From the top down; a large page sits in a page directory.
    const ALL: [Level; 3] = [Level::Pdpt, Level::PageDirectory, Level::PageTable];
    const FOR_LARGE: &[Level] = &[Level::Pdpt, Level::PageDirectory];

    fn create(self, res: &mut Resources, root: Cap<VSpaceKind>, base: u64) -> Setup<()> {
        let attr = VmAttributes::DEFAULT;
        match self {
            Level::Pdpt => {
                Cap::<kind::Pdpt>::from_cptr(res.alloc(Object::PDPT)?).map(root, base, attr)
            }
            Level::PageDirectory => {
                Cap::<kind::PageDirectory>::from_cptr(res.alloc(Object::PAGE_DIRECTORY)?)
                    .map(root, base, attr)
            }
            Level::PageTable => Cap::<kind::PageTable>::from_cptr(res.alloc(Object::PAGE_TABLE)?)
                .map(root, base, attr),
        }
        .ctx("map a paging structure")
    }
}

#[cfg(target_arch = "arm")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    PageTable = 20,
}

#[cfg(target_arch = "arm")]
impl Level {
    const ALL: [Level; 1] = [Level::PageTable];
    /// A section is an entry of the page directory itself.
    const FOR_LARGE: &[Level] = &[];

    fn create(self, res: &mut Resources, root: Cap<VSpaceKind>, base: u64) -> Setup<()> {
        match self {
            Level::PageTable => Cap::<kind::PageTable>::from_cptr(res.alloc(Object::PAGE_TABLE)?)
                .map(root, base, VmAttributes::DEFAULT),
        }
        .ctx("map a paging structure")
    }
}

pub struct VSpace {
    pub root: Cap<VSpaceKind>,
    /// Structures already mapped: (level, vaddr >> span bits).
    present: Vec<(Level, u64)>,
}

impl VSpace {
    pub fn new(root: Cap<VSpaceKind>) -> Self {
        Self {
            root,
            present: Vec::new(),
        }
    }

    /// Forgets every structure, for a VSpace deleted with everything in
    /// it; the list keeps its capacity, so a rebuild allocates no heap.
    pub fn clear(&mut self) {
        self.present.clear();
    }

    /// Starts over with a fresh top-level structure.
    pub fn reset(&mut self, root: Cap<VSpaceKind>) {
        self.root = root;
        self.present.clear();
    }

    fn ensure(&mut self, res: &mut Resources, vaddr: u64, levels: &[Level]) -> Setup<()> {
        for &level in levels {
            let key = (level, vaddr >> level as u32);
            if !self.present.contains(&key) {
                level.create(res, self.root, key.1 << level as u32)?;
                self.present.push(key);
            }
        }
        Ok(())
    }

    /// Maps `frame` (a 4 KiB page, or the architecture's large page when
    /// `large`) at `vaddr`.
    pub fn map(
        &mut self,
        res: &mut Resources,
        frame: u64,
        vaddr: u64,
        large: bool,
        rights: Rights,
        attr: VmAttributes,
    ) -> Setup<()> {
        let levels = if large { Level::FOR_LARGE } else { &Level::ALL };
        self.ensure(res, vaddr, levels)?;
        Cap::<kind::Page>::from_cptr(frame)
            .map(self.root, vaddr, rights, attr)
            .ctx("map a frame")
    }
}
