//! A fake virtio-net device for the core's tests: a transport (features,
//! status, queue addresses, ISR, configuration) and the device's side of
//! the split rings in kit/dma host memory, as QEMU 7.2's virtio-net plays
//! it (one header per chain, mergeable buffers, used length 0 for a
//! transmit), plus ways to write impossible used entries.

use std::cell::RefCell;
use std::rc::Rc;

use dma::host::HostDma;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::{HDR_LEN, feature};

const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;

/// A chain as the device sees it: its head and its descriptors (address,
/// length, device-writable).
type Chain = (u16, Vec<(u64, u32, bool)>);

#[derive(Clone, Copy, Default)]
pub struct Queue {
    pub size: u32,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// Available entries taken.
    pub seen: u16,
    /// Used entries written.
    pub used_idx: u16,
}

pub struct Dev {
    pub mem: &'static [&'static HostDma],
    pub offered: u64,
    pub accepted: u64,
    pub status: DeviceStatus,
    /// Clears FEATURES_OK when set, as a device refusing features does.
    pub refuse_features: bool,
    pub queues: [Queue; 2],
    pub isr: u32,
    pub config: [u8; 12],
    pub generation: u32,
    pub notified: [u32; 2],
    pub resets: u32,
}

#[derive(Clone)]
pub struct Fake(pub Rc<RefCell<Dev>>);

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x57];

impl Fake {
    pub fn new(mem: &'static [&'static HostDma]) -> Self {
        let mut config = [0; 12];
        config[..6].copy_from_slice(&MAC);
        config[6] = 1; // link up
        Fake(Rc::new(RefCell::new(Dev {
            mem,
            offered: feature::VERSION_1
                | feature::MAC
                | feature::STATUS
                | feature::EVENT_IDX
                | feature::MRG_RXBUF,
            accepted: 0,
            status: DeviceStatus::empty(),
            refuse_features: false,
            queues: [Queue::default(); 2],
            isr: 0,
            config,
            generation: 0,
            notified: [0; 2],
            resets: 0,
        })))
    }
}

impl Dev {
    fn read(&self, paddr: u64, buf: &mut [u8]) {
        let ok = self.mem.iter().any(|m| m.device_read(paddr, buf).is_ok());
        assert!(
            ok,
            "fake device: read of {:#x}+{} outside DMA memory",
            paddr,
            buf.len()
        );
    }
    fn write(&self, paddr: u64, buf: &[u8]) {
        let ok = self.mem.iter().any(|m| m.device_write(paddr, buf).is_ok());
        assert!(
            ok,
            "fake device: write of {:#x}+{} outside DMA memory",
            paddr,
            buf.len()
        );
    }
    fn r16(&self, paddr: u64) -> u16 {
        let mut b = [0; 2];
        self.read(paddr, &mut b);
        u16::from_le_bytes(b)
    }

    /// The next available chain of queue `q`: its head and descriptors
    /// (address, length, writable).
    fn pop(&mut self, q: usize) -> Option<Chain> {
        let qu = self.queues[q];
        let avail_idx = self.r16(qu.avail + 2);
        if avail_idx == qu.seen {
            return None;
        }
        let size = qu.size as u16;
        let head = self.r16(qu.avail + 4 + 2 * u64::from(qu.seen % size));
        self.queues[q].seen = qu.seen.wrapping_add(1);
        let mut chain = vec![];
        let mut i = head;
        loop {
            let mut d = [0u8; 16];
            self.read(qu.desc + 16 * u64::from(i), &mut d);
            let addr = u64::from_le_bytes(d[0..8].try_into().unwrap());
            let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
            let flags = u16::from_le_bytes(d[12..14].try_into().unwrap());
            let next = u16::from_le_bytes(d[14..16].try_into().unwrap());
            chain.push((addr, len, flags & DESC_WRITE != 0));
            if flags & DESC_NEXT == 0 || chain.len() > 16 {
                break;
            }
            i = next;
        }
        Some((head, chain))
    }

    /// Writes a used entry of queue `q` as it is, and moves the index.
    pub fn push_used(&mut self, q: usize, id: u32, len: u32) {
        let qu = self.queues[q];
        let slot = u64::from(qu.used_idx % qu.size as u16);
        self.write(qu.used + 4 + 8 * slot, &id.to_le_bytes());
        self.write(qu.used + 8 + 8 * slot, &len.to_le_bytes());
        let idx = qu.used_idx.wrapping_add(1);
        self.queues[q].used_idx = idx;
        self.write(qu.used + 2, &idx.to_le_bytes());
        self.isr |= 1;
    }

    /// Moves the used index of queue `q` by `n` without writing entries.
    pub fn bump_used(&mut self, q: usize, n: u16) {
        let qu = self.queues[q];
        let idx = qu.used_idx.wrapping_add(n);
        self.queues[q].used_idx = idx;
        self.write(qu.used + 2, &idx.to_le_bytes());
        self.isr |= 1;
    }

    /// Delivers a frame into as many receive chains as it needs (mergeable
    /// buffers); false if the queue has too few.
    pub fn receive(&mut self, frame: &[u8]) -> bool {
        let mut data = vec![0u8; HDR_LEN];
        data.extend_from_slice(frame);
        let mut chains = vec![];
        let mut room = 0usize;
        while room < data.len() {
            let Some((head, chain)) = self.pop(0) else {
                // Not enough buffers: QEMU waits; this fake gives them back.
                self.queues[0].seen = self.queues[0].seen.wrapping_sub(chains.len() as u16);
                return false;
            };
            room += chain
                .iter()
                .filter(|d| d.2)
                .map(|d| d.1 as usize)
                .sum::<usize>();
            chains.push((head, chain));
        }
        let n = chains.len() as u16;
        data[10..12].copy_from_slice(&n.to_le_bytes());
        let mut at = 0;
        for (head, chain) in chains {
            let start = at;
            for (addr, len, writable) in chain {
                assert!(writable, "a receive chain with a readable descriptor");
                let take = (len as usize).min(data.len() - at);
                self.write(addr, &data[at..at + take]);
                at += take;
            }
            self.push_used(0, u32::from(head), (at - start) as u32);
        }
        true
    }

    /// Takes every transmit chain: the frames (headers checked and cut off).
    pub fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut out = vec![];
        while let Some((head, chain)) = self.pop(1) {
            let mut bytes = vec![];
            for (addr, len, writable) in chain {
                assert!(!writable, "a transmit chain with a writable descriptor");
                let mut b = vec![0; len as usize];
                self.read(addr, &mut b);
                bytes.extend(b);
            }
            assert!(
                bytes[..HDR_LEN].iter().all(|&b| b == 0),
                "a non-zero header"
            );
            out.push(bytes[HDR_LEN..].to_vec());
            self.push_used(1, u32::from(head), 0);
        }
        out
    }

    /// The `used_event` the driver wrote for queue `q`.
    pub fn used_event(&self, q: usize) -> u16 {
        let qu = self.queues[q];
        self.r16(qu.avail + 4 + 2 * u64::from(qu.size))
    }

    /// Sets the device's `avail_event` for queue `q`.
    pub fn set_avail_event(&self, q: usize, idx: u16) {
        let qu = self.queues[q];
        self.write(qu.used + 4 + 8 * u64::from(qu.size), &idx.to_le_bytes());
    }

    /// The link changes: status and a configuration interrupt.
    pub fn set_link(&mut self, up: bool) {
        self.config[6] = u8::from(up);
        self.generation += 1;
        self.isr |= 2;
    }
}

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.borrow().offered
    }
    fn write_driver_features(&mut self, f: u64) {
        self.0.borrow_mut().accepted = f;
    }
    fn max_queue_size(&mut self, _: u16) -> u32 {
        256
    }
    fn notify(&mut self, q: u16) {
        self.0.borrow_mut().notified[usize::from(q)] += 1;
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.borrow().status
    }
    fn set_status(&mut self, s: DeviceStatus) {
        let mut d = self.0.borrow_mut();
        if s.is_empty() {
            d.resets += 1;
            d.queues = [Queue::default(); 2];
            d.isr = 0;
        }
        d.status = if d.refuse_features {
            s - DeviceStatus::FEATURES_OK
        } else {
            s
        };
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, q: u16, size: u32, desc: u64, avail: u64, used: u64) {
        self.0.borrow_mut().queues[usize::from(q)] = Queue {
            size,
            desc,
            avail,
            used,
            seen: 0,
            used_idx: 0,
        };
    }
    fn queue_unset(&mut self, _: u16) {}
    fn queue_used(&mut self, q: u16) -> bool {
        self.0.borrow().queues[usize::from(q)].size != 0
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        let mut d = self.0.borrow_mut();
        InterruptStatus::from_bits_retain(std::mem::take(&mut d.isr))
    }
    fn read_config_generation(&self) -> u32 {
        self.0.borrow().generation
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        let d = self.0.borrow();
        let n = std::mem::size_of::<V>();
        V::read_from_bytes(&d.config[offset..offset + n])
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
