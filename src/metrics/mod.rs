//! Statistics, aggregation and Prometheus scraping.

pub mod prom;
pub mod summary;
