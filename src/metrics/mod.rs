//! Measurement: the events a run's producers send, the collector that owns what they
//! measured, statistics (percentiles, goodput), and Prometheus scraping.

pub mod collector;
pub mod columns;
pub mod event;
pub mod gpus;
pub mod prom;
pub mod scrape;
pub mod stability;
pub mod summary;
