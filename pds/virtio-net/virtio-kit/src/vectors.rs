//! MSI-X for the crate's PCI transport. virtio-drivers 0.13 never writes
//! the common configuration's vector fields, and a device with MSI-X
//! enabled signals a queue or a configuration change only through the
//! vector that field names (after a reset: none). [`KitTransport`] is the
//! crate's [`PciTransport`] with, when the function's MSI-X is enabled,
//! every queue and the configuration change on one vector: written as each
//! queue is set up (after every reset, before the queue is enabled, as
//! virtio 1.1 4.1.4.3 asks) and read back.
//!
//! With MSI-X the ISR's queue bit is not set (virtio 1.1 4.1.4.5), the
//! configuration bit still is: an interrupt is taken as the queues' and
//! the ISR is read for the configuration change.

use hwio::{Bus, Mmio, ReadWrite, Register, Registers, Window};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `virtio_pci_common_cfg`'s vector fields and the queue select
/// (virtio 1.1 4.1.4.3), from the structure's start.
const MSIX_CONFIG: Register<u16, (), ReadWrite> = Register::new(0x10);
const QUEUE_SELECT: Register<u16, (), ReadWrite> = Register::new(0x16);
const QUEUE_MSIX_VECTOR: Register<u16, (), ReadWrite> = Register::new(0x1a);
/// The common configuration structure's size.
pub const COMMON_CFG_LEN: usize = 0x38;
/// What a vector field reads when the device took no vector.
const NO_VECTOR: u16 = 0xffff;

/// The device's common configuration as a bus, and the MSI-X table entry
/// every source signals on.
pub struct Vectors<B: Bus> {
    pub common: Window<B>,
    pub entry: u16,
}

/// The crate's transport, on INTx (`vectors` none) or on one MSI-X vector.
pub struct KitTransport<B: Bus = Mmio> {
    inner: PciTransport,
    vectors: Option<Vectors<B>>,
    refused: u32,
}

impl<B: Bus> KitTransport<B> {
    pub fn new(inner: PciTransport, vectors: Option<Vectors<B>>) -> Self {
        KitTransport {
            inner,
            vectors,
            refused: 0,
        }
    }

    /// Whether the device signals through MSI-X.
    pub fn is_msix(&self) -> bool {
        self.vectors.is_some()
    }

    /// Vector fields the device read back as none: that source will never
    /// interrupt (a device with fewer vectors than its table claims).
    pub fn vectors_refused(&self) -> u32 {
        self.refused
    }
}

impl<B: Bus> Transport for KitTransport<B> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.inner.write_driver_features(driver_features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        if let Some(v) = &mut self.vectors {
            let c = &mut v.common;
            c.set(MSIX_CONFIG, v.entry);
            c.set(QUEUE_SELECT, queue);
            c.set(QUEUE_MSIX_VECTOR, v.entry);
            for field in [MSIX_CONFIG, QUEUE_MSIX_VECTOR] {
                if c.get(field) == NO_VECTOR {
                    self.refused += 1;
                }
            }
        }
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        let isr = self.inner.ack_interrupt();
        if self.vectors.is_some() {
            isr | InterruptStatus::QUEUE_INTERRUPT
        } else {
            isr
        }
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<()> {
        self.inner.write_config_space(offset, value)
    }
}
