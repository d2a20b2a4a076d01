//! A fake ENET for the host tests: QEMU's model (hw/net/imx_fec.c, its
//! legacy-descriptor path) as far as the driver uses it, on hwio's fake
//! bus and kit/dma's host memory, with its PHY; and knobs that make it
//! misbehave: descriptors rewritten after the device wrote them (any
//! length, status or address), a skipped descriptor, transmits that never
//! finish, a reset that never ends, a missing PHY. Every DMA access the
//! model makes must land in one of the driver's host DMA blocks; anything
//! else panics, failing the test.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use dma::host::HostDma;
use hwio::fake::FakeBus;

use crate::regs::{
    ECR, EIMR, EIR, IEEE_R_MACERR, MMFR, MRBR, PALR, PAUR, RCR, RDAR, RDSR, REGISTER_BYTES, TDAR,
    TDSR,
};

const ECR_RESET: u32 = 1 << 0;
const ECR_ETHEREN: u32 = 1 << 1;
const INT_MII: u32 = 1 << 23;
const INT_RXB: u32 = 1 << 24;
const INT_RXF: u32 = 1 << 25;
const INT_TXB: u32 = 1 << 26;
const INT_TXF: u32 = 1 << 27;
pub const INT_EBERR: u32 = 1 << 22;
/// The events that reach the interrupt line (QEMU's ENET_INT_MAC, as far
/// as the legacy path raises them).
const INT_MAC: u32 = 0xffff_0000;
const RDAR_ACTIVE: u32 = 1 << 24;
pub const BD_E: u16 = 1 << 15;
const BD_R: u16 = 1 << 15;
pub const BD_W: u16 = 1 << 13;
pub const BD_L: u16 = 1 << 11;
pub const BD_LG: u16 = 1 << 5;
pub const BD_TR: u16 = 1 << 0;
pub const BD_CR: u16 = 1 << 2;
pub const BD_OV: u16 = 1 << 1;
/// QEMU's ENET_MAX_FRAME_SIZE: longer frames are cut (TR and LG).
const MAX_FRAME_SIZE: usize = 1 << 14;
/// The PHY's address on the sabrelite machine.
pub const PHY_ADDR: u8 = 6;
pub const PHY_ID: u32 = 0x0007_c0d1;

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// A descriptor as the model reads and writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub len: u16,
    pub flags: u16,
    pub data: u32,
}

/// A hook that rewrites each receive descriptor the model hands back
/// (frame number since the hook was set, the descriptor).
pub type Corrupt = Box<dyn FnMut(usize, &mut Desc)>;

/// The model's PHY (QEMU's, registers 0-6).
pub struct Phy {
    pub control: u16,
    pub status: u16,
    pub advertise: u16,
    /// What the link partner advertises (QEMU: 0x0f71).
    pub partner: u16,
}

pub struct Model {
    dma: Vec<Rc<HostDma>>,
    ecr: u32,
    pub eir: u32,
    pub eimr: u32,
    rdar: u32,
    pub rcr: u32,
    mrbr: u32,
    rdsr: u32,
    tdsr: u32,
    rx_desc: u32,
    tx_desc: u32,
    mmfr: u32,
    mac: [u8; 6],
    pub phy: Phy,
    pub link_up: bool,
    /// Frames the device transmitted, in order.
    pub sent: Vec<Vec<u8>>,
    /// Frames QEMU holds back while RDAR reads 0.
    pub held: VecDeque<Vec<u8>>,
    /// Frames whose end was lost for want of descriptors.
    pub lost_ends: usize,
    /// Transmits never complete.
    pub stuck_tx: bool,
    /// ECR.RESET never clears.
    pub reset_stuck: bool,
    /// RCR reads this instead of its value (not an ENET).
    pub rcr_lies: Option<u32>,
    /// No PHY answers on MDIO.
    pub no_phy: bool,
    /// The next frame is written one descriptor further on than it should.
    pub skip_next: bool,
    pub corrupt: Option<Corrupt>,
    corrupted: usize,
    /// The controller's receive-FIFO-overflow count (QEMU reads it as 0).
    pub macerr: u32,
}

impl Model {
    fn reset(&mut self) {
        self.ecr = 0xf000_0000;
        self.eir = 0;
        self.eimr = 0;
        self.rdar = 0;
        self.rcr = 0x05ee_0001;
        self.mrbr = 0;
        self.rdsr = 0;
        self.tdsr = 0;
        self.rx_desc = 0;
        self.tx_desc = 0;
        self.phy.control = 0x3000;
        self.phy.status = 0x7809 | if self.link_up { 0x0024 } else { 0 };
        self.phy.advertise = 0x01e1;
    }

    fn dma_write(&self, paddr: u64, bytes: &[u8]) {
        for block in &self.dma {
            if block.device_write(paddr, bytes).is_ok() {
                return;
            }
        }
        panic!(
            "fake enet: DMA write of {} bytes at {paddr:#x} outside the driver's memory",
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
        panic!("fake enet: DMA read of {len} bytes at {paddr:#x} outside the driver's memory");
    }

    fn read_desc(&self, addr: u32) -> Desc {
        let b = self.dma_read(u64::from(addr), 8);
        Desc {
            len: u16::from_le_bytes([b[0], b[1]]),
            flags: u16::from_le_bytes([b[2], b[3]]),
            data: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn write_desc(&self, addr: u32, d: &Desc) {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&d.len.to_le_bytes());
        b[2..4].copy_from_slice(&d.flags.to_le_bytes());
        b[4..].copy_from_slice(&d.data.to_le_bytes());
        self.dma_write(u64::from(addr), &b);
    }

    fn next_desc(&self, addr: u32, d: &Desc, ring_start: u32) -> u32 {
        if d.flags & BD_W != 0 {
            ring_start
        } else {
            addr + 8
        }
    }

    /// imx_eth_enable_rx.
    fn enable_rx(&mut self, flush: bool) {
        let d = self.read_desc(self.rx_desc);
        self.rdar = if d.flags & BD_E != 0 { RDAR_ACTIVE } else { 0 };
        if self.rdar != 0 && flush {
            while self.rdar != 0 {
                let Some(f) = self.held.pop_front() else {
                    break;
                };
                self.do_receive(&f);
            }
        }
    }

    /// imx_fec_receive.
    fn do_receive(&mut self, frame: &[u8]) {
        if self.skip_next {
            self.skip_next = false;
            let d = self.read_desc(self.rx_desc);
            self.rx_desc = self.next_desc(self.rx_desc, &d, self.rdsr);
        }
        let mut buf = frame.to_vec();
        buf.extend_from_slice(&crc32(frame).to_le_bytes());
        let mut size = buf.len();
        let mut flags = 0;
        if size > MAX_FRAME_SIZE {
            size = MAX_FRAME_SIZE;
            flags |= BD_TR | BD_LG;
        }
        if size > (self.rcr >> 16) as usize {
            flags |= BD_LG;
        }
        let mut at = 0;
        let mut addr = self.rx_desc;
        while size > 0 {
            let mut d = self.read_desc(addr);
            if d.flags & BD_E == 0 {
                self.lost_ends += 1;
                break;
            }
            let n = size.min(self.mrbr as usize);
            d.len = n as u16;
            self.dma_write(u64::from(d.data), &buf[at..at + n]);
            at += n;
            size -= n;
            d.flags &= !BD_E;
            if size == 0 {
                d.flags |= flags | BD_L;
                self.eir |= INT_RXF;
            } else {
                self.eir |= INT_RXB;
            }
            // A W the hook writes sends the device back to the ring's start,
            // as a device that wraps early would go.
            if let Some(hook) = self.corrupt.as_mut() {
                hook(self.corrupted, &mut d);
            }
            self.write_desc(addr, &d);
            addr = self.next_desc(addr, &d, self.rdsr);
        }
        self.corrupted += 1;
        self.rx_desc = addr;
        self.enable_rx(false);
    }

    /// imx_fec_do_tx.
    fn do_tx(&mut self) {
        if self.stuck_tx {
            return;
        }
        let mut frame = Vec::new();
        let mut addr = self.tx_desc;
        for _ in 0..1024 {
            let mut d = self.read_desc(addr);
            if d.flags & BD_R == 0 {
                break;
            }
            frame.extend(self.dma_read(u64::from(d.data), usize::from(d.len)));
            if d.flags & BD_L != 0 {
                self.sent.push(std::mem::take(&mut frame));
                self.eir |= INT_TXF;
            }
            self.eir |= INT_TXB;
            d.flags &= !BD_R;
            self.write_desc(addr, &d);
            addr = self.next_desc(addr, &d, self.tdsr);
        }
        self.tx_desc = addr;
    }

    fn mdio(&mut self, v: u32) {
        let phy = ((v >> 23) & 0x1f) as u8;
        let reg = (v >> 18) & 0x1f;
        let read = v & (1 << 29) != 0;
        let here = !self.no_phy && phy == PHY_ADDR;
        if read {
            let value = if !here {
                0xffff
            } else {
                match reg {
                    0 => self.phy.control,
                    1 => self.phy.status,
                    2 => (PHY_ID >> 16) as u16,
                    3 => PHY_ID as u16,
                    4 => self.phy.advertise,
                    5 => self.phy.partner,
                    6 => 1,
                    _ => 0,
                }
            };
            self.mmfr = (v & !0xffff) | u32::from(value);
        } else {
            self.mmfr = v;
            if here {
                let value = v as u16;
                match reg {
                    0 if value & 0x8000 != 0 => {
                        self.phy.control = 0x3000;
                        self.phy.advertise = 0x01e1;
                    }
                    0 => {
                        self.phy.control = value & 0x7980;
                        if value & 0x1000 != 0 {
                            self.phy.status |= 0x0020;
                        }
                    }
                    4 => self.phy.advertise = (value & 0x2d7f) | 0x80,
                    _ => {}
                }
            }
        }
        self.eir |= INT_MII;
    }
}

/// The fake device: its bus (hand a clone to the driver) and its model.
#[derive(Clone)]
pub struct FakeEnet {
    pub bus: FakeBus,
    pub model: Rc<RefCell<Model>>,
}

impl FakeEnet {
    /// A device that reaches the driver's host DMA blocks `dma`, with the
    /// MAC address QEMU gives the first NIC loaded.
    pub fn new(dma: Vec<Rc<HostDma>>) -> Self {
        let bus = FakeBus::new("enet", REGISTER_BYTES);
        let mut model = Model {
            dma,
            ecr: 0,
            eir: 0,
            eimr: 0,
            rdar: 0,
            rcr: 0,
            mrbr: 0,
            rdsr: 0,
            tdsr: 0,
            rx_desc: 0,
            tx_desc: 0,
            mmfr: 0,
            mac: MAC,
            phy: Phy {
                control: 0,
                status: 0,
                advertise: 0,
                partner: 0x0f71,
            },
            link_up: true,
            sent: Vec::new(),
            held: VecDeque::new(),
            lost_ends: 0,
            stuck_tx: false,
            reset_stuck: false,
            rcr_lies: None,
            no_phy: false,
            skip_next: false,
            corrupt: None,
            corrupted: 0,
            macerr: 0,
        };
        model.reset();
        let model = Rc::new(RefCell::new(model));
        let m = model.clone();
        bus.on_write(ECR, move |_, v| {
            let mut m = m.borrow_mut();
            if v & ECR_RESET != 0 {
                if m.reset_stuck {
                    m.ecr = v;
                } else {
                    m.reset();
                }
                return;
            }
            m.ecr = v;
            if v & ECR_ETHEREN == 0 {
                m.rdar = 0;
                m.rx_desc = m.rdsr;
                m.tx_desc = m.tdsr;
            }
        });
        let m = model.clone();
        bus.on_read(ECR, move |_, _| m.borrow().ecr);
        let m = model.clone();
        bus.on_write(EIR, move |_, v| m.borrow_mut().eir &= !v);
        let m = model.clone();
        bus.on_read(EIR, move |_, _| m.borrow().eir);
        let m = model.clone();
        bus.on_write(EIMR, move |_, v| m.borrow_mut().eimr = v);
        let m = model.clone();
        bus.on_read(EIMR, move |_, _| m.borrow().eimr);
        let m = model.clone();
        bus.on_write(RDAR, move |_, _| {
            let mut m = m.borrow_mut();
            if m.ecr & ECR_ETHEREN != 0 {
                if m.rdar == 0 {
                    m.enable_rx(true);
                }
            } else {
                m.rdar = 0;
            }
        });
        let m = model.clone();
        bus.on_read(RDAR, move |_, _| m.borrow().rdar);
        let m = model.clone();
        bus.on_write(TDAR, move |_, _| {
            let mut m = m.borrow_mut();
            if m.ecr & ECR_ETHEREN != 0 {
                m.do_tx();
            }
        });
        let m = model.clone();
        bus.on_write(RCR, move |_, v| m.borrow_mut().rcr = v & 0x07ff_003f);
        let m = model.clone();
        bus.on_read(RCR, move |_, _| {
            let m = m.borrow();
            m.rcr_lies.unwrap_or(m.rcr)
        });
        let m = model.clone();
        bus.on_write(MRBR, move |_, v| m.borrow_mut().mrbr = v & 0x3ff0);
        let m = model.clone();
        bus.on_write(RDSR, move |_, v| {
            let mut m = m.borrow_mut();
            m.rdsr = v & !7;
            m.rx_desc = m.rdsr;
        });
        let m = model.clone();
        bus.on_write(TDSR, move |_, v| {
            let mut m = m.borrow_mut();
            m.tdsr = v & !7;
            m.tx_desc = m.tdsr;
        });
        let m = model.clone();
        bus.on_write(MMFR, move |_, v| m.borrow_mut().mdio(v));
        let m = model.clone();
        bus.on_read(MMFR, move |_, _| m.borrow().mmfr);
        let m = model.clone();
        bus.on_read(PALR, move |_, _| {
            let a = m.borrow().mac;
            u32::from_be_bytes([a[0], a[1], a[2], a[3]])
        });
        let m = model.clone();
        bus.on_write(PALR, move |_, v| {
            let b = v.to_be_bytes();
            m.borrow_mut().mac[..4].copy_from_slice(&b);
        });
        let m = model.clone();
        bus.on_read(PAUR, move |_, _| {
            let a = m.borrow().mac;
            u32::from_be_bytes([a[4], a[5], 0x88, 0x08])
        });
        let m = model.clone();
        bus.on_write(PAUR, move |_, v| {
            let b = v.to_be_bytes();
            m.borrow_mut().mac[4..].copy_from_slice(&b[..2]);
        });
        let m = model.clone();
        bus.on_read(IEEE_R_MACERR, move |_, _| m.borrow().macerr);
        FakeEnet { bus, model }
    }

    /// A frame arrives from the wire (without its CRC).
    pub fn receive(&self, frame: &[u8]) {
        let mut m = self.model.borrow_mut();
        if m.rdar != 0 && m.held.is_empty() {
            m.do_receive(frame);
        } else {
            m.held.push_back(frame.to_vec());
        }
    }

    /// QMP's set_link: the PHY's link bit (QEMU raises no interrupt the
    /// driver sees).
    pub fn set_link(&self, up: bool) {
        let mut m = self.model.borrow_mut();
        m.link_up = up;
        if up {
            m.phy.status |= 0x0024;
        } else {
            m.phy.status &= !0x0024;
        }
    }

    /// Whether the interrupt line is asserted.
    pub fn irq(&self) -> bool {
        let m = self.model.borrow();
        m.eir & m.eimr & INT_MAC != 0
    }

    pub fn sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.model.borrow_mut().sent)
    }

    pub fn held(&self) -> usize {
        self.model.borrow().held.len()
    }

    /// Installs a hook rewriting every receive descriptor handed back.
    pub fn corrupt(&self, hook: impl FnMut(usize, &mut Desc) + 'static) {
        let mut m = self.model.borrow_mut();
        m.corrupted = 0;
        m.corrupt = Some(Box::new(hook));
    }

    pub fn stop_corrupting(&self) {
        self.model.borrow_mut().corrupt = None;
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
