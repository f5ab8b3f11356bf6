//! Statistics, aggregation and Prometheus scraping.

pub mod prom;
pub mod scrape;
pub mod summary;
