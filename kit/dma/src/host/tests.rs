//! Every check of regions, allocations and buffers, on host memory.

use super::*;
use crate::{DmaBuf, Pod, Zeroable};

const GIB4: u64 = 1 << 32;

fn region32(size: usize, paddr: u64) -> (HostDma, DmaRegion) {
    let host = HostDma::new(size, paddr);
    let region = host.region("nic", AddressWidth::BITS32).unwrap();
    (host, region)
}

#[test]
fn a_32_bit_device_gets_memory_up_to_exactly_4_gib() {
    let (_, r) = region32(0x4000, GIB4 - 0x4000);
    assert_eq!(
        (r.paddr(), r.size(), r.free()),
        (GIB4 - 0x4000, 0x4000, 0x4000)
    );
}

#[test]
fn a_32_bit_device_is_refused_memory_at_or_past_4_gib() {
    for paddr in [GIB4, GIB4 - 0x1000, 0x7_0000_0000] {
        let host = HostDma::new(0x2000, paddr);
        let err = host.region("ohci", AddressWidth::BITS32).unwrap_err();
        assert_eq!(
            err,
            DmaError::AboveLimit {
                region: "ohci",
                paddr,
                size: 0x2000,
                limit: Some(GIB4)
            }
        );
        let msg = err.to_string();
        for part in ["'ohci'", &format!("{paddr:#x}"), "0x2000", "0x100000000"] {
            assert!(msg.contains(part), "{msg} lacks {part}");
        }
    }
    // The same memory is fine for a 64-bit engine...
    let host = HostDma::new(0x2000, GIB4);
    let r = host.region("xhci", AddressWidth::BITS64).unwrap();
    assert_eq!(r.width(), AddressWidth::BITS64);
    // ...and narrower engines have their own limits.
    let host = HostDma::new(0x1000, 1 << 24);
    assert!(host.region("isa", AddressWidth::bits(24)).is_err());
}

#[test]
fn a_region_wrapping_the_address_space_is_refused() {
    let host = HostDma::new(0x2000, u64::MAX - 0xfff);
    let err = host.region("wrap", AddressWidth::BITS64).unwrap_err();
    assert!(matches!(err, DmaError::AboveLimit { limit: None, .. }));
    assert!(err.to_string().contains("wraps"), "{err}");
}

#[test]
fn regions_must_start_on_a_page_and_not_be_empty() {
    let host = HostDma::new(0x2000, 0x10_0000);
    // SAFETY: never accessed; only the checks run.
    let err = unsafe {
        DmaRegion::new(
            "odd",
            host.base as usize + 0x10,
            0x10_0010,
            0x100,
            AddressWidth::BITS32,
        )
    }
    .unwrap_err();
    assert_eq!(
        err,
        DmaError::Misaligned {
            region: "odd",
            vaddr: host.base as usize + 0x10,
            paddr: 0x10_0010
        }
    );
    assert!(err.to_string().contains("not page-aligned"));
    // SAFETY: as above.
    let err = unsafe {
        DmaRegion::new(
            "none",
            host.base as usize,
            0x10_0000,
            0,
            AddressWidth::BITS32,
        )
    };
    assert_eq!(err.unwrap_err(), DmaError::Empty { region: "none" });
}

#[test]
fn allocations_are_aligned_in_physical_memory() {
    let (_, mut r) = region32(0x4000, 0x20_0000);
    let hcca = r.alloc("hcca", 256, 256).unwrap();
    let odd = r.alloc("odd", 3, 1).unwrap();
    let ed = r.alloc("ed", 16, 16).unwrap();
    let tx = r.alloc("tx0", 1514, 4).unwrap();
    let td = r.alloc("td", 16, 16).unwrap();
    assert_eq!(hcca.paddr(), 0x20_0000);
    assert_eq!(odd.paddr(), 0x20_0100);
    assert_eq!(ed.paddr(), 0x20_0110);
    assert_eq!(tx.paddr(), 0x20_0120);
    assert_eq!(td.paddr() % 16, 0);
    assert!(td.paddr() >= tx.paddr() + 1514);
    // Virtual addresses follow the physical layout.
    for b in [&hcca, &odd, &ed, &tx, &td] {
        assert_eq!(b.vaddr() as u64 - r.vaddr() as u64, b.paddr() - r.paddr());
    }
    assert_eq!(
        r.alloc("bad", 16, 24).unwrap_err(),
        DmaError::BadAlign {
            region: "nic",
            align: 24
        }
    );
    assert_eq!(
        r.alloc("nothing", 0, 4).unwrap_err(),
        DmaError::ZeroLength {
            region: "nic",
            buffer: "nothing"
        }
    );
}

#[test]
fn the_rtl8139_receive_ring_fits_and_then_the_region_is_exhausted() {
    // 8 KiB ring + 16 bytes + 2048 of overrun room (RxConfig's WRAP bit).
    let (_, mut r) = region32(0x3000, 0x30_0000);
    let ring = r.alloc("rx-ring", 8192 + 16 + 2048, 16).unwrap();
    assert_eq!(ring.len(), 10256);
    let free = r.free();
    assert_eq!(free, 0x3000 - 10256);
    let err = r.alloc("tx0", 2048, 4).unwrap_err();
    assert_eq!(
        err,
        DmaError::Exhausted {
            region: "nic",
            buffer: "tx0",
            len: 2048,
            align: 4,
            free
        }
    );
    assert_eq!(
        err.to_string(),
        "DMA region 'nic' is exhausted: buffer 'tx0' needs 0x800 bytes aligned to 0x4, 0x7f0 \
         bytes are left"
    );
    // Padding counts: 0x7f0 bytes are left, but not at 4 KiB alignment.
    assert!(matches!(
        r.alloc("page", 0x10, 0x1000),
        Err(DmaError::Exhausted { .. })
    ));
    // What is left can still be had.
    assert_eq!(r.alloc("rest", free, 1).unwrap().len(), free);
    assert_eq!(r.free(), 0);
}

#[test]
fn paddr32_refuses_buffers_a_32_bit_engine_cannot_reach() {
    let host = HostDma::new(0x2000, GIB4 - 0x1000);
    let mut r = host.region("mixed", AddressWidth::BITS64).unwrap();
    let low = r.alloc("low", 0x800, 16).unwrap();
    let straddling = r.alloc("straddling", 0x1000, 16).unwrap();
    assert_eq!(low.paddr32(), Ok((GIB4 - 0x1000) as u32));
    assert_eq!(low.paddr32_at(0x10), Ok((GIB4 - 0xff0) as u32));
    let err = straddling.paddr32().unwrap_err();
    assert_eq!(
        err,
        DmaError::BufferAboveLimit {
            region: "mixed",
            buffer: "straddling",
            paddr: GIB4 - 0x800,
            size: 0x1000,
            limit: GIB4
        }
    );
    assert!(err.to_string().contains("'straddling'"), "{err}");
}

/// An OHCI general transfer descriptor, as a driver would declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(16))]
struct Td {
    control: u32,
    cbp: u32,
    next: u32,
    be: u32,
}

#[test]
fn descriptors_round_trip_between_driver_and_device() {
    let (host, mut r) = region32(0x1000, 0x40_0000);
    let mut tds = r.alloc("tds", 4 * 16, 16).unwrap();
    tds.zero();
    let td = Td {
        control: 0xf000_0000,
        cbp: 0x40_1000,
        next: tds.paddr32_at(16).unwrap(),
        be: 0x40_1007,
    };
    tds.write(0, td);
    assert_eq!(host.device_read_u32(tds.paddr_at(8)), Ok(0x40_0010));
    // The device completes it: condition code in the top bits, cbp zeroed.
    host.device_write_u32(tds.paddr(), 0x0000_0000).unwrap();
    host.device_write_u32(tds.paddr_at(4), 0).unwrap();
    let done: Td = tds.read(0);
    assert_eq!((done.control, done.cbp, done.next), (0, 0, 0x40_0010));
    assert_eq!(tds.read::<u32>(12), 0x40_1007);
    assert_eq!(tds.read::<Td>(16), Td::zeroed());
    assert_eq!(
        host.device_read_u32(0x3f_fffc),
        Err(OutOfRange {
            paddr: 0x3f_fffc,
            len: 4
        })
    );
}

#[test]
fn byte_copies_at_any_offset_and_length() {
    let (host, mut r) = region32(0x1000, 0x50_0000);
    let _pad = r.alloc("pad", 3, 1).unwrap();
    let mut frame = r.alloc("frame", 100, 1).unwrap();
    let data: Vec<u8> = (0..61u8).collect();
    for offset in [0, 1, 5, 8, 39] {
        frame.copy_in(offset, &data);
        let mut seen = vec![0; data.len()];
        host.device_read(frame.paddr_at(offset), &mut seen).unwrap();
        assert_eq!(seen, data, "offset {offset}");
        let mut back = vec![0; data.len()];
        frame.copy_out(offset, &mut back);
        assert_eq!(back, data, "offset {offset}");
    }
}

#[test]
fn copies_between_buffers_go_straight_across() {
    let (host, mut r) = region32(0x1000, 0x50_0000);
    let mut ring = r.alloc("ring", 64, 8).unwrap();
    let mut lent = r.alloc("lent", 64, 8).unwrap();
    let data: Vec<u8> = (0..40u8).map(|b| b ^ 0x3c).collect();
    ring.copy_in(3, &data);
    ring.copy_to(3, &mut lent, 17, data.len());
    let mut seen = vec![0; data.len()];
    host.device_read(lent.paddr_at(17), &mut seen).unwrap();
    assert_eq!(seen, data);
}

#[test]
#[should_panic(
    expected = "dma: copy_to of 0x11 bytes at offset 0x0 is outside buffer 'ed' of 0x10 bytes"
)]
fn a_copy_past_the_destination_panics_naming_it() {
    let (_, mut r) = region32(0x1000, 0x70_0000);
    let src = r.alloc("src", 64, 16).unwrap();
    let mut dst = r.alloc("ed", 16, 16).unwrap();
    src.copy_to(0, &mut dst, 0, 17);
}

fn small() -> DmaBuf {
    let (_, mut r) = region32(0x1000, 0x60_0000);
    r.alloc("ed", 16, 16).unwrap()
}

#[test]
#[should_panic(expected = "dma: 4-byte read at offset 0xe is outside buffer 'ed' of 0x10 bytes")]
fn a_read_past_the_buffer_panics() {
    small().read::<u32>(14);
}

#[test]
#[should_panic(expected = "dma: 16-byte write at offset 0x10 is outside buffer 'ed' of 0x10 bytes")]
fn a_write_past_the_buffer_panics() {
    small().write(16, Td::zeroed());
}

#[test]
#[should_panic(expected = "dma: 4-byte read at offset 0x2 of buffer 'ed' is not aligned to 4")]
fn a_misaligned_descriptor_read_panics() {
    small().read::<u32>(2);
}

#[test]
#[should_panic(
    expected = "dma: copy_in of 0x11 bytes at offset 0x0 is outside buffer 'ed' of 0x10 bytes"
)]
fn a_copy_past_the_buffer_panics() {
    small().copy_in(0, &[0; 17]);
}

#[test]
#[should_panic(expected = "dma: offset 0x11 is outside buffer 'ed' of 0x10 bytes")]
fn an_address_past_the_buffer_panics() {
    small().paddr_at(17);
}

#[test]
#[should_panic(expected = "host DMA: region taken twice")]
fn host_memory_makes_one_region_only() {
    let host = HostDma::new(0x1000, 0);
    let _a = host.region("a", AddressWidth::BITS32);
    let _b = host.region("b", AddressWidth::BITS32);
}
