//! A loopback port that never completes a TCP handshake, to test connect timeouts without
//! leaving the machine: a listener with a zero backlog that is never accepted from, its
//! queue pre-filled, so the kernel drops every further SYN.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

pub(crate) struct Blackhole {
    pub port: u16,
    _listener: Socket,
    _fillers: Vec<Socket>,
}

impl Blackhole {
    pub fn open() -> std::io::Result<Blackhole> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        listener.listen(0)?;
        let addr = listener.local_addr()?;
        let port = addr.as_socket().map(|a| a.port()).unwrap_or(0);
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            // EINPROGRESS is expected: the handshake may never finish, which is the point.
            let _ = s.connect(&addr);
            fillers.push(s);
        }
        Ok(Blackhole { port, _listener: listener, _fillers: fillers })
    }
}
