//! Batched datagram I/O for a media port (Linux): `recvmmsg` reads what the socket holds, up
//! to a batch, in one system call, and `sendmmsg` sends a fan-out (one packet to many
//! subscribers) in as few as the kernel allows. Both go through `nix`'s safe wrappers.
//!
//! Why not `quinn-udp`: it batches a *receive*, and a *send* only as GSO segments to one
//! destination. An SFU's send is the other shape, one packet to a hundred addresses, which
//! only `sendmmsg` batches; GSO would not apply to it at all.
//!
//! Bound to an IPv4 wildcard address, each datagram's destination is read (`IP_PKTINFO`) and
//! what goes back to that client leaves from it: a client only accepts a STUN response from
//! the address it checked, and media from the pair it chose.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

use bytes::BytesMut;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt,
    sockopt,
};

/// Datagrams one system call reads or sends at most.
pub const BATCH: usize = 64;
/// Largest datagram read (MTU-sized packets and then some).
pub const MAX_DATAGRAM: usize = 2048;

/// Whether replies on `socket` must name their source: true for an IPv4 wildcard bind, where
/// `IP_PKTINFO` is then turned on.
pub fn enable_pktinfo(socket: &UdpSocket) -> bool {
    let wildcard_v4 = matches!(socket.local_addr(), Ok(SocketAddr::V4(a)) if a.ip().is_unspecified());
    wildcard_v4 && setsockopt(socket, sockopt::Ipv4PacketInfo, &true).is_ok()
}

/// Socket buffers a media port asks for, each way: a few hundred milliseconds of a busy
/// port, so a worker that is late for its socket (a long fan-out, a descheduled thread)
/// finds the datagrams still there.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER_BYTES`] of receive and send buffer, past the system's
/// `net.core.rmem_max`/`wmem_max` where the process may (`CAP_NET_ADMIN`), else up to them.
/// Returns the receive buffer granted.
pub fn deepen_buffers(socket: &UdpSocket) -> usize {
    let size = SOCKET_BUFFER_BYTES;
    if setsockopt(socket, sockopt::RcvBufForce, &size).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &size);
    }
    if setsockopt(socket, sockopt::SndBufForce, &size).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &size);
    }
    nix::sys::socket::getsockopt(socket, sockopt::RcvBuf).unwrap_or(0)
}

/// One datagram read: its sender, the local address it was sent to (when known) and its
/// length in its buffer.
#[derive(Debug, Clone, Copy)]
struct Meta {
    from: SocketAddr,
    to: Option<Ipv4Addr>,
    len: usize,
}

/// Buffers for a batch of received datagrams, reused from one read to the next.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    headers: MultiHeaders<SockaddrStorage>,
    meta: Vec<Meta>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new(BATCH)
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("read", &self.meta.len()).finish()
    }
}

impl RecvBatch {
    pub fn new(batch: usize) -> Self {
        let batch = batch.max(1);
        let cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
        Self {
            bufs: vec![vec![0; MAX_DATAGRAM]; batch],
            headers: MultiHeaders::preallocate(batch, Some(cmsg)),
            meta: Vec::with_capacity(batch),
        }
    }

    /// Reads what `socket` holds, up to a batch, without waiting: `WouldBlock` when nothing
    /// is there. Returns how many datagrams were read.
    pub fn recv(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.meta.clear();
        let fd = socket.as_fd().as_raw_fd();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let results = recvmmsg(fd, &mut self.headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            .map_err(io::Error::from)?;
        for msg in results {
            let Some(from) = msg.address.as_ref().and_then(socket_addr) else {
                continue;
            };
            let to = msg.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)))
                    }
                    _ => None,
                })
            });
            self.meta.push(Meta {
                from,
                to,
                len: msg.bytes.min(MAX_DATAGRAM),
            });
        }
        Ok(self.meta.len())
    }

    /// The datagrams of the last read: sender, local address it was sent to, payload.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, Option<Ipv4Addr>, &[u8])> {
        self.meta
            .iter()
            .zip(&self.bufs)
            .map(|(m, buf)| (m.from, m.to, &buf[..m.len]))
    }
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
    }
    addr.as_sockaddr_in6()
        .map(|a| SocketAddr::V6(SocketAddrV6::new(a.ip(), a.port(), a.flowinfo(), a.scope_id())))
}

/// Datagrams waiting to be sent, in the order they were queued.
#[derive(Debug, Default)]
pub struct SendBatch {
    queued: Vec<(SocketAddr, Option<Ipv4Addr>, BytesMut)>,
    /// Sent from the front of `queued` by an earlier flush that could not finish.
    done: usize,
}

impl SendBatch {
    /// Queues `payload` for `to`, leaving from `source` when given (the address `to` sent to).
    pub fn push(&mut self, to: SocketAddr, source: Option<Ipv4Addr>, payload: BytesMut) {
        self.queued.push((to, source, payload));
    }

    pub fn len(&self) -> usize {
        self.queued.len() - self.done
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends what is queued, a batch per system call (consecutive datagrams of one source
    /// address share a call; a source is only ever given for IPv4 destinations). Returns how many left; on `WouldBlock` the rest stay queued
    /// for the next flush. A datagram the kernel refuses outright (an unreachable address)
    /// is dropped, as UDP would, and the rest go on.
    pub fn flush(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        let fd = socket.as_fd().as_raw_fd();
        let mut sent = 0;
        // With room for the one control message (the source address) each may carry, and
        // without: the kernel refuses room left empty.
        let mut plain: Option<MultiHeaders<SockaddrStorage>> = None;
        let mut sourced: Option<MultiHeaders<SockaddrStorage>> = None;
        while self.done < self.queued.len() {
            let rest = &self.queued[self.done..];
            let (first_to, source, _) = &rest[0];
            let run = rest.iter().take(BATCH).take_while(|(_, s, _)| s == source).count();
            let group = &rest[..run];
            let slices: Vec<[IoSlice<'_>; 1]> = group.iter().map(|(_, _, p)| [IoSlice::new(p)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = group.iter().map(|(to, _, _)| Some((*to).into())).collect();
            let info = source.map(|s| nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from(s).to_be(),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            });
            let cmsgs: Vec<ControlMessage<'_>> = info.iter().map(ControlMessage::Ipv4PacketInfo).collect();
            let headers = match source {
                Some(_) => sourced.get_or_insert_with(|| {
                    MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(nix::libc::in_pktinfo)))
                }),
                None => plain.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None)),
            };
            let result = sendmmsg(fd, headers, slices.iter(), addrs, &cmsgs, MsgFlags::MSG_DONTWAIT).map(|r| r.count());
            match result {
                Ok(0) => break,
                Ok(n) => {
                    self.done += n;
                    sent += n;
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    self.compact();
                    return if sent > 0 {
                        Ok(sent)
                    } else {
                        Err(io::ErrorKind::WouldBlock.into())
                    };
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    // The first of the group failed on its own account: drop it, go on.
                    log::debug!("media socket write to {first_to}: {e}");
                    self.done += 1;
                }
            }
        }
        self.compact();
        Ok(sent)
    }

    fn compact(&mut self) {
        self.queued.drain(..self.done);
        self.done = 0;
    }
}

/// Waits until `socket` has a datagram to read or `timeout` passes; true when readable.
/// For a loop that owns its thread (the benchmark's); the server waits through its runtime.
pub fn wait_readable(socket: &impl AsFd, timeout: std::time::Duration) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let millis = u16::try_from(timeout.as_millis().max(u128::from(!timeout.is_zero()))).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(millis)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        socket
    }

    #[test]
    fn a_batch_in_and_a_fan_out_back_each_reply_from_the_address_its_client_sent_to() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        assert!(
            enable_pktinfo(&server),
            "a wildcard IPv4 bind reads each datagram's destination"
        );
        let port = server.local_addr().unwrap().port();
        let clients: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
        // 127.0.0.2 is loopback too: a client that sent there accepts replies only from there.
        let targets = [
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 1),
        ];
        for (i, (c, ip)) in clients.iter().zip(targets).enumerate() {
            c.send_to(&[i as u8; 10], (ip, port)).unwrap();
        }
        let mut batch = RecvBatch::new(8);
        let mut got = Vec::new();
        for _ in 0..200 {
            match batch.recv(&server) {
                Ok(_) => got.extend(batch.iter().map(|(from, to, data)| (from, to, data.to_vec()))),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got.len(), 3, "three datagrams read: {got:?}");
        let mut send = SendBatch::default();
        for (from, to, data) in &got {
            let i = data[0] as usize;
            assert_eq!(*from, clients[i].local_addr().unwrap());
            assert_eq!(*to, Some(targets[i]), "the destination of client {i}'s datagram");
            send.push(*from, *to, BytesMut::from(&b"reply"[..]));
        }
        assert_eq!(send.flush(&server).unwrap(), 3);
        assert!(send.is_empty());
        for (c, ip) in clients.iter().zip(targets) {
            let mut buf = [0u8; 64];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"reply");
            assert_eq!(
                from,
                SocketAddr::from((ip, port)),
                "the reply left from the address sent to"
            );
        }
    }

    #[test]
    fn a_deep_buffer_keeps_a_burst_that_arrives_while_the_worker_is_busy() {
        // 3,000 datagrams land before anyone reads: a default buffer (212 KiB) drops most.
        let burst = 3000;
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let granted = deepen_buffers(&receiver);
        assert!(granted >= SOCKET_BUFFER_BYTES, "receive buffer {granted} bytes");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..burst as u32 {
            sender
                .send_to(&i.to_be_bytes().repeat(25), receiver.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut read = 0;
        while let Ok(n) = batch.recv(&receiver) {
            read += n;
        }
        assert_eq!(read, burst, "datagrams kept of the burst");
    }

    #[test]
    fn a_fan_out_larger_than_a_batch_goes_out_whole_and_in_order() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = client();
        let mut send = SendBatch::default();
        for i in 0..(BATCH * 2 + 5) as u32 {
            send.push(
                receiver.local_addr().unwrap(),
                None,
                BytesMut::from(&i.to_be_bytes()[..]),
            );
        }
        let mut sent = 0;
        while !send.is_empty() {
            sent += send.flush(&server).unwrap_or(0);
        }
        assert_eq!(sent, BATCH * 2 + 5);
        for i in 0..(BATCH * 2 + 5) as u32 {
            let mut buf = [0u8; 8];
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_be_bytes());
        }
    }
}
