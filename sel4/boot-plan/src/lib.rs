//! The boot plan: what the system builder tells the monitor to build. The
//! builder validates system.xml, resolves every name to an index and every
//! build-time value, and encodes a [`Plan`]; the monitor decodes it at boot
//! and creates the objects with the kernel's untyped memory. PD program
//! segments travel inside the plan and are borrowed, not copied, on decode.
//!
//! [`layout`] (crate `pd-layout`) holds the address-space and CSpace layout
//! both sides share with the PD runtime.
#![no_std]

extern crate alloc;

pub use pd_layout as layout;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Identifies an encoded plan and its format version.
pub const MAGIC: [u8; 8] = *b"DINGOPL2";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    #[serde(borrow)]
    pub regions: Vec<Region<'a>>,
    #[serde(borrow)]
    pub pds: Vec<Pd<'a>>,
    pub channels: Vec<Channel>,
    /// Before starting the PDs, the monitor measures raw kernel round trips
    /// between two threads of its own (the baseline of `make bench`).
    pub monitor_bench: bool,
    /// The monitor's own clock, for handler budgets and restart backoff.
    pub tick: Option<Tick>,
}

/// The monitor's periodic interrupt: HPET timer 1, which under the
/// LegacyReplacement route (the timer PD's) interrupts on IOAPIC pin 8.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Index into [`Plan::regions`]: the HPET's register page.
    pub hpet: u32,
    pub ioapic: u64,
    pub pin: u64,
    /// seL4 user vector, one no PD's interrupt uses.
    pub vector: u64,
    /// How often it interrupts.
    pub period_us: u32,
}

/// How the monitor supervises a PD beyond reporting its faults.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Restart the PD when it fails (faults, or overruns its budget);
    /// `None`: it stays stopped, as without a policy.
    pub restart: Option<Restart>,
    /// The handler budget: an event handled for longer is a failure.
    pub budget_ms: Option<u32>,
    /// Before the PD's memory is reused, these PCI functions are quiesced
    /// (bus mastering off) by the PD that serves PCI.
    pub quiesce: Vec<Quiesce>,
    /// Regions only this PD maps (RAM, no fixed address), zeroed again on
    /// a restart; the regions it shares with other PDs are kept.
    pub zero: Vec<u32>,
}

/// A restart policy: backoff doubling from `backoff_ms` up to
/// `max_backoff_ms`, and giving up once the PD failed `limit` times within
/// `window_ms`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub backoff_ms: u32,
    pub max_backoff_ms: u32,
    pub limit: u32,
    pub window_ms: u32,
}

/// A quiesce request: a protected call from the monitor to PD `server`
/// (the pci PD), naming the driver by its channel id there.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiesce {
    /// Index into [`Plan::pds`].
    pub server: u32,
    /// The driver's channel id at the server.
    pub channel: u8,
}

/// A memory region; its frames are physically contiguous.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Region<'a> {
    pub name: &'a str,
    pub size: u64,
    /// 12 (4 KiB pages) or the architecture's large page: 21 (2 MiB) on
    /// x86_64, 20 (1 MiB sections) on 32-bit ARM.
    pub page_bits: u8,
    /// Fixed physical address (device memory or a DMA window), else any RAM.
    pub phys_addr: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Pd<'a> {
    pub name: &'a str,
    pub priority: u8,
    pub stack_size: u64,
    pub entry: u64,
    /// Whether some channel end lets a peer call this PD (it then waits on
    /// an endpoint rather than on its notification).
    pub pp_callee: bool,
    #[serde(borrow)]
    pub segments: Vec<Segment<'a>>,
    pub maps: Vec<Map>,
    pub irqs: Vec<Irq>,
    pub ioports: Vec<IoPort>,
    pub setvars: Vec<Setvar>,
    pub recovery: Recovery,
}

/// A loadable ELF segment; its pages are not shared with another segment.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub vaddr: u64,
    pub mem_size: u64,
    pub perms: Perms,
    /// The file-backed start of the segment; the rest is zero.
    pub data: &'a [u8],
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Map {
    /// Index into [`Plan::regions`].
    pub region: u32,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqSource {
    Ioapic {
        ioapic: u64,
        pin: u64,
        level_triggered: bool,
        active_low: bool,
    },
    Msi {
        bus: u8,
        dev: u8,
        func: u8,
        handle: u64,
    },
    /// A GIC interrupt ID (ARM); level-triggered, as this kernel sets every
    /// shared interrupt.
    Gic { irq: u64 },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Irq {
    /// The channel id the PD sees the interrupt on.
    pub id: u8,
    /// seL4 user vector (IDT vector minus 0x30) on x86; 0 for GIC
    /// interrupts.
    pub vector: u64,
    pub source: IrqSource,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPort {
    pub id: u8,
    pub addr: u16,
    pub size: u16,
}

/// A word the monitor writes into the PD's image before it starts.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setvar {
    /// Address of the 8-byte symbol in the PD.
    pub vaddr: u64,
    pub value: SetvarValue,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetvarValue {
    /// Known at build time (a mapped address, a size, an id, ...).
    Word(u64),
    /// Physical address of a region the monitor allocates.
    RegionPaddr(u32),
    /// The TSC frequency in MHz that the kernel measured (bootinfo); see
    /// [`layout::IMPLICIT_TSC_MHZ_SYMBOL`].
    BootInfoTscMhz,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub ends: [ChannelEnd; 2],
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelEnd {
    /// Index into [`Plan::pds`].
    pub pd: u32,
    pub id: u8,
    /// This end may notify the other.
    pub notify: bool,
    /// This end may call the other (protected procedure call).
    pub pp: bool,
}

/// Why bytes are not a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    BadMagic,
    /// The body does not decode, or references something out of range.
    Malformed(&'static str),
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not a boot plan (bad magic)"),
            Self::Malformed(what) => write!(f, "malformed boot plan: {what}"),
        }
    }
}

impl<'a> Plan<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::from(MAGIC);
        out.extend(postcard::to_allocvec(self).expect("plans always serialize"));
        out
    }

    /// Decodes and checks every cross reference, so the monitor can index
    /// without further checks.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, PlanError> {
        let body = bytes.strip_prefix(&MAGIC[..]).ok_or(PlanError::BadMagic)?;
        let plan: Plan =
            postcard::from_bytes(body).map_err(|_| PlanError::Malformed("undecodable body"))?;
        plan.check()?;
        Ok(plan)
    }

    fn check(&self) -> Result<(), PlanError> {
        use PlanError::Malformed;
        for r in &self.regions {
            let large = layout::LARGE_PAGE_BITS;
            if (r.page_bits != 12 && r.page_bits != large)
                || r.size == 0
                || r.size % (1 << r.page_bits) != 0
            {
                return Err(Malformed("region size or page size"));
            }
        }
        for pd in &self.pds {
            if pd
                .maps
                .iter()
                .any(|m| m.region as usize >= self.regions.len())
            {
                return Err(Malformed("map of an unknown region"));
            }
            let bad_setvar = pd.setvars.iter().any(|s| match s.value {
                SetvarValue::RegionPaddr(r) => r as usize >= self.regions.len(),
                SetvarValue::Word(_) | SetvarValue::BootInfoTscMhz => false,
            });
            if bad_setvar {
                return Err(Malformed("setvar of an unknown region"));
            }
            if pd
                .segments
                .iter()
                .any(|s| (s.data.len() as u64) > s.mem_size)
            {
                return Err(Malformed("segment data larger than the segment"));
            }
            let r = &pd.recovery;
            if r.quiesce
                .iter()
                .any(|q| q.server as usize >= self.pds.len())
                || r.zero.iter().any(|z| *z as usize >= self.regions.len())
            {
                return Err(Malformed("recovery entry out of range"));
            }
            if r.restart.is_some_and(|p| p.limit == 0 || p.window_ms == 0) {
                return Err(Malformed("restart policy with no failures allowed"));
            }
            if r.budget_ms.is_some() && self.tick.is_none() {
                return Err(Malformed("handler budget without the monitor's tick"));
            }
        }
        if self
            .tick
            .is_some_and(|t| t.hpet as usize >= self.regions.len() || t.period_us == 0)
        {
            return Err(Malformed("tick out of range"));
        }
        let ids_ok = |e: &ChannelEnd| {
            e.pd as usize >= self.pds.len() || e.id as u64 > layout::MAX_CHANNEL_ID
        };
        if self.channels.iter().any(|c| c.ends.iter().any(ids_ok)) {
            return Err(Malformed("channel end out of range"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;

    fn sample() -> Plan<'static> {
        let rw = Perms {
            read: true,
            write: true,
            execute: false,
        };
        Plan {
            regions: vec![Region {
                name: "shared",
                size: 0x2000,
                page_bits: 12,
                phys_addr: None,
            }],
            pds: vec![Pd {
                name: "a",
                priority: 100,
                stack_size: 0x2000,
                entry: 0x201000,
                pp_callee: false,
                segments: vec![Segment {
                    vaddr: 0x200000,
                    mem_size: 0x1800,
                    perms: rw,
                    data: b"\x7fcode",
                }],
                maps: vec![Map {
                    region: 0,
                    vaddr: 0x400000,
                    perms: rw,
                    cached: true,
                }],
                irqs: vec![Irq {
                    id: 3,
                    vector: 11,
                    source: IrqSource::Ioapic {
                        ioapic: 0,
                        pin: 11,
                        level_triggered: true,
                        active_low: true,
                    },
                }],
                ioports: vec![IoPort {
                    id: 0,
                    addr: 0xf4,
                    size: 4,
                }],
                setvars: vec![Setvar {
                    vaddr: 0x208000,
                    value: SetvarValue::RegionPaddr(0),
                }],
                recovery: Recovery {
                    restart: Some(Restart {
                        backoff_ms: 10,
                        max_backoff_ms: 1000,
                        limit: 5,
                        window_ms: 10_000,
                    }),
                    budget_ms: Some(50),
                    quiesce: vec![Quiesce {
                        server: 0,
                        channel: 4,
                    }],
                    zero: vec![0],
                },
            }],
            channels: vec![Channel {
                ends: [
                    ChannelEnd {
                        pd: 0,
                        id: 1,
                        notify: true,
                        pp: false,
                    },
                    ChannelEnd {
                        pd: 0,
                        id: 2,
                        notify: true,
                        pp: false,
                    },
                ],
            }],
            monitor_bench: false,
            tick: Some(Tick {
                hpet: 0,
                ioapic: 0,
                pin: 8,
                vector: 20,
                period_us: 10_000,
            }),
        }
    }

    #[test]
    fn round_trips() {
        let plan = sample();
        let bytes = plan.encode();
        assert_eq!(&bytes[..8], b"DINGOPL2");
        assert_eq!(Plan::decode(&bytes).unwrap(), plan);
    }

    #[test]
    fn segment_data_is_borrowed_from_the_input() {
        let bytes = sample().encode();
        let plan = Plan::decode(&bytes).unwrap();
        let data = plan.pds[0].segments[0].data;
        assert!(bytes.as_ptr_range().contains(&data.as_ptr()));
    }

    #[test]
    fn rejects_foreign_bytes_and_truncation() {
        assert_eq!(Plan::decode(b"ELF....."), Err(PlanError::BadMagic));
        let bytes = sample().encode();
        for cut in 8..bytes.len() {
            assert!(
                Plan::decode(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
    }

    #[test]
    fn rejects_dangling_references() {
        let mut p = sample();
        p.pds[0].maps[0].region = 5;
        assert_eq!(
            Plan::decode(&p.encode()),
            Err(PlanError::Malformed("map of an unknown region"))
        );
        let mut p = sample();
        p.channels[0].ends[1].pd = 9;
        assert_eq!(
            Plan::decode(&p.encode()),
            Err(PlanError::Malformed("channel end out of range"))
        );
        let mut p = sample();
        p.pds[0].setvars[0].value = SetvarValue::RegionPaddr(1);
        assert_eq!(
            Plan::decode(&p.encode()),
            Err(PlanError::Malformed("setvar of an unknown region"))
        );
        let mut p = sample();
        p.pds[0].recovery.quiesce[0].server = 1;
        assert_eq!(
            Plan::decode(&p.encode()),
            Err(PlanError::Malformed("recovery entry out of range"))
        );
        let mut p = sample();
        p.pds[0].recovery.zero[0] = 3;
        assert!(Plan::decode(&p.encode()).is_err());
        let mut p = sample();
        p.tick = None;
        assert_eq!(
            Plan::decode(&p.encode()),
            Err(PlanError::Malformed(
                "handler budget without the monitor's tick"
            ))
        );
        let mut p = sample();
        p.pds[0].recovery.restart.as_mut().unwrap().limit = 0;
        assert!(Plan::decode(&p.encode()).is_err());
    }

    #[test]
    fn rejects_bad_region_geometry() {
        let mut p = sample();
        p.regions[0].size = 0x1800;
        assert!(Plan::decode(&p.encode()).is_err());
        let mut p = sample();
        p.regions[0].page_bits = 13;
        assert!(Plan::decode(&p.encode()).is_err());
    }
}
