//! The user-network tests: the guest got its address by DHCP from QEMU's
//! user network; the host reaches its services through forwarded ports.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

type Check = Result<String, String>;

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(seed | 1).wrapping_add(seed >> 3) as u8)
        .collect()
}

pub fn udp_echo(port: u16, count: u32) -> Check {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    let mut retries = 0;
    for i in 0..count {
        let d = pattern(i, 1 + (i as usize * 37) % 1472);
        let mut tries = 0;
        loop {
            s.send(&d).map_err(|e| e.to_string())?;
            match s.recv(&mut buf) {
                Ok(n) if buf[..n] == d[..] => break,
                Ok(n) => return Err(format!("datagram {i}: {n} bytes came back different")),
                Err(_) if tries < 10 => {
                    // The user network may drop while QEMU is busy: retry.
                    tries += 1;
                    retries += 1;
                }
                Err(e) => return Err(format!("datagram {i}: no echo: {e}")),
            }
        }
    }
    Ok(format!(
        "{count} datagrams echoed byte for byte through the forwarded port ({retries} resent)"
    ))
}

pub fn tcp_echo(port: u16, len: usize) -> Check {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let data = pattern(77, len);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let out = data.clone();
    let writer = thread::spawn(move || w.write_all(&out));
    let mut back = Vec::with_capacity(len);
    let mut buf = [0u8; 8192];
    let start = Instant::now();
    while back.len() < len {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("after {} bytes: {e}", back.len()))?;
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    writer
        .join()
        .map_err(|_| "writer panicked")?
        .map_err(|e| e.to_string())?;
    if back != data {
        return Err(format!("{} of {len} bytes back, or different", back.len()));
    }
    Ok(format!(
        "{len} bytes echoed byte for byte in {:.1}s",
        start.elapsed().as_secs_f64()
    ))
}

pub fn status(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}
