//! Parsing of a bootinfo frame captured from a QEMU `pc` boot with 512 MiB
//! (the monitor dumped the live frame; see the kernel log facts below).

use sel4::bootinfo::{BootInfo, BootInfoError};
use sel4::layout;

const BLOB: &[u8] = include_bytes!("fixtures/bootinfo-qemu-pc.bin");

// The kernel's own boot log of that run said:
//   Adding physical memory region 0x100000-0x1ffdf000
//   ELF-loading userland images ... v_end=0x24a000
const RAM: std::ops::Range<u64> = 0x100000..0x1ffdf000;
const IMAGE_END: u64 = 0x24a000;

#[test]
fn captured_frame_parses() {
    let bi = BootInfo::parse(BLOB).unwrap();
    assert_eq!((bi.node_id(), bi.num_nodes()), (0, 1));
    assert_eq!(bi.cnode_size_bits(), 16);
    // The kernel puts the IPC buffer on the page after the root task image.
    assert_eq!(bi.ipc_buffer(), IMAGE_END);
    assert_eq!(bi.empty().end, 1 << 16);
    assert!(bi.empty().start > bi.untyped().end - 1);
    assert_eq!(bi.num_iopt_levels(), 0, "the pc machine has no IOMMU");
    assert!(
        (1000..10000).contains(&bi.tsc_mhz()),
        "TSC {} MHz",
        bi.tsc_mhz()
    );
}

#[test]
fn untypeds_are_consecutive_slots_and_ram_lies_in_ram() {
    let bi = BootInfo::parse(BLOB).unwrap();
    let uts: Vec<_> = bi.untypeds().collect();
    assert_eq!(uts.len() as u64, bi.untyped().len());
    for (i, ut) in uts.iter().enumerate() {
        assert_eq!(ut.cptr, bi.untyped().start + i as u64);
        assert_eq!(ut.paddr % ut.size().min(4096), 0, "{ut:?} misaligned");
        if !ut.is_device {
            assert!(
                RAM.start <= ut.paddr && ut.paddr + ut.size() <= RAM.end,
                "{ut:?} outside RAM"
            );
        }
    }
    let ram: u64 = uts.iter().filter(|u| !u.is_device).map(|u| u.size()).sum();
    // Nearly all of the 511 MiB region, less the kernel and the root task.
    assert!(
        ram > 400 << 20 && ram < RAM.end - RAM.start,
        "{ram:#x} bytes of RAM"
    );
    // Device untypeds never overlap RAM ones.
    for d in uts.iter().filter(|u| u.is_device) {
        for r in uts.iter().filter(|u| !u.is_device) {
            assert!(d.paddr + d.size() <= r.paddr || r.paddr + r.size() <= d.paddr);
        }
    }
}

#[test]
fn truncated_frame_is_rejected() {
    let err = BootInfo::parse(&BLOB[..100]).err().unwrap();
    assert_eq!(
        err,
        BootInfoError::Truncated {
            len: 100,
            need: layout::BI_SIZE
        }
    );
}

fn with_word(off: usize, v: u64) -> Vec<u8> {
    let mut b = BLOB.to_vec();
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn inverted_slot_region_is_rejected() {
    let b = with_word(layout::BI_EMPTY + layout::SLOT_REGION_END, 3);
    let err = BootInfo::parse(&b).err().unwrap();
    assert!(
        matches!(
            err,
            BootInfoError::BadRegion {
                field: "empty",
                end: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn untyped_count_beyond_the_list_is_rejected() {
    let start = BootInfo::parse(BLOB).unwrap().untyped().start;
    let b = with_word(layout::BI_UNTYPED + layout::SLOT_REGION_END, start + 231);
    let err = BootInfo::parse(&b).err().unwrap();
    assert_eq!(
        err,
        BootInfoError::TooManyUntypeds {
            count: 231,
            max: 230
        }
    );
    assert_eq!(
        err.to_string(),
        "bootinfo lists 231 untypeds, at most 230 fit"
    );
}
