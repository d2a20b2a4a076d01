//! The stack and its services: smoltcp's interface over an [`EthDevice`],
//! DHCPv4 or a static address, UDP and TCP echo on port 7, and the status
//! page on TCP port 80. All socket memory comes from one [`Storage`] the
//! PD owns; nothing is allocated.

use core::fmt::{self, Write};

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet, SocketStorage,
};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::device::{EthDevice, Memory};

/// The echo port (RFC 862), UDP and TCP.
pub const ECHO_PORT: u16 = 7;
/// The status page's TCP port.
pub const STATUS_PORT: u16 = 80;

const UDP_PACKETS: usize = 64;
const UDP_BYTES: usize = 64 * 1024;
const TCP_BYTES: usize = 16 * 1024;
const HTTP_BYTES: usize = 8 * 1024;
const ECHO_SOCKETS: usize = 2;
const HTTP_SOCKETS: usize = 2;
/// The TCP services' sockets and DHCP's; the UDP echo socket has a set
/// of its own (see [`Net::poll`]).
const SOCKETS: usize = ECHO_SOCKETS + HTTP_SOCKETS + 1;
/// Rounds of serve-and-send per call: each round moves a batch through.
const ROUNDS: usize = 16;

/// Every buffer the sockets use. About 260 KiB: the PD keeps it on its
/// (large) stack, alive as long as the stack is.
pub struct Storage<'s> {
    sockets: [SocketStorage<'s>; SOCKETS],
    udp_socket: [SocketStorage<'s>; 1],
    udp_rx_meta: [udp::PacketMetadata; UDP_PACKETS],
    udp_tx_meta: [udp::PacketMetadata; UDP_PACKETS],
    udp_rx: [u8; UDP_BYTES],
    udp_tx: [u8; UDP_BYTES],
    tcp: [[u8; TCP_BYTES]; 2 * ECHO_SOCKETS],
    http: [[u8; HTTP_BYTES]; 2 * HTTP_SOCKETS],
}

impl Default for Storage<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl Storage<'_> {
    pub const fn new() -> Self {
        Storage {
            sockets: [SocketStorage::EMPTY; SOCKETS],
            udp_socket: [SocketStorage::EMPTY; 1],
            udp_rx_meta: [udp::PacketMetadata::EMPTY; UDP_PACKETS],
            udp_tx_meta: [udp::PacketMetadata::EMPTY; UDP_PACKETS],
            udp_rx: [0; UDP_BYTES],
            udp_tx: [0; UDP_BYTES],
            tcp: [[0; TCP_BYTES]; 2 * ECHO_SOCKETS],
            http: [[0; HTTP_BYTES]; 2 * HTTP_SOCKETS],
        }
    }
}

/// Where the address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    Dhcp,
    Static {
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
    },
}

/// What the services did, for the status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub udp_echoed: u64,
    /// Datagrams not echoed: the send buffer was full.
    pub udp_not_echoed: u64,
    pub tcp_connections: u64,
    pub tcp_echoed_bytes: u64,
    pub status_pages: u64,
    pub dhcp_leases: u64,
}

/// What a poll changed that the PD reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// A new address (DHCP lease or the static one, first poll).
    pub configured: Option<Ipv4Cidr>,
    /// The DHCP lease was lost.
    pub deconfigured: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    Idle,
    Asked,
    Sent,
}

/// What one pass of the UDP echo did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Udp {
    /// Nothing was waiting.
    Idle,
    /// Every waiting datagram went back.
    Served,
    /// Datagrams are left because the send buffer is full.
    Blocked,
}

/// The interface, its sockets and the services' state.
pub struct Net<'s> {
    iface: Interface,
    /// The TCP services' sockets and DHCP's.
    sockets: SocketSet<'s>,
    /// The UDP echo socket alone: smoltcp's egress visits every socket of
    /// a set for each datagram it sends, so with the others in the set the
    /// echo paid for their visits on every packet.
    udp_set: SocketSet<'s>,
    udp: SocketHandle,
    /// When `sockets` next wants a poll (smoltcp's `poll_at` over the set),
    /// as of the last time it was worked out; `None`: at the next frame.
    sockets_at: Option<Instant>,
    /// Whether `sockets_at` may be out of date: a frame went into the set,
    /// or a service gave one of its sockets something to do.
    sockets_stale: bool,
    /// Whether the TCP services must look at their sockets: a frame went
    /// into the set since they last looked. Only a frame or a socket's
    /// time (see `poll`) changes what they act on: data, room, a peer's
    /// FIN, a socket closed by a segment or by a timer.
    /// Looking at four idle sockets on every poll cost the UDP echo about
    /// 140 instructions per datagram.
    serve_tcp: bool,
    echo: [SocketHandle; ECHO_SOCKETS],
    echo_open: [bool; ECHO_SOCKETS],
    http: [SocketHandle; HTTP_SOCKETS],
    page: [Page; HTTP_SOCKETS],
    dhcp: Option<SocketHandle>,
    address: Option<Ipv4Cidr>,
    announce: Option<Ipv4Cidr>,
    stats: Stats,
    scratch: [u8; 2048],
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

impl<'s> Net<'s> {
    /// The stack on `device` with hardware address `mac`; `seed` varies
    /// TCP's initial sequence numbers and ports between boots.
    pub fn new<M: Memory>(
        storage: &'s mut Storage<'s>,
        device: &mut EthDevice<M>,
        mac: [u8; 6],
        addressing: Addressing,
        seed: u64,
        now_ns: u64,
    ) -> Self {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, device, instant(now_ns));
        let Storage {
            sockets,
            udp_socket,
            udp_rx_meta,
            udp_tx_meta,
            udp_rx,
            udp_tx,
            tcp,
            http,
        } = storage;
        let mut set = SocketSet::new(&mut sockets[..]);
        let mut udp_set = SocketSet::new(&mut udp_socket[..]);
        let mut udp = udp::Socket::new(
            udp::PacketBuffer::new(&mut udp_rx_meta[..], &mut udp_rx[..]),
            udp::PacketBuffer::new(&mut udp_tx_meta[..], &mut udp_tx[..]),
        );
        // A fresh socket binds to a non-zero port.
        let _ = udp.bind(ECHO_PORT);
        let udp = udp_set.add(udp);
        let [t0, t1, t2, t3] = tcp;
        let echo = [
            set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut t0[..]),
                tcp::SocketBuffer::new(&mut t1[..]),
            )),
            set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut t2[..]),
                tcp::SocketBuffer::new(&mut t3[..]),
            )),
        ];
        let [h0, h1, h2, h3] = http;
        let http = [
            set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut h0[..]),
                tcp::SocketBuffer::new(&mut h1[..]),
            )),
            set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut h2[..]),
                tcp::SocketBuffer::new(&mut h3[..]),
            )),
        ];
        let (dhcp, announce) = match addressing {
            Addressing::Dhcp => (Some(set.add(dhcpv4::Socket::new())), None),
            Addressing::Static { cidr, gateway } => {
                set_address(&mut iface, cidr, gateway);
                (None, Some(cidr))
            }
        };
        Net {
            iface,
            sockets: set,
            udp_set,
            udp,
            sockets_at: None,
            sockets_stale: true,
            serve_tcp: true,
            echo,
            echo_open: [false; ECHO_SOCKETS],
            http,
            page: [Page::Idle; HTTP_SOCKETS],
            dhcp,
            address: announce,
            announce,
            stats: Stats::default(),
            scratch: [0; 2048],
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.address
    }

    /// Moves frames through the stack and serves every socket until
    /// nothing changes (at most a few rounds); `page` writes the status
    /// page's text when a client asks for it.
    ///
    /// Every received frame goes in first (smoltcp's ingress), then each
    /// round is one pass over the services and smoltcp's egress (everything
    /// the sockets have to send out, the services' answers included). The
    /// first round's egress always runs (ingress may have left work for
    /// it); another round follows only when the UDP echo stopped on a full
    /// send buffer, the one thing an egress can unblock. Frames cannot arrive
    /// meanwhile (they come through the PD's loop), so ingress runs once; a
    /// full way out is retried when the device says it is free again (see
    /// `EthDevice::wants_poll`). This is smoltcp's own `poll` split so that
    /// the egress pass before the services, which finds nothing the
    /// services did not queue yet, is left out. Each frame goes in with
    /// the set that holds its socket: a UDP datagram to the echo port with
    /// the echo socket's, everything else (TCP, DHCP, other ports, which
    /// smoltcp answers as unreachable) with the other sockets'.
    pub fn poll<M: Memory>(
        &mut self,
        now_ns: u64,
        device: &mut EthDevice<M>,
        mut page: impl FnMut(&mut dyn Write, &Stats, Option<Ipv4Cidr>, &EthDevice<M>) -> fmt::Result,
    ) -> Changes {
        let now = instant(now_ns);
        let mut changes = Changes {
            configured: self.announce.take(),
            deconfigured: false,
        };
        device.poll_started();
        self.iface.poll_maintenance(now);
        // A socket's time came (a retransmission, a TIME-WAIT's end): the
        // egress below moves it, and the services look at it after.
        let expired = self.sockets_at.is_some_and(|at| at <= now);
        self.sockets_stale |= expired;
        while let Some(udp_port) = device.stage() {
            let set = if udp_port == Some(ECHO_PORT) {
                &mut self.udp_set
            } else {
                self.sockets_stale = true;
                self.serve_tcp = true;
                &mut self.sockets
            };
            if self.iface.poll_ingress_single(now, device, set) == PollIngressSingleResult::None {
                break;
            }
        }
        for round in 0..ROUNDS {
            self.dhcp(&mut changes);
            let udp = self.serve_udp();
            let tcp = core::mem::take(&mut self.serve_tcp)
                && (self.serve_echo() | self.serve_pages(device, &mut page));
            self.sockets_stale |= tcp;
            let served = (udp != Udp::Idle) | tcp;
            // After the first round, the last egress left nothing behind.
            if !served && round > 0 {
                break;
            }
            while self.iface.poll_egress(now, device, &mut self.udp_set) != PollResult::None {}
            while self.iface.poll_egress(now, device, &mut self.sockets) != PollResult::None {
                self.sockets_stale = true;
            }
            // Only the UDP echo can serve more now: the egress emptied its
            // send buffer. A TCP socket's send room comes back with the
            // peer's acknowledgements, and new requests with new frames,
            // both through ingress at the next poll.
            if udp != Udp::Blocked {
                break;
            }
        }
        if expired && (self.serve_echo() | self.serve_pages(device, &mut page)) {
            while self.iface.poll_egress(now, device, &mut self.sockets) != PollResult::None {}
        }
        self.dhcp(&mut changes);
        changes
    }

    /// How long the stack may sleep before it must be polled again
    /// (retransmissions, DHCP renewal); `None`: until a frame arrives.
    ///
    /// The TCP services' and DHCP's sockets are asked only when their
    /// answer may have changed: a frame went into their set, a service
    /// gave one of them something to send, or their earliest time came
    /// (only then may an egress have moved a socket's timers: it visits a
    /// socket when the socket's time has come, or when a service gave it
    /// data). Asking all five sockets on every poll cost the UDP echo
    /// about 100 instructions per datagram.
    pub fn poll_delay_ns(&mut self, now_ns: u64) -> Option<u64> {
        let now = instant(now_ns);
        if self.sockets_stale || self.sockets_at.is_some_and(|at| at <= now) {
            self.sockets_at = self.iface.poll_at(now, &self.sockets);
            self.sockets_stale = false;
        }
        let udp = self.iface.poll_at(now, &self.udp_set);
        self.sockets_at.into_iter().chain(udp).min().map(|at| {
            if at > now {
                (at - now).total_micros() * 1000
            } else {
                0
            }
        })
    }

    fn dhcp(&mut self, changes: &mut Changes) {
        let Some(h) = self.dhcp else { return };
        match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(config)) => {
                set_address(&mut self.iface, config.address, config.router);
                self.address = Some(config.address);
                self.stats.dhcp_leases += 1;
                changes.configured = Some(config.address);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                // The socket says so once at start, before any lease.
                changes.deconfigured = self.address.take().is_some();
            }
        }
    }

    fn serve_udp(&mut self) -> Udp {
        let s = self.udp_set.get_mut::<udp::Socket>(self.udp);
        let mut served = Udp::Idle;
        while s.can_recv() {
            if !s.can_send() {
                // Leave the rest queued until the replies went out.
                return Udp::Blocked;
            }
            let Ok((n, meta)) = s.recv_slice(&mut self.scratch) else {
                break;
            };
            match s.send_slice(&self.scratch[..n], meta) {
                Ok(()) => self.stats.udp_echoed += 1,
                Err(_) => self.stats.udp_not_echoed += 1,
            }
            served = Udp::Served;
        }
        served
    }

    fn serve_echo(&mut self) -> bool {
        let mut served = false;
        for (i, &h) in self.echo.iter().enumerate() {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                // Closed (or never opened): listen again.
                let _ = s.listen(ECHO_PORT);
                self.echo_open[i] = false;
                continue;
            }
            if s.is_active() && !self.echo_open[i] {
                self.echo_open[i] = true;
                self.stats.tcp_connections += 1;
            }
            while s.can_recv() && s.can_send() {
                let room = s.send_capacity() - s.send_queue();
                let n = room.min(self.scratch.len());
                if n == 0 {
                    break;
                }
                let Ok(got) = s.recv_slice(&mut self.scratch[..n]) else {
                    break;
                };
                if got == 0 {
                    break;
                }
                // Fits: no more than the free room was taken.
                let _ = s.send_slice(&self.scratch[..got]);
                self.stats.tcp_echoed_bytes += got as u64;
                served = true;
            }
            // The peer finished sending and everything went back: done.
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
                served = true;
            }
        }
        served
    }

    fn serve_pages<M: Memory>(
        &mut self,
        device: &EthDevice<M>,
        page: &mut impl FnMut(&mut dyn Write, &Stats, Option<Ipv4Cidr>, &EthDevice<M>) -> fmt::Result,
    ) -> bool {
        let mut served = false;
        for (i, &h) in self.http.iter().enumerate() {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                let _ = s.listen(STATUS_PORT);
                self.page[i] = Page::Idle;
                continue;
            }
            while s.can_recv() {
                // The request itself does not matter: every path is the page.
                match s.recv_slice(&mut self.scratch) {
                    Ok(n) if n > 0 => self.page[i] = Page::Asked,
                    _ => break,
                }
            }
            if self.page[i] == Page::Asked && s.can_send() {
                let mut out = SocketWriter(s);
                let _ = out.write_str(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                );
                let _ = page(&mut out, &self.stats, self.address, device);
                out.0.close();
                self.page[i] = Page::Sent;
                self.stats.status_pages += 1;
                served = true;
            }
        }
        served
    }
}

fn set_address(iface: &mut Interface, cidr: Ipv4Cidr, gateway: Option<Ipv4Address>) {
    iface.update_ip_addrs(|a| {
        a.clear();
        let _ = a.push(IpCidr::Ipv4(cidr));
    });
    match gateway {
        Some(gw) => {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        None => {
            iface.routes_mut().remove_default_ipv4_route();
        }
    }
}

/// Text into a TCP socket's send buffer; what does not fit is cut off.
struct SocketWriter<'a, 'b>(&'a mut tcp::Socket<'b>);

impl Write for SocketWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.0.send_slice(s.as_bytes()) {
            Ok(n) if n == s.len() => Ok(()),
            _ => Err(fmt::Error),
        }
    }
}
