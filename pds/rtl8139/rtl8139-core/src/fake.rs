//! A fake RTL8139 for the host tests: QEMU's model (hw/net/rtl8139.c,
//! v7.2.0) in normal mode and in C+ mode, as far as the driver uses them,
//! on hwio's fake bus and kit/dma's host memory. Every DMA access the model
//! makes must land in one of the driver's host DMA blocks; anything else
//! panics, failing the test.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use dma::host::HostDma;
use hwio::fake::FakeBus;

use crate::regs::{
    BMSR, CAPR, CBR, CPCR, CR, IDR, IMR, ISR, MPC, RBSTART, RCR, RDSAR_HI, RDSAR_LO,
    REGISTER_BYTES, TCR, TPPOLL, TSAD, TSD,
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
const CP_RX_ENB: u16 = 0x02;
const CP_TX_ENB: u16 = 0x01;
const DESC_OWN: u32 = 1 << 31;
const DESC_EOR: u32 = 1 << 30;
const DESC_FS: u32 = 1 << 29;
const DESC_LS: u32 = 1 << 28;
const RX_PAM: u32 = 1 << 25;
const RX_SIZE: u32 = (1 << 13) - 1;
const TX_SIZE: u32 = (1 << 16) - 1;
/// Error bits the model clears in a transmit descriptor it hands back.
const TX_STATUS: u32 = (1 << 25) | (1 << 23) | (1 << 22) | (1 << 21) | (1 << 20);

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
    /// C+ mode: entered by the first CpCmd write, left only by a reset.
    pub cplus: bool,
    pub cpcmd: u16,
    pub rdsar: u64,
    /// The next C+ receive and transmit descriptors.
    pub cur_rx_desc: usize,
    cur_tx_desc: usize,
    /// A hostile device: skip one receive descriptor before the next frame.
    pub skip_rx_desc: bool,
}

impl Model {
    fn reset(&mut self) {
        self.cplus = false;
        self.cpcmd = 0;
        self.rdsar = 0;
        self.cur_rx_desc = 0;
        self.cur_tx_desc = 0;
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
        // "Flow control not implemented in c+ mode."
        if self.cp_receiving() {
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

    fn dma_read_u32(&self, paddr: u64) -> u32 {
        let b = self.dma_read(paddr, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn dma_write_u32(&self, paddr: u64, v: u32) {
        self.dma_write(paddr, &v.to_le_bytes());
    }

    /// rtl8139_cp_receiver_enabled and rtl8139_cp_rx_valid.
    fn cp_receiving(&self) -> bool {
        self.cpcmd & CP_RX_ENB != 0 && self.rdsar != 0
    }

    /// The C+ branch of rtl8139_do_receive: one frame into the current
    /// descriptor, or dropped (RxOverflow, RxMissed) if the driver does not
    /// own it or its buffer is too small. No flow control.
    fn cp_receive(&mut self, buf: &[u8]) {
        if self.skip_rx_desc {
            self.skip_rx_desc = false;
            self.cur_rx_desc += 1;
        }
        let desc = self.rdsar + 16 * self.cur_rx_desc as u64;
        let dw0 = self.dma_read_u32(desc);
        let dw1 = self.dma_read_u32(desc + 4);
        let lo = self.dma_read_u32(desc + 8);
        let hi = self.dma_read_u32(desc + 12);
        let size = buf.len();
        if dw0 & DESC_OWN == 0 || size + 4 > (dw0 & RX_SIZE) as usize {
            self.isr |= INT_RXOVW;
            self.missed += 1;
            self.dropped += 1;
            return;
        }
        let addr = u64::from(lo) | u64::from(hi) << 32;
        self.dma_write(addr, buf);
        self.dma_write(addr + size as u64, &crc32(buf).to_le_bytes());
        let dw0 = (dw0 & !DESC_OWN & !RX_SIZE) | DESC_FS | DESC_LS | RX_PAM | (size as u32 + 4);
        self.dma_write_u32(desc, dw0);
        // No VLAN tag: TAVA cleared.
        self.dma_write_u32(desc + 4, dw1 & !(1 << 16));
        self.cur_rx_desc = if dw0 & DESC_EOR != 0 {
            0
        } else {
            self.cur_rx_desc + 1
        };
        self.isr |= INT_ROK;
    }

    /// rtl8139_cplus_transmit: every descriptor the device owns, from the
    /// current one, at most 64; TxOK if any went out.
    fn cp_transmit(&mut self) {
        if self.cr & CMD_TE == 0 || self.cpcmd & CP_TX_ENB == 0 || self.stuck_tx {
            return;
        }
        let ring = u64::from(self.tsad[0]) | u64::from(self.tsad[1]) << 32;
        let mut sent = 0;
        while sent < 64 {
            let desc = ring + 16 * self.cur_tx_desc as u64;
            let dw0 = self.dma_read_u32(desc);
            if dw0 & DESC_OWN == 0 {
                break;
            }
            assert!(
                dw0 & DESC_FS != 0 && dw0 & DESC_LS != 0,
                "fake rtl8139: the driver split a frame over descriptors"
            );
            let lo = self.dma_read_u32(desc + 8);
            let hi = self.dma_read_u32(desc + 12);
            let frame = self.dma_read(
                u64::from(lo) | u64::from(hi) << 32,
                (dw0 & TX_SIZE) as usize,
            );
            self.cur_tx_desc = if dw0 & DESC_EOR != 0 {
                0
            } else {
                (self.cur_tx_desc + 1) % 64
            };
            self.dma_write_u32(desc, dw0 & !DESC_OWN & !TX_STATUS);
            self.sent.push(frame);
            sent += 1;
        }
        if sent > 0 {
            self.isr |= INT_TOK;
        }
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
        if self.cpcmd & CP_RX_ENB != 0 {
            if self.cp_receiving() {
                self.cp_receive(&buf);
            } else {
                self.dropped += 1;
            }
            return;
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
        // In C+ mode these registers are the tally dump address.
        if self.cplus {
            return;
        }
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
            cplus: false,
            cpcmd: 0,
            rdsar: 0,
            cur_rx_desc: 0,
            cur_tx_desc: 0,
            skip_rx_desc: false,
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
            // rtl8139_ChipCmd_write: enabling puts C+ mode at descriptor 0.
            if v & CMD_RE != 0 {
                m.cur_rx_desc = 0;
            }
            if v & CMD_TE != 0 {
                m.cur_tx_desc = 0;
            }
            m.cr = v & (CMD_RE | CMD_TE);
        });
        let m = model.clone();
        bus.on_write(CPCR, move |_, v| {
            let mut m = m.borrow_mut();
            m.cplus = true;
            m.cpcmd = (v & !0xff84) | (m.cpcmd & 0xff84);
        });
        let m = model.clone();
        bus.on_read(CPCR, move |_, _| m.borrow().cpcmd);
        let m = model.clone();
        bus.on_write(RDSAR_LO, move |_, v| {
            let mut m = m.borrow_mut();
            m.rdsar = (m.rdsar & !0xffff_ffff) | u64::from(v);
        });
        let m = model.clone();
        bus.on_write(RDSAR_HI, move |_, v| {
            let mut m = m.borrow_mut();
            m.rdsar = (m.rdsar & 0xffff_ffff) | u64::from(v) << 32;
        });
        let m = model.clone();
        bus.on_write(TPPOLL, move |_, v| {
            // Bit 7 (high priority) is not implemented in QEMU.
            if v & 0x40 != 0 {
                m.borrow_mut().cp_transmit();
            }
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
        if m.cp_receiving() || (m.can_receive() && m.held.is_empty()) {
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
