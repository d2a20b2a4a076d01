//! Checks every received frame before the stack sees it, so that what
//! smoltcp would drop silently is counted by reason, and routes the raw
//! echo frames (EtherType [`ECHO_ETHERTYPE`]) the tests use to see frames
//! of every size come back byte for byte.

/// IEEE 802 local experimental EtherType 1: frames of this type are sent
/// back to their source unchanged but for the addresses.
pub const ECHO_ETHERTYPE: u16 = 0x88b5;

const ETH_HEADER: usize = 14;
const ARP_LEN: usize = 28;
const IPV4_MIN_HEADER: usize = 20;

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Stack,
    /// Send it back (raw echo).
    Echo,
    /// Counted and dropped.
    Drop,
}

/// The network PD's counters, by reason where a frame is dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// An `rxPacket` naming a buffer this PD did not lend, or unreadable.
    pub rx_bad_buffer: u64,
    /// A `txPacketDone`/`txPacketAbort` for a buffer not in flight.
    pub tx_bad_completion: u64,
    pub tx_aborted: u64,
    /// Frames smoltcp built while no transmit buffer was free.
    pub tx_dropped: u64,
    pub raw_echoed: u64,
    pub raw_echo_dropped: u64,
    /// Shorter than an Ethernet header.
    pub runt: u64,
    pub unknown_ethertype: u64,
    pub arp_truncated: u64,
    /// The IPv4 header or the packet runs past the frame.
    pub ip_truncated: u64,
    pub ip_bad_version: u64,
    /// A header length below 20 bytes or a total length below it.
    pub ip_bad_header: u64,
    pub ip_bad_checksum: u64,
    /// Fragments (this stack does not reassemble).
    pub ip_fragment: u64,
}

impl Counters {
    /// Every drop reason with its count, for the status page.
    pub fn drops(&self) -> [(&'static str, u64); 10] {
        [
            ("rx_bad_buffer", self.rx_bad_buffer),
            ("tx_bad_completion", self.tx_bad_completion),
            ("runt", self.runt),
            ("unknown_ethertype", self.unknown_ethertype),
            ("arp_truncated", self.arp_truncated),
            ("ip_truncated", self.ip_truncated),
            ("ip_bad_version", self.ip_bad_version),
            ("ip_bad_header", self.ip_bad_header),
            ("ip_bad_checksum", self.ip_bad_checksum),
            ("ip_fragment", self.ip_fragment),
        ]
    }
}

/// The ones' complement sum over `bytes` (RFC 1071), folded.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Classifies `frame`, counting the reason of a drop.
pub fn check(frame: &[u8], c: &mut Counters) -> Verdict {
    if frame.len() < ETH_HEADER {
        c.runt += 1;
        return Verdict::Drop;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let payload = &frame[ETH_HEADER..];
    match ethertype {
        ECHO_ETHERTYPE => Verdict::Echo,
        0x0806 if payload.len() < ARP_LEN => {
            c.arp_truncated += 1;
            Verdict::Drop
        }
        0x0806 => Verdict::Stack,
        0x0800 => check_ipv4(payload, c),
        _ => {
            c.unknown_ethertype += 1;
            Verdict::Drop
        }
    }
}

fn check_ipv4(ip: &[u8], c: &mut Counters) -> Verdict {
    if ip.len() < IPV4_MIN_HEADER {
        c.ip_truncated += 1;
        return Verdict::Drop;
    }
    if ip[0] >> 4 != 4 {
        c.ip_bad_version += 1;
        return Verdict::Drop;
    }
    let header = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if header < IPV4_MIN_HEADER || total < header {
        c.ip_bad_header += 1;
        return Verdict::Drop;
    }
    // Ethernet pads short packets: the frame may be longer, never shorter.
    if header > ip.len() || total > ip.len() {
        c.ip_truncated += 1;
        return Verdict::Drop;
    }
    if checksum(&ip[..header]) != 0xffff {
        c.ip_bad_checksum += 1;
        return Verdict::Drop;
    }
    let fragment = u16::from_be_bytes([ip[6], ip[7]]);
    if fragment & 0x3fff != 0 {
        c.ip_fragment += 1;
        return Verdict::Drop;
    }
    Verdict::Stack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(total: u16, ihl: u8) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[12] = 0x08;
        f[14] = 0x40 | ihl;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        let sum = !checksum(&f[14..14 + 4 * usize::from(ihl).max(5)]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f
    }

    #[test]
    fn good_frames_reach_the_stack_and_echo_frames_come_back() {
        let mut c = Counters::default();
        assert_eq!(check(&ipv4(28, 5), &mut c), Verdict::Stack);
        let mut arp = [0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(check(&arp, &mut c), Verdict::Stack);
        let mut echo = [0u8; 60];
        echo[12..14].copy_from_slice(&ECHO_ETHERTYPE.to_be_bytes());
        assert_eq!(check(&echo, &mut c), Verdict::Echo);
        assert_eq!(c, Counters::default());
    }

    #[test]
    fn each_malformation_is_counted_under_its_reason() {
        let mut c = Counters::default();
        assert_eq!(check(&[0; 10], &mut c), Verdict::Drop);
        let mut f = ipv4(28, 5);
        f[24] ^= 1;
        check(&f, &mut c);
        check(&ipv4(100, 5), &mut c);
        check(&ipv4(28, 4), &mut c);
        let mut v6 = ipv4(28, 5);
        v6[14] = 0x65;
        check(&v6, &mut c);
        let mut frag = ipv4(28, 5);
        frag[20] = 0x20;
        let sum = {
            frag[24] = 0;
            frag[25] = 0;
            !checksum(&frag[14..34])
        };
        frag[24..26].copy_from_slice(&sum.to_be_bytes());
        check(&frag, &mut c);
        let mut other = [0u8; 60];
        other[12..14].copy_from_slice(&[0x86, 0xdd]);
        check(&other, &mut c);
        let mut arp = [0u8; 30];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        check(&arp, &mut c);
        assert_eq!(
            (
                c.runt,
                c.ip_bad_checksum,
                c.ip_truncated,
                c.ip_bad_header,
                c.ip_bad_version,
                c.ip_fragment,
                c.unknown_ethertype,
                c.arp_truncated
            ),
            (1, 1, 1, 1, 1, 1, 1, 1)
        );
    }
}
