//! Address spaces built page by page: mapping a frame first creates
//! whatever paging structures above it are still missing.

use crate::error::{Context, Setup};
use crate::resources::{Object, Resources};
use alloc::vec::Vec;
use sel4::cap::{Cap, Rights, VmAttributes, kind};

/// The paging structures below a PML4, with the log2 of the span each covers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Pdpt = 39,
    PageDirectory = 30,
    PageTable = 21,
}

pub struct VSpace {
    pub root: Cap<kind::Pml4>,
    /// Structures already mapped: (level, vaddr >> span bits).
    present: Vec<(Level, u64)>,
}

impl VSpace {
    pub fn new(root: Cap<kind::Pml4>) -> Self {
        Self {
            root,
            present: Vec::new(),
        }
    }

    fn ensure(&mut self, res: &mut Resources, vaddr: u64, deepest: Level) -> Setup<()> {
        for level in [Level::Pdpt, Level::PageDirectory, Level::PageTable] {
            let key = (level, vaddr >> level as u32);
            if !self.present.contains(&key) {
                let attr = VmAttributes::DEFAULT;
                let base = key.1 << level as u32;
                match level {
                    Level::Pdpt => Cap::<kind::Pdpt>::from_cptr(res.alloc(Object::PDPT)?)
                        .map(self.root, base, attr),
                    Level::PageDirectory => {
                        Cap::<kind::PageDirectory>::from_cptr(res.alloc(Object::PAGE_DIRECTORY)?)
                            .map(self.root, base, attr)
                    }
                    Level::PageTable => {
                        Cap::<kind::PageTable>::from_cptr(res.alloc(Object::PAGE_TABLE)?)
                            .map(self.root, base, attr)
                    }
                }
                .ctx("map a paging structure")?;
                self.present.push(key);
            }
            if level == deepest {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Maps `frame` (a 4 KiB page, or a 2 MiB one when `large`) at `vaddr`.
    pub fn map(
        &mut self,
        res: &mut Resources,
        frame: u64,
        vaddr: u64,
        large: bool,
        rights: Rights,
        attr: VmAttributes,
    ) -> Setup<()> {
        self.ensure(
            res,
            vaddr,
            if large {
                Level::PageDirectory
            } else {
                Level::PageTable
            },
        )?;
        Cap::<kind::Page>::from_cptr(frame)
            .map(self.root, vaddr, rights, attr)
            .ctx("map a frame")
    }
}
