//! A station on QEMU's raw-frame wire (`-netdev dgram`): every Ethernet
//! frame is one UDP datagram between QEMU's socket and this one. smoltcp
//! gives the station ARP, IPv4, ICMP, UDP and TCP; raw frames (the raw
//! echo EtherType, malformed frames) are sent and captured beside it.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::{Duration, Instant as StdInstant};

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

pub const HOST_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
pub const HOST_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
pub const GUEST_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
/// The net PD's raw echo EtherType (net-core's inspect module).
pub const ECHO_ETHERTYPE: u16 = 0x88b5;

pub struct Wire {
    sock: UdpSocket,
    /// Raw echo frames that came back, in order.
    pub echoes: VecDeque<Vec<u8>>,
    pub frames_in: u64,
    pub frames_out: u64,
    /// The sender address of the last ARP reply from the guest.
    pub arp_reply: Option<[u8; 6]>,
    buf: Vec<u8>,
}

impl Wire {
    fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.sock.recv(&mut self.buf) {
                Ok(n) => {
                    self.frames_in += 1;
                    let f = self.buf[..n].to_vec();
                    let ethertype = (f.len() >= 14).then(|| u16::from_be_bytes([f[12], f[13]]));
                    if ethertype == Some(ECHO_ETHERTYPE) {
                        self.echoes.push_back(f);
                        continue;
                    }
                    // An ARP reply (opcode 2) from the guest's address.
                    if ethertype == Some(0x0806)
                        && f.len() >= 42
                        && f[20..22] == [0, 2]
                        && f[28..32] == GUEST_IP.octets()
                    {
                        let mut mac = [0; 6];
                        mac.copy_from_slice(&f[22..28]);
                        self.arp_reply = Some(mac);
                    }
                    return Some(f);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) => panic!("peer: wire socket: {e}"),
            }
        }
    }

    /// Reads every frame waiting on the socket: raw echoes are kept, the
    /// rest (for the stack) are dropped, so use it only while the stack is
    /// idle.
    pub fn drain(&mut self) {
        while self.recv().is_some() {}
    }

    /// Sends one raw frame.
    pub fn send(&mut self, frame: &[u8]) {
        self.frames_out += 1;
        if let Err(e) = self.sock.send(frame) {
            panic!("peer: sending a frame of {} bytes: {e}", frame.len());
        }
    }

    /// Blocks until a datagram is there or `d` passed.
    fn wait(&self, d: Duration) {
        let _ = self.sock.set_nonblocking(false);
        let _ = self
            .sock
            .set_read_timeout(Some(d.max(Duration::from_micros(100))));
        let mut b = [0u8; 1];
        let _ = self.sock.peek(&mut b);
        let _ = self.sock.set_nonblocking(true);
    }
}

pub struct Rx(Vec<u8>);
impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
pub struct Tx<'a>(&'a mut Wire);
impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0; len];
        let r = f(&mut v);
        self.0.send(&v);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.recv()?;
        Some((Rx(f), Tx(self)))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(self))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// The host station: the wire, smoltcp's interface and its sockets.
pub struct Station {
    pub wire: Wire,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
}

impl Station {
    /// Binds 127.0.0.1:`port + 1` and talks to QEMU at 127.0.0.1:`port`.
    pub fn new(port: u16) -> Station {
        let sock = UdpSocket::bind(("127.0.0.1", port + 1))
            .unwrap_or_else(|e| panic!("peer: binding 127.0.0.1:{}: {e}", port + 1));
        sock.connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("peer: connecting to QEMU at {port}: {e}"));
        sock.set_nonblocking(true).expect("nonblocking socket");
        let mut wire = Wire {
            sock,
            echoes: VecDeque::new(),
            frames_in: 0,
            frames_out: 0,
            arp_reply: None,
            buf: vec![0; 70_000],
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(HOST_MAC)));
        config.random_seed = 0x5eed;
        let mut iface = Interface::new(config, &mut wire, Instant::now());
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(HOST_IP), 24))
                .expect("one address");
        });
        Station {
            wire,
            iface,
            sockets: SocketSet::new(vec![]),
        }
    }

    pub fn poll(&mut self) {
        self.iface
            .poll(Instant::now(), &mut self.wire, &mut self.sockets);
    }

    /// Polls, then sleeps on the wire for at most `d` (less when the stack
    /// has a timer due).
    pub fn idle(&mut self, d: Duration) {
        self.poll();
        let d = match self.iface.poll_delay(Instant::now(), &self.sockets) {
            Some(delay) => d.min(Duration::from_micros(delay.total_micros())),
            None => d,
        };
        self.wire.wait(d);
    }

    /// Repeats `step` (polling in between) until it yields, for at most
    /// `limit`; the error names `what`.
    pub fn until<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut step: impl FnMut(&mut Station) -> Option<T>,
    ) -> Result<T, String> {
        let end = StdInstant::now() + limit;
        loop {
            self.poll();
            if let Some(v) = step(self) {
                return Ok(v);
            }
            if StdInstant::now() > end {
                return Err(format!("{what}: no result within {limit:?}"));
            }
            self.idle(Duration::from_millis(2));
        }
    }
}
