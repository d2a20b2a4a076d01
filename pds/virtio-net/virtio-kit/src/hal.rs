//! The crate's [`Hal`] over the driver kit's memory.
//!
//! virtio-drivers asks its HAL for DMA pages (virtqueue rings), for the
//! device address of every buffer it puts in a descriptor (`share`), and
//! for a virtual address of each BAR structure it finds (`mmio_phys_to_virt`).
//! Its methods have no `self`, so the state lives in a static, one per
//! driver ([`HalSlot`]), set once at start-up from the PD's config:
//!
//! - a *pool* (a [`dma::DmaBuf`]) out of which rings are handed out page by
//!   page; nothing is freed, since a driver builds its queues once;
//! - up to [`MAX_WINDOWS`] *windows*, DMA memory whose buffers may be put
//!   in descriptors (the pool and the port's data area): `share` translates
//!   a buffer's virtual address through the window that holds it, so
//!   nothing assumes an identity mapping; a buffer in no window is a
//!   driver bug and panics with its address;
//! - the *MMIO window*, the device region's mapping; a BAR structure
//!   outside it panics (the PD checks the device's capabilities against
//!   the region first, see [`crate::pci::check_capabilities`]).
//!
//! Everything is atomics and `spin::Once`, so the state is `Sync` without
//! locks (a PD has one thread; host tests have many).
//!
//! x86 DMA is coherent and QEMU's `pc` has no IOMMU: `unshare` has nothing
//! to copy back, `share` nothing to map.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Most DMA windows one driver registers.
pub const MAX_WINDOWS: usize = 4;

/// Memory with a known physical address: `len` bytes at `vaddr` here,
/// `paddr` for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub name: &'static str,
    pub vaddr: usize,
    pub paddr: u64,
    pub len: usize,
}

impl Window {
    /// The window of a kit DMA buffer.
    pub fn of(buf: &dma::DmaBuf) -> Self {
        Window {
            name: buf.name(),
            vaddr: buf.vaddr(),
            paddr: buf.paddr(),
            len: buf.len(),
        }
    }

    /// The device address of `len` bytes at `vaddr`, if all of them lie in
    /// this window.
    #[inline]
    pub fn paddr_of(&self, vaddr: usize, len: usize) -> Option<u64> {
        // One compare for "starts inside" and one for "fits": below the
        // window, the wrapped offset is huge; `len <= self.len - off`
        // cannot overflow once `off` is inside. Every buffer the crate
        // shares comes through here (four per echoed frame).
        let off = vaddr.wrapping_sub(self.vaddr);
        (off <= self.len && len <= self.len - off).then(|| self.paddr + off as u64)
    }

    /// The virtual address of `len` bytes at device address `paddr`, if all
    /// of them lie in this window.
    pub fn vaddr_of(&self, paddr: u64, len: usize) -> Option<usize> {
        let off = paddr.checked_sub(self.paddr)?;
        let end = off.checked_add(len as u64)?;
        (end <= self.len as u64).then(|| self.vaddr + off as usize)
    }
}

/// Why [`HalState::install`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Installed before: the windows are for the PD's life.
    Twice,
    /// More than [`MAX_WINDOWS`] windows.
    TooMany,
    /// The pool does not start on a page.
    PoolMisaligned { vaddr: usize, paddr: u64 },
}

impl core::fmt::Display for InstallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            InstallError::Twice => write!(f, "virtio HAL installed twice"),
            InstallError::TooMany => write!(f, "more than {MAX_WINDOWS} DMA windows"),
            InstallError::PoolMisaligned { vaddr, paddr } => write!(
                f,
                "virtio ring pool at vaddr {vaddr:#x}, paddr {paddr:#x} is not page-aligned"
            ),
        }
    }
}

struct Installed {
    pool: Window,
    windows: heapless::Vec<Window, MAX_WINDOWS>,
    mmio: Window,
}

/// One driver's HAL state; see the module doc.
pub struct HalState {
    installed: spin::Once<Installed>,
    /// Bytes of the pool handed out.
    used: AtomicUsize,
}

impl Default for HalState {
    fn default() -> Self {
        Self::new()
    }
}

impl HalState {
    pub const fn new() -> Self {
        HalState {
            installed: spin::Once::new(),
            used: AtomicUsize::new(0),
        }
    }

    /// Sets the ring pool, the windows buffers may lie in (the pool is one
    /// of them without being named) and the MMIO window. Once.
    pub fn install(
        &self,
        pool: Window,
        windows: &[Window],
        mmio: Window,
    ) -> Result<(), InstallError> {
        if !pool.vaddr.is_multiple_of(PAGE_SIZE) || !pool.paddr.is_multiple_of(PAGE_SIZE as u64) {
            return Err(InstallError::PoolMisaligned {
                vaddr: pool.vaddr,
                paddr: pool.paddr,
            });
        }
        // Looked up in this order for every buffer the crate shares: the
        // buffers' windows first, the pool (used at set-up) last.
        let mut all = heapless::Vec::new();
        for w in windows.iter().chain(core::iter::once(&pool)) {
            all.push(*w).map_err(|_| InstallError::TooMany)?;
        }
        let mut fresh = false;
        self.installed.call_once(|| {
            fresh = true;
            Installed {
                pool,
                windows: all,
                mmio,
            }
        });
        if fresh {
            Ok(())
        } else {
            Err(InstallError::Twice)
        }
    }

    fn get(&self) -> &Installed {
        self.installed
            .get()
            .expect("virtio HAL used before HalState::install")
    }

    /// Bytes of the ring pool handed out so far.
    pub fn pool_used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The virtual address of `len` bytes at device address `paddr` in a
    /// DMA window (where a queue's rings are, from the addresses the
    /// transport gives the device).
    pub fn vaddr_of(&self, paddr: u64, len: usize) -> Option<usize> {
        self.get()
            .windows
            .iter()
            .find_map(|w| w.vaddr_of(paddr, len))
    }

    /// The device address of `len` bytes at `vaddr` in a DMA window.
    #[inline]
    pub fn paddr_of(&self, vaddr: usize, len: usize) -> Option<u64> {
        let windows = &self.get().windows;
        windows.iter().find_map(|w| w.paddr_of(vaddr, len))
    }

    fn alloc(&self, pages: usize) -> Option<(u64, usize)> {
        let pool = self.get().pool;
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        let start = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let end = used.checked_add(bytes)?;
                (end <= pool.len).then_some(end)
            })
            .ok()?;
        let vaddr = pool.vaddr + start;
        // The crate wants zeroed pages: zeroed here, whatever the memory
        // held before.
        for i in 0..bytes {
            // SAFETY: vaddr..vaddr + bytes lies in the pool (checked above),
            // which install's caller gave this HAL alone, and the bump
            // allocator hands each byte out once.
            unsafe { ((vaddr + i) as *mut u8).write_volatile(0) };
        }
        Some((pool.paddr + start as u64, vaddr))
    }
}

/// Where a driver's [`HalState`] lives: a type with a static.
///
/// ```text
/// struct NetHal;
/// impl virtio_kit::hal::HalSlot for NetHal {
///     fn state() -> &'static HalState { static S: HalState = HalState::new(); &S }
/// }
/// type H = virtio_kit::hal::KitHal<NetHal>;
/// ```
pub trait HalSlot: 'static {
    fn state() -> &'static HalState;
}

/// virtio-drivers' [`Hal`] over the slot `S`'s state.
pub struct KitHal<S: HalSlot>(PhantomData<S>);

// SAFETY: dma_alloc hands out zeroed, page-aligned pages of the pool,
// each once (the bump allocator never gives a byte twice, and never frees);
// the pool was given to this HAL alone by install's caller. mmio_phys_to_virt
// returns addresses inside the device region's mapping only (checked, else
// it panics), which the PD maps for its life and uses for nothing else.
// share returns the device address of the very bytes passed in, through the
// window that maps them.
unsafe impl<S: HalSlot> Hal for KitHal<S> {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match S::state().alloc(pages) {
            Some((paddr, vaddr)) => (
                paddr,
                NonNull::new(vaddr as *mut u8).expect("pool at address 0"),
            ),
            // The crate turns a zero address into Error::DmaError.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Queues live as long as the PD; a queue dropped gives nothing back.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let mmio = S::state().get().mmio;
        match mmio.vaddr_of(paddr, size) {
            Some(v) => NonNull::new(v as *mut u8).expect("MMIO window at address 0"),
            None => panic!(
                "virtio: BAR structure at paddr {paddr:#x}, {size:#x} bytes, lies outside the device region '{}' (paddr {:#x}, {:#x} bytes)",
                mmio.name, mmio.paddr, mmio.len
            ),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.as_ptr() as *mut u8 as usize;
        let len = buffer.len();
        match S::state().paddr_of(vaddr, len) {
            Some(p) => p,
            None => panic!("virtio: buffer at {vaddr:#x}, {len:#x} bytes, is in no DMA window"),
        }
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
