//! The core against a fake virtio-blk device over a RAM disk in kit/dma
//! host memory: reads and writes in place, out-of-order completion,
//! requests outside the disk, and impossible used entries.

use std::cell::RefCell;
use std::rc::Rc;

use dma::AddressWidth;
use dma::host::HostDma;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_kit::hal::{HalSlot, HalState, KitHal, Window};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::used::Fault;
use crate::*;

const DATA: u64 = 0x3_0000_0000;
const DISK_BLOCKS: u64 = 64;

/// A chain as the device sees it: its head and its descriptors (address,
/// length, device-writable).
type Chain = (u16, Vec<(u64, u32, bool)>);

#[derive(Default)]
struct Dev {
    mem: Vec<&'static HostDma>,
    disk: Vec<u8>,
    status: DeviceStatus,
    q: (u32, u64, u64, u64),
    seen: u16,
    used_idx: u16,
    isr: u32,
    resets: u32,
    /// Chains taken but not yet completed (head, descriptors).
    held: Vec<Chain>,
}

#[derive(Clone)]
struct Fake(Rc<RefCell<Dev>>);

impl Dev {
    fn read(&self, p: u64, b: &mut [u8]) {
        assert!(
            self.mem.iter().any(|m| m.device_read(p, b).is_ok()),
            "read {p:#x}"
        );
    }
    fn write(&self, p: u64, b: &[u8]) {
        assert!(
            self.mem.iter().any(|m| m.device_write(p, b).is_ok()),
            "write {p:#x}"
        );
    }
    fn r16(&self, p: u64) -> u16 {
        let mut b = [0; 2];
        self.read(p, &mut b);
        u16::from_le_bytes(b)
    }
    /// Takes every available chain without completing it.
    fn take(&mut self) {
        let (size, desc, avail, _) = self.q;
        while self.r16(avail + 2) != self.seen {
            let head = self.r16(avail + 4 + 2 * u64::from(self.seen % size as u16));
            self.seen = self.seen.wrapping_add(1);
            let mut chain = vec![];
            let mut i = head;
            loop {
                let mut d = [0u8; 16];
                self.read(desc + 16 * u64::from(i), &mut d);
                let flags = u16::from_le_bytes([d[12], d[13]]);
                chain.push((
                    u64::from_le_bytes(d[0..8].try_into().unwrap()),
                    u32::from_le_bytes(d[8..12].try_into().unwrap()),
                    flags & 2 != 0,
                ));
                if flags & 1 == 0 {
                    break;
                }
                i = u16::from_le_bytes([d[14], d[15]]);
            }
            self.held.push((head, chain));
        }
    }
    /// Completes held chain `i` (in taking order) as a disk would.
    fn complete(&mut self, i: usize) {
        let (head, chain) = self.held.remove(i);
        let mut h = [0u8; 16];
        self.read(chain[0].0, &mut h);
        let t = u32::from_le_bytes(h[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(h[8..16].try_into().unwrap()) as usize;
        let (addr, len, _) = chain[1];
        let at = sector * 512;
        let mut written = 1;
        if t == 0 {
            let bytes = self.disk[at..at + len as usize].to_vec();
            self.write(addr, &bytes);
            written += len;
        } else {
            let mut b = vec![0; len as usize];
            self.read(addr, &mut b);
            self.disk[at..at + len as usize].copy_from_slice(&b);
        }
        self.write(chain[2].0, &[0]);
        self.push_used(u32::from(head), written);
    }
    fn push_used(&mut self, id: u32, len: u32) {
        let (size, _, _, used) = self.q;
        let slot = u64::from(self.used_idx % size as u16);
        self.write(used + 4 + 8 * slot, &id.to_le_bytes());
        self.write(used + 8 + 8 * slot, &len.to_le_bytes());
        self.used_idx = self.used_idx.wrapping_add(1);
        self.write(used + 2, &self.used_idx.to_le_bytes());
        self.isr |= 1;
    }
}

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        DeviceType::Block
    }
    fn read_device_features(&mut self) -> u64 {
        feature::VERSION_1 | feature::EVENT_IDX | feature::FLUSH
    }
    fn write_driver_features(&mut self, _: u64) {}
    fn max_queue_size(&mut self, _: u16) -> u32 {
        256
    }
    fn notify(&mut self, _: u16) {}
    fn get_status(&self) -> DeviceStatus {
        self.0.borrow().status
    }
    fn set_status(&mut self, s: DeviceStatus) {
        let mut d = self.0.borrow_mut();
        if s.is_empty() {
            d.resets += 1;
        }
        d.status = s;
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _: u16, size: u32, desc: u64, avail: u64, used: u64) {
        self.0.borrow_mut().q = (size, desc, avail, used);
    }
    fn queue_unset(&mut self, _: u16) {}
    fn queue_used(&mut self, _: u16) -> bool {
        false
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::from_bits_retain(std::mem::take(&mut self.0.borrow_mut().isr))
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        let cap = DISK_BLOCKS.to_le_bytes();
        V::read_from_bytes(&cap[offset..offset + std::mem::size_of::<V>()])
            .map_err(|_| virtio_drivers::Error::ConfigSpaceTooSmall)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        _: usize,
        _: V,
    ) -> virtio_drivers::Result<()> {
        Err(virtio_drivers::Error::Unsupported)
    }
}

macro_rules! slot {
    ($name:ident) => {
        struct $name;
        impl HalSlot for $name {
            fn state() -> &'static HalState {
                static S: HalState = HalState::new();
                &S
            }
        }
    };
}

struct Rig<S: HalSlot> {
    disk: Disk<KitHal<S>, Fake>,
    dev: Fake,
    data: &'static HostDma,
    events: Vec<Event>,
}

fn rig<S: HalSlot>() -> Rig<S> {
    let dma: &'static HostDma = Box::leak(Box::new(HostDma::new(0x10000, 0x1_0000_0000)));
    let data: &'static HostDma = Box::leak(Box::new(HostDma::new(0x10000, DATA)));
    let mut r = dma.region("dma", AddressWidth::BITS64).unwrap();
    let pool = r.alloc("rings", 0x8000, 0x1000).unwrap();
    let hdrs = r.alloc("headers", HDRS_LEN, 16).unwrap();
    let d = data
        .region("data", AddressWidth::BITS64)
        .unwrap()
        .alloc("data", 0x10000, 0x1000)
        .unwrap();
    S::state()
        .install(
            Window::of(&pool),
            &[Window::of(&hdrs), Window::of(&d)],
            Window::of(&pool),
        )
        .unwrap();
    let disk_bytes = (0..DISK_BLOCKS as usize * 512)
        .map(|i| (i / 512) as u8 ^ i as u8)
        .collect();
    let dev = Fake(Rc::new(RefCell::new(Dev {
        mem: vec![dma, data],
        disk: disk_bytes,
        ..Dev::default()
    })));
    let disk = Disk::new(dev.clone(), S::state(), hdrs, d).unwrap();
    Rig {
        disk,
        dev,
        data,
        events: vec![],
    }
}

impl<S: HalSlot> Rig<S> {
    fn submit(&mut self, req: u32, write: bool, block: u64, count: u32, buf: u32) {
        let ev = &mut self.events;
        self.disk
            .submit(req, write, block, count, buf, &mut |e| ev.push(e));
        self.disk.kick();
    }
    fn service(&mut self) {
        let ev = &mut self.events;
        self.disk.service(&mut |e| ev.push(e));
    }
    fn get(&self, buf: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.data
            .device_read(DATA + u64::from(buf), &mut b)
            .unwrap();
        b
    }
}

#[test]
fn reads_land_in_place_and_writes_come_from_it_out_of_order() {
    slot!(S);
    let mut r = rig::<S>();
    assert_eq!(
        r.disk.ready(),
        Event::Ready {
            blocks: 64,
            block_size: 512
        }
    );
    r.submit(1, false, 3, 4, 0);
    r.submit(2, false, 10, 1, 0x4000);
    r.dev.0.borrow_mut().take();
    // The second completes first.
    r.dev.0.borrow_mut().complete(1);
    r.dev.0.borrow_mut().complete(0);
    r.service();
    assert_eq!(
        r.events,
        [
            Event::Done { req: 2, status: 0 },
            Event::Done { req: 1, status: 0 }
        ]
    );
    let want = r.dev.0.borrow().disk[3 * 512..7 * 512].to_vec();
    assert_eq!(r.get(0, 4 * 512), want);

    r.data.device_write(DATA + 0x8000, &[0xab; 1024]).unwrap();
    r.submit(3, true, 20, 2, 0x8000);
    r.dev.0.borrow_mut().take();
    r.dev.0.borrow_mut().complete(0);
    r.service();
    assert_eq!(r.events[2], Event::Done { req: 3, status: 0 });
    assert!(
        r.dev.0.borrow().disk[20 * 512..22 * 512]
            .iter()
            .all(|&b| b == 0xab)
    );
    let c = r.disk.counters();
    assert_eq!((c.reads, c.writes, c.bytes_read), (2, 1, 5 * 512));
}

#[test]
fn requests_outside_the_disk_or_the_data_region_are_refused() {
    slot!(S);
    let mut r = rig::<S>();
    r.submit(1, false, 63, 2, 0);
    r.submit(2, false, 0, 1, 0xfe00 + 1);
    r.submit(3, false, u64::MAX, 1, 0);
    r.submit(4, true, 0, 0, 0);
    assert!(
        r.events
            .iter()
            .all(|e| matches!(e, Event::Done { status: 3, .. }))
    );
    assert_eq!(r.events.len(), 4);
    assert_eq!(r.disk.outstanding(), 0);
}

#[test]
fn a_status_no_device_writes_is_an_io_error() {
    slot!(S);
    let mut r = rig::<S>();
    r.submit(1, false, 0, 1, 0);
    r.dev.0.borrow_mut().take();
    // Used without writing the status: it still reads 0xff.
    let head = r.dev.0.borrow().held[0].0;
    r.dev.0.borrow_mut().push_used(u32::from(head), 513);
    r.service();
    assert_eq!(r.events, [Event::Done { req: 1, status: 1 }]);
    assert_eq!(r.disk.counters().bad_status, 1);
}

#[test]
fn an_impossible_used_entry_resets_the_device_and_answers_everything() {
    slot!(S);
    let mut r = rig::<S>();
    r.submit(1, false, 0, 1, 0);
    r.submit(2, false, 1, 1, 0x200);
    r.dev.0.borrow_mut().take();
    // Descriptor 1 is the data of request 1's chain, no chain's head.
    r.dev.0.borrow_mut().push_used(1, 513);
    r.service();
    assert_eq!(r.disk.fault(), Some(Fault::NotInFlight { id: 1 }));
    assert!(r.dev.0.borrow().resets >= 2);
    let mut ev = r.events.clone();
    ev.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        ev,
        [
            Event::Done { req: 1, status: 1 },
            Event::Done { req: 2, status: 1 },
            Event::Gone
        ]
    );
    r.events.clear();
    r.submit(3, false, 0, 1, 0);
    assert_eq!(r.events, [Event::Done { req: 3, status: 2 }]);
}
