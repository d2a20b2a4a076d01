//! A model of QEMU 7.2's OHCI controller (hw/usb/hcd-ohci.c) for the host
//! tests: its registers on hwio's fake bus, its frame processing over
//! dma's host memory, and devices on its root hub ports. It keeps the
//! behaviours the driver depends on (see the crate doc): frames only in
//! OPERATIONAL, filled bits cleared when a list is idle, IN TDs as one
//! packet and OUT TDs in max-packet pieces, NAK retried without limit,
//! DATAUNDERRUN/STALL/no-device halting the ED, the done queue written at
//! a frame boundary when WritebackDoneHead is clear and the delay count
//! ran out, the ED head written back on every visit, UnrecoverableError
//! on a DMA error or a TD head of 0, port resets completing at once, and
//! USBRESET re-attaching devices. Not modelled: isochronous TDs and the
//! asynchronous packet (devices here answer at once or NAK).

use std::cell::RefCell;
use std::rc::Rc;

use dma::host::HostDma;
use hwio::fake::FakeBus;
use hwio::{Register, RegisterLongName};

use crate::regs::*;

pub const OUT: u8 = 1;
pub const IN: u8 = 2;
pub const SETUP: u8 = 0;

/// A device's answer to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Bytes accepted (OUT, SETUP) or returned (IN).
    Ok(usize),
    Nak,
    Stall,
}

/// A USB device as the controller model sees it.
pub trait Device {
    fn address(&self) -> u8;
    fn low_speed(&self) -> bool {
        false
    }
    /// One packet: `pid` is SETUP, OUT or IN; OUT and SETUP data is in
    /// `buf`, IN data goes there (at most `buf.len()` bytes).
    fn packet(&mut self, pid: u8, endpoint: u8, buf: &mut [u8]) -> Reply;
    /// A bus reset (port reset): address 0, default state.
    fn reset(&mut self);
    /// Test devices with an interrupt endpoint: one more report to send.
    fn queue_report(&mut self, _report: Vec<u8>) {}
    /// What the device's OUT endpoint received.
    fn received(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Whether its IN endpoint NAKs.
    fn set_naks(&mut self, _on: bool) {}
}

struct Port {
    ctrl: u32,
    dev: Option<Box<dyn Device>>,
}

const CCS: u32 = 1 << 0;
const PES: u32 = 1 << 1;
const PSS: u32 = 1 << 2;
const PRS: u32 = 1 << 4;
const PPS: u32 = 1 << 8;
const LSDA: u32 = 1 << 9;
const CSC: u32 = 1 << 16;
const PESC: u32 = 1 << 17;
const PRSC: u32 = 1 << 20;
const WTC: u32 = 0x1f << 16;

const UE: u32 = 1 << 4;
const WD: u32 = 1 << 1;
const SF: u32 = 1 << 2;
const RHSC: u32 = 1 << 6;
const MIE: u32 = 1 << 31;

struct Model {
    dma: Rc<HostDma>,
    ctl: u32,
    status: u32,
    intr_status: u32,
    intr: u32,
    hcca: u32,
    ctrl_head: u32,
    bulk_head: u32,
    done: u32,
    done_count: i32,
    frame: u16,
    fm_interval: u32,
    ports: Vec<Port>,
    /// Frames stop (for the watchdog test).
    frozen: bool,
    /// Packets the devices saw, for the tests: (address, endpoint, pid, bytes).
    pub packets: Vec<(u8, u8, u8, usize)>,
    /// A device to plug in right after the driver's next read of its
    /// port's status, as QMP's device_add can land between two register
    /// accesses.
    plug_after_read: Option<(usize, Box<dyn Device>)>,
}

impl Model {
    fn attach(&mut self, port: usize, dev: Box<dyn Device>) {
        let low = dev.low_speed();
        let p = &mut self.ports[port];
        let old = p.ctrl;
        p.ctrl |= CCS | CSC;
        if low {
            p.ctrl |= LSDA;
        } else {
            p.ctrl &= !LSDA;
        }
        p.dev = Some(dev);
        if old != p.ctrl {
            self.set_interrupt(RHSC);
        }
    }

    fn operational(&self) -> bool {
        (self.ctl >> 6) & 3 == 2
    }

    fn set_interrupt(&mut self, bits: u32) {
        self.intr_status |= bits;
    }

    fn die(&mut self) {
        self.set_interrupt(UE);
        // ohci_bus_stop: the frame timer stops.
        self.ctl = (self.ctl & !(3 << 6)) | (3 << 6);
        self.frozen = true;
    }

    fn soft_reset(&mut self) {
        self.ctl = (self.ctl & (1 << 8)) | (3 << 6);
        self.status = 0;
        self.intr_status = 0;
        self.intr = MIE;
        self.hcca = 0;
        self.ctrl_head = 0;
        self.bulk_head = 0;
        self.done = 0;
        self.done_count = 7;
        self.frame = 0;
        self.frozen = false;
    }

    fn roothub_reset(&mut self) {
        for p in &mut self.ports {
            p.ctrl = 0;
            if let Some(d) = p.dev.as_mut() {
                d.reset();
                // usb_port_reset: detach + attach.
                p.ctrl |= CCS | CSC;
                if d.low_speed() {
                    p.ctrl |= LSDA;
                }
            }
        }
        self.set_interrupt(RHSC);
    }

    fn set_ctl(&mut self, v: u32) {
        let old = (self.ctl >> 6) & 3;
        self.ctl = v;
        let new = (v >> 6) & 3;
        if old != new && new == 0 {
            self.roothub_reset();
        }
    }

    fn read_u32(&mut self, paddr: u32) -> Option<u32> {
        match self.dma.device_read_u32(u64::from(paddr)) {
            Ok(v) => Some(v),
            Err(_) => {
                self.die();
                None
            }
        }
    }

    fn write_u32(&mut self, paddr: u32, v: u32) -> bool {
        if self.dma.device_write_u32(u64::from(paddr), v).is_err() {
            self.die();
            return false;
        }
        true
    }

    fn find_device(&mut self, addr: u8) -> Option<&mut Box<dyn Device>> {
        self.ports
            .iter_mut()
            .filter(|p| p.ctrl & PES != 0)
            .filter_map(|p| p.dev.as_mut())
            .find(|d| d.address() == addr)
    }

    /// ohci_service_td: returns true to stop processing this ED.
    fn service_td(&mut self, ed: &mut [u32; 4]) -> bool {
        let addr = ed[2] & !0xf;
        if addr == 0 {
            self.die();
            return true;
        }
        let Some(flags) = self.read_u32(addr) else {
            return true;
        };
        let (Some(mut cbp), Some(next), Some(be)) = (
            self.read_u32(addr + 4),
            self.read_u32(addr + 8),
            self.read_u32(addr + 12),
        ) else {
            return true;
        };
        let mut flags = flags;
        let ed_dir = (ed[0] >> 11) & 3;
        let dir = if ed_dir == 1 || ed_dir == 2 {
            ed_dir
        } else {
            (flags >> 19) & 3
        };
        let en = ((ed[0] >> 7) & 0xf) as u8;
        let fa = (ed[0] & 0x7f) as u8;
        if dir == u32::from(SETUP) && en > 0 {
            self.die();
            return true;
        }
        if dir == 3 {
            return true;
        }
        let mut len = 0usize;
        if cbp != 0 && be != 0 {
            if (cbp & 0xffff_f000) != (be & 0xffff_f000) {
                len = ((be & 0xfff) + 0x1001 - (cbp & 0xfff)) as usize;
            } else {
                if cbp > be {
                    self.die();
                    return true;
                }
                len = (be - cbp + 1) as usize;
            }
            len = len.min(8192);
        }
        let mps = ((ed[0] >> 16) & 0x7ff) as usize;
        let mut pktlen = len;
        let mut buf = vec![0u8; len];
        if len > 0 && dir != u32::from(IN) {
            pktlen = mps.min(len);
            if self.copy_td(cbp, be, &mut buf[..pktlen], false).is_none() {
                return true;
            }
        }
        let flag_r = flags & (1 << 18) != 0;
        let pid = dir as u8;
        let reply = match self.find_device(fa) {
            None => return true,
            Some(d) => d.packet(pid, en, &mut buf[..pktlen]),
        };
        self.packets.push((fa, en, pid, pktlen));
        let ret: Result<usize, Reply> = match reply {
            Reply::Ok(n) => Ok(n.min(pktlen)),
            other => Err(other),
        };
        let ret = match ret {
            Ok(n) if dir == u32::from(IN) => {
                if self.copy_td(cbp, be, &mut buf[..n], true).is_none() {
                    return true;
                }
                Ok(n)
            }
            Ok(_) => Ok(pktlen),
            e => e,
        };
        let cc;
        match ret {
            Ok(n) if n == pktlen || (dir == u32::from(IN) && flag_r) => {
                if n == len {
                    cbp = 0;
                } else if (cbp & 0xfff) + n as u32 > 0xfff {
                    cbp = (be & !0xfff) + ((cbp + n as u32) & 0xfff);
                } else {
                    cbp += n as u32;
                }
                flags |= 1 << 25;
                flags ^= 1 << 24;
                cc = 0;
                flags = (flags & !(0xf << 28) & !(3 << 26)) | (cc << 28);
                if dir != u32::from(IN) && n != len {
                    // Partial: not retired; the next packet in this walk.
                    self.write_td(addr, [flags, cbp, next, be]);
                    return false;
                }
                ed[2] &= !2;
                if flags & (1 << 24) != 0 {
                    ed[2] |= 2;
                }
            }
            Ok(_) => {
                cc = 9;
                flags = (flags & !(0xf << 28)) | (cc << 28);
                self.done_count = 0;
                ed[2] |= 1;
            }
            Err(Reply::Nak) => return true,
            Err(r) => {
                // STALL; QEMU's other errors (no device, babble) map to
                // other codes the driver treats alike.
                let _ = r;
                cc = 4;
                flags = (flags & !(0xf << 28)) | (cc << 28);
                self.done_count = 0;
                ed[2] |= 1;
            }
        }
        // Retire.
        ed[2] = (ed[2] & 0xf) | (next & !0xf);
        let done_next = self.done;
        self.done = addr;
        let di = ((flags >> 21) & 7) as i32;
        if di < self.done_count {
            self.done_count = di;
        }
        self.write_td(addr, [flags, cbp, done_next, be]);
        cc != 0
    }

    fn write_td(&mut self, addr: u32, w: [u32; 4]) {
        for (i, v) in w.iter().enumerate() {
            if !self.write_u32(addr + 4 * i as u32, *v) {
                return;
            }
        }
    }

    fn copy_td(&mut self, cbp: u32, be: u32, buf: &mut [u8], to_memory: bool) -> Option<()> {
        if buf.is_empty() {
            return Some(());
        }
        let first = (0x1000 - (cbp & 0xfff) as usize).min(buf.len());
        let (a, b) = buf.split_at_mut(first);
        let ok = if to_memory {
            self.dma.device_write(u64::from(cbp), a).is_ok()
                && (b.is_empty() || self.dma.device_write(u64::from(be & !0xfff), b).is_ok())
        } else {
            self.dma.device_read(u64::from(cbp), a).is_ok()
                && (b.is_empty() || self.dma.device_read(u64::from(be & !0xfff), b).is_ok())
        };
        if ok {
            Some(())
        } else {
            self.die();
            None
        }
    }

    /// ohci_service_ed_list: whether any ED had TDs.
    fn service_list(&mut self, head: u32) -> bool {
        let mut active = false;
        let mut cur = head;
        let mut count = 0;
        while cur != 0 && count < 32 {
            count += 1;
            let mut ed = [0u32; 4];
            for (i, w) in ed.iter_mut().enumerate() {
                match self.read_u32(cur + 4 * i as u32) {
                    Some(v) => *w = v,
                    None => return false,
                }
            }
            let next = ed[3] & !0xf;
            if ed[2] & 1 != 0 || ed[0] & (1 << 14) != 0 {
                cur = next;
                continue;
            }
            while ed[2] & !0xf != ed[1] & !0xf {
                active = true;
                if self.service_td(&mut ed) || self.intr_status & UE != 0 {
                    break;
                }
            }
            if self.intr_status & UE != 0 {
                return false;
            }
            if !self.write_u32(cur + 8, ed[2]) {
                return false;
            }
            cur = next;
        }
        active
    }

    fn frame_boundary(&mut self) {
        if !self.operational() || self.frozen {
            return;
        }
        let hcca = self.hcca;
        let mut table = [0u32; 32];
        for (i, t) in table.iter_mut().enumerate() {
            match self.read_u32(hcca + 4 * i as u32) {
                Some(v) => *t = v,
                None => return,
            }
        }
        if self.ctl & (1 << 2) != 0 {
            let head = table[usize::from(self.frame & 31)];
            self.service_list(head);
        }
        if self.ctl & (1 << 4) != 0 && self.status & 2 != 0 && !self.service_list(self.ctrl_head) {
            self.status &= !2;
        }
        if self.ctl & (1 << 5) != 0 && self.status & 4 != 0 && !self.service_list(self.bulk_head) {
            self.status &= !4;
        }
        if self.intr_status & UE != 0 {
            return;
        }
        self.frame = self.frame.wrapping_add(1);
        let mut done_word = None;
        if self.done_count == 0 && self.intr_status & WD == 0 {
            assert!(
                self.done != 0,
                "QEMU aborts here: done_count 0 with no done TD"
            );
            let mut d = self.done;
            if self.intr & self.intr_status != 0 {
                d |= 1;
            }
            done_word = Some(d);
            self.done = 0;
            self.done_count = 7;
            self.set_interrupt(WD);
        }
        if self.done_count != 7 && self.done_count != 0 {
            self.done_count -= 1;
        }
        self.set_interrupt(SF);
        // Writeback: frame number (with pad 0), then the done head.
        let frame = u32::from(self.frame);
        if !self.write_u32(hcca + 0x80, frame) {
            return;
        }
        if let Some(d) = done_word {
            self.write_u32(hcca + 0x84, d);
        }
    }

    fn port_write(&mut self, i: usize, val: u32) {
        let p = &mut self.ports[i];
        let old = p.ctrl;
        if val & WTC != 0 {
            p.ctrl &= !(val & WTC);
        }
        if val & CCS != 0 {
            p.ctrl &= !PES;
        }
        let connected = p.ctrl & CCS != 0;
        if val & PES != 0 {
            if connected {
                p.ctrl |= PES;
            } else {
                p.ctrl |= CSC;
            }
        }
        if val & PSS != 0 {
            if connected {
                p.ctrl |= PSS;
            } else {
                p.ctrl |= CSC;
            }
        }
        if val & PRS != 0 {
            if connected {
                if let Some(d) = p.dev.as_mut() {
                    d.reset();
                }
                p.ctrl &= !PRS;
                p.ctrl |= PES | PRSC;
            } else {
                p.ctrl |= CSC;
            }
        }
        if val & LSDA != 0 {
            // Power off: connect status lost for good (QEMU).
            p.ctrl &= !(PPS | CCS | PSS | PRS);
        }
        if val & PPS != 0 {
            p.ctrl |= PPS;
        }
        if old != p.ctrl {
            self.set_interrupt(RHSC);
        }
    }
}

/// The controller model: its bus (hand a clone to the driver), its memory,
/// and what the tests do to it.
pub struct FakeOhci {
    pub bus: FakeBus,
    model: Rc<RefCell<Model>>,
}

fn hook_read<R: RegisterLongName, A: hwio::Access>(
    bus: &FakeBus,
    m: &Rc<RefCell<Model>>,
    reg: Register<u32, R, A>,
    f: fn(&Model) -> u32,
) {
    let m = m.clone();
    bus.on_read(reg, move |_, _| f(&m.borrow()));
}

fn hook_write<R: RegisterLongName, A: hwio::Access>(
    bus: &FakeBus,
    m: &Rc<RefCell<Model>>,
    reg: Register<u32, R, A>,
    f: fn(&mut Model, u32),
) {
    let m = m.clone();
    bus.on_write(reg, move |_, v| f(&mut m.borrow_mut(), v));
}

impl FakeOhci {
    /// A controller with `ports` root hub ports whose DMA reaches `dma`.
    pub fn new(dma: Rc<HostDma>, ports: usize) -> Self {
        let bus = FakeBus::new("ohci", MMIO_SIZE);
        let model = Rc::new(RefCell::new(Model {
            dma,
            ctl: 0,
            status: 0,
            intr_status: 0,
            intr: MIE,
            hcca: 0,
            ctrl_head: 0,
            bulk_head: 0,
            done: 0,
            done_count: 7,
            frame: 0,
            fm_interval: 0x2edf,
            ports: (0..ports).map(|_| Port { ctrl: 0, dev: None }).collect(),
            frozen: false,
            packets: Vec::new(),
            plug_after_read: None,
        }));
        let m = &model;
        hook_read(&bus, m, HC_REVISION, |_| 0x10);
        hook_read(&bus, m, HC_CONTROL, |m| m.ctl);
        hook_write(&bus, m, HC_CONTROL, |m, v| m.set_ctl(v));
        hook_read(&bus, m, HC_COMMAND_STATUS, |m| m.status);
        hook_write(&bus, m, HC_COMMAND_STATUS, |m, v| {
            m.status |= v & !(3 << 16);
            if m.status & 1 != 0 {
                m.soft_reset();
            }
        });
        hook_read(&bus, m, HC_INTERRUPT_STATUS, |m| m.intr_status);
        hook_write(&bus, m, HC_INTERRUPT_STATUS, |m, v| m.intr_status &= !v);
        hook_read(&bus, m, HC_INTERRUPT_ENABLE, |m| m.intr);
        hook_write(&bus, m, HC_INTERRUPT_ENABLE, |m, v| m.intr |= v);
        hook_write(&bus, m, HC_INTERRUPT_DISABLE, |m, v| m.intr &= !v);
        hook_read(&bus, m, HC_HCCA, |m| m.hcca);
        hook_write(&bus, m, HC_HCCA, |m, v| m.hcca = v & 0xffff_ff00);
        hook_read(&bus, m, HC_CONTROL_HEAD_ED, |m| m.ctrl_head);
        hook_write(&bus, m, HC_CONTROL_HEAD_ED, |m, v| m.ctrl_head = v & !0xf);
        hook_read(&bus, m, HC_BULK_HEAD_ED, |m| m.bulk_head);
        hook_write(&bus, m, HC_BULK_HEAD_ED, |m, v| m.bulk_head = v & !0xf);
        hook_write(&bus, m, HC_CONTROL_CURRENT_ED, |_, _| {});
        hook_write(&bus, m, HC_BULK_CURRENT_ED, |_, _| {});
        hook_read(&bus, m, HC_DONE_HEAD, |m| m.done);
        hook_read(&bus, m, HC_FM_INTERVAL, |m| m.fm_interval);
        hook_write(&bus, m, HC_FM_INTERVAL, |m, v| m.fm_interval = v);
        hook_read(&bus, m, HC_FM_NUMBER, |m| u32::from(m.frame));
        hook_write(&bus, m, HC_PERIODIC_START, |_, _| {});
        hook_write(&bus, m, HC_LS_THRESHOLD, |_, _| {});
        hook_read(&bus, m, HC_RH_DESCRIPTOR_A, |m| {
            (1 << 9) | m.ports.len() as u32
        });
        hook_write(&bus, m, HC_RH_STATUS, |_, _| {});
        for i in 0..ports {
            let mm = model.clone();
            bus.on_read(HC_RH_PORT_STATUS.at(i), move |_, _| {
                let mut m = mm.borrow_mut();
                let value = m.ports[i].ctrl | PPS;
                if let Some((_, dev)) = m.plug_after_read.take_if(|(p, _)| *p == i) {
                    m.attach(i, dev);
                }
                value
            });
            let mm = model.clone();
            bus.on_write(HC_RH_PORT_COMMAND.at(i), move |_, v| {
                mm.borrow_mut().port_write(i, v)
            });
        }
        FakeOhci { bus, model }
    }

    /// One frame boundary (1 ms of the model's time).
    pub fn frame(&self) {
        self.model.borrow_mut().frame_boundary();
    }

    pub fn frames(&self, n: usize) {
        for _ in 0..n {
            self.frame();
        }
    }

    /// Whether the interrupt line is up.
    pub fn irq(&self) -> bool {
        let m = self.model.borrow();
        m.intr & MIE != 0 && m.intr_status & m.intr != 0
    }

    /// Plugs a device into a port (QMP device_add).
    pub fn attach(&self, port: usize, dev: Box<dyn Device>) {
        self.model.borrow_mut().attach(port, dev);
    }

    /// Plugs a device into a port right after the driver next reads that
    /// port's status: between its read and its clear of the change bits.
    pub fn attach_after_status_read(&self, port: usize, dev: Box<dyn Device>) {
        self.model.borrow_mut().plug_after_read = Some((port, dev));
    }

    /// Unplugs a port's device (QMP device_del); returns it.
    pub fn detach(&self, port: usize) -> Option<Box<dyn Device>> {
        let mut m = self.model.borrow_mut();
        let p = &mut m.ports[port];
        let old = p.ctrl;
        if p.ctrl & CCS != 0 {
            p.ctrl &= !CCS;
            p.ctrl |= CSC;
        }
        if p.ctrl & PES != 0 {
            p.ctrl &= !PES;
            p.ctrl |= PESC;
        }
        let dev = p.dev.take();
        if old != p.ctrl {
            m.set_interrupt(RHSC);
        }
        dev
    }

    /// The frame counter stops (a hung controller).
    pub fn freeze(&self) {
        self.model.borrow_mut().frozen = true;
    }

    pub fn dead(&self) -> bool {
        self.model.borrow().intr_status & UE != 0
    }

    pub fn frame_number(&self) -> u16 {
        self.model.borrow().frame
    }

    /// Packets the devices saw since the last call: (address, endpoint,
    /// pid, bytes).
    pub fn take_packets(&self) -> Vec<(u8, u8, u8, usize)> {
        std::mem::take(&mut self.model.borrow_mut().packets)
    }

    /// Runs `f` on the device at `port`.
    pub fn with_device<T>(&self, port: usize, f: impl FnOnce(&mut dyn Device) -> T) -> Option<T> {
        let mut m = self.model.borrow_mut();
        m.ports[port].dev.as_mut().map(|d| f(d.as_mut()))
    }

    pub fn push_report(&self, port: usize, report: Vec<u8>) {
        self.with_device(port, |d| d.queue_report(report));
    }

    pub fn port_status(&self, port: usize) -> u32 {
        self.model.borrow().ports[port].ctrl
    }
}
