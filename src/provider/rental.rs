//! What a rented server — a RunPod pod, a Slurm job — supplies to a run while it lives: its
//! id and name, its price and what it has cost, its age (the `max_lifetime` rule), its log,
//! whether it is known to be gone, how its provider's answers drifted from the document, its
//! GPU gauges where the provider reports them, and its release. The run holds one as
//! `Handle::Rented` and never asks which provider it is.
//!
//! A new provider (ARCHITECTURE.md, "a provider") implements `Rental` for its handle, adds an
//! arm to `provider::estimate_one` (its price before anything is rented) and to
//! `provider::provision_one` (rent, wait until the server answers, give back its address and
//! the handle), a watchdog that releases it if this process dies, and its part of `pods list`
//! / `pods terminate` (`rented.rs`).

use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::event::Event;

pub trait Rental: Send {
    /// The pod, job or instance id.
    fn id(&self) -> &str;

    /// What it is called: `pod`, `Slurm job`.
    fn noun(&self) -> &'static str;

    /// GPU type and USD per hour, where a price is known.
    fn price(&self) -> Option<(String, f64)>;

    /// USD spent so far.
    fn spent_usd(&self) -> f64;

    /// How long it has lived (the `max_lifetime` rule reads it).
    fn age(&self) -> Duration;

    /// Its server's log, quoted when the server does not become ready.
    fn log(&self) -> &Path;

    /// `Some(reason)` once it is known to be gone (a job that ended).
    fn gone(&mut self) -> Option<String> {
        None
    }

    /// The first way the provider's API answered differently from its document, if it did.
    fn drift(&self) -> Option<String> {
        None
    }

    /// A task that reads its GPU gauges every `every` into `tx`, where the provider reports
    /// them.
    fn gpu_poll(
        &self,
        _every: Duration,
        _tx: UnboundedSender<Event>,
    ) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// Ends it now and awaits the provider's answer (dropping it ends it too, unawaited).
    fn release(&mut self) -> BoxFuture<'_, ()>;
}
