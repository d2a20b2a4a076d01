//! The PHY, over the controller's MDIO interface: finding it, starting
//! auto-negotiation, and reading the link and what was negotiated.
//!
//! QEMU's model puts its PHY at address 6 on the sabrelite machine (the
//! real Sabre Lite's Micrel KSZ9021 sits there too) and answers 0xffff at
//! every other address, as an idle bus with pull-ups does; the driver
//! scans instead of assuming, as Linux's MDIO bus does. The model's PHY
//! interrupt is not wired to anything (nor is the real board's, to the
//! ENET), so the link is polled.

use hwio::{Bus, LocalRegisterCopy, Registers};

use crate::regs::mii::{self, Ability, Bmcr, Bmsr, Ctrl1000, Stat1000};
use crate::regs::{EIR, Interrupt, MMFR, MiiFrame};

/// Reads of EIR while waiting for one MDIO transaction: a clause-22 frame
/// is 64 bits at 2.5 MHz (about 26 us); QEMU finishes it inside the write.
const MDIO_POLLS: u32 = 100_000;
/// PHY addresses on the bus.
const ADDRESSES: u8 = 32;

/// An MDIO transaction that did not finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MdioTimeout {
    pub phy: u8,
    pub reg: u8,
}

impl core::fmt::Display for MdioTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "MDIO access to register {} of PHY {} did not finish after {MDIO_POLLS} polls",
            self.reg, self.phy
        )
    }
}

/// No PHY found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhyError {
    /// No address answered with an identifier.
    NotFound,
    Mdio(MdioTimeout),
}

impl core::fmt::Display for PhyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PhyError::NotFound => write!(
                f,
                "no PHY answered on MDIO (addresses 0-{}): its identifier reads 0xffff or 0",
                ADDRESSES - 1
            ),
            PhyError::Mdio(e) => write!(f, "{e}"),
        }
    }
}

impl From<MdioTimeout> for PhyError {
    fn from(e: MdioTimeout) -> Self {
        PhyError::Mdio(e)
    }
}

fn transact<B: Bus>(
    bus: &mut B,
    phy: u8,
    reg: u8,
    frame: hwio::FieldValue<u32, MiiFrame::Register>,
) -> Result<u16, MdioTimeout> {
    // The completion flag is the only sign: clear a stale one first.
    bus.write(EIR, Interrupt::MII::SET);
    bus.write(
        MMFR,
        frame
            + MiiFrame::ST::Clause22
            + MiiFrame::TA::Turnaround
            + MiiFrame::PA.val(u32::from(phy))
            + MiiFrame::RA.val(u32::from(reg)),
    );
    for _ in 0..MDIO_POLLS {
        if bus.is_set(EIR, Interrupt::MII) {
            bus.write(EIR, Interrupt::MII::SET);
            return Ok(bus.read(MMFR).read(MiiFrame::DATA) as u16);
        }
        core::hint::spin_loop();
    }
    Err(MdioTimeout { phy, reg })
}

/// Reads register `reg` of the PHY at `phy`.
pub fn read<B: Bus>(bus: &mut B, phy: u8, reg: u8) -> Result<u16, MdioTimeout> {
    transact(bus, phy, reg, MiiFrame::OP::Read)
}

/// Writes register `reg` of the PHY at `phy`.
pub fn write<B: Bus>(bus: &mut B, phy: u8, reg: u8, value: u16) -> Result<(), MdioTimeout> {
    transact(
        bus,
        phy,
        reg,
        MiiFrame::OP::Write + MiiFrame::DATA.val(u32::from(value)),
    )
    .map(drop)
}

/// Link speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    M10,
    M100,
    M1000,
}

/// What auto-negotiation settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMode {
    pub speed: Speed,
    pub full_duplex: bool,
}

impl LinkMode {
    /// Until a PHY says otherwise: what QEMU's PHY negotiates.
    pub const DEFAULT: LinkMode = LinkMode {
        speed: Speed::M100,
        full_duplex: true,
    };
}

impl core::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mbps = match self.speed {
            Speed::M10 => 10,
            Speed::M100 => 100,
            Speed::M1000 => 1000,
        };
        let duplex = if self.full_duplex { "full" } else { "half" };
        write!(f, "{mbps} Mb/s {duplex} duplex")
    }
}

/// The PHY the controller talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phy {
    pub addr: u8,
    /// PHYSID1 and PHYSID2 (OUI, model, revision).
    pub id: u32,
    /// It has the 1000BASE-T registers.
    gigabit: bool,
}

impl Phy {
    /// The first address whose identifier registers answer.
    pub fn probe<B: Bus>(bus: &mut B) -> Result<Phy, PhyError> {
        for addr in 0..ADDRESSES {
            let id1 = read(bus, addr, mii::PHYSID1)?;
            if id1 == 0xffff || id1 == 0 {
                continue;
            }
            let id2 = read(bus, addr, mii::PHYSID2)?;
            let bmsr = LocalRegisterCopy::<u16, Bmsr::Register>::new(read(bus, addr, mii::BMSR)?);
            return Ok(Phy {
                addr,
                id: u32::from(id1) << 16 | u32::from(id2),
                gigabit: bmsr.is_set(Bmsr::EXTENDED_STATUS),
            });
        }
        Err(PhyError::NotFound)
    }

    /// Advertises every mode the MAC does and (re)starts
    /// auto-negotiation; the link comes up later (seconds, on a real
    /// PHY), which [`link_up`](Self::link_up) shows.
    pub fn start_autoneg<B: Bus>(&self, bus: &mut B) -> Result<(), MdioTimeout> {
        let ability = Ability::SELECTOR::Csma
            + Ability::HALF_10::SET
            + Ability::FULL_10::SET
            + Ability::HALF_100::SET
            + Ability::FULL_100::SET;
        write(bus, self.addr, mii::ADVERTISE, ability.value)?;
        if self.gigabit {
            write(
                bus,
                self.addr,
                mii::CTRL1000,
                Ctrl1000::FULL_1000::SET.value,
            )?;
        }
        write(
            bus,
            self.addr,
            mii::BMCR,
            (Bmcr::AN_ENABLE::SET + Bmcr::RESTART_AN::SET).value,
        )
    }

    /// One read of the link bit.
    pub fn link_up<B: Bus>(&self, bus: &mut B) -> Result<bool, MdioTimeout> {
        let bmsr = LocalRegisterCopy::<u16, Bmsr::Register>::new(read(bus, self.addr, mii::BMSR)?);
        Ok(bmsr.is_set(Bmsr::LINK))
    }

    /// The best mode both ends advertised (for a link that is up).
    pub fn mode<B: Bus>(&self, bus: &mut B) -> Result<LinkMode, MdioTimeout> {
        if self.gigabit {
            let stat = LocalRegisterCopy::<u16, Stat1000::Register>::new(read(
                bus,
                self.addr,
                mii::STAT1000,
            )?);
            if stat.is_set(Stat1000::PARTNER_FULL_1000) {
                return Ok(LinkMode {
                    speed: Speed::M1000,
                    full_duplex: true,
                });
            }
        }
        let ours = read(bus, self.addr, mii::ADVERTISE)?;
        let theirs = read(bus, self.addr, mii::LPA)?;
        let common = LocalRegisterCopy::<u16, Ability::Register>::new(ours & theirs);
        let (speed, full_duplex) = if common.is_set(Ability::FULL_100) {
            (Speed::M100, true)
        } else if common.is_set(Ability::HALF_100) {
            (Speed::M100, false)
        } else if common.is_set(Ability::FULL_10) {
            (Speed::M10, true)
        } else {
            (Speed::M10, false)
        };
        Ok(LinkMode { speed, full_duplex })
    }
}
