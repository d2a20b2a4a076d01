//! What a device writes into a virtqueue, checked before anyone uses it.
//!
//! virtio-drivers' `VirtQueue` trusts the device's used ring in ways a
//! driver PD may not:
//!
//! - `peek_used` and `pop_used` truncate the 32-bit descriptor id to 16
//!   bits, so id 0x10003 passes for 3;
//! - nothing bounds the used index against what is in flight: a device
//!   that moves it ahead makes the queue pop stale entries, and one that
//!   names a chain still in flight completes it early;
//! - the length returned is the device's word, unchecked against the
//!   buffers of the chain;
//! - `pop_used` wants the caller to name the token it expects next, so
//!   out-of-order completion (legal for block devices) needs the caller to
//!   look first anyway.
//!
//! [`Guard`] reads the used ring itself (its address is what the transport
//! told the device, caught by [`Recorder`]) and accepts the next entry only
//! if the index has not run ahead of the chains in flight, the full 32-bit
//! id is a chain the driver has in flight, and the length fits that chain's
//! writable bytes. Only then does the driver call `pop_used` with that id;
//! the crate reads the entry again (a device could change it in between),
//! but it refuses with `WrongToken` unless the id is the one checked, and
//! the driver uses the length it checked, not the crate's.
//!
//! The crate's `should_notify` compares the 16-bit ring indices without
//! wrapping (`avail_idx >= avail_event + 1`): it notifies on every add while
//! the device has not moved `avail_event`, and misses the notification when
//! a batch of adds crosses the wrap. [`Guard::need_notify`] is virtio's
//! `vring_need_event` over the index before and after a batch. The crate's
//! `set_dev_notify` does nothing once EVENT_IDX is negotiated; with it the
//! driver asks for its next interrupt by writing `used_event`
//! ([`Guard::set_used_event`]), after the crate's own write in `pop_used`.

use core::fmt;

use virtio_drivers::PhysAddr;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::hal::HalState;

/// Queues a [`Recorder`] remembers.
pub const MAX_QUEUES: usize = 4;

/// Where the transport told the device a queue's rings are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAddrs {
    pub size: u32,
    pub descriptors: PhysAddr,
    pub driver_area: PhysAddr,
    pub device_area: PhysAddr,
}

/// A transport that passes everything through and remembers each queue's
/// ring addresses and how often each queue was notified.
pub struct Recorder<T: Transport> {
    pub inner: T,
    queues: [Option<QueueAddrs>; MAX_QUEUES],
    notified: [u64; MAX_QUEUES],
}

impl<T: Transport> Recorder<T> {
    pub fn new(inner: T) -> Self {
        Recorder {
            inner,
            queues: [None; MAX_QUEUES],
            notified: [0; MAX_QUEUES],
        }
    }

    pub fn queue(&self, q: u16) -> Option<QueueAddrs> {
        self.queues.get(usize::from(q)).copied().flatten()
    }

    /// Notifications sent on queue `q`.
    pub fn notified(&self, q: u16) -> u64 {
        self.notified.get(usize::from(q)).copied().unwrap_or(0)
    }
}

impl<T: Transport> Transport for Recorder<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, f: u64) {
        self.inner.write_driver_features(f)
    }
    fn max_queue_size(&mut self, q: u16) -> u32 {
        self.inner.max_queue_size(q)
    }
    fn notify(&mut self, q: u16) {
        if let Some(n) = self.notified.get_mut(usize::from(q)) {
            *n += 1;
        }
        self.inner.notify(q)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, s: DeviceStatus) {
        self.inner.set_status(s)
    }
    fn set_guest_page_size(&mut self, size: u32) {
        self.inner.set_guest_page_size(size)
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
        if let Some(slot) = self.queues.get_mut(usize::from(queue)) {
            *slot = Some(QueueAddrs {
                size,
                descriptors,
                driver_area,
                device_area,
            });
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
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

/// An impossible used-ring entry: the device is not to be trusted again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The used index moved `pending` entries past the last one taken, but
    /// only `in_flight` chains are outstanding.
    RanAhead { pending: u16, in_flight: u16 },
    /// A descriptor id no chain of this queue can have.
    BadId { id: u32 },
    /// A chain that is not in flight.
    NotInFlight { id: u16 },
    /// The crate refused the entry the guard had accepted (the device
    /// changed it in between).
    Changed { id: u16 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::RanAhead { pending, in_flight } => write!(
                f,
                "the used index ran {pending} entries ahead with {in_flight} chains in flight"
            ),
            Fault::BadId { id } => write!(
                f,
                "a used entry names descriptor {id:#x}, outside the queue"
            ),
            Fault::NotInFlight { id } => {
                write!(
                    f,
                    "a used entry names descriptor {id}, which heads no chain in flight"
                )
            }
            Fault::Changed { id } => {
                write!(
                    f,
                    "the used entry for descriptor {id} changed while it was read"
                )
            }
        }
    }
}

/// A used entry the guard accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// The chain's head descriptor: the crate's token.
    pub id: u16,
    /// Bytes the device wrote, at most the chain's writable bytes.
    pub len: u32,
    /// The device claimed more than the chain holds (`len` is clamped to
    /// the capacity; the caller drops what it cannot trust).
    pub overlong: bool,
}

/// The driver's own view of one queue's rings; see the module doc.
pub struct Guard {
    /// The used ring (device area).
    used: usize,
    /// The available ring (driver area).
    avail: usize,
    size: u16,
    /// Entries taken so far (mod 2^16): the crate's `last_used_idx`.
    taken: u16,
}

const USED_IDX: usize = 2;
const USED_RING: usize = 4;
const AVAIL_RING: usize = 4;

impl Guard {
    /// The rings of queue `q` as `rec` told the device, in `hal`'s windows.
    pub fn new<T: Transport>(rec: &Recorder<T>, q: u16, hal: &HalState) -> Option<Guard> {
        let a = rec.queue(q)?;
        let size = u16::try_from(a.size).ok()?;
        let n = usize::from(size);
        let used = hal.vaddr_of(a.device_area, USED_RING + 8 * n + 2)?;
        let avail = hal.vaddr_of(a.driver_area, AVAIL_RING + 2 * n + 2)?;
        if !used.is_multiple_of(4) || !avail.is_multiple_of(2) || !size.is_power_of_two() {
            return None;
        }
        Some(Guard {
            used,
            avail,
            size,
            taken: 0,
        })
    }

    fn read16(addr: usize) -> u16 {
        // SAFETY: every address read lies in a ring Guard::new found inside
        // a DMA window of the HAL (mapped for the PD's life), 2-aligned
        // (the rings are, and every offset here is even); volatile, since
        // the device writes it.
        unsafe { (addr as *const u16).read_volatile() }
    }

    fn read32(addr: usize) -> u32 {
        // SAFETY: as in read16; used-ring entries are 4-aligned.
        unsafe { (addr as *const u32).read_volatile() }
    }

    /// The device's used index.
    pub fn used_idx(&self) -> u16 {
        Self::read16(self.used + USED_IDX)
    }

    /// Entries the device has used that the driver has not taken.
    pub fn pending(&self) -> u16 {
        self.used_idx().wrapping_sub(self.taken)
    }

    /// The next used entry, checked: `in_flight` chains are outstanding,
    /// `capacity(id)` is the writable bytes of the chain headed by `id`
    /// if it is in flight. `Ok(None)`: nothing new.
    pub fn next(
        &self,
        in_flight: u16,
        capacity: impl Fn(u16) -> Option<u32>,
    ) -> Result<Option<Used>, Fault> {
        let pending = self.pending();
        if pending == 0 {
            return Ok(None);
        }
        if pending > in_flight {
            return Err(Fault::RanAhead { pending, in_flight });
        }
        virtio_fence();
        let slot = usize::from(self.taken & (self.size - 1));
        let entry = self.used + USED_RING + 8 * slot;
        let id = Self::read32(entry);
        let len = Self::read32(entry + 4);
        if id >= u32::from(self.size) {
            return Err(Fault::BadId { id });
        }
        let id = id as u16;
        let Some(cap) = capacity(id) else {
            return Err(Fault::NotInFlight { id });
        };
        Ok(Some(Used {
            id,
            len: len.min(cap),
            overlong: len > cap,
        }))
    }

    /// The entry [`next`](Self::next) returned was popped.
    pub fn taken(&mut self) {
        self.taken = self.taken.wrapping_add(1);
    }

    /// Whether the device wants a notification after the available index
    /// moved from `old` to `new`: virtio's `vring_need_event` with
    /// EVENT_IDX, the used ring's NO_NOTIFY flag without.
    pub fn need_notify(&self, event_idx: bool, old: u16, new: u16) -> bool {
        if old == new {
            return false;
        }
        if event_idx {
            let event = Self::read16(self.used + USED_RING + 8 * usize::from(self.size));
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            Self::read16(self.used) & 1 == 0
        }
    }

    /// Asks for an interrupt when the device's used index passes `idx`
    /// (EVENT_IDX's `used_event`, in the available ring).
    pub fn set_used_event(&self, idx: u16) {
        let at = self.avail + AVAIL_RING + 2 * usize::from(self.size);
        // SAFETY: inside the available ring (Guard::new checked its size in
        // a DMA window), 2-aligned; the driver owns this field.
        unsafe { (at as *mut u16).write_volatile(idx) };
        dma::barrier::full();
    }

    /// Entries taken so far (mod 2^16).
    pub fn taken_count(&self) -> u16 {
        self.taken
    }
}

/// The used index is read before the entry it covers.
fn virtio_fence() {
    dma::barrier::acquire();
}

/// Why [`negotiate`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiateError {
    /// The device lacks features the driver cannot do without.
    Missing { required: u64, offered: u64 },
    /// The device cleared FEATURES_OK: it refuses the features written.
    Refused { features: u64 },
    /// The reset did not finish.
    ResetStuck,
}

impl fmt::Display for NegotiateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NegotiateError::Missing { required, offered } => write!(
                f,
                "the device offers features {offered:#x}, without {:#x} that this driver needs",
                required & !offered
            ),
            NegotiateError::Refused { features } => {
                write!(
                    f,
                    "the device refused features {features:#x} (FEATURES_OK cleared)"
                )
            }
            NegotiateError::ResetStuck => write!(f, "the device did not finish its reset"),
        }
    }
}

/// Status reads while waiting for a reset to finish.
const RESET_POLLS: u32 = 10_000;

/// Resets the device and waits (bounded) until its status reads 0. The
/// crate's `PciTransport` drop waits unbounded.
pub fn reset(t: &mut impl Transport) -> Result<(), NegotiateError> {
    t.set_status(DeviceStatus::empty());
    for _ in 0..RESET_POLLS {
        if t.get_status().is_empty() {
            return Ok(());
        }
    }
    Err(NegotiateError::ResetStuck)
}

/// virtio's initialisation up to FEATURES_OK (3.1.1): reset, ACKNOWLEDGE
/// and DRIVER, the features both sides want (all of `required` or
/// nothing), FEATURES_OK, and the check that the device kept it, which
/// the crate's `begin_init` leaves out. Returns the features in force.
pub fn negotiate(
    t: &mut impl Transport,
    wanted: u64,
    required: u64,
) -> Result<u64, NegotiateError> {
    reset(t)?;
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = t.read_device_features();
    if offered & required != required {
        t.set_status(DeviceStatus::FAILED);
        return Err(NegotiateError::Missing { required, offered });
    }
    let features = offered & (wanted | required);
    t.write_driver_features(features);
    let ok = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
    t.set_status(ok);
    if !t.get_status().contains(DeviceStatus::FEATURES_OK) {
        t.set_status(DeviceStatus::FAILED);
        return Err(NegotiateError::Refused { features });
    }
    Ok(features)
}

/// The last step: DRIVER_OK, once the queues are set up.
pub fn driver_ok(t: &mut impl Transport) {
    t.set_status(
        DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK,
    );
}

/// A consistent read of device configuration (the generation counter the
/// same before and after), at most `tries` times; the crate's
/// `read_consistent` loops for as long as the device keeps changing it.
pub fn read_consistent<T: Transport, V>(
    t: &T,
    tries: u32,
    f: impl Fn(&T) -> virtio_drivers::Result<V>,
) -> Option<V> {
    for _ in 0..tries {
        let before = t.read_config_generation();
        let v = f(t).ok()?;
        if t.read_config_generation() == before {
            return Some(v);
        }
    }
    None
}
