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
                    if let Some(at) = stamp.and_then(|s| this.anchor.to_mono(s)) {
                        if let Ok(mut latest) = this.arrival.0.lock() {
                            *latest = Some(at);
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
