//! The simulator's socket for its timing truth: every read also takes the kernel's receive
//! time of the data (`SO_TIMESTAMPNS`), kept as the connection's latest arrival, so a request's
//! truth clock starts when its bytes reached the server — before the server's own HTTP
//! parsing and scheduling, which a client rightly counts in its TTFT.
//!
//! Deliberately not the client's code (`client::wire` walks the control messages with libc
//! and carries the stamp to the monotonic clock by its age): this goes through nix and a fixed
//! anchor, so a mistake in one cannot hide in the other.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The wall clock and the monotonic clock read together once, to carry kernel stamps across.
#[derive(Clone, Copy)]
pub struct Anchor {
    wall: SystemTime,
    mono: Instant,
}

impl Anchor {
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn to_mono(self, stamp: TimeSpec) -> Option<Instant> {
        let wall = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(stamp.tv_sec()).ok()?,
                u32::try_from(stamp.tv_nsec()).ok()?,
            );
        match wall.duration_since(self.wall) {
            Ok(after) => self.mono.checked_add(after),
            Err(before) => self.mono.checked_sub(before.duration()),
        }
    }
}

/// When the latest bytes of a connection reached its socket (shared with its requests).
#[derive(Clone, Default)]
pub struct Arrival(Arc<Mutex<Option<Instant>>>);

impl Arrival {
    pub fn latest(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|t| *t)
    }
}

pub struct Stamped {
    inner: TcpStream,
    anchor: Anchor,
    arrival: Arrival,
    control: Vec<u8>,
}

/// Turns receive timestamps on for a listening socket (accepted connections inherit it) and
/// waits until the kernel really stamps packets. The kernel switches its stamping on lazily,
/// from a work queue, when the first socket of the system asks (measured here: 0.2–0.6 ms
/// later); a request arriving in that window would carry no stamp. Bounded: ~200 ms.
pub async fn enable_on_listener(listener: &tokio::net::TcpListener) -> bool {
    if socket::setsockopt(listener, sockopt::ReceiveTimestampns, &true).is_err() {
        return false;
    }
    tokio::task::spawn_blocking(stamping_is_on)
        .await
        .unwrap_or(false)
}

/// Sends a datagram to itself until one arrives with a kernel stamp.
fn stamping_is_on() -> bool {
    let Ok(rx) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let (Ok(to), Ok(())) = (
        rx.local_addr(),
        rx.set_read_timeout(Some(Duration::from_millis(5))),
    ) else {
        return false;
    };
    if socket::setsockopt(&rx, sockopt::ReceiveTimestampns, &true).is_err() {
        return false;
    }
    let mut buf = [0u8; 8];
    let mut control = nix::cmsg_space!(TimeSpec);
    for _ in 0..40 {
        if rx.send_to(b"x", to).is_err() {
            return false;
        }
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(msg) = socket::recvmsg::<()>(
            rx.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        ) else {
            continue;
        };
        let stamped = msg
            .cmsgs()
            .ok()
            .is_some_and(|mut c| c.any(|m| matches!(m, ControlMessageOwned::ScmTimestampns(_))));
        if stamped {
            return true;
        }
    }
    false
}

impl Stamped {
    /// Wraps an accepted connection; `None` when the kernel refuses receive timestamps.
    pub fn new(inner: TcpStream, anchor: Anchor) -> Result<(Self, Arrival), TcpStream> {
        if socket::setsockopt(&inner, sockopt::ReceiveTimestampns, &true).is_err() {
            return Err(inner);
        }
        let arrival = Arrival::default();
        Ok((
            Self {
                inner,
                anchor,
                arrival: arrival.clone(),
                control: nix::cmsg_space!(TimeSpec),
            },
            arrival,
        ))
    }
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let fd = this.inner.as_raw_fd();
            let unfilled = buf.initialize_unfilled();
            let control = &mut this.control;
            let got = this.inner.try_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(unfilled)];
                let msg = socket::recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let stamp = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmTimestampns(t) => Some(t),
                        _ => None,
                    })
                });
                Ok((msg.bytes, stamp))
            });
            match got {
                Ok((n, stamp)) => {
                    // Every read replaces the last arrival, a read without a stamp too: a
                    // request must never inherit the previous one's time.
                    if n > 0 {
                        if let Ok(mut latest) = this.arrival.0.lock() {
                            *latest = stamp.and_then(|s| this.anchor.to_mono(s));
                        }
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
