//! The media port's socket. Bound to a wildcard address on a host with several addresses, a
//! reply must leave from the address the client sent to: a client (browsers, ICE) only
//! accepts a STUN response from the address it checked, and media from the pair it chose.
//! So on an IPv4 wildcard bind each datagram's destination is read (`IP_PKTINFO`), and what
//! goes back to that client is sent from it.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrStorage, recvmsg, sendmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

pub struct MediaSocket {
    socket: UdpSocket,
    /// Whether datagrams carry their destination address (an IPv4 wildcard bind).
    pktinfo: bool,
}

impl MediaSocket {
    pub fn new(socket: UdpSocket) -> Self {
        let wildcard_v4 = matches!(socket.local_addr(), Ok(SocketAddr::V4(a)) if a.ip().is_unspecified());
        let pktinfo = wildcard_v4 && setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).is_ok();
        Self { socket, pktinfo }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// One datagram: its length, sender, and the local address it was sent to (when known).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<Ipv4Addr>)> {
        if !self.pktinfo {
            let (len, from) = self.socket.recv_from(buf).await?;
            return Ok((len, from, None));
        }
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(&mut *buf)];
                let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
                let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let from = msg
                    .address
                    .as_ref()
                    .and_then(SockaddrStorage::as_sockaddr_in)
                    .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
                    .ok_or_else(|| io::Error::other("a datagram without an IPv4 sender"))?;
                let to = msg.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|c| match c {
                        ControlMessageOwned::Ipv4PacketInfo(info) => {
                            Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)))
                        }
                        _ => None,
                    })
                });
                Ok((msg.bytes, from, to))
            })
            .await
    }

    /// Sends `payload` to `to`, from `source` when given (the address `to` sent to).
    pub async fn send(&self, payload: &[u8], to: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<()> {
        let (Some(source), SocketAddr::V4(dest), true) = (source, to, self.pktinfo) else {
            return self.socket.send_to(payload, to).await.map(|_| ());
        };
        let fd = self.socket.as_raw_fd();
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(source).to_be(),
            },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let dest = SockaddrIn::from(dest);
        self.socket
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(payload)];
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&dest),
                )
                .map(|_| ())
                .map_err(io::Error::from)
            })
            .await
    }
}
