//! The terminal side of the live view: a thread that owns the terminal, redraws the latest
//! [`Snapshot`] ten times a second and turns keys into requests (stop, help). The terminal is
//! restored on every way out: the thread's guard on return, ratatui's panic hook on a panic
//! (in this thread or any other), and [`Tui`]'s `Drop` when the run ends.
//!
//! While the view is up, notices (pod created, budget reached, …) that would otherwise go to
//! stderr are shown in it and printed after it closes, so nothing is lost to the alternate
//! screen.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::watch;

use super::live::Snapshot;

/// Notices queued while the view owns the terminal (`None`: print them at once).
static NOTICES: Mutex<Option<VecDeque<String>>> = Mutex::new(None);

/// Tells the user something: on stderr, or in the live view while it is up.
pub fn say(msg: impl Into<String>) {
    let msg = msg.into();
    if let Ok(mut q) = NOTICES.lock() {
        if let Some(q) = q.as_mut() {
            q.push_back(msg);
            return;
        }
    }
    eprintln!("{msg}");
}

fn recent_notices(n: usize) -> Vec<String> {
    match NOTICES.lock() {
        Ok(q) => q
            .as_ref()
            .map(|q| q.iter().rev().take(n).rev().cloned().collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `q`: stop sending and save, like a first Ctrl-C.
    Quit,
    /// Ctrl-C pressed (raw mode turns it into a key, not a signal).
    Interrupt,
}

/// The running view. Dropping it stops the thread and restores the terminal.
pub struct Tui {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Says when the drawing thread has ended (its sender is dropped with the thread).
    ended: std::sync::mpsc::Receiver<()>,
}

/// How long closing the view waits for the drawing thread. A terminal that went away (a
/// closed window: SIGHUP) leaves crossterm reading an endless EOF inside `poll`, and the
/// thread never looks at its stop flag again; the run must still end and exit.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Set by a test to check the panic path (`LLMIB_TUI_TEST_PANIC=1` panics in draw).
const TEST_PANIC: &str = "LLMIB_TUI_TEST_PANIC";

impl Tui {
    /// Takes over the terminal (raw mode, alternate screen) and starts drawing `rx`.
    pub fn start(
        rx: watch::Receiver<Snapshot>,
        started: Instant,
        on_key: impl Fn(Request) + Send + 'static,
    ) -> std::io::Result<Self> {
        let mut terminal = ratatui::try_init()?;
        if let Ok(mut q) = NOTICES.lock() {
            *q = Some(VecDeque::new());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let test_panic = std::env::var_os(TEST_PANIC).is_some();
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tui".into())
            .spawn(move || {
                let _ended = ended_tx;
                let _restore = Restore;
                let mut help = false;
                while !s.load(Ordering::Relaxed) {
                    let mut snap = rx.borrow().clone();
                    snap.elapsed = started.elapsed();
                    snap.help = help;
                    snap.notices = recent_notices(5);
                    let drawn = terminal.draw(|f| {
                        if test_panic {
                            panic!("test panic inside the draw loop");
                        }
                        f.render_widget(&snap, f.area());
                    });
                    if drawn.is_err() {
                        return;
                    }
                    // Wait for a key at most until the next frame.
                    if !event::poll(Duration::from_millis(100)).unwrap_or(false) {
                        continue;
                    }
                    let Ok(Event::Key(k)) = event::read() else {
                        continue;
                    };
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    match k.code {
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            on_key(Request::Interrupt)
                        }
                        KeyCode::Char('q') => on_key(Request::Quit),
                        KeyCode::Char('?') => help = !help,
                        KeyCode::Esc => help = false,
                        _ => {}
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            ended,
        })
    }
}

/// [`Tui::start`], or `None` with a notice when the terminal cannot be taken over: the caller
/// goes on with plain output.
pub fn start_or_plain(
    rx: watch::Receiver<Snapshot>,
    started: Instant,
    on_key: impl Fn(Request) + Send + 'static,
) -> Option<Tui> {
    Tui::start(rx, started, on_key)
        .map_err(|err| say(format!("no live view ({err}); plain output instead")))
        .ok()
}

/// Restores the terminal when the drawing thread ends, however it ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
        let _ = ratatui::crossterm::execute!(std::io::stdout(), ratatui::crossterm::cursor::Show);
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Disconnected = the thread has ended (normally or by a panic): join it. A timeout =
        // it is stuck on a terminal that is gone: leave it, restore what can be restored.
        match self.ended.recv_timeout(CLOSE_WAIT) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => ratatui::restore(),
            _ => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
        // Everything said while the view was up, now where it stays readable.
        let queued = NOTICES.lock().ok().and_then(|mut q| q.take());
        for n in queued.into_iter().flatten() {
            eprintln!("{n}");
        }
    }
}
