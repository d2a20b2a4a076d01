//! A PD's configuration at run time. A PD crate declares in its `pd.toml`
//! what each of its programs needs from a system description (regions,
//! IRQs, channels, I/O ports, Dingo ports, PCI functions, parameters: see
//! the `pd-manifest` crate); its build script generates a typed `Config`
//! for each program; and system-builder fills every instance's values into
//! the program image from system.xml and the Dingo wiring file beside it,
//! after checking both ends of everything. This crate is what the
//! generated code stands on: the value types, the block of words the
//! builder fills ([`Blob`]), its layout ([`layout`]) and the [`Reader`]
//! that decodes it once at start-up.
//!
//! A PD includes its generated config with [`program!`]:
//!
//! ```text
//! pd_config::program!("timer");
//! let cfg = config::load();
//! let hpet = cfg.regions.hpet; // a DeviceRegion, checked uncached and big enough
//! ```
//!
//! One binary serves every instance: the values live in the image, not in
//! the code, so the three timer test clients (or two NICs) are one program
//! with three configs.
#![no_std]

#[cfg(test)]
extern crate std;

use core::cell::UnsafeCell;
use core::fmt;

pub use heapless;

pub mod layout;

/// A name from the system description (a PD's, a protocol's): it lives in
/// the config block, which outlives everything in the PD.
pub type Name = &'static str;
/// A list role: up to `N` entries, in the order the system description
/// gives them.
pub type List<T, const N: usize> = heapless::Vec<T, N>;

/// Includes the config generated for program (binary) `name` of this
/// crate's `pd.toml`: a module `config` with `Config` and `load()`.
#[macro_export]
macro_rules! program {
    ($name:literal) => {
        pub mod config {
            include!(concat!(env!("OUT_DIR"), "/pd-config/", $name, ".rs"));
        }
    };
}

/// The block of words system-builder fills in: declared by the generated
/// code under the symbol `__dingo_config`.
#[repr(transparent)]
pub struct Blob<const N: usize>(UnsafeCell<[u64; N]>);

// SAFETY: written only before the PD starts (by the monitor, from the boot
// plan); the PD has one thread and only reads it.
unsafe impl<const N: usize> Sync for Blob<N> {}

impl<const N: usize> Blob<N> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }
}

/// Words to decode: a filled [`Blob`], or a slice in host tests.
pub trait Words {
    /// Words in the block.
    fn words(&self) -> usize;
    fn word(&self, i: usize) -> u64;
    /// The bytes of words `first..first + n`.
    fn bytes(&self, first: usize, n: usize) -> &[u8];
}

impl<const N: usize> Words for Blob<N> {
    fn words(&self) -> usize {
        N
    }
    fn word(&self, i: usize) -> u64 {
        assert!(i < N);
        // SAFETY: i < N, so the read lies inside the array; volatile,
        // because the words were written from outside the program after it
        // was compiled (the compiler sees only zeros).
        unsafe { self.0.get().cast::<u64>().add(i).read_volatile() }
    }
    fn bytes(&self, first: usize, n: usize) -> &[u8] {
        assert!(first + n <= N);
        // SAFETY: inside the array (checked above); the block is written
        // only before the PD starts, so no write ever races this borrow.
        unsafe {
            core::slice::from_raw_parts(self.0.get().cast::<u64>().add(first).cast::<u8>(), n * 8)
        }
    }
}

impl Words for [u64] {
    fn words(&self) -> usize {
        self.len()
    }
    fn word(&self, i: usize) -> u64 {
        self[i]
    }
    fn bytes(&self, first: usize, n: usize) -> &[u8] {
        let words = &self[first..first + n];
        // SAFETY: u64 has no padding and u8 no alignment: any u64 slice is
        // a valid byte slice of 8 times its length.
        unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), n * 8) }
    }
}

/// A PCI function address, `bus:dev.func`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl Bdf {
    /// From the packed form `bus << 8 | dev << 3 | func`.
    pub const fn from_packed(v: u16) -> Self {
        Bdf {
            bus: (v >> 8) as u8,
            dev: ((v >> 3) & 0x1f) as u8,
            func: (v & 7) as u8,
        }
    }
    pub const fn packed(self) -> u16 {
        (self.bus as u16) << 8 | (self.dev as u16 & 0x1f) << 3 | (self.func as u16 & 7)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.dev, self.func)
    }
}

/// A region shared with other PDs (or private), mapped at `vaddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedRegion {
    pub vaddr: usize,
    pub size: usize,
    pub writable: bool,
}

impl SharedRegion {
    pub fn as_ptr(&self) -> *mut u8 {
        self.vaddr as *mut u8
    }
}

/// Device memory: a region at a fixed physical address, mapped uncached
/// and read-write (system-builder checked both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRegion {
    pub vaddr: usize,
    pub size: usize,
    pub paddr: u64,
}

impl DeviceRegion {
    /// The region as a bus of device registers; `name` labels its errors.
    pub fn mmio(&self, name: &'static str) -> hwio::Mmio {
        // SAFETY: system-builder checked that this device region is mapped
        // uncached at vaddr for size bytes; the monitor maps it for the
        // PD's life, and a device role's region is no other role's.
        unsafe { hwio::Mmio::new(name, self.vaddr, self.size) }
    }
}

/// RAM a device reads and writes: physically contiguous (the monitor
/// allocates each region from one untyped), with its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRegion {
    pub vaddr: usize,
    pub size: usize,
    pub paddr: u64,
    /// The widest DMA address the device can use, from the manifest.
    pub address_bits: u8,
}

impl DmaRegion {
    /// The region as DMA memory for the device the manifest names the
    /// address width of; refused (with the region, address and limit
    /// named) if the monitor placed it beyond what the device reaches.
    pub fn dma(&self, name: &'static str) -> Result<dma::DmaRegion, dma::DmaError> {
        // SAFETY: system-builder checked that this DMA region is mapped
        // read-write at vaddr for size bytes and is no other role's; the
        // monitor allocates it from one untyped (physically contiguous) and
        // wrote its physical address into paddr.
        unsafe {
            dma::DmaRegion::new(
                name,
                self.vaddr,
                self.paddr,
                self.size,
                dma::AddressWidth::bits(self.address_bits),
            )
        }
    }
}

/// Where an interrupt comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqSource {
    Ioapic {
        ioapic: u8,
        pin: u8,
        level: bool,
        active_low: bool,
        vector: u8,
    },
    Msi {
        bdf: Bdf,
        handle: u64,
        vector: u8,
    },
    /// An ARM GIC interrupt ID; level-triggered.
    Gic {
        irq: u16,
    },
}

/// An interrupt, delivered as a notification on channel `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    pub id: u8,
    pub source: IrqSource,
}

/// A channel end of this PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub id: u8,
}

/// An I/O port range `[base, base + size)`, reached through the
/// capability `<ioport id=...>` gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPorts {
    pub id: u8,
    pub base: u16,
    pub size: u16,
}

/// Which end of a Dingo port this PD holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The protocol's provider (ring side A).
    Provider,
    /// The client: the mirror of the protocol (ring side B).
    Client,
}

/// One end of a Dingo port: its shared region, its channel, the ring
/// geometry both ends were given, and who is at the other end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// The role's name in the manifest (names the port in reports).
    pub role: &'static str,
    pub vaddr: usize,
    pub size: usize,
    pub channel: u8,
    pub slots: u32,
    pub side: Side,
    /// The Tingu protocol both ends were checked to speak.
    pub protocol: Name,
    /// The PD at the other end.
    pub peer: Name,
    /// Whether the monitor restarts the peer when it fails (its restart
    /// policy in the wiring file): only then does a client end keep the
    /// protocol's shadow, which costs on every message.
    pub peer_restarts: bool,
}

/// A PCI function this PD drives, reached through the PD that serves PCI
/// configuration space (a protected procedure call on `channel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    pub channel: u8,
    pub bdf: Bdf,
}

/// A driver this PD serves PCI configuration space to: calls arriving on
/// `channel` may reach function `bdf` and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciClient {
    pub channel: u8,
    pub bdf: Bdf,
    /// Memory BARs the system description places: BAR `i` at the physical
    /// address of the driver's device region (address, size), whatever the
    /// firmware chose.
    pub bars: [Option<BarPlacement>; 6],
    pub pd: Name,
}

/// Where a memory BAR goes: the driver's device region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarPlacement {
    pub paddr: u64,
    pub size: u64,
}

/// Decodes a filled config block in layout order. Every decoder panics with
/// a message naming the program on a value no builder writes: a block that
/// was not filled (an image not made by system-builder) or was corrupted.
pub struct Reader<W: Words + ?Sized + 'static> {
    words: &'static W,
    at: usize,
    program: &'static str,
}

impl<W: Words + ?Sized + 'static> Reader<W> {
    /// Checks the header: filled, for this layout, of this length.
    pub fn new(words: &'static W, layout_hash: u64, program: &'static str) -> Self {
        let magic = words.word(0);
        if magic != layout::MAGIC {
            panic!(
                "{program}: its config was not filled in (magic {magic:#x}); \
                 build the image with system-builder, which fills it from system.xml"
            );
        }
        let hash = words.word(1);
        if hash != layout_hash {
            panic!(
                "{program}: config layout {hash:#x} does not match the program's {layout_hash:#x}; \
                 the image was built from another version of its pd.toml"
            );
        }
        let len = words.word(2);
        if len != words.words() as u64 {
            panic!(
                "{program}: config of {len} words in a block of {}",
                words.words()
            );
        }
        Reader {
            words,
            at: layout::HEADER_WORDS,
            program,
        }
    }

    fn next(&mut self) -> u64 {
        let w = self.words.word(self.at);
        self.at += 1;
        w
    }

    fn small<T: TryFrom<u64>>(&mut self, what: &str) -> T {
        let v = self.next();
        match T::try_from(v) {
            Ok(x) => x,
            Err(_) => panic!("{}: config {what} {v:#x} is out of range", self.program),
        }
    }

    fn channel_id(&mut self) -> u8 {
        let id: u8 = self.small("channel id");
        if id > layout::MAX_CHANNEL_ID {
            panic!("{}: config channel id {id} is above 61", self.program);
        }
        id
    }

    pub fn name(&mut self) -> Name {
        let len = self.next() as usize;
        if len > layout::MAX_STRING {
            panic!("{}: config name of {len} bytes", self.program);
        }
        let bytes = self.words.bytes(self.at, layout::STRING_WORDS - 1);
        self.at += layout::STRING_WORDS - 1;
        match core::str::from_utf8(&bytes[..len]) {
            Ok(s) => s,
            Err(_) => panic!("{}: config name is not UTF-8", self.program),
        }
    }

    fn area(&mut self) -> (usize, usize, u64) {
        let vaddr = self.small("region address");
        let size = self.small("region size");
        let paddr = self.next();
        (vaddr, size, paddr)
    }

    pub fn shared_region(&mut self, writable: bool) -> SharedRegion {
        let (vaddr, size, _) = self.area();
        SharedRegion {
            vaddr,
            size,
            writable,
        }
    }

    pub fn device_region(&mut self) -> DeviceRegion {
        let (vaddr, size, paddr) = self.area();
        DeviceRegion { vaddr, size, paddr }
    }

    pub fn dma_region(&mut self, address_bits: u8) -> DmaRegion {
        let (vaddr, size, paddr) = self.area();
        DmaRegion {
            vaddr,
            size,
            paddr,
            address_bits,
        }
    }

    pub fn irq(&mut self) -> Irq {
        let id = self.channel_id();
        let at = self.next();
        let flags = self.next();
        let vector: u8 = self.small("IRQ vector");
        let source = if flags & layout::IRQ_GIC != 0 {
            IrqSource::Gic { irq: at as u16 }
        } else if flags & layout::IRQ_MSI != 0 {
            IrqSource::Msi {
                bdf: Bdf::from_packed((at >> 48) as u16),
                handle: at & ((1 << 48) - 1),
                vector,
            }
        } else {
            IrqSource::Ioapic {
                ioapic: (at >> 8) as u8,
                pin: at as u8,
                level: flags & layout::IRQ_LEVEL != 0,
                active_low: flags & layout::IRQ_ACTIVE_LOW != 0,
                vector,
            }
        };
        Irq { id, source }
    }

    pub fn channel(&mut self) -> Channel {
        Channel {
            id: self.channel_id(),
        }
    }

    pub fn ioports(&mut self) -> IoPorts {
        IoPorts {
            id: self.small("ioport id"),
            base: self.small("ioport base"),
            size: self.small("ioport size"),
        }
    }

    /// A port end of role `role`.
    pub fn port(&mut self, role: &'static str) -> PortConfig {
        let (vaddr, size, _) = self.area();
        let channel = self.channel_id();
        let slots = self.small("port slot count");
        let side = match self.next() {
            layout::SIDE_PROVIDER => Side::Provider,
            layout::SIDE_CLIENT => Side::Client,
            other => panic!("{}: config port side {other}", self.program),
        };
        PortConfig {
            role,
            vaddr,
            size,
            channel,
            slots,
            side,
            protocol: self.name(),
            peer: self.name(),
            peer_restarts: self.next() != 0,
        }
    }

    pub fn pci(&mut self) -> PciFunction {
        PciFunction {
            channel: self.channel_id(),
            bdf: Bdf::from_packed(self.small("PCI address")),
        }
    }

    pub fn pci_client(&mut self) -> PciClient {
        let channel = self.channel_id();
        let bdf = Bdf::from_packed(self.small("PCI address"));
        let bars = core::array::from_fn(|_| {
            let (paddr, size) = (self.next(), self.next());
            (size != 0).then_some(BarPlacement { paddr, size })
        });
        PciClient {
            channel,
            bdf,
            bars,
            pd: self.name(),
        }
    }

    pub fn param_u8(&mut self) -> u8 {
        self.small("parameter")
    }
    pub fn param_u16(&mut self) -> u16 {
        self.small("parameter")
    }
    pub fn param_u32(&mut self) -> u32 {
        self.small("parameter")
    }
    pub fn param_u64(&mut self) -> u64 {
        self.next()
    }
    pub fn param_bool(&mut self) -> bool {
        match self.next() {
            0 => false,
            1 => true,
            v => panic!("{}: config boolean {v}", self.program),
        }
    }

    /// An optional role: a presence word, then the item's words (present
    /// or not, so the layout stays fixed).
    pub fn optional<T>(&mut self, words: usize, item: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let present = self.next();
        let start = self.at;
        let value = (present == 1).then(|| item(self));
        self.at = start + words;
        value
    }

    /// A list role: a count word, then `N` items of `words` each.
    pub fn list<T, const N: usize>(
        &mut self,
        words: usize,
        mut item: impl FnMut(&mut Self) -> T,
    ) -> List<T, N> {
        let count = self.next() as usize;
        if count > N {
            panic!(
                "{}: config list of {count} entries, at most {N}",
                self.program
            );
        }
        let start = self.at;
        let mut list = List::new();
        for i in 0..count {
            self.at = start + i * words;
            // Cannot fail: count <= N.
            let _ = list.push(item(self));
        }
        self.at = start + N * words;
        list
    }

    /// Ends decoding: every word was read, in the layout the builder wrote.
    pub fn finish(self) {
        if self.at != self.words.words() {
            panic!(
                "{}: config decoded {} of {} words",
                self.program,
                self.at,
                self.words.words()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn header(words: usize, hash: u64) -> [u64; 3] {
        [layout::MAGIC, hash, words as u64]
    }

    #[test]
    #[should_panic(expected = "prog: its config was not filled in")]
    fn an_unfilled_block_is_named() {
        let words: &'static [u64] = &[0; 8];
        Reader::new(words, 7, "prog");
    }

    #[test]
    #[should_panic(expected = "does not match the program's 0x7")]
    fn a_block_for_another_layout_is_refused() {
        let words: &'static [u64] = std::boxed::Box::leak(std::boxed::Box::new(header(3, 8)));
        Reader::new(words, 7, "prog");
    }

    #[test]
    fn lists_and_optionals_keep_the_layout_fixed() {
        let mut w: heapless::Vec<u64, 32> = heapless::Vec::new();
        w.extend_from_slice(&header(0, 5)).unwrap();
        // list of up to 3 channels, 2 present
        w.extend_from_slice(&[2, 4, 9, 0]).unwrap();
        // optional channel, absent
        w.extend_from_slice(&[0, 0]).unwrap();
        // a parameter after both
        w.push(77).unwrap();
        let n = w.len();
        w[2] = n as u64;
        let w: &'static [u64] = std::boxed::Box::leak(std::boxed::Box::new(w)).as_slice();
        let mut r = Reader::new(w, 5, "prog");
        let list: List<Channel, 3> = r.list(layout::CHANNEL_WORDS, |r| r.channel());
        assert_eq!(list.as_slice(), [Channel { id: 4 }, Channel { id: 9 }]);
        assert_eq!(r.optional(layout::CHANNEL_WORDS, |r| r.channel()), None);
        assert_eq!(r.param_u8(), 77);
        r.finish();
    }

    #[test]
    #[should_panic(expected = "channel id 62 is above 61")]
    fn a_channel_id_above_61_is_refused() {
        let mut w = [0u64; 4];
        w[..3].copy_from_slice(&header(4, 1));
        w[3] = 62;
        let w: &'static [u64] = std::boxed::Box::leak(std::boxed::Box::new(w));
        Reader::new(w, 1, "prog").channel();
    }

    #[test]
    fn bdf_round_trips_and_prints_like_lspci() {
        let b = Bdf {
            bus: 0,
            dev: 3,
            func: 0,
        };
        assert_eq!(Bdf::from_packed(b.packed()), b);
        assert_eq!(b.to_string(), "00:03.0");
    }
}
