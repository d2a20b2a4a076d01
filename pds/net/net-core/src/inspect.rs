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
const UDP_HEADER: usize = 8;
const IPV4: u16 = 0x0800;
const UDP: u8 = 17;

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
    /// A UDP header that does not fit the packet, or a UDP length below
    /// the header's or past the packet.
    pub udp_bad_length: u64,
    pub udp_bad_checksum: u64,
}

impl Counters {
    /// Every drop reason with its count, for the status page.
    pub fn drops(&self) -> [(&'static str, u64); 12] {
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
            ("udp_bad_length", self.udp_bad_length),
            ("udp_bad_checksum", self.udp_bad_checksum),
        ]
    }
}

/// The ones' complement sum over `bytes` (RFC 1071), folded, as the
/// header's 16-bit words read it.
pub fn checksum(bytes: &[u8]) -> u16 {
    checksum_of(&[bytes])
}

/// [`checksum`] over `parts` one after the other; every part but the
/// last has an even length (a pseudo-header, then the segment).
pub fn checksum_of(parts: &[&[u8]]) -> u16 {
    // The sum is taken in the machine's byte order, eight bytes at a time
    // (RFC 1071 2.B-C: byte order and word size do not change a ones'
    // complement sum), where smoltcp's takes two: a 1,472-byte datagram's
    // sum cost smoltcp about 900 instructions, this one about 250.
    let mut sum = 0u128;
    for part in parts {
        let (words, tail) = part.as_chunks::<8>();
        sum += sum_words(words);
        let (pairs, odd) = tail.as_chunks::<2>();
        for p in pairs {
            sum += u128::from(u16::from_ne_bytes(*p));
        }
        if let [last] = odd {
            sum += u128::from(u16::from_ne_bytes([*last, 0]));
        }
    }
    u16::from_be(fold(sum))
}

/// A sum of 16-bit words folded into 16 bits, its carries added back in.
fn fold(sum: u128) -> u16 {
    let mut x = (sum as u64 as u128) + (sum >> 64);
    x = (x as u64 as u128) + (x >> 64);
    let mut x = x as u64;
    x = (x & 0xffff_ffff) + (x >> 32);
    x = (x & 0xffff_ffff) + (x >> 32);
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xffff) + (x >> 16);
    x as u16
}

/// The sum of `words` as 64-bit integers, each carry out added back into
/// the next word (so the same sum once folded): one add-with-carry a word.
#[cfg(target_arch = "x86_64")]
fn sum_words(words: &[[u8; 8]]) -> u128 {
    use core::arch::x86_64::_addcarry_u64;
    let (mut sum, mut carry) = (0u64, 0u8);
    for w in words {
        carry = _addcarry_u64(carry, sum, u64::from_ne_bytes(*w), &mut sum);
    }
    u128::from(sum) + u128::from(carry)
}

/// The same sum elsewhere: a 128-bit accumulator keeps the carries.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn sum_words_portable(words: &[[u8; 8]]) -> u128 {
    words
        .iter()
        .map(|w| u128::from(u64::from_ne_bytes(*w)))
        .sum()
}

#[cfg(not(target_arch = "x86_64"))]
use sum_words_portable as sum_words;

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
        IPV4 => check_ipv4(payload, c),
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
    if ip[9] == UDP {
        return check_udp(&ip[..total], header, c);
    }
    Verdict::Stack
}

/// The UDP datagram after the IPv4 header of `ip` (its total length):
/// checked here, so that smoltcp (told not to) need not, and a bad one is
/// counted by reason where smoltcp would drop it silently.
fn check_udp(ip: &[u8], header: usize, c: &mut Counters) -> Verdict {
    let udp = &ip[header..];
    if udp.len() < UDP_HEADER {
        c.udp_bad_length += 1;
        return Verdict::Drop;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if len < UDP_HEADER || len > udp.len() {
        c.udp_bad_length += 1;
        return Verdict::Drop;
    }
    // A zero checksum field: the sender computed none (RFC 768).
    if udp[6..8] != [0, 0] && checksum_of(&[&udp_pseudo_header(ip, len), &udp[..len]]) != 0xffff {
        c.udp_bad_checksum += 1;
        return Verdict::Drop;
    }
    Verdict::Stack
}

/// Where the UDP header of `frame` starts, if the frame carries an IPv4
/// packet of protocol UDP with room for both headers.
fn udp_at(frame: &[u8]) -> Option<usize> {
    let ip = frame.get(ETH_HEADER..ETH_HEADER + IPV4_MIN_HEADER)?;
    if frame[12..14] != IPV4.to_be_bytes() || ip[9] != UDP {
        return None;
    }
    let at = ETH_HEADER + usize::from(ip[0] & 0xf) * 4;
    (at + UDP_HEADER <= frame.len()).then_some(at)
}

/// The destination port of `frame` if it is a UDP datagram over IPv4 that
/// [`check`] passed.
pub fn udp_destination(frame: &[u8]) -> Option<u16> {
    let at = udp_at(frame)?;
    Some(u16::from_be_bytes([frame[at + 2], frame[at + 3]]))
}

/// RFC 768's pseudo-header of the datagram of `len` bytes in IPv4 packet
/// `ip`: source and destination address, protocol, length.
fn udp_pseudo_header(ip: &[u8], len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..8].copy_from_slice(&ip[12..20]);
    p[9] = UDP;
    p[10..].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// Fills in the UDP checksum of `frame` if it is an unfragmented IPv4 UDP
/// datagram: smoltcp, told the device computes it, leaves it zero. Frames
/// the stack built are well formed; anything else is left as it is.
pub fn fill_udp_checksum(frame: &mut [u8]) {
    let Some(at) = udp_at(frame) else {
        return;
    };
    let ip = &mut frame[ETH_HEADER..];
    let header = at - ETH_HEADER;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || header + UDP_HEADER > total {
        return;
    }
    let ip = &mut ip[..total];
    let len = usize::from(u16::from_be_bytes([ip[header + 4], ip[header + 5]]));
    if len < UDP_HEADER || header + len > total {
        return;
    }
    let pseudo = udp_pseudo_header(ip, len);
    let udp = &mut ip[header..header + len];
    udp[6..8].copy_from_slice(&[0, 0]);
    // All ones stands for a computed zero: zero means none (RFC 768).
    let sum = match !checksum_of(&[&pseudo, udp]) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
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
        let header = 4 * usize::from(ihl).max(5);
        if usize::from(total) >= header + 8 && 14 + header + 8 <= f.len() {
            let udp = 14 + header;
            f[udp + 4..udp + 6].copy_from_slice(&(total - header as u16).to_be_bytes());
        }
        let sum = !checksum(&f[14..14 + header]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// RFC 1071's sum another way: bytes at even offsets are the high
    /// halves of the words, and folding the carries back in is taking the
    /// sum modulo 0xffff (2^16 is 1 there), with 0xffff for a nonzero
    /// multiple.
    fn reference(parts: &[&[u8]]) -> u16 {
        let sum: u64 = parts
            .concat()
            .iter()
            .enumerate()
            .map(|(i, &b)| u64::from(b) << if i.is_multiple_of(2) { 8 } else { 0 })
            .sum();
        match (sum, sum % 0xffff) {
            (0, _) => 0,
            (_, 0) => 0xffff,
            (_, r) => r as u16,
        }
    }

    #[test]
    fn the_wide_sum_is_rfc_1071s() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly ones, so that the carries pile up.
                    if x.is_multiple_of(4) { x as u8 } else { 0xff }
                })
                .collect();
            assert_eq!(checksum(&bytes), reference(&[&bytes]), "{len} bytes");
            let split = (len / 3) & !1;
            let parts = [&bytes[..split], &bytes[split..]];
            assert_eq!(
                checksum_of(&parts),
                reference(&parts),
                "{len} bytes split at {split}"
            );
        }
    }

    #[test]
    fn both_word_sums_agree() {
        let words: Vec<[u8; 8]> = (0..200u64)
            .map(|i| (u64::MAX - i * 0x0101_0101).to_ne_bytes())
            .collect();
        for n in [0, 1, 2, 7, 8, 199, 200] {
            assert_eq!(
                fold(sum_words(&words[..n])),
                fold(sum_words_portable(&words[..n])),
                "{n} words"
            );
        }
    }

    /// A UDP datagram of `payload` bytes in a 60-byte frame, with its
    /// checksum filled in as the transmit path fills it.
    fn udp_frame(payload: usize) -> [u8; 60] {
        let total = 20 + 8 + payload as u16;
        let mut f = ipv4(total, 5);
        f[26..34].copy_from_slice(&[10, 0, 2, 2, 10, 0, 2, 15]);
        for (i, b) in f[42..42 + payload].iter_mut().enumerate() {
            *b = i as u8 ^ 0x5c;
        }
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = !checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        fill_udp_checksum(&mut f);
        f
    }

    #[test]
    fn udp_checksums_are_filled_in_and_verified() {
        let mut c = Counters::default();
        for payload in [0, 1, 7, 18] {
            let f = udp_frame(payload);
            assert_ne!(f[40..42], [0, 0], "{payload}: filled in");
            let sum = checksum_of(&[
                &udp_pseudo_header(&f[14..], 8 + payload),
                &f[34..42 + payload],
            ]);
            assert_eq!(sum, 0xffff, "{payload}: verifies");
            assert_eq!(check(&f, &mut c), Verdict::Stack, "{payload}");
            let mut bad = f;
            // The source port, or a payload byte.
            bad[if payload == 0 { 35 } else { 42 + payload / 2 }] ^= 0x10;
            assert_eq!(check(&bad, &mut c), Verdict::Drop, "{payload}: corrupted");
        }
        assert_eq!(c.udp_bad_checksum, 4);
        // No checksum at all is allowed over IPv4.
        let mut none = udp_frame(4);
        none[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(check(&none, &mut c), Verdict::Stack);
        // A UDP length past the packet, or below the header.
        for len in [13u16, 7] {
            let mut f = udp_frame(4);
            f[38..40].copy_from_slice(&len.to_be_bytes());
            assert_eq!(check(&f, &mut c), Verdict::Drop, "length {len}");
        }
        assert_eq!((c.udp_bad_length, c.udp_bad_checksum), (2, 4));
    }

    #[test]
    fn datagrams_are_routed_by_destination_port() {
        let mut f = udp_frame(4);
        f[36..38].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(udp_destination(&f), Some(7));
        let mut tcp = f;
        tcp[23] = 6;
        assert_eq!(udp_destination(&tcp), None);
        let mut arp = f;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(udp_destination(&arp), None);
        assert_eq!(
            udp_destination(&f[..40]),
            None,
            "no room for the UDP header"
        );
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
