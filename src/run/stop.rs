//! The run's one stop: why it stopped (set once, before anything is cancelled), how many times
//! it was asked (a second Ctrl-C saves at once), and the cancellation every part of the run
//! waits on. Whoever sees the cancel reads why; there is no second channel to lose a race with.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::collector::StopReason;

/// Cloned freely: every clone is the same stop.
#[derive(Clone)]
pub struct Stop {
    token: CancellationToken,
    inner: Arc<Inner>,
}

struct Inner {
    reason: OnceLock<StopReason>,
    presses: watch::Sender<u32>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            inner: Arc::new(Inner {
                reason: OnceLock::new(),
                presses: watch::Sender::new(0),
            }),
        }
    }

    /// Asks the run to stop because of `why` (Ctrl-C, SIGTERM, `q`). The first reason stays;
    /// it is set before the cancel, so whoever sees the cancel reads it.
    pub fn press(&self, why: StopReason) {
        let _ = self.inner.reason.set(why);
        self.inner.presses.send_modify(|n| *n = n.saturating_add(1));
        self.token.cancel();
    }

    /// Why the run stopped, once it has.
    pub fn reason(&self) -> Option<&StopReason> {
        self.inner.reason.get()
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// How many times the stop was asked for.
    pub fn presses(&self) -> u32 {
        *self.inner.presses.borrow()
    }

    /// Follows the presses from now on: `changed()` wakes at each new one.
    pub fn watch(&self) -> watch::Receiver<u32> {
        self.inner.presses.subscribe()
    }

    /// The cancellation the run's parts wait on (provisioning, readiness, requests).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// A cancellation of one part (a point): cancelled by the run's stop, or on its own.
    pub fn child(&self) -> CancellationToken {
        self.token.child_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stays_and_is_set_before_the_cancel() {
        let s = Stop::new();
        assert!(s.reason().is_none() && !s.is_stopped() && s.presses() == 0);
        let child = s.child();
        s.press(StopReason::Quit);
        s.press(StopReason::Interrupted);
        assert!(child.is_cancelled());
        assert_eq!(s.presses(), 2);
        assert!(matches!(s.reason(), Some(StopReason::Quit)));
    }

    #[test]
    fn whoever_sees_the_cancel_reads_why_every_time() {
        // The race of the old design: a reason sent on a channel after the cancel. Here the
        // waiter reads the reason the moment it wakes, from many threads, many times.
        for _ in 0..200 {
            let s = Stop::new();
            let seen = std::thread::scope(|sc| {
                let waiters: Vec<_> = (0..4)
                    .map(|_| {
                        let s = s.clone();
                        sc.spawn(move || {
                            while !s.is_stopped() {
                                std::hint::spin_loop();
                            }
                            s.reason().cloned()
                        })
                    })
                    .collect();
                s.press(StopReason::Interrupted);
                waiters
                    .into_iter()
                    .map(|w| w.join().ok().flatten())
                    .collect::<Vec<_>>()
            });
            assert!(seen
                .iter()
                .all(|r| matches!(r, Some(StopReason::Interrupted))));
        }
    }

    #[tokio::test]
    async fn a_watcher_wakes_at_each_press() {
        let s = Stop::new();
        let mut w = s.watch();
        s.press(StopReason::Interrupted);
        assert!(w.changed().await.is_ok());
        assert_eq!(*w.borrow_and_update(), 1);
        s.press(StopReason::Interrupted);
        assert!(w.changed().await.is_ok());
        assert_eq!(*w.borrow_and_update(), 2);
    }
}
