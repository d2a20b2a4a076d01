//! The raw-frame wire tests, each bounded in time and checking every byte
//! that comes back.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use crate::wire::{ECHO_ETHERTYPE, GUEST_IP, HOST_IP, HOST_MAC, Station};

pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
type Check = Result<String, String>;

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn secs(d: u64) -> Duration {
    Duration::from_secs(d)
}

/// `resend`: ask again every second, as ARP clients do (C+ mode drops a
/// frame that arrives before the network PD's buffers are in the
/// descriptors, which the first request can, right after start-up);
/// otherwise the one request must be answered.
pub fn arp(st: &mut Station, resend: bool) -> Check {
    let mut f = vec![0u8; 42];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&HOST_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&HOST_MAC);
    f[28..32].copy_from_slice(&HOST_IP.octets());
    f[38..42].copy_from_slice(&GUEST_IP.octets());
    st.wire.arp_reply = None;
    let mac = if resend {
        let mut reply = Err(String::new());
        for _ in 0..20 {
            st.wire.send(&f);
            reply = st.until(secs(1), "ARP reply (asked every second for 20 s)", |s| {
                s.wire.arp_reply
            });
            if reply.is_ok() {
                break;
            }
        }
        reply?
    } else {
        st.wire.send(&f);
        st.until(secs(20), "ARP reply", |s| s.wire.arp_reply)?
    };
    if mac != GUEST_MAC {
        return Err(format!(
            "ARP reply names {mac:02x?}, expected {GUEST_MAC:02x?}"
        ));
    }
    Ok(format!("10.0.2.15 is at {mac:02x?}"))
}

/// `count` pings with `window` in flight, each reply's payload checked.
pub fn ping(st: &mut Station, count: u16, window: u16) -> Check {
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 64], vec![0; 16384]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 64], vec![0; 16384]);
    let mut sock = icmp::Socket::new(rx, tx);
    let ident = 0x4e54;
    sock.bind(icmp::Endpoint::Ident(ident))
        .map_err(|e| e.to_string())?;
    let h = st.sockets.add(sock);
    let (mut sent, mut got) = (0u16, 0u16);
    let mut seen = vec![false; usize::from(count)];
    let start = Instant::now();
    let r = st.until(secs(120), "pings", |s| {
        let sock = s.sockets.get_mut::<icmp::Socket>(h);
        while sent < count && sent - got < window && sock.can_send() {
            let data = pattern(u32::from(sent), 56);
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: sent,
                data: &data,
            };
            let buf = sock
                .send(repr.buffer_len(), IpAddress::Ipv4(GUEST_IP))
                .ok()?;
            repr.emit(
                &mut Icmpv4Packet::new_unchecked(buf),
                &ChecksumCapabilities::default(),
            );
            sent += 1;
        }
        while let Ok((data, _)) = sock.recv() {
            let p = Icmpv4Packet::new_checked(data).ok()?;
            let seq = p.echo_seq_no();
            if seq < count
                && !seen[usize::from(seq)]
                && p.data() == &pattern(u32::from(seq), 56)[..]
            {
                seen[usize::from(seq)] = true;
                got += 1;
            } else {
                return Some(Err(format!("reply {seq} has a wrong or repeated payload")));
            }
        }
        (got == count).then_some(Ok(()))
    });
    st.sockets.remove(h);
    r??;
    Ok(format!(
        "{count} pings answered, payloads identical, in {:.1}s",
        start.elapsed().as_secs_f64()
    ))
}

/// `count` UDP datagrams of varied sizes to port 7, `window` in flight;
/// every one must come back byte for byte.
pub fn udp_echo(st: &mut Station, count: u32, window: u32, sizes: &[usize]) -> Check {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let mut sock = udp::Socket::new(rx, tx);
    sock.bind(40007).map_err(|e| e.to_string())?;
    let h = st.sockets.add(sock);
    let (mut sent, mut got) = (0u32, 0u32);
    let start = Instant::now();
    let size = |i: u32| sizes[i as usize % sizes.len()];
    let r = st.until(secs(300), "UDP echoes", |s| {
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        while sent < count && sent - got < window && sock.can_send() {
            let mut d = pattern(sent, size(sent));
            d[..4].copy_from_slice(&sent.to_be_bytes());
            sock.send_slice(&d, (IpAddress::Ipv4(GUEST_IP), 7)).ok()?;
            sent += 1;
        }
        while let Ok((data, _)) = sock.recv() {
            let want = {
                let mut d = pattern(got, size(got));
                d[..4].copy_from_slice(&got.to_be_bytes());
                d
            };
            if data != &want[..] {
                let seq = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Some(Err(format!(
                    "echo {got}: {} bytes (seq {seq:?}) differ from the {} sent (lost or reordered)",
                    data.len(),
                    want.len()
                )));
            }
            got += 1;
        }
        (got == count).then_some(Ok(()))
    });
    st.sockets.remove(h);
    if let Err(e) = &r {
        return Err(format!("{e}: {got} of {count} echoed ({sent} sent)"));
    }
    r??;
    let t = start.elapsed().as_secs_f64();
    Ok(format!(
        "{count} of {count} datagrams echoed byte for byte, {window} in flight, 0 lost, {t:.1}s ({:.0}/s)",
        f64::from(count) / t
    ))
}

/// A TCP stream of `len` bytes to port 7, compared byte for byte; `mid`
/// runs once when half of it came back.
pub fn tcp_echo(
    st: &mut Station,
    len: usize,
    port: u16,
    mut mid: impl FnMut(&mut Station),
) -> Check {
    let sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    let h = st.sockets.add(sock);
    let cx = st.iface.context();
    st.sockets
        .get_mut::<tcp::Socket>(h)
        .connect(cx, (IpAddress::Ipv4(GUEST_IP), 7), port)
        .map_err(|e| e.to_string())?;
    let data = pattern(7, len);
    let (mut sent, mut back) = (0usize, Vec::with_capacity(len));
    let mut mid_done = false;
    let start = Instant::now();
    let r = st.until(secs(300), "TCP echo", |s| {
        if !mid_done && back.len() >= len / 2 {
            mid_done = true;
            mid(s);
        }
        let sock = s.sockets.get_mut::<tcp::Socket>(h);
        if sock.can_send() && sent < len {
            sent += sock.send_slice(&data[sent..]).ok()?;
        }
        let mut buf = [0u8; 8192];
        while sock.can_recv() {
            let n = sock.recv_slice(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        if back.len() >= len {
            sock.close();
            return Some(());
        }
        None
    });
    // Let the close go out.
    for _ in 0..50 {
        st.idle(Duration::from_millis(2));
    }
    st.sockets.remove(h);
    r.map_err(|e| format!("{e}: {} of {len} bytes back", back.len()))?;
    if back[..] != data[..] {
        let at = back
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(len);
        return Err(format!("echoed stream differs from byte {at}"));
    }
    Ok(format!(
        "{len} bytes echoed byte for byte in {:.1}s",
        start.elapsed().as_secs_f64()
    ))
}

fn echo_frame(len: usize, seed: u32) -> Vec<u8> {
    let mut f = pattern(seed, len);
    f[..6].copy_from_slice(&GUEST_MAC);
    f[6..12].copy_from_slice(&HOST_MAC);
    f[12..14].copy_from_slice(&ECHO_ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&seed.to_be_bytes());
    f
}

fn check_echo(sent: &[u8], back: &[u8]) -> Result<(), String> {
    if back.len() != sent.len() {
        return Err(format!("{} bytes came back for {}", back.len(), sent.len()));
    }
    if back[..6] != HOST_MAC || back[6..12] != GUEST_MAC || back[12..] != sent[12..] {
        return Err(format!("a {}-byte frame came back changed", sent.len()));
    }
    Ok(())
}

/// Raw echo frames: the sizes given, then `more` frames of sizes that walk
/// across the receive ring's end, `window` in flight; each compared.
pub fn raw_frames(st: &mut Station, sizes: &[usize], more: u32, window: u32) -> Check {
    st.wire.echoes.clear();
    for (i, &len) in sizes.iter().enumerate() {
        let f = echo_frame(len, i as u32);
        st.wire.send(&f);
        let back = st.until(secs(20), "raw echo", |s| s.wire.echoes.pop_front())?;
        check_echo(&f, &back)?;
    }
    let size = |i: u32| 60 + (i as usize * 211) % 1459;
    let (mut sent, mut got, mut bytes) = (0u32, 0u32, 0usize);
    let mut frames = std::collections::VecDeque::new();
    st.until(secs(120), "raw echoes", |s| {
        while sent < more && sent - got < window {
            let f = echo_frame(size(sent), 1000 + sent);
            s.wire.send(&f);
            bytes += f.len() + 8;
            frames.push_back(f);
            sent += 1;
        }
        while let Some(back) = s.wire.echoes.pop_front() {
            let f = frames.pop_front()?;
            if let Err(e) = check_echo(&f, &back) {
                return Some(Err(e));
            }
            got += 1;
        }
        (got == more).then_some(Ok(()))
    })??;
    Ok(format!(
        "frames of {sizes:?} bytes came back byte-exact; then {more} of sizes 60..1518 ({} KiB, the 32 KiB receive ring wrapped about {} times)",
        bytes / 1024,
        bytes / (32 * 1024)
    ))
}

/// The status page, fetched over TCP port 80 and split into `name=value`
/// counters (and the whole text).
pub fn status(st: &mut Station, port: u16) -> Result<(HashMap<String, u64>, String), String> {
    let sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16384]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    let h = st.sockets.add(sock);
    let cx = st.iface.context();
    st.sockets
        .get_mut::<tcp::Socket>(h)
        .connect(cx, (IpAddress::Ipv4(GUEST_IP), 80), port)
        .map_err(|e| e.to_string())?;
    let mut asked = false;
    let mut text = Vec::new();
    let r = st.until(secs(30), "status page", |s| {
        let sock = s.sockets.get_mut::<tcp::Socket>(h);
        if sock.may_send() && !asked {
            sock.send_slice(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            asked = true;
        }
        let mut buf = [0u8; 4096];
        while sock.can_recv() {
            let n = sock.recv_slice(&mut buf).ok()?;
            text.extend_from_slice(&buf[..n]);
        }
        (asked && !sock.may_recv() && !text.is_empty()).then_some(())
    });
    if let Some(sock) = Some(st.sockets.get_mut::<tcp::Socket>(h)) {
        sock.close();
    }
    for _ in 0..20 {
        st.idle(Duration::from_millis(2));
    }
    st.sockets.remove(h);
    r?;
    let text = String::from_utf8_lossy(&text).into_owned();
    Ok((counters(&text), text))
}

/// Every `name=value` token of a status page (later names win).
pub fn counters(text: &str) -> HashMap<String, u64> {
    text.split_whitespace()
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn ipv4_udp(len: usize, seed: u32) -> Vec<u8> {
    // A UDP datagram to port 7 in a frame of `len` bytes.
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&GUEST_MAC);
    f[6..12].copy_from_slice(&HOST_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[20] = 0x40;
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&HOST_IP.octets());
    f[30..34].copy_from_slice(&GUEST_IP.octets());
    let sum = !ones(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f[34..36].copy_from_slice(&40008u16.to_be_bytes());
    f[36..38].copy_from_slice(&7u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    let body = pattern(seed, len - 42);
    f[42..].copy_from_slice(&body);
    f
}

fn ones(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Malformed frames of every kind; the system must count each by reason
/// and keep answering.
/// `cplus`: the driver runs the RTL8139 in C+ mode, where QEMU's model
/// drops a frame too long for the descriptor's buffer itself (counted as
/// missed, never seen by the driver) instead of handing it over.
pub fn malformed(st: &mut Station, cplus: bool) -> Check {
    let (before, _) = status(st, 41080)?;
    let mut sent = HashMap::new();
    let mut send = |st: &mut Station, what: &'static str, f: Vec<u8>| {
        st.wire.send(&f);
        *sent.entry(what).or_insert(0u64) += 1;
        st.idle(Duration::from_millis(1));
    };
    for i in 0..5 {
        // Runts: QEMU pads them to 60 bytes of zeros.
        let mut r = vec![0u8; 10 + i];
        r[..6].copy_from_slice(&GUEST_MAC);
        send(st, "runt", r);
    }
    for len in [4000usize, 9000, 4000, 9000] {
        let mut f = echo_frame(60, 0);
        f.resize(len, 0xee);
        send(st, "oversized", f);
    }
    for i in 0..5 {
        let mut f = ipv4_udp(100, i);
        f[24] ^= 0x5a;
        send(st, "bad_checksum", f);
    }
    for i in 0..5 {
        // A UDP checksum that is not the datagram's (never 0: that is none).
        let mut f = ipv4_udp(100, i);
        let pseudo = [&f[26..34], &[0, 17], &f[38..40], &f[34..]].concat();
        let right = !ones(&pseudo);
        let wrong = right.wrapping_add(1) | 1;
        f[40..42].copy_from_slice(&wrong.to_be_bytes());
        send(st, "udp_bad_checksum", f);
    }
    for i in 0..5 {
        // The IPv4 header says 1000 bytes; the frame holds 46.
        let mut f = ipv4_udp(60, i);
        f[16..18].copy_from_slice(&1000u16.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = !ones(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        send(st, "truncated", f);
    }
    for i in 0..5u32 {
        // A header length of 60 bytes in a 34-byte IPv4 part.
        let mut f = ipv4_udp(48, i);
        f[14] = 0x4f;
        send(st, "truncated", f);
    }
    for i in 0..50u32 {
        let mut g = pattern(5000 + i, 14 + (i as usize * 97) % 1500);
        g[..6].copy_from_slice(&GUEST_MAC);
        if i % 3 == 0 {
            g[12..14].copy_from_slice(&[0x08, 0x00]);
        }
        send(st, "garbage", g);
    }
    // No echo may come of a bad datagram; the system still answers.
    ping(st, 20, 4)?;
    let (after, _) = status(st, 41081)?;
    let delta = |k: &str| {
        after
            .get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(k).copied().unwrap_or(0))
    };
    let mut problems = Vec::new();
    let oversized = if cplus { "rx_missed" } else { "rx_too_long" };
    for (k, want) in [
        (oversized, 4),
        ("ip_bad_checksum", 5),
        ("udp_bad_checksum", 5),
        ("ip_truncated", 5),
        ("ip_bad_header", 5),
        ("unknown_ethertype", 5),
    ] {
        if delta(k) < want {
            problems.push(format!(
                "{k} rose by {}, expected at least {want}",
                delta(k)
            ));
        }
    }
    let counted: u64 = [
        "rx_too_long",
        "rx_bad_status",
        "rx_runt",
        "rx_ring_resets",
        "runt",
        "unknown_ethertype",
        "arp_truncated",
        "ip_truncated",
        "ip_bad_version",
        "ip_bad_header",
        "ip_bad_checksum",
        "ip_fragment",
        "udp_bad_length",
        "udp_bad_checksum",
    ]
    .iter()
    .map(|k| delta(k))
    .sum::<u64>()
        + if cplus { delta("rx_missed") } else { 0 };
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut kinds: Vec<_> = sent.iter().map(|(k, v)| format!("{v} {k}")).collect();
    kinds.sort();
    Ok(format!(
        "sent {}; counted: {oversized} +{} ip_bad_checksum +{} udp_bad_checksum +{} ip_truncated +{} unknown_ethertype +{} ip_bad_version +{} ip_bad_header +{} ({counted} in all); 20 pings answered after",
        kinds.join(", "),
        delta(oversized),
        delta("ip_bad_checksum"),
        delta("udp_bad_checksum"),
        delta("ip_truncated"),
        delta("unknown_ethertype"),
        delta("ip_bad_version"),
        delta("ip_bad_header"),
    ))
}

/// 256 back-to-back 1518-byte frames into an idle guest; then it must
/// still receive. In normal mode QEMU holds back what the ring cannot
/// take, so the NIC misses none; `cplus` (C+ mode, no flow control in
/// QEMU's model): a frame with no lent buffer in a descriptor is dropped,
/// and each must be counted as missed.
pub fn burst(st: &mut Station, cplus: bool) -> Check {
    st.wire.echoes.clear();
    for _ in 0..100 {
        st.idle(Duration::from_millis(5));
    }
    let (before, _) = status(st, 41082)?;
    let frames: Vec<_> = (0..256).map(|i| echo_frame(1518, 20_000 + i)).collect();
    for f in &frames {
        st.wire.send(f);
        // Take echoes off this socket as they come, so that none is lost
        // in the peer's own receive buffer.
        st.wire.drain();
    }
    let end = Instant::now() + secs(20);
    let mut back = 0;
    while Instant::now() < end && back < 256 {
        st.idle(Duration::from_millis(5));
        while let Some(b) = st.wire.echoes.pop_front() {
            let seq = u32::from_be_bytes([b[14], b[15], b[16], b[17]]);
            let i = seq.wrapping_sub(20_000) as usize;
            match frames.get(i) {
                Some(f) => check_echo(f, &b)?,
                None => return Err(format!("an echo with sequence {seq} never sent")),
            }
            back += 1;
        }
    }
    let after = ping(st, 50, 8)?;
    let (c, _) = status(st, 41083)?;
    let missed =
        c.get("rx_missed").copied().unwrap_or(0) - before.get("rx_missed").copied().unwrap_or(0);
    if cplus {
        if back == 0 || back + missed > 256 {
            return Err(format!(
                "{back} of 256 echoed and {missed} counted as missed"
            ));
        }
        return Ok(format!(
            "{back} of 256 echoed, {missed} missed and counted (C+: no flow control); afterwards {after}"
        ));
    }
    if missed != 0 {
        return Err(format!("the NIC missed {missed} frames of the burst"));
    }
    Ok(format!(
        "{back} of 256 echoed, the NIC missed none (the rest never left the host's socket buffers); afterwards {after}"
    ))
}

/// QMP `set_link` on the NIC's netdev.
pub fn set_link(qmp: &str, up: bool) -> Result<(), String> {
    let s = UnixStream::connect(qmp).map_err(|e| format!("QMP {qmp}: {e}"))?;
    s.set_read_timeout(Some(secs(5)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    for cmd in [
        r#"{"execute":"qmp_capabilities"}"#.to_string(),
        format!(r#"{{"execute":"set_link","arguments":{{"name":"n0","up":{up}}}}}"#),
    ] {
        writeln!(w, "{cmd}").map_err(|e| e.to_string())?;
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("QMP closed".into());
            }
            if line.contains("\"return\"") {
                break;
            }
            if line.contains("\"error\"") {
                return Err(format!("QMP: {line}"));
            }
        }
    }
    Ok(())
}

/// A TCP stream with the link taken down and up in the middle.
pub fn link_flap(st: &mut Station, qmp: &str) -> Check {
    let mut flap = Ok(());
    let r = tcp_echo(st, 512 * 1024, 41007, |s| {
        flap = set_link(qmp, false).and_then(|()| {
            let end = Instant::now() + Duration::from_millis(500);
            while Instant::now() < end {
                s.idle(Duration::from_millis(5));
            }
            set_link(qmp, true)
        });
    });
    flap?;
    Ok(format!(
        "link down for 0.5 s and up again mid-stream: {}",
        r?
    ))
}

/// The bench's load: `count` datagrams of `size` bytes, `window` in
/// flight, each checked; returns the seconds taken and every round trip
/// (send to echo) in microseconds.
pub fn udp_load(
    st: &mut Station,
    count: u32,
    window: u32,
    size: usize,
) -> Result<(f64, Vec<f64>, u32), String> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let mut sock = udp::Socket::new(rx, tx);
    sock.bind(40017).map_err(|e| e.to_string())?;
    let h = st.sockets.add(sock);
    let (mut sent, mut got, mut resent) = (0u32, 0u32, 0u32);
    let mut at = std::collections::VecDeque::new();
    let mut rtts = Vec::with_capacity(count as usize);
    let mut progress = Instant::now();
    let datagram = |seq: u32| {
        let mut d = pattern(seq, size);
        d[..4].copy_from_slice(&seq.to_be_bytes());
        d
    };
    let start = Instant::now();
    let r = st.until(secs(600), "bench echoes", |s| {
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        while sent < count && sent - got < window && sock.can_send() {
            sock.send_slice(&datagram(sent), (IpAddress::Ipv4(GUEST_IP), 7))
                .ok()?;
            at.push_back(Instant::now());
            sent += 1;
        }
        // A datagram lost on the way (counted): send the missing ones again.
        if got < sent && progress.elapsed() > Duration::from_secs(1) {
            for seq in got..sent {
                let _ = sock.send_slice(&datagram(seq), (IpAddress::Ipv4(GUEST_IP), 7));
            }
            resent += 1;
            progress = Instant::now();
        }
        // Send now, not at the next poll.
        s.iface
            .poll(smoltcp::time::Instant::now(), &mut s.wire, &mut s.sockets);
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        while let Ok((data, _)) = sock.recv() {
            let seq = data
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if seq.is_some_and(|q| q < got) {
                // The late original of a resent datagram.
                continue;
            }
            if data != &datagram(got)[..] {
                return Some(Err(format!("echo {got} differs (seq {seq:?})")));
            }
            if let Some(t) = at.pop_front() {
                rtts.push(t.elapsed().as_secs_f64() * 1e6);
            }
            got += 1;
            progress = Instant::now();
        }
        (got == count).then_some(Ok(()))
    });
    st.sockets.remove(h);
    r??;
    Ok((start.elapsed().as_secs_f64(), rtts, resent))
}

/// `count` UDP echoes of varied sizes, `window` in flight, through driver
/// restarts: a datagram lost on the wire while the driver is down is sent
/// again after `resend` without an echo. Every one must come back byte for
/// byte (in any order, duplicates of resent ones ignored). The figures:
/// datagrams resent, and the stream's gaps (no echo for over `GAP`).
pub fn udp_through_restarts(
    st: &mut Station,
    count: u32,
    window: usize,
    sizes: &[usize],
    resend: Duration,
) -> Check {
    const GAP: Duration = Duration::from_millis(50);
    // Longer than any recovery: the guest has stopped answering.
    const STALL: Duration = Duration::from_secs(20);
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]);
    let mut sock = udp::Socket::new(rx, tx);
    sock.bind(40027).map_err(|e| e.to_string())?;
    let h = st.sockets.add(sock);
    let datagram = |seq: u32| {
        let mut d = pattern(seq, sizes[seq as usize % sizes.len()]);
        d[..4].copy_from_slice(&seq.to_be_bytes());
        d
    };
    // Sequence number -> when it was last sent.
    let mut pending = std::collections::BTreeMap::<u32, Instant>::new();
    let (mut next, mut echoed, mut resent, mut dups) = (0u32, 0u32, 0u32, 0u32);
    let mut gaps: Vec<Duration> = Vec::new();
    let mut last_echo = Instant::now();
    let start = Instant::now();
    let r = st.until(secs(600), "UDP echoes through restarts", |s| {
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        while next < count && pending.len() < window && sock.can_send() {
            sock.send_slice(&datagram(next), (IpAddress::Ipv4(GUEST_IP), 7))
                .ok()?;
            pending.insert(next, Instant::now());
            next += 1;
        }
        for (&seq, at) in pending.iter_mut() {
            if at.elapsed() > resend && sock.can_send() {
                let _ = sock.send_slice(&datagram(seq), (IpAddress::Ipv4(GUEST_IP), 7));
                *at = Instant::now();
                resent += 1;
            }
        }
        s.iface
            .poll(smoltcp::time::Instant::now(), &mut s.wire, &mut s.sockets);
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        while let Ok((data, _)) = sock.recv() {
            let seq = data
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let Some(seq) = seq.filter(|&q| q < next) else {
                return Some(Err(format!(
                    "an echo of {} bytes that was never sent ({seq:?})",
                    data.len()
                )));
            };
            if data != &datagram(seq)[..] {
                return Some(Err(format!("echo {seq} differs from what was sent")));
            }
            if pending.remove(&seq).is_none() {
                dups += 1;
                continue;
            }
            echoed += 1;
            let gap = last_echo.elapsed();
            if gap > GAP && echoed > 1 {
                gaps.push(gap);
            }
            last_echo = Instant::now();
        }
        if last_echo.elapsed() > STALL {
            return Some(Err(format!("the stream stalled: no echo for {STALL:?}")));
        }
        (echoed == count).then_some(Ok(()))
    });
    st.sockets.remove(h);
    if let Err(e) = &r {
        return Err(format!(
            "{e}: {echoed} of {count} echoed ({next} sent, {resent} resent)"
        ));
    }
    r??;
    gaps.sort();
    let longest = gaps.last().copied().unwrap_or_default();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    Ok(format!(
        "{count} of {count} datagrams echoed byte for byte, {window} in flight; {resent} resent, {dups} duplicate echoes ignored; {} gaps over {GAP:?} (median {median:.0?}, longest {longest:.0?}); {:.1}s",
        gaps.len(),
        start.elapsed().as_secs_f64()
    ))
}
