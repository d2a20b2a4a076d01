//! The monitor's share of the machine: free slots of its CNode and the
//! untyped memory from bootinfo, handed out as kernel objects.
//!
//! Ordinary objects come from RAM untypeds, best fit, mirroring the kernel's
//! rule that each retype starts at the untyped's free offset rounded up to
//! the object size. Memory at a fixed physical address (device registers, or
//! RAM a device must see at a known place) is carved out of a still-unused
//! untyped by halving it until one half is exactly the wanted block.
//!
//! A PD the monitor restarts gets a *pool* ([`Resources::pool`]): one
//! untyped of its own and a window of slots, from which everything private
//! to the PD is made (TCB, CSpace, address space, image, stack). Deleting
//! everything in the window and revoking the untyped ([`Resources::reset`])
//! returns all of it, zeroed by the kernel, for the next instance.

use crate::error::{Context, Setup, fail};
use alloc::vec::Vec;
use sel4::bootinfo::BootInfo;
use sel4::cap::{Cap, Slot, kind};
use sel4::{consts, init_cap, object_type};

pub const ROOT_CNODE: Cap<kind::CNode> = Cap::from_cptr(init_cap::CapInitThreadCNode);

/// Retypes one call may make (CONFIG_RETYPE_FAN_OUT_LIMIT).
const FAN_OUT: u64 = consts::CONFIG_RETYPE_FAN_OUT_LIMIT as u64;

#[derive(Clone, Copy, Debug)]
struct Untyped {
    cptr: u64,
    paddr: u64,
    bits: u8,
    is_device: bool,
    /// Bytes already retyped, from the start.
    used: u64,
}

impl Untyped {
    fn size(&self) -> u64 {
        1 << self.bits
    }
    fn contains(&self, paddr: u64, size: u64) -> bool {
        self.paddr <= paddr && paddr + size <= self.paddr + self.size()
    }
}

pub struct Resources {
    /// First slot of the window (a pool's; the monitor's free slots).
    first_slot: u64,
    next_slot: u64,
    end_slot: u64,
    untypeds: Vec<Untyped>,
}

/// A kernel object kind and the log2 of its size in bytes.
#[derive(Clone, Copy)]
pub struct Object {
    pub ty: u64,
    /// The `size_bits` argument of retype (radix for CNodes, size for untypeds).
    pub arg: u64,
    pub bits: u8,
}

impl Object {
    pub const TCB: Self = Self::fixed(object_type::TCBObject, consts::TCBBits);
    pub const ENDPOINT: Self = Self::fixed(object_type::EndpointObject, consts::EndpointBits);
    pub const NOTIFICATION: Self =
        Self::fixed(object_type::NotificationObject, consts::NotificationBits);
}

#[cfg(target_arch = "x86_64")]
impl Object {
    pub const PAGE: Self = Self::fixed(object_type::X86_4K, consts::PageBits);
    pub const LARGE_PAGE: Self =
        Self::fixed(object_type::X86_LargePageObject, consts::LargePageBits);
    pub const PAGE_TABLE: Self =
        Self::fixed(object_type::X86_PageTableObject, consts::PageTableBits);
    pub const PAGE_DIRECTORY: Self =
        Self::fixed(object_type::X86_PageDirectoryObject, consts::PageDirBits);
    pub const PDPT: Self = Self::fixed(object_type::X86_PDPTObject, consts::PDPTBits);
    /// A thread's top-level paging structure.
    pub const VSPACE: Self = Self::fixed(object_type::X64_PML4Object, consts::PML4Bits);
}

#[cfg(target_arch = "arm")]
impl Object {
    pub const PAGE: Self = Self::fixed(object_type::ARM_SmallPageObject, consts::PageBits);
    /// The large page of memory regions: a 1 MiB section.
    pub const LARGE_PAGE: Self = Self::fixed(object_type::ARM_SectionObject, consts::SectionBits);
    pub const PAGE_TABLE: Self =
        Self::fixed(object_type::ARM_PageTableObject, consts::PageTableBits);
    /// A thread's top-level paging structure (16 KiB).
    pub const VSPACE: Self = Self::fixed(object_type::ARM_PageDirectoryObject, consts::PageDirBits);
}

impl Object {
    const fn fixed(ty: u64, bits: usize) -> Self {
        Self {
            ty,
            arg: 0,
            bits: bits as u8,
        }
    }
    pub const fn cnode(radix: u8) -> Self {
        Self {
            ty: object_type::CapTableObject,
            arg: radix as u64,
            bits: radix + consts::SlotBits as u8,
        }
    }
    pub const fn untyped(bits: u8) -> Self {
        Self {
            ty: object_type::UntypedObject,
            arg: bits as u64,
            bits,
        }
    }
    pub const fn frame(page_bits: u8) -> Self {
        if page_bits == Self::LARGE_PAGE.bits {
            Self::LARGE_PAGE
        } else {
            Self::PAGE
        }
    }
}

impl Resources {
    pub fn new(bi: &BootInfo) -> Self {
        let empty = bi.empty();
        Self {
            first_slot: empty.start,
            next_slot: empty.start,
            end_slot: empty.end,
            untypeds: bi
                .untypeds()
                .map(|u| Untyped {
                    cptr: u.cptr,
                    paddr: u.paddr,
                    bits: u.size_bits,
                    is_device: u.is_device,
                    used: 0,
                })
                .collect(),
        }
    }

    /// `n` consecutive free slots of the monitor's CNode.
    pub fn slots(&mut self, n: u64) -> Setup<u64> {
        if self.end_slot - self.next_slot < n {
            return fail("out of CNode slots");
        }
        self.next_slot += n;
        Ok(self.next_slot - n)
    }

    pub fn free_slots(&self) -> u64 {
        self.end_slot - self.next_slot
    }

    /// A pool for one PD: an untyped of at least `bytes` from RAM and
    /// `slots` slots of the monitor's CNode, handed out like these.
    pub fn pool(&mut self, bytes: u64, slots: u64) -> Setup<Resources> {
        let bits = (bytes.next_power_of_two().trailing_zeros() as u8).max(consts::PageBits as u8);
        let ut = self.alloc(Object::untyped(bits))?;
        let first = self.slots(slots)?;
        Ok(Resources {
            first_slot: first,
            next_slot: first,
            end_slot: first + slots,
            untypeds: alloc::vec![Untyped {
                cptr: ut,
                // Never asked for: nothing in a pool sits at a fixed address.
                paddr: 0,
                bits,
                is_device: false,
                used: 0,
            }],
        })
    }

    /// Bytes and slots a pool has handed out, of how many.
    pub fn usage(&self) -> (u64, u64, u64, u64) {
        let u = &self.untypeds[0];
        (
            u.used,
            u.size(),
            self.next_slot - self.first_slot,
            self.end_slot - self.first_slot,
        )
    }

    /// Makes a pool whole again: deletes every capability in its slots
    /// (newest first, so a CNode goes before what it holds copies of) and
    /// revokes its untyped, which the kernel then hands out zeroed.
    pub fn reset(&mut self) -> Setup<()> {
        for slot in (self.first_slot..self.next_slot).rev() {
            ROOT_CNODE
                .delete(slot, sel4::WORD_BITS)
                .ctx("delete a restarted PD's capability")?;
        }
        for u in &mut self.untypeds {
            ROOT_CNODE
                .revoke(u.cptr, sel4::WORD_BITS)
                .ctx("revoke a restarted PD's untyped")?;
            u.used = 0;
        }
        self.next_slot = self.first_slot;
        Ok(())
    }

    /// RAM left in untypeds nothing has been retyped from.
    pub fn free_ram(&self) -> u64 {
        self.untypeds
            .iter()
            .filter(|u| !u.is_device)
            .map(|u| u.size() - u.used)
            .sum()
    }

    /// Retypes `count` objects from `ut` into fresh consecutive slots.
    fn retype(&mut self, ut: u64, obj: Object, count: u64) -> Setup<u64> {
        let first = self.slots(count)?;
        self.retype_into(ut, obj, first, count)?;
        Ok(first)
    }

    fn retype_into(&mut self, ut: u64, obj: Object, first: u64, count: u64) -> Setup<()> {
        let mut done = 0;
        while done < count {
            let n = (count - done).min(FAN_OUT);
            Cap::<kind::Untyped>::from_cptr(ut)
                .retype(
                    obj.ty,
                    obj.arg,
                    Slot::new(ROOT_CNODE, 0, 0),
                    first + done,
                    n,
                )
                .ctx("retype")?;
            done += n;
        }
        Ok(())
    }

    /// `count` objects in consecutive slots; returns the first slot.
    pub fn alloc_n(&mut self, obj: Object, count: u64) -> Setup<u64> {
        let size = count << obj.bits;
        let fits =
            |u: &Untyped| !u.is_device && u.used.next_multiple_of(1 << obj.bits) + size <= u.size();
        let Some(i) = (0..self.untypeds.len())
            .filter(|&i| fits(&self.untypeds[i]))
            .min_by_key(|&i| self.untypeds[i].bits)
        else {
            return fail("out of RAM untypeds");
        };
        let cptr = self.untypeds[i].cptr;
        let first = self.retype(cptr, obj, count)?;
        let u = &mut self.untypeds[i];
        u.used = u.used.next_multiple_of(1 << obj.bits) + size;
        Ok(first)
    }

    pub fn alloc(&mut self, obj: Object) -> Setup<u64> {
        self.alloc_n(obj, 1)
    }

    /// An untyped of exactly `[paddr, paddr + 2^bits)`, carved from an
    /// unused device or RAM untyped.
    fn untyped_at(&mut self, paddr: u64, bits: u8) -> Setup<u64> {
        let Some(i) = self
            .untypeds
            .iter()
            .position(|u| u.used == 0 && u.contains(paddr, 1 << bits))
        else {
            return fail("no unused untyped covers a fixed physical address");
        };
        let mut u = self.untypeds.swap_remove(i);
        while u.bits > bits {
            let half = u.bits - 1;
            let first = self.retype(u.cptr, Object::untyped(half), 2)?;
            let lo = Untyped {
                cptr: first,
                bits: half,
                ..u
            };
            let hi = Untyped {
                cptr: first + 1,
                paddr: u.paddr + (1 << half),
                bits: half,
                ..u
            };
            let (keep, spare) = if paddr >= hi.paddr {
                (hi, lo)
            } else {
                (lo, hi)
            };
            self.untypeds.push(spare);
            u = keep;
        }
        Ok(u.cptr)
    }

    /// Frames for `size` bytes of physically contiguous memory, at `phys`
    /// if given. Returns the first frame slot (the rest follow) and the
    /// physical address.
    pub fn frames(&mut self, size: u64, page_bits: u8, phys: Option<u64>) -> Setup<(u64, u64)> {
        let count = size >> page_bits;
        let block_bits = (size.next_power_of_two().trailing_zeros() as u8).max(page_bits);
        let frame = Object::frame(page_bits);
        let first = match phys {
            None => {
                let ut = self.alloc(Object::untyped(block_bits))?;
                self.retype(ut, frame, count)?
            }
            Some(p) => {
                // One carve when the region is aligned to its size and one
                // untyped covers it; otherwise page by page, retyped into
                // one run of slots.
                let whole = (p % (1 << block_bits) == 0)
                    .then(|| self.untyped_at(p, block_bits).ok())
                    .flatten();
                match whole {
                    Some(ut) => self.retype(ut, frame, count)?,
                    None => {
                        let uts = (0..count)
                            .map(|i| self.untyped_at(p + (i << page_bits), page_bits))
                            .collect::<Setup<Vec<_>>>()?;
                        let first = self.slots(count)?;
                        for (slot, ut) in (first..).zip(uts) {
                            self.retype_into(ut, frame, slot, 1)?;
                        }
                        first
                    }
                }
            }
        };
        let paddr = Cap::<kind::Page>::from_cptr(first)
            .address()
            .ctx("frame address")?;
        Ok((first, paddr))
    }
}
