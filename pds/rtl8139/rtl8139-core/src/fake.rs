//! A fake RTL8139 for the host tests: QEMU's model (hw/net/rtl8139.c) in
//! normal mode, as far as the driver uses it, on hwio's fake bus and kit/dma's
//! host memory. Every DMA access the model makes must land in one of the
//! driver's host DMA blocks; anything else panics, failing the test.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use dma::host::HostDma;
use hwio::fake::FakeBus;

use crate::regs::{
    BMSR, CAPR, CBR, CR, IDR, IMR, ISR, MPC, RBSTART, RCR, REGISTER_BYTES, TCR, TSAD, TSD,
};

const CMD_RST: u8 = 0x10;
const CMD_RE: u8 = 0x08;
const CMD_TE: u8 = 0x04;
const CMD_BUFE: u8 = 0x01;
const INT_ROK: u16 = 0x01;
const INT_TOK: u16 = 0x04;
const INT_RXOVW: u16 = 0x10;
const INT_PUN: u16 = 0x20;
const TSD_OWN: u32 = 1 << 13;
const TSD_TOK: u32 = 1 << 15;
const RCR_WRAP: u32 = 1 << 7;

pub struct Model {
    dma: Vec<Rc<HostDma>>,
    rbstart: u32,
    ring_len: usize,
    /// RxBufAddr: where the next record goes.
    rx_addr: usize,
    /// RxBufPtr: the driver's read offset (CAPR + 16).
    rx_ptr: usize,
    pub isr: u16,
    imr: u16,
    cr: u8,
    rcr: u32,
    tcr: u32,
    tsd: [u32; 4],
    tsad: [u32; 4],
    cur_tx: usize,
    missed: u32,
    link_up: bool,
    /// Frames the device transmitted, in order.
    pub sent: Vec<Vec<u8>>,
    /// Frames QEMU holds back while the ring is full.
    pub held: VecDeque<Vec<u8>>,
    /// Frames dropped by the model (ring overflow, receiver off).
    pub dropped: usize,
    /// Transmits never complete (a stuck chip).
    pub stuck_tx: bool,
}

impl Model {
    fn reset(&mut self) {
        self.isr = 0;
        self.imr = 0;
        self.tsd = [TSD_OWN; 4];
        self.cur_tx = 0;
        self.rbstart = 0;
        self.ring_len = 8192;
        self.rx_addr = 0;
        self.rx_ptr = 0;
        self.cr = 0;
        self.tcr = 0;
    }

    fn dma_write(&self, paddr: u64, bytes: &[u8]) {
        for block in &self.dma {
            if block.device_write(paddr, bytes).is_ok() {
                return;
            }
        }
        panic!(
            "fake rtl8139: DMA write of {} bytes at {paddr:#x} outside the driver's memory",
            bytes.len()
        );
    }

    fn dma_read(&self, paddr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        for block in &self.dma {
            if block.device_read(paddr, &mut v).is_ok() {
                return v;
            }
        }
        panic!("fake rtl8139: DMA read of {len} bytes at {paddr:#x} outside the driver's memory");
    }

    fn avail(&self) -> usize {
        (self.ring_len + self.rx_ptr - self.rx_addr) % self.ring_len
    }

    fn can_receive(&self) -> bool {
        if self.cr & CMD_RE == 0 {
            return true;
        }
        let avail = self.avail();
        avail == 0 || avail >= 1514 || self.imr & INT_RXOVW != 0
    }

    /// rtl8139_write_buffer: wraps at the ring's end unless WRAP is set.
    fn write_buffer(&mut self, bytes: &[u8]) {
        let size = bytes.len();
        let base = u64::from(self.rbstart);
        if self.rx_addr + size > self.ring_len {
            let wrapped = (self.rx_addr + size) % self.ring_len;
            if wrapped != 0 && !(self.ring_len < 65536 && self.rcr & RCR_WRAP != 0) {
                if size > wrapped {
                    self.dma_write(base + self.rx_addr as u64, &bytes[..size - wrapped]);
                }
                self.rx_addr = 0;
                self.dma_write(base, &bytes[size - wrapped..]);
                self.rx_addr = wrapped;
                return;
            }
        }
        self.dma_write(base + self.rx_addr as u64, bytes);
        self.rx_addr += size;
    }

    fn do_receive(&mut self, frame: &[u8]) {
        if self.cr & CMD_RE == 0 {
            self.dropped += 1;
            return;
        }
        let mut buf = frame.to_vec();
        if buf.len() < 60 {
            buf.resize(60, 0);
        }
        let size = buf.len();
        let avail = self.avail();
        if avail != 0 && size + 8 >= avail {
            self.isr |= INT_RXOVW;
            self.missed += 1;
            self.dropped += 1;
            return;
        }
        let header = 0x0001u32 | (((size + 4) as u32) << 16);
        self.write_buffer(&header.to_le_bytes());
        self.write_buffer(&buf);
        self.write_buffer(&crc32(&buf).to_le_bytes());
        self.rx_addr = ((self.rx_addr + 3) & !3) % self.ring_len;
        self.isr |= INT_ROK;
    }

    fn flush(&mut self) {
        while self.can_receive() {
            let Some(f) = self.held.pop_front() else {
                break;
            };
            self.do_receive(&f);
        }
    }

    fn transmit(&mut self) {
        let n = self.cur_tx;
        if self.cr & CMD_TE == 0 || self.tsd[n] & TSD_OWN != 0 || self.stuck_tx {
            return;
        }
        let size = (self.tsd[n] & 0x1fff) as usize;
        let frame = self.dma_read(u64::from(self.tsad[n]), size);
        self.tsd[n] |= TSD_OWN | TSD_TOK;
        self.sent.push(frame);
        self.isr |= INT_TOK;
        self.cur_tx = (n + 1) % 4;
    }
}

/// The fake device: its bus (hand a clone to the driver) and its model.
#[derive(Clone)]
pub struct FakeNic {
    pub bus: FakeBus,
    pub model: Rc<RefCell<Model>>,
}

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

impl FakeNic {
    /// A device that reaches the driver's host DMA blocks `dma`.
    pub fn new(dma: Vec<Rc<HostDma>>) -> Self {
        let bus = FakeBus::new("rtl8139", REGISTER_BYTES);
        let mut model = Model {
            dma,
            rbstart: 0,
            ring_len: 8192,
            rx_addr: 0,
            rx_ptr: 0,
            isr: 0,
            imr: 0,
            cr: 0,
            rcr: 0,
            tcr: 0,
            tsd: [TSD_OWN; 4],
            tsad: [0; 4],
            cur_tx: 0,
            missed: 0,
            link_up: true,
            sent: Vec::new(),
            held: VecDeque::new(),
            dropped: 0,
            stuck_tx: false,
        };
        model.reset();
        let model = Rc::new(RefCell::new(model));
        for (i, b) in MAC.iter().enumerate() {
            bus.poke(IDR.at(i), *b);
        }
        let m = model.clone();
        bus.on_write(CR, move |_, v| {
            let mut m = m.borrow_mut();
            if v & CMD_RST != 0 {
                m.reset();
            }
            m.cr = v & (CMD_RE | CMD_TE);
        });
        let m = model.clone();
        bus.on_read(CR, move |_, _| {
            let m = m.borrow();
            m.cr | if m.rx_addr == m.rx_ptr { CMD_BUFE } else { 0 }
        });
        let m = model.clone();
        bus.on_write(RBSTART, move |_, v| m.borrow_mut().rbstart = v);
        let m = model.clone();
        bus.on_read(RBSTART, move |_, _| m.borrow().rbstart);
        let m = model.clone();
        bus.on_write(RCR, move |_, v| {
            let mut m = m.borrow_mut();
            m.rcr = v;
            m.ring_len = 8192 << ((v >> 11) & 3);
            m.rx_addr = 0;
            m.rx_ptr = 0;
        });
        let m = model.clone();
        bus.on_write(TCR, move |_, v| {
            let mut m = m.borrow_mut();
            if m.cr & CMD_TE != 0 {
                m.tcr = v;
            }
        });
        let m = model.clone();
        bus.on_write(CAPR, move |_, v| {
            let mut m = m.borrow_mut();
            m.rx_ptr = (usize::from(v) + 16) % m.ring_len;
            m.flush();
        });
        let m = model.clone();
        bus.on_read(CAPR, move |_, _| {
            (m.borrow().rx_ptr as u16).wrapping_sub(16)
        });
        let m = model.clone();
        bus.on_read(CBR, move |_, _| m.borrow().rx_addr as u16);
        let m = model.clone();
        bus.on_write(IMR, move |_, v| m.borrow_mut().imr = v);
        let m = model.clone();
        bus.on_read(IMR, move |_, _| m.borrow().imr);
        let m = model.clone();
        bus.on_write(ISR, move |_, v| m.borrow_mut().isr &= !v);
        let m = model.clone();
        bus.on_read(ISR, move |_, _| m.borrow().isr);
        let m = model.clone();
        bus.on_write(MPC, move |_, _| m.borrow_mut().missed = 0);
        let m = model.clone();
        bus.on_read(MPC, move |_, _| m.borrow().missed);
        let m = model.clone();
        bus.on_read(
            BMSR,
            move |_, _| if m.borrow().link_up { 0x782d } else { 0x7829 },
        );
        for n in 0..4 {
            let m = model.clone();
            bus.on_write(TSAD.at(n), move |_, v| m.borrow_mut().tsad[n] = v);
            let m = model.clone();
            bus.on_write(TSD.at(n), move |_, v| {
                let mut m = m.borrow_mut();
                let keep = m.tsd[n] & 0x00c0_0000;
                m.tsd[n] = (v & !0xff00_c000 & !0x00c0_0000) | keep;
                m.transmit();
            });
            let m = model.clone();
            bus.on_read(TSD.at(n), move |_, _| m.borrow().tsd[n]);
        }
        FakeNic { bus, model }
    }

    /// A frame arrives from the wire.
    pub fn receive(&self, frame: &[u8]) {
        let mut m = self.model.borrow_mut();
        if m.can_receive() && m.held.is_empty() {
            m.do_receive(frame);
        } else {
            m.held.push_back(frame.to_vec());
        }
    }

    pub fn set_link(&self, up: bool) {
        let mut m = self.model.borrow_mut();
        m.link_up = up;
        m.isr |= INT_PUN;
    }

    /// Whether the interrupt line is asserted.
    pub fn irq(&self) -> bool {
        let m = self.model.borrow();
        m.isr & m.imr != 0
    }

    pub fn sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.model.borrow_mut().sent)
    }

    /// The ring's physical base and length as the device sees them.
    pub fn ring(&self) -> (u64, usize, usize) {
        let m = self.model.borrow();
        (u64::from(m.rbstart), m.ring_len, m.rx_addr)
    }
}

/// The Ethernet CRC QEMU appends (zlib's crc32).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
