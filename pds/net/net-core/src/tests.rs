//! The device and the stack end to end on the host: a fake driver moves
//! frames between the EthernetController messages and a second smoltcp
//! stack playing the host, which pings, echoes over UDP and TCP and
//! fetches the status page.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec::Vec;

use dingo_protocols::ethernet_controller::Msg;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address,
    Ipv4Cidr,
};

use crate::device::{BUF_SIZE, EthDevice, Memory};
use crate::inspect::ECHO_ETHERTYPE;
use crate::stack::{Addressing, Net, Storage};

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HOST_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const GUEST: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const AREA: usize = 64 * BUF_SIZE;

#[derive(Clone)]
struct Mem(Rc<RefCell<Vec<u8>>>);

impl Memory for Mem {
    fn read(&self, offset: u32, dst: &mut [u8]) -> bool {
        let m = self.0.borrow();
        let at = offset as usize;
        match m.get(at..at + dst.len()) {
            Some(src) => {
                dst.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
    fn write(&self, offset: u32, src: &[u8]) -> bool {
        let mut m = self.0.borrow_mut();
        let at = offset as usize;
        match m.get_mut(at..at + src.len()) {
            Some(dst) => {
                dst.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// The host's side of the wire.
#[derive(Default)]
struct Wire {
    to_guest: VecDeque<Vec<u8>>,
    to_host: VecDeque<Vec<u8>>,
}

struct HostRx(Vec<u8>);
impl phy::RxToken for HostRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
struct HostTx<'a>(&'a mut VecDeque<Vec<u8>>);
impl phy::TxToken for HostTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0; len];
        let r = f(&mut v);
        self.0.push_back(v);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = HostRx;
    type TxToken<'a> = HostTx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(HostRx, HostTx<'_>)> {
        let f = self.to_host.pop_front()?;
        Some((HostRx(f), HostTx(&mut self.to_guest)))
    }
    fn transmit(&mut self, _: Instant) -> Option<HostTx<'_>> {
        Some(HostTx(&mut self.to_guest))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// A driver that sends every frame at once and receives into lent buffers.
struct FakeDriver {
    mem: Mem,
    lent: VecDeque<u32>,
    in_flight: usize,
}

impl FakeDriver {
    fn pump(&mut self, dev: &mut EthDevice<Mem>, wire: &mut Wire) {
        while let Some(msg) = dev.next_out() {
            match msg {
                Msg::Enable => {
                    let mut mac = [0u8; 8];
                    mac[2..].copy_from_slice(&GUEST_MAC);
                    dev.handle(Msg::MacAddress {
                        mac: u64::from_be_bytes(mac),
                    });
                    dev.handle(Msg::EnableComplete);
                }
                Msg::RxBuffer { buf, len } => {
                    assert_eq!(usize::from(len), BUF_SIZE);
                    self.lent.push_back(buf);
                }
                Msg::TxPacket { buf, len } => {
                    let mut f = vec![0; usize::from(len)];
                    assert!(self.mem.read(buf, &mut f));
                    wire.to_host.push_back(f);
                    self.in_flight += 1;
                    dev.handle(Msg::TxPacketDone { buf });
                    self.in_flight -= 1;
                }
                other => panic!("driver got {other:?}"),
            }
        }
        while !wire.to_guest.is_empty() {
            let Some(buf) = self.lent.pop_front() else {
                break;
            };
            let f = wire.to_guest.pop_front().unwrap();
            assert!(self.mem.write(buf, &f));
            dev.handle(Msg::RxPacket {
                buf,
                len: f.len() as u16,
            });
        }
    }
}

struct World<'s> {
    dev: EthDevice<Mem>,
    driver: FakeDriver,
    net: Net<'s>,
    wire: Wire,
    host: Interface,
    now: u64,
    /// When the stack wants its next poll (`Net::poll_delay_ns`).
    due: Option<u64>,
}

impl World<'_> {
    /// One millisecond: the driver's frames in, a poll when the PD's loop
    /// would make one (frames waiting, or the stack's time came), the
    /// frames out, the host.
    fn step(&mut self, host_sockets: &mut SocketSet<'_>) {
        self.now += 1_000_000;
        self.driver.pump(&mut self.dev, &mut self.wire);
        if self.dev.wants_poll() || self.due.is_some_and(|due| self.now >= due) {
            self.net
                .poll(self.now, &mut self.dev, |w, stats, addr, _| match addr {
                    Some(a) => write!(w, "address {a}\nudp echoed {}\n", stats.udp_echoed),
                    None => writeln!(w, "no address"),
                });
            self.due = self.net.poll_delay_ns(self.now).map(|d| self.now + d);
        }
        self.driver.pump(&mut self.dev, &mut self.wire);
        let t = Instant::from_micros((self.now / 1000) as i64);
        self.host.poll(t, &mut self.wire, host_sockets);
    }
}

fn world<'s>(storage: &'s mut Storage<'s>) -> World<'s> {
    let mem = Mem(Rc::new(RefCell::new(vec![0; AREA])));
    let mut dev = EthDevice::new(mem.clone(), AREA);
    let mut driver = FakeDriver {
        mem,
        lent: VecDeque::new(),
        in_flight: 0,
    };
    let mut wire = Wire::default();
    dev.enable();
    driver.pump(&mut dev, &mut wire);
    assert_eq!(dev.mac(), Some(GUEST_MAC));
    let net = Net::new(
        storage,
        &mut dev,
        GUEST_MAC,
        Addressing::Static {
            cidr: Ipv4Cidr::new(GUEST, 24),
            gateway: Some(HOST),
        },
        7,
        0,
    );
    let mut host = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(HOST_MAC))),
        &mut wire,
        Instant::ZERO,
    );
    host.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(HOST), 24)).unwrap();
    });
    World {
        dev,
        driver,
        net,
        wire,
        host,
        now: 0,
        due: Some(0),
    }
}

#[test]
fn udp_datagrams_come_back_byte_for_byte_with_32_in_flight() {
    let mut storage = Storage::new();
    let mut w = world(&mut storage);
    let (mut rx_meta, mut tx_meta) = (
        [udp::PacketMetadata::EMPTY; 64],
        [udp::PacketMetadata::EMPTY; 64],
    );
    let (mut rx, mut tx) = (vec![0u8; 65536], vec![0u8; 65536]);
    let mut udp = udp::Socket::new(
        udp::PacketBuffer::new(&mut rx_meta[..], &mut rx[..]),
        udp::PacketBuffer::new(&mut tx_meta[..], &mut tx[..]),
    );
    udp.bind(5000).unwrap();
    let mut storage_h = [SocketStorage::EMPTY; 4];
    let mut sockets = SocketSet::new(&mut storage_h[..]);
    let h = sockets.add(udp);
    let (mut sent, mut got) = (0u32, 0u32);
    for _ in 0..2000 {
        let s = sockets.get_mut::<udp::Socket>(h);
        while sent < 500 && sent - got < 32 && s.can_send() {
            let payload: Vec<u8> = (0..64 + sent % 1400).map(|i| (i + sent) as u8).collect();
            s.send_slice(&payload, (IpAddress::Ipv4(GUEST), 7)).unwrap();
            sent += 1;
        }
        while let Ok((data, _)) = s.recv() {
            let want: Vec<u8> = (0..64 + got % 1400).map(|i| (i + got) as u8).collect();
            assert_eq!(data, &want[..]);
            got += 1;
        }
        if got == 500 {
            break;
        }
        w.step(&mut sockets);
    }
    assert_eq!(got, 500);
    assert_eq!(w.net.stats().udp_echoed, 500);
    assert_eq!(w.dev.tx_in_flight(), 0);
    assert_eq!(w.driver.lent.len(), 32, "every receive buffer lent again");
}

#[test]
fn a_tcp_stream_is_echoed_and_the_status_page_is_served() {
    let mut storage = Storage::new();
    let mut w = world(&mut storage);
    let (mut a, mut b, mut c, mut d) = (
        vec![0u8; 32768],
        vec![0u8; 32768],
        vec![0u8; 4096],
        vec![0u8; 4096],
    );
    let mut storage_h = [SocketStorage::EMPTY; 4];
    let mut sockets = SocketSet::new(&mut storage_h[..]);
    let echo = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut a[..]),
        tcp::SocketBuffer::new(&mut b[..]),
    ));
    let page = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut c[..]),
        tcp::SocketBuffer::new(&mut d[..]),
    ));
    let cx = w.host.context();
    sockets
        .get_mut::<tcp::Socket>(echo)
        .connect(cx, (IpAddress::Ipv4(GUEST), 7), 40000)
        .unwrap();
    sockets
        .get_mut::<tcp::Socket>(page)
        .connect(cx, (IpAddress::Ipv4(GUEST), 80), 40001)
        .unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let (mut sent, mut back, mut text) = (0, Vec::new(), Vec::new());
    let mut asked = false;
    for _ in 0..20_000 {
        let s = sockets.get_mut::<tcp::Socket>(echo);
        if s.can_send() && sent < data.len() {
            sent += s.send_slice(&data[sent..]).unwrap();
        }
        if s.can_recv() {
            let mut buf = [0u8; 4096];
            let n = s.recv_slice(&mut buf).unwrap();
            back.extend_from_slice(&buf[..n]);
        }
        let p = sockets.get_mut::<tcp::Socket>(page);
        ask_for_page(p, &mut asked, &mut text);
        if back.len() == data.len() && !p.may_recv() && asked {
            break;
        }
        w.step(&mut sockets);
    }
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed stream differs");
    let text = String::from_utf8(text).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("address 10.0.2.15/24"), "{text}");
    assert_eq!(w.net.stats().status_pages, 1);
}

/// The host's side of a status page request on `s`: asks once the
/// connection is up, then collects the page into `text`.
fn ask_for_page(s: &mut tcp::Socket<'_>, asked: &mut bool, text: &mut Vec<u8>) {
    if s.may_send() && !*asked {
        s.send_slice(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        *asked = true;
    }
    if s.can_recv() {
        let mut buf = [0u8; 4096];
        let n = s.recv_slice(&mut buf).unwrap();
        text.extend_from_slice(&buf[..n]);
    }
}

/// Fetches the status page from the host's local `port`: the text, or
/// `None` if the guest refused the connection.
fn fetch_page(w: &mut World<'_>, port: u16) -> Option<String> {
    let (mut rx, mut tx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut storage_h = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage_h[..]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx[..]),
        tcp::SocketBuffer::new(&mut tx[..]),
    ));
    let cx = w.host.context();
    sockets
        .get_mut::<tcp::Socket>(h)
        .connect(cx, (IpAddress::Ipv4(GUEST), 80), port)
        .unwrap();
    let (mut text, mut asked) = (Vec::new(), false);
    for _ in 0..2000 {
        let s = sockets.get_mut::<tcp::Socket>(h);
        ask_for_page(s, &mut asked, &mut text);
        if asked && !s.may_recv() {
            // The page is whole: the guest closed its side; so does the host.
            s.close();
        }
        if !s.is_open() {
            break;
        }
        w.step(&mut sockets);
    }
    let s = sockets.get_mut::<tcp::Socket>(h);
    assert!(!s.is_open(), "the fetch from port {port} never ended");
    (!text.is_empty()).then(|| String::from_utf8(text).unwrap())
}

#[test]
fn the_status_page_is_served_to_more_fetches_than_it_has_sockets() {
    // Two sockets serve the page, one fetch after the other: each fetch
    // past the second needs a socket that closed to listen again, which
    // the service does when the closing segment comes in.
    let mut storage = Storage::new();
    let mut w = world(&mut storage);
    for port in 40100..40105 {
        let page = fetch_page(&mut w, port).expect("refused");
        assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
        assert!(page.contains("address 10.0.2.15/24"), "{page}");
    }
    assert_eq!(w.net.stats().status_pages, 5);
}

#[test]
fn pings_are_answered_and_raw_echo_frames_come_back_whole() {
    let mut storage = Storage::new();
    let mut w = world(&mut storage);
    let (mut rx_meta, mut tx_meta) = (
        [icmp::PacketMetadata::EMPTY; 4],
        [icmp::PacketMetadata::EMPTY; 4],
    );
    let (mut rx, mut tx) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut storage_h = [SocketStorage::EMPTY; 2];
    let mut sockets = SocketSet::new(&mut storage_h[..]);
    let mut icmp = icmp::Socket::new(
        icmp::PacketBuffer::new(&mut rx_meta[..], &mut rx[..]),
        icmp::PacketBuffer::new(&mut tx_meta[..], &mut tx[..]),
    );
    icmp.bind(icmp::Endpoint::Ident(0x22)).unwrap();
    let h = sockets.add(icmp);
    let payload = [0xa5u8; 56];
    let repr = Icmpv4Repr::EchoRequest {
        ident: 0x22,
        seq_no: 1,
        data: &payload,
    };
    let s = sockets.get_mut::<icmp::Socket>(h);
    let buf = s.send(repr.buffer_len(), IpAddress::Ipv4(GUEST)).unwrap();
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(buf),
        &smoltcp::phy::ChecksumCapabilities::default(),
    );
    let mut answered = false;
    for _ in 0..100 {
        w.step(&mut sockets);
        let s = sockets.get_mut::<icmp::Socket>(h);
        if let Ok((data, _)) = s.recv() {
            let p = Icmpv4Packet::new_checked(data).unwrap();
            assert_eq!(p.data(), &payload[..]);
            answered = true;
            break;
        }
    }
    assert!(answered);
    // Raw echo frames of the sizes the boot test sends.
    for len in [60usize, 1514, 1518] {
        let mut f: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        f[..6].copy_from_slice(&GUEST_MAC);
        f[6..12].copy_from_slice(&HOST_MAC);
        f[12..14].copy_from_slice(&ECHO_ETHERTYPE.to_be_bytes());
        w.wire.to_guest.push_back(f.clone());
        w.driver.pump(&mut w.dev, &mut w.wire);
        w.net.poll(w.now, &mut w.dev, |_, _, _, _| Ok(()));
        w.driver.pump(&mut w.dev, &mut w.wire);
        let back = w.wire.to_host.pop_back().expect("echo frame");
        assert_eq!(back.len(), len);
        assert_eq!(&back[..6], &HOST_MAC);
        assert_eq!(&back[6..12], &GUEST_MAC);
        assert_eq!(&back[12..], &f[12..]);
    }
    assert_eq!(w.dev.counters().raw_echoed, 3);
}

#[test]
fn completions_for_buffers_never_sent_are_counted_not_trusted() {
    let mem = Mem(Rc::new(RefCell::new(vec![0; AREA])));
    let mut dev = EthDevice::new(mem, AREA);
    let plan = dev.plan();
    dev.handle(Msg::EnableComplete);
    let tx0 = (plan.rx * BUF_SIZE) as u32;
    dev.handle(Msg::TxPacketDone { buf: tx0 });
    dev.handle(Msg::TxPacketDone { buf: 12345 });
    dev.handle(Msg::RxPacket { buf: tx0, len: 60 });
    dev.handle(Msg::RxPacket { buf: 0, len: 4000 });
    let c = dev.counters();
    assert_eq!((c.tx_bad_completion, c.rx_bad_buffer), (2, 2));
    assert_eq!(dev.tx_in_flight(), 0);
}

#[test]
fn every_failure_code_of_the_protocol_has_its_own_words() {
    use dingo_protocols::ethernet_controller as eth;
    let codes = [
        eth::BAD_REQUEST,
        eth::DEVICE,
        eth::RESET,
        eth::QUEUE_FULL,
        eth::GONE,
        eth::RESTARTED,
    ];
    let unknown = crate::device::failure(0);
    let words: std::collections::BTreeSet<_> =
        codes.iter().map(|&c| crate::device::failure(c)).collect();
    assert_eq!(words.len(), codes.len());
    assert!(!words.contains(unknown));
    assert_eq!(crate::device::failure(u32::MAX), unknown);
}
