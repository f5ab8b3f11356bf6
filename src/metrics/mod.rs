//! Statistics, aggregation and Prometheus scraping.

pub mod prom;
