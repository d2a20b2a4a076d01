//! The virtio-blk driver PD: finds QEMU's virtio-blk-pci through the pci
//! PD, checks the memory BAR with the virtio structures and the INTx line
//! or MSI (with the MSI-X table's BAR) against the device, builds virtio-drivers' PCI transport through
//! pci-client (virtio-kit) and serves BlockDevice with virtio-blk-core:
//! `ready` with the capacity in 512-byte blocks, then reads and writes
//! straight between the device and the port's data region (no copy),
//! answered as the device completes them (out of order). A device that
//! writes an impossible used entry is reset and the disk reported `gone`.
#![no_std]
#![no_main]

use core::cell::{Cell, RefCell};

use dingo_pd::ConsoleReporter;
use dingo_pd::microkit::{self, Channel, debug_println};
use dingo_protocols::block_device::{Msg, Observer};
use dingo_rt::ring::Arm;
use dingo_rt::typed::{Fault, Supervisor};
use heapless::Deque;
use timer_client::clock::TimeReader;
use virtio_blk_core::{Disk, Event, HDRS_LEN};
use virtio_kit::hal::{HalSlot, HalState, KitHal};
use virtio_kit::pci::{Parts, Resources, Signal};
use virtio_kit::virtio_drivers::transport::DeviceType;

pd_config::program!("virtio-blk");

static REPORTER: ConsoleReporter = ConsoleReporter;

struct BlkHal;
impl HalSlot for BlkHal {
    fn state() -> &'static HalState {
        static S: HalState = HalState::new();
        &S
    }
}

/// Ring memory: one queue of 256 descriptors takes three pages.
const POOL: usize = 0x4000;
/// Messages waiting for room on the port.
const OUTBOX: usize = 256;

fn message(e: Event) -> Msg {
    match e {
        Event::Ready { blocks, block_size } => Msg::Ready { blocks, block_size },
        Event::Gone => Msg::Gone,
        Event::Done { req, status } => Msg::Done { req, status },
    }
}

fn idle(why: core::fmt::Arguments<'_>) -> ! {
    dingo_pd::idle("virtio-blk", why)
}

fn main() -> ! {
    let cfg = config::load();
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least; the timer PD writes it.
    let time = unsafe { TimeReader::new(cfg.regions.time_page.as_ptr()) };
    let now = || time.now_ns();

    let dev = match pci_client::open(cfg.pci.disk) {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    if let Err(e) = virtio_kit::pci::check_device(&dev, DeviceType::Block, &cfg.irqs.disk) {
        idle(format_args!("{e}"));
    }
    let info = dev.info();
    let bdf = dev.bdf();
    let signal = Signal {
        irq: cfg.irqs.disk,
        line: dev.interrupt().line,
    };
    let dev = RefCell::new(dev);

    let dma = match cfg.regions.dma.dma("virtio-blk dma") {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    let data = match cfg.regions.data.dma("blk data") {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    let regs = cfg.regions.regs;
    let refused = Cell::new(0);
    let Parts {
        transport,
        hdrs,
        data,
    } = match virtio_kit::pci::set_up::<BlkHal, _>(
        &dev,
        dma,
        POOL,
        HDRS_LEN,
        data,
        Resources {
            regs: &regs,
            irq: &cfg.irqs.disk,
            msix: cfg.regions.msix.as_ref(),
        },
        &refused,
    ) {
        Ok(p) => p,
        Err(e) => idle(format_args!("{bdf}: {e}")),
    };
    let mut disk = match Disk::<KitHal<BlkHal>, _>::new(transport, BlkHal::state(), hdrs, data) {
        Ok(d) => d,
        Err(e) => idle(format_args!("{bdf}: {e}")),
    };
    let lost = disk.transport().inner.vectors_refused();
    if lost > 0 {
        debug_println!(
            "virtio-blk: {bdf} took no MSI-X vector for {lost} of its queue and configuration sources: those will not interrupt"
        );
    }
    debug_println!(
        "virtio-blk: {bdf} {info} with its structures in BAR memory at {:#x}, {signal}; {} blocks of 512 bytes{}",
        regs.paddr,
        disk.blocks(),
        if disk.read_only() { ", read-only" } else { "" }
    );

    let mut blk = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.blk,
        Observer::new(now()),
        Supervisor::log(&REPORTER),
    );
    let irq = Channel::from(cfg.irqs.disk);
    let mut outbox: Deque<Msg, OUTBOX> = Deque::new();
    let _ = outbox.push_back(message(disk.ready()));
    let mut interrupted = false;
    let mut fault_said = false;
    loop {
        let t = now();
        {
            let mut emit = |e: Event| {
                let _ = outbox.push_back(message(e));
            };
            if interrupted {
                interrupted = false;
                disk.service(&mut emit);
                if let Err(e) = irq.irq_ack() {
                    debug_println!("virtio-blk: IRQ ack refused: {e:?}");
                }
            }
        }
        // Room is kept for every answer: each request takes one.
        while outbox.len() < OUTBOX - 1 {
            let mut emit = |e: Event| {
                let _ = outbox.push_back(message(e));
            };
            match blk.try_recv(t) {
                Ok(Some(Msg::Read {
                    req,
                    block,
                    count,
                    buf,
                })) => disk.submit(req, false, block, count, buf, &mut emit),
                Ok(Some(Msg::Write {
                    req,
                    block,
                    count,
                    buf,
                })) => disk.submit(req, true, block, count, buf, &mut emit),
                Ok(Some(_)) | Err(Fault::Violation(_) | Fault::Malformed(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        disk.kick();
        if let Some(f) = disk.fault()
            && !core::mem::replace(&mut fault_said, true)
        {
            debug_println!(
                "virtio-blk: the device wrote an impossible used-ring entry ({f}); it was reset, the disk is gone (counted)"
            );
        }
        blk.send_queued(t, &mut outbox, Deque::pop_front, |q, m| {
            // The slot it came from is free again.
            let _ = q.push_front(m);
        });
        dingo_pd::flush(&mut blk);
        let mut retry = matches!(blk.prepare_recv_sleep(), Ok(Arm::Retry));
        if !outbox.is_empty() {
            retry |= matches!(blk.prepare_send_sleep(), Ok(Arm::Retry));
        }
        if retry {
            continue;
        }
        interrupted = microkit::wait().contains(irq);
    }
}

microkit::entry!(main);
