//! The benchmark connection's HTTP/1.1, written for this one job: send a request, read the
//! answer's head with httparse, undo chunked (or length/close) framing in place and hand the
//! body bytes to the caller with the time they arrived.
//!
//! Why not hyper here: hyper's client connection holds ~27 KiB per connection from the
//! handshake on (a 32-slot request channel, an 8 KiB header buffer, an 8 KiB read buffer;
//! `BENCHMARKS.md`), and it reads the socket itself, so a read's arrival time can only be
//! taken when our task is polled. Here every worker thread reads into one shared buffer (the
//! bytes are consumed before the task yields), a connection keeps only its socket and a few
//! words of framing state, and each read comes with the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`): the moment the data reached the socket, not the moment a busy client got
//! round to it. Without kernel stamps (not Linux, or refused) the read is stamped by the clock.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Bytes one socket read may take. One buffer per worker thread, shared by its connections.
const READ_BYTES: usize = 64 * 1024;
/// The longest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers parsed per response head.
const MAX_HEADERS: usize = 64;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BYTES]);
}

/// Why a response could not be read.
#[derive(Debug)]
pub enum WireError {
    /// Nothing of an answer arrived: the write failed, or the connection closed or reset
    /// before the first byte (on a kept connection: the server's keep-alive ran out).
    Unanswered(String),
    /// The connection ended or failed inside an answer.
    Cut(String),
    /// The answer is not HTTP/1.x as we read it.
    Protocol(String),
}

/// What the client needs of a response head besides its framing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `Content-Type`, as sent.
    pub content_type: Option<String>,
    /// `Content-Encoding`, as sent (the client asks for none).
    pub content_encoding: Option<String>,
}

/// Receives one answer.
pub trait Sink {
    /// The status line and headers have been read.
    fn head(&mut self, head: &ResponseHead);
    /// Body bytes (framing removed) that arrived at `at`. Return false to stop being fed; the
    /// rest of the body is then read and discarded by [`Wire::finish`].
    fn data(&mut self, bytes: &[u8], at: Instant) -> bool;
}

/// How the read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// The whole body was read.
    Complete,
    /// The sink stopped; the body is not finished (call [`Wire::finish`] to keep the connection).
    Stopped,
}

enum State {
    /// Between answers: a request may be written.
    Idle,
    /// Waiting for (the rest of) a response head.
    Head,
    Body(Framing),
    /// Unusable: an answer was abandoned or broken, or the server said it closes.
    Closed,
}

enum Framing {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

pub struct Wire {
    stream: TcpStream,
    state: State,
    /// A response head split across reads (rare): its bytes so far.
    partial_head: Vec<u8>,
    /// The current answer may be followed by another on this connection.
    keep_alive: bool,
    /// The sink has asked to stop being fed (the rest of this body is discarded).
    sink_done: bool,
    /// Bytes of the current answer seen (head included).
    seen: usize,
    /// Socket reads that carried bytes of the current answer.
    pub reads: u32,
    /// Of those, reads stamped by the kernel.
    pub kernel_reads: u32,
    kernel_stamps: bool,
    /// TLS (`https://`): the session; the socket carries its records.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Self {
        let kernel_stamps = enable_kernel_stamps(&stream);
        Self {
            stream,
            state: State::Idle,
            partial_head: Vec::new(),
            keep_alive: true,
            sink_done: false,
            seen: 0,
            reads: 0,
            kernel_reads: 0,
            kernel_stamps,
            tls: None,
        }
    }

    /// A TLS connection over `stream`: the handshake is done before this returns.
    pub async fn tls(
        stream: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls_pki_types::ServerName<'static>,
    ) -> Result<Self, WireError> {
        let session = rustls::ClientConnection::new(config, name)
            .map_err(|e| WireError::Protocol(format!("TLS: {e}")))?;
        let mut w = Self::new(stream);
        w.tls = Some(Box::new(session));
        loop {
            w.flush_tls()
                .await
                .map_err(|e| WireError::Unanswered(format!("TLS handshake: writing: {e}")))?;
            if !w.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
                return Ok(w);
            }
            w.stream
                .readable()
                .await
                .map_err(|e| WireError::Unanswered(format!("TLS handshake: {e}")))?;
            let fd = raw_fd(&w.stream);
            let got = READ_BUF.with_borrow_mut(|buf| {
                let n = match w.stream.try_io(Interest::READABLE, || recv(fd, buf, false)) {
                    Ok((0, _)) => {
                        return Err(WireError::Unanswered(
                            "the server closed the connection during the TLS handshake".into(),
                        ))
                    }
                    Ok((n, _)) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(WireError::Unanswered(format!("TLS handshake: {e}"))),
                };
                let Some(t) = w.tls.as_mut() else {
                    return Ok(());
                };
                let mut input = &buf[..n];
                while !input.is_empty() {
                    t.read_tls(&mut input)
                        .map_err(|e| WireError::Protocol(format!("TLS handshake: {e}")))?;
                    t.process_new_packets().map_err(|e| match e {
                        rustls::Error::InvalidMessage(_) => WireError::Protocol(format!(
                            "the server does not speak TLS on this port (plain http://?): {e}"
                        )),
                        _ => WireError::Protocol(e.to_string()),
                    })?;
                }
                Ok(())
            });
            got?;
        }
    }

    /// Writes whatever TLS records the session has ready.
    async fn flush_tls(&mut self) -> io::Result<()> {
        let Some(t) = self.tls.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        while t.wants_write() {
            t.write_tls(&mut out)?;
        }
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
        }
        Ok(())
    }

    /// True when a request may be written: the last answer was read to its end, the server
    /// did not say it closes, and no end of stream or stray byte is waiting on the socket.
    pub fn is_reusable(&mut self) -> bool {
        if !matches!(self.state, State::Idle) || !self.keep_alive {
            return false;
        }
        let Some(t) = self.tls.as_mut() else {
            // tokio answers from its cached readiness without a syscall while nothing arrived.
            let mut probe = [0u8; 1];
            return matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        };
        // TLS: records may legitimately arrive between answers (TLS 1.3 session tickets);
        // take them in, and the connection is reusable unless they end it or carry data.
        let mut buf = [0u8; 4096];
        loop {
            let n = match self.stream.try_read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            };
            let mut input = &buf[..n];
            while !input.is_empty() {
                if t.read_tls(&mut input).is_err() || t.process_new_packets().is_err() {
                    return false;
                }
            }
            let mut probe = [0u8; 1];
            match std::io::Read::read(&mut t.reader(), &mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return false, // data nobody asked for, or close_notify
            }
        }
    }

    /// Writes a whole request (head and body in one buffer).
    pub async fn send(&mut self, request: &[u8]) -> Result<(), WireError> {
        if !matches!(self.state, State::Idle) {
            return Err(WireError::Unanswered(
                "connection is not idle (an earlier answer was not read to its end)".into(),
            ));
        }
        self.state = State::Head;
        self.partial_head.clear();
        self.sink_done = false;
        self.seen = 0;
        self.reads = 0;
        self.kernel_reads = 0;
        let written = match self.tls.as_mut() {
            Some(t) => {
                let queued = std::io::Write::write_all(&mut t.writer(), request);
                match queued {
                    Ok(()) => self.flush_tls().await,
                    Err(e) => Err(e),
                }
            }
            None => self.stream.write_all(request).await,
        };
        if let Err(e) = written {
            self.state = State::Closed;
            return Err(WireError::Unanswered(format!("writing the request: {e}")));
        }
        Ok(())
    }

    /// Reads the answer to the request just sent, feeding `sink`, until its body ends or the
    /// sink stops.
    pub async fn read(&mut self, sink: &mut impl Sink) -> Result<Flow, WireError> {
        let fd = raw_fd(&self.stream);
        loop {
            if let Err(e) = self.stream.readable().await {
                return Err(self.fail_io(e));
            }
            let step = READ_BUF.with_borrow_mut(|buf| {
                let got = self
                    .stream
                    .try_io(Interest::READABLE, || recv(fd, buf, self.kernel_stamps));
                match got {
                    Ok((0, _)) => self.eof().map(Some),
                    Ok((n, stamp)) => {
                        let at = arrival(stamp);
                        self.reads += 1;
                        self.kernel_reads += u32::from(stamp.is_some());
                        self.seen += n;
                        match self.tls.is_some() {
                            true => self.process_tls(&buf[..n], at, sink),
                            false => self.process(&buf[..n], at, sink),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(self.fail_io(e)),
                }
            });
            match step {
                Ok(Some(flow)) => return Ok(flow),
                Ok(None) => continue,
                Err(e) => {
                    self.state = State::Closed;
                    return Err(e);
                }
            }
        }
    }

    /// Reads and discards the rest of a body the sink stopped reading, so the connection can
    /// carry the next request.
    pub async fn finish(&mut self) -> Result<(), WireError> {
        struct Discard;
        impl Sink for Discard {
            fn head(&mut self, _: &ResponseHead) {}
            fn data(&mut self, _: &[u8], _: Instant) -> bool {
                true
            }
        }
        if matches!(self.state, State::Idle | State::Closed) {
            return Ok(());
        }
        self.sink_done = false;
        self.read(&mut Discard).await.map(|_| ())
    }

    /// Marks the connection unusable (an answer abandoned half-read).
    pub fn close(&mut self) {
        self.state = State::Closed;
    }

    fn fail_io(&self, e: io::Error) -> WireError {
        if self.seen == 0 {
            WireError::Unanswered(format!("connection failed before any answer: {e}"))
        } else {
            WireError::Cut(format!("connection failed: {e}"))
        }
    }

    fn eof(&mut self) -> Result<Flow, WireError> {
        match &mut self.state {
            State::Body(Framing::UntilClose) => {
                self.state = State::Closed;
                Ok(Flow::Complete)
            }
            State::Head if self.seen == 0 => Err(WireError::Unanswered(
                "the server closed the connection without answering".into(),
            )),
            State::Head => Err(WireError::Cut(
                "connection closed inside the response head".into(),
            )),
            _ => Err(WireError::Cut("connection closed inside the body".into())),
        }
    }

    /// Handles the TLS records of one read: every byte of plaintext they carry goes through
    /// [`Self::process`] (with the read's time), as the bytes of a plain read would.
    fn process_tls(
        &mut self,
        mut input: &[u8],
        at: Instant,
        sink: &mut impl Sink,
    ) -> Result<Option<Flow>, WireError> {
        let mut plain = [0u8; 16 * 1024];
        let mut flow = None;
        while !input.is_empty() {
            let Some(t) = self.tls.as_mut() else {
                break;
            };
            t.read_tls(&mut input)
                .map_err(|e| WireError::Protocol(format!("TLS: {e}")))?;
            t.process_new_packets()
                .map_err(|e| WireError::Protocol(format!("TLS: {e}")))?;
            while let Some(t) = self.tls.as_mut() {
                let m = match std::io::Read::read(&mut t.reader(), &mut plain) {
                    Ok(m) if m > 0 => m,
                    // close_notify, or the peer closed without one.
                    Ok(_) => return self.tls_closed(flow),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return self.tls_closed(flow)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(WireError::Cut(format!("TLS: {e}"))),
                };
                if matches!(flow, Some(Flow::Complete)) {
                    // Bytes after the answer were never asked for.
                    self.state = State::Closed;
                    continue;
                }
                flow = self.process(&plain[..m], at, sink)?.or(flow);
            }
        }
        Ok(flow)
    }

    /// The TLS session ended: after a complete answer that only ends the connection.
    fn tls_closed(&mut self, flow: Option<Flow>) -> Result<Option<Flow>, WireError> {
        if flow == Some(Flow::Complete) {
            self.state = State::Closed;
            return Ok(flow);
        }
        self.eof().map(Some)
    }

    /// Handles the bytes of one read. `Some` when this answer is over (or the sink stopped).
    fn process(
        &mut self,
        bytes: &[u8],
        at: Instant,
        sink: &mut impl Sink,
    ) -> Result<Option<Flow>, WireError> {
        if !matches!(self.state, State::Head) {
            return self.body(bytes, at, sink);
        }
        if self.partial_head.is_empty() {
            let (used, complete) = self.take_head(bytes, sink)?;
            if complete {
                return self.body(&bytes[used..], at, sink);
            }
            self.stash_head(&bytes[used..])?;
            return Ok(None);
        }
        let mut data = std::mem::take(&mut self.partial_head);
        data.extend_from_slice(bytes);
        let (used, complete) = self.take_head(&data, sink)?;
        if complete {
            return self.body(&data[used..], at, sink);
        }
        self.stash_head(&data[used..])?;
        Ok(None)
    }

    /// Reads response heads off the front of `data`, skipping 1xx ones; returns the bytes
    /// taken and whether the final head was among them.
    fn take_head(&mut self, data: &[u8], sink: &mut impl Sink) -> Result<(usize, bool), WireError> {
        let mut used = 0;
        while let Some((head, n)) = parse_head(&data[used..])? {
            used += n;
            // 1xx (100 Continue, 103 Early Hints): another head follows.
            let status = head.response.status;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            sink.head(&head.response);
            self.keep_alive = head.keep_alive;
            self.state = State::Body(head.framing);
            return Ok((used, true));
        }
        Ok((used, false))
    }

    fn stash_head(&mut self, part: &[u8]) -> Result<(), WireError> {
        if part.len() > MAX_HEAD_BYTES {
            return Err(WireError::Protocol(format!(
                "response head longer than {MAX_HEAD_BYTES} bytes"
            )));
        }
        self.partial_head.clear();
        self.partial_head.extend_from_slice(part);
        Ok(())
    }

    /// Body bytes of the current answer.
    fn body(
        &mut self,
        rest: &[u8],
        at: Instant,
        sink: &mut impl Sink,
    ) -> Result<Option<Flow>, WireError> {
        let State::Body(framing) = &mut self.state else {
            return Ok(None);
        };
        let mut sink_done = self.sink_done;
        let mut feed = |piece: &[u8]| {
            if !sink_done && !piece.is_empty() && !sink.data(piece, at) {
                sink_done = true;
            }
        };
        let (complete, extra) = match framing {
            Framing::Length(left) => {
                let take = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                feed(&rest[..take]);
                *left -= take as u64;
                (*left == 0, rest.len() > take)
            }
            Framing::UntilClose => {
                feed(rest);
                (false, false)
            }
            Framing::Chunked(c) => {
                let used = c.decode(rest, &mut feed).map_err(WireError::Protocol)?;
                (c.is_done(), used < rest.len())
            }
        };
        self.sink_done = sink_done;
        if complete {
            // Bytes after the answer were never asked for: do not trust the connection.
            self.state = if extra || !self.keep_alive {
                State::Closed
            } else {
                State::Idle
            };
            return Ok(Some(Flow::Complete));
        }
        Ok(self.sink_done.then_some(Flow::Stopped))
    }
}

struct Head {
    response: ResponseHead,
    framing: Framing,
    keep_alive: bool,
}

/// For the fuzzer (`crate::fuzz`): reads `data` as one HTTP/1.x answer, head then body, as
/// two reads split at `split`; the body through its framing. Returns the body bytes decoded,
/// or the protocol error. Must never panic, loop or grow without bound.
#[doc(hidden)]
pub fn read_answer(data: &[u8], split: usize) -> Result<Vec<u8>, String> {
    let err = |e: WireError| match e {
        WireError::Protocol(m) | WireError::Cut(m) | WireError::Unanswered(m) => m,
    };
    let Some((head, used)) = parse_head(data).map_err(err)? else {
        return Err("incomplete head".into());
    };
    let rest = &data[used..];
    let split = split.min(rest.len());
    let mut body = Vec::new();
    match head.framing {
        Framing::Length(n) => {
            let take = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            body.extend_from_slice(&rest[..take]);
        }
        Framing::UntilClose => body.extend_from_slice(rest),
        Framing::Chunked(mut c) => {
            for piece in [&rest[..split], &rest[split..]] {
                c.decode(piece, &mut |d: &[u8]| body.extend_from_slice(d))?;
                if c.is_done() {
                    break;
                }
            }
        }
    }
    Ok(body)
}

/// Parses a response head; `None` while it is incomplete.
fn parse_head(data: &[u8]) -> Result<Option<(Head, usize)>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let shown = String::from_utf8_lossy(&data[..data.len().min(80)]);
            return Err(WireError::Protocol(format!(
                "not an HTTP/1.x answer ({e}): {shown:?}"
            )));
        }
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut chunked = false;
    let mut length: Option<u64> = None;
    let mut response = ResponseHead {
        status,
        ..ResponseHead::default()
    };
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-type") {
            response.content_type = Some(value.trim().to_string());
        } else if h.name.eq_ignore_ascii_case("content-encoding") {
            response.content_encoding = Some(value.trim().to_string());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.trim().parse::<u64>().map_err(|_| {
                WireError::Protocol(format!("bad Content-Length `{}`", value.trim()))
            })?;
            if length.is_some_and(|m| m != n) {
                return Err(WireError::Protocol(
                    "conflicting Content-Length headers".into(),
                ));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(Chunked::default())
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some((
        Head {
            response,
            framing,
            keep_alive,
        },
        used,
    )))
}

/// An in-place decoder of chunked transfer coding (RFC 9112 §7.1): data pieces are slices of
/// the input; only the position inside the framing is kept between reads.
#[derive(Default)]
pub struct Chunked {
    state: ChunkState,
    /// The current chunk's size while it is read, then the bytes of it still to come.
    size: u64,
    digits: u8,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum ChunkState {
    #[default]
    Size,
    /// After the size: extensions or whitespace up to the line end.
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, passing each data piece to `out`; returns the bytes consumed (all of
    /// them, unless the body ended inside `input`).
    pub fn decode(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<usize, String> {
        use ChunkState::*;
        let mut i = 0;
        while i < input.len() && self.state != Done {
            let b = input[i];
            match self.state {
                Size => {
                    if let Some(v) = (b as char).to_digit(16) {
                        if self.size > (u64::MAX >> 4) {
                            return Err("chunk size overflows".into());
                        }
                        self.size = self.size << 4 | u64::from(v);
                        self.digits += 1;
                    } else if self.digits == 0 {
                        return Err(format!("bad chunk size: byte {:?}", b as char));
                    } else {
                        self.state = match b {
                            b'\r' => SizeLf,
                            b'\n' => self.size_line_done(),
                            b';' | b' ' | b'\t' => Ext,
                            _ => return Err(format!("bad chunk size: byte {:?}", b as char)),
                        };
                    }
                    i += 1;
                }
                Ext => match memchr::memchr(b'\n', &input[i..]) {
                    Some(at) => {
                        i += at + 1;
                        self.state = self.size_line_done();
                    }
                    None => i = input.len(),
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err("chunk size line not ended by CRLF".into());
                    }
                    self.state = self.size_line_done();
                    i += 1;
                }
                Data => {
                    let take =
                        (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    out(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                }
                DataCr | DataLf => {
                    self.state = match (self.state, b) {
                        (DataCr, b'\r') => DataLf,
                        (_, b'\n') => Size,
                        _ => return Err("chunk data not followed by CRLF".into()),
                    };
                    i += 1;
                }
                TrailerStart => {
                    self.state = match b {
                        b'\r' => EndLf,
                        b'\n' => Done,
                        _ => TrailerLine,
                    };
                    i += 1;
                }
                TrailerLine => match memchr::memchr(b'\n', &input[i..]) {
                    Some(at) => {
                        i += at + 1;
                        self.state = TrailerStart;
                    }
                    None => i = input.len(),
                },
                EndLf => {
                    if b != b'\n' {
                        return Err("chunked body not ended by CRLF".into());
                    }
                    self.state = Done;
                    i += 1;
                }
                Done => {}
            }
        }
        Ok(i)
    }

    fn size_line_done(&mut self) -> ChunkState {
        self.digits = 0;
        if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        }
    }
}

/// Switches the kernel's receive stamping on for this process and waits until packets carry
/// stamps; call before the timed window. The kernel turns stamping on lazily (a work queue,
/// 0.2–0.6 ms here) when the first socket of the system asks, and off again when the last one
/// closes: the first reads of a run would otherwise fall back to the clock. A socket with
/// stamps on is kept for the life of the process. Blocking (≤ ~200 ms where stamps never
/// come); true when stamps arrive.
pub fn prime_kernel_stamps() -> bool {
    static KEEPER: std::sync::OnceLock<Option<std::net::UdpSocket>> = std::sync::OnceLock::new();
    KEEPER
        .get_or_init(|| {
            let rx = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let to = rx.local_addr().ok()?;
            rx.set_read_timeout(Some(Duration::from_millis(5))).ok()?;
            #[cfg(unix)]
            let fd = {
                use std::os::fd::AsRawFd;
                rx.as_raw_fd()
            };
            if !enable_stamps_fd(fd) {
                return None;
            }
            let mut buf = [0u8; 8];
            for _ in 0..40 {
                rx.send_to(b"x", to).ok()?;
                if let Ok((_, Some(_))) = recv(fd, &mut buf, true) {
                    return Some(rx);
                }
            }
            None
        })
        .is_some()
}

/// The time a read's bytes reached the socket: the kernel's stamp carried back to the
/// monotonic clock (the age of the stamp is subtracted from now), or now without one.
fn arrival(stamp: Option<SystemTime>) -> Instant {
    let now = Instant::now();
    match stamp.and_then(|s| SystemTime::now().duration_since(s).ok()) {
        // A larger age means the wall clock was stepped in between: trust the read time.
        Some(age) if age < Duration::from_secs(60) => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

#[cfg(unix)]
fn raw_fd(stream: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    stream.as_raw_fd()
}

fn enable_kernel_stamps(stream: &TcpStream) -> bool {
    enable_stamps_fd(raw_fd(stream))
}

#[cfg(target_os = "linux")]
fn enable_stamps_fd(fd: i32) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to an int that outlives the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn enable_stamps_fd(_: i32) -> bool {
    false
}

/// One `recvmsg` into `buf`, with the kernel's receive time of the newest data in it.
#[cfg(target_os = "linux")]
fn recv(fd: i32, buf: &mut [u8], stamps: bool) -> io::Result<(usize, Option<SystemTime>)> {
    if !stamps {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        return if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok((n as usize, None))
        };
    }
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for the SCM_TIMESTAMPNS message (header + timespec), 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data, for which all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (→ `buf`) and `control`, both alive for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within the `msg_controllen` bytes the kernel filled; the
    // timestamp is read unaligned from inside that buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if let (Ok(s), Ok(ns)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                    stamp = Some(SystemTime::UNIX_EPOCH + Duration::new(s, ns));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

#[cfg(not(target_os = "linux"))]
fn recv(fd: i32, buf: &mut [u8], _: bool) -> io::Result<(usize, Option<SystemTime>)> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((n as usize, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Decodes `body` fed in pieces split at `cuts`.
    fn decode_split(body: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool), String> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([body.len()].iter()) {
            let used = c.decode(&body[from..to], &mut |p: &[u8]| out.extend_from_slice(p))?;
            if used < to - from {
                return Err(format!("stopped early at {}", from + used));
            }
            from = to;
        }
        Ok((out, c.is_done()))
    }

    const BODY: &[u8] = b"7\r\ndata: a\r\n18;ext=\"x\"\r\n\ndata: {\"b\":1}\n\ndata: c\n\r\n\
        5\r\n\n\n\n\n\n\r\n0\r\nTrailer: yes\r\n\r\n";

    #[test]
    fn chunked_decodes_split_at_every_byte_and_pair() {
        let want = b"data: a\ndata: {\"b\":1}\n\ndata: c\n\n\n\n\n\n".to_vec();
        assert_eq!(decode_split(BODY, &[]).unwrap(), (want.clone(), true));
        for i in 0..=BODY.len() {
            for j in i..=BODY.len() {
                assert_eq!(
                    decode_split(BODY, &[i, j]).unwrap(),
                    (want.clone(), true),
                    "cut at {i},{j}"
                );
            }
        }
    }

    #[test]
    fn chunked_accepts_bare_lf_and_stops_at_the_end() {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let input = b"3\nabc\n0\n\nNEXT";
        let used = c
            .decode(input, &mut |p: &[u8]| out.extend_from_slice(p))
            .unwrap();
        assert_eq!(
            (out.as_slice(), c.is_done(), &input[used..]),
            (&b"abc"[..], true, &b"NEXT"[..])
        );
    }

    #[test]
    fn chunked_rejects_bad_framing() {
        for bad in [
            &b"xyz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\rX",
            b"FFFFFFFFFFFFFFFFF\r\n",
        ] {
            assert!(
                decode_split(bad, &[]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn heads_give_framing_and_keep_alive() {
        let head = |s: &str| parse_head(s.as_bytes()).unwrap();
        let (h, n) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nrest").unwrap();
        assert!(
            matches!(h.framing, Framing::Chunked(_)) && h.keep_alive && h.response.status == 200
        );
        assert_eq!(n, 47);
        let (h, _) = head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\ncontent-encoding: gzip\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            h.response.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(h.response.content_encoding.as_deref(), Some("gzip"));
        let (h, _) =
            head("HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert!(matches!(h.framing, Framing::Length(12)) && !h.keep_alive);
        let (h, _) = head("HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert!(matches!(h.framing, Framing::UntilClose) && !h.keep_alive);
        let (h, _) =
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(matches!(h.framing, Framing::Length(0)) && h.keep_alive);
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le").is_none());
        for bad in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad.as_bytes()), Err(WireError::Protocol(_))),
                "{bad}"
            );
        }
    }

    /// Collects an answer with the number of `data` calls.
    #[derive(Default)]
    struct Got {
        status: u16,
        body: Vec<u8>,
        stop_after: Option<usize>,
    }
    impl Sink for Got {
        fn head(&mut self, head: &ResponseHead) {
            self.status = head.status;
        }
        fn data(&mut self, bytes: &[u8], _: Instant) -> bool {
            self.body.extend_from_slice(bytes);
            self.stop_after.is_none_or(|n| self.body.len() < n)
        }
    }

    /// A server on 127.0.0.1 that answers each request it reads with the next of `answers`,
    /// written in `pieces` writes with a pause between (to split the answer across reads).
    async fn server(answers: Vec<(Vec<u8>, usize)>) -> (Wire, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for (answer, pieces) in answers {
                let mut req = [0u8; 4096];
                if s.read(&mut req).await.unwrap_or(0) == 0 {
                    return;
                }
                let step = answer.len().div_ceil(pieces.max(1)).max(1);
                for part in answer.chunks(step) {
                    if s.write_all(part).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (Wire::new(stream), task)
    }

    #[tokio::test]
    async fn answers_are_read_in_pieces_and_the_connection_kept() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec();
        let length = b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail".to_vec();
        let closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close".to_vec();
        // Stamping on before the first byte (the kernel switches it on lazily).
        assert_eq!(prime_kernel_stamps(), cfg!(target_os = "linux"));
        let (mut w, task) = server(vec![
            (chunked.clone(), 9),
            (length, 3),
            (chunked, 1),
            (closing, 4),
        ])
        .await;
        for (status, body) in [(200, "hello world"), (500, "fail"), (200, "hello world")] {
            assert!(w.is_reusable());
            w.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut got = Got::default();
            assert_eq!(w.read(&mut got).await.unwrap(), Flow::Complete);
            assert_eq!((got.status, got.body.as_slice()), (status, body.as_bytes()));
            assert!(w.reads >= 1);
            if cfg!(target_os = "linux") {
                assert_eq!(w.kernel_reads, w.reads, "kernel stamps on Linux");
            }
        }
        w.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = Got::default();
        assert_eq!(w.read(&mut got).await.unwrap(), Flow::Complete);
        assert_eq!(got.body, b"until close");
        assert!(
            !w.is_reusable(),
            "a Connection: close answer ends the connection"
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_stopped_sink_is_finished_and_a_cut_body_reported() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n".to_vec();
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec();
        let (mut w, task) = server(vec![(answer, 6), (cut, 1)]).await;
        w.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = Got {
            stop_after: Some(3),
            ..Got::default()
        };
        assert_eq!(w.read(&mut got).await.unwrap(), Flow::Stopped);
        assert_eq!(got.body, b"abc");
        assert!(!w.is_reusable(), "not reusable before the body is finished");
        w.finish().await.unwrap();
        assert!(w.is_reusable());
        w.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        task.await.unwrap(); // the server writes the short answer and closes
        match w.read(&mut Got::default()).await {
            Err(WireError::Cut(m)) => assert!(m.contains("inside the body"), "{m}"),
            other => panic!("expected a cut body, got {other:?}"),
        }
        assert!(!w.is_reusable());
    }

    #[tokio::test]
    async fn a_closed_kept_connection_is_seen_before_and_after_sending() {
        let (mut w, task) = server(vec![]).await;
        task.await.unwrap(); // accepted and dropped: the server closed
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!w.is_reusable(), "the FIN is seen before anything is sent");
        let _ = w.send(b"GET / HTTP/1.1\r\n\r\n").await;
        match w.read(&mut Got::default()).await {
            Err(WireError::Unanswered(_)) => {}
            other => panic!("expected unanswered, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tls_answers_are_read_and_the_session_kept_across_tickets() {
        use rustls_pki_types::pem::PemObject;
        use std::sync::Arc;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        let provider = || Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let answer =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
            for _ in 0..2 {
                let mut req = [0u8; 1024];
                if s.read(&mut req).await.unwrap_or(0) == 0 {
                    return;
                }
                s.write_all(&answer[..30]).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(&answer[30..]).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut w = Wire::tls(stream, Arc::new(client), name).await.unwrap();
        // TLS 1.3 session tickets arrive after the handshake: taken in, not a reason to redial.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..2 {
            assert!(w.is_reusable());
            w.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut got = Got::default();
            assert_eq!(w.read(&mut got).await.unwrap(), Flow::Complete);
            assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
        }
        task.await.unwrap();
    }

    #[test]
    fn arrival_trusts_recent_kernel_stamps_only() {
        let now = Instant::now();
        let past = arrival(Some(SystemTime::now() - Duration::from_millis(30)));
        let d = now.saturating_duration_since(past);
        assert!(
            d >= Duration::from_millis(29) && d < Duration::from_secs(5),
            "{d:?}"
        );
        let stepped = arrival(Some(SystemTime::now() - Duration::from_secs(3600)));
        assert!(stepped >= now);
        assert!(arrival(Some(SystemTime::now() + Duration::from_secs(5))) >= now);
    }
}
