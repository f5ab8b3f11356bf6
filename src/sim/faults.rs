//! Fault injection: by flags (rates over all requests, drawn from the seeded generator) and per
//! request with the `x-sim-fault` header, e.g. `x-sim-fault: error=429` or
//! `x-sim-fault: cut=5; stall=2s@3; malformed=2; delay=500ms`.

use std::time::Duration;

use rand::Rng;

use crate::config::duration::parse_duration;

/// Header that asks the simulator for faults on one request.
pub const FAULT_HEADER: &str = "x-sim-fault";

/// An answer no well-behaved server gives, to test that the client stays bounded and says
/// what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Token chunks at full speed, forever: `max_tokens` ignored.
    Flood,
    /// One SSE event of this many bytes (a `data:` line that goes on and on), then the end.
    HugeEvent(u64),
    /// `200 text/html`: a proxy's error page instead of the stream.
    Html,
    /// `Content-Encoding: gzip` that nobody asked for.
    Gzip,
}

impl std::str::FromStr for Hostile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, v) = s.split_once([':', '=']).unwrap_or((s, ""));
        match k.trim() {
            "flood" => Ok(Self::Flood),
            "huge-event" | "huge" => Ok(Self::HugeEvent(match v.trim() {
                "" => 16 << 20,
                n => n
                    .parse()
                    .map_err(|_| format!("`{s}`: the size is a whole number of bytes"))?,
            })),
            "html" => Ok(Self::Html),
            "gzip" => Ok(Self::Gzip),
            _ => Err(format!(
                "unknown hostile answer `{s}`; valid: flood, huge-event[:BYTES], html, gzip"
            )),
        }
    }
}

/// Server-wide fault settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Share of requests answered with `error_status` instead of a completion.
    pub error_rate: f64,
    /// 500, 429 (with `Retry-After`) or 400.
    pub error_status: u16,
    /// Share of streams cut (connection closed) after `cut_after` chunks.
    pub cut_rate: f64,
    pub cut_after: u32,
    /// Share of streams that stall for `stall` before chunk `stall_after`.
    pub stall_rate: f64,
    pub stall: Duration,
    pub stall_after: u32,
    /// Share of streams with one malformed (non-JSON) chunk.
    pub malformed_rate: f64,
    /// Every response waits this long before its headers (a slow start).
    pub delay: Duration,
    /// Connections are closed on accept for this long after start.
    pub refuse_for: Duration,
    /// The first N generation requests get none of the drawn faults (so a run's pre-flight
    /// request passes and its measured requests meet the faults).
    pub spare_first: u64,
    /// The server dies at generation request N (0-based): it stops listening and drops every
    /// connection, as a crashed vLLM does.
    pub exit_after: Option<u64>,
    /// Every streaming request (after `spare_first`) gets this answer instead.
    pub hostile: Option<Hostile>,
}

/// What happens to one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestFaults {
    pub error: Option<u16>,
    pub cut_after: Option<u32>,
    pub stall: Option<(Duration, u32)>,
    pub malformed_at: Option<u32>,
    pub delay: Duration,
    pub hostile: Option<Hostile>,
}

impl Faults {
    /// Draws the faults of generation request `n` from the server-wide rates.
    pub fn draw(&self, n: u64, rng: &mut impl Rng) -> RequestFaults {
        let mut f = RequestFaults {
            delay: self.delay,
            ..Default::default()
        };
        if n < self.spare_first {
            return f;
        }
        f.hostile = self.hostile;
        if self.error_rate > 0.0 && rng.random_bool(self.error_rate.min(1.0)) {
            f.error = Some(if self.error_status == 0 {
                500
            } else {
                self.error_status
            });
        }
        if self.cut_rate > 0.0 && rng.random_bool(self.cut_rate.min(1.0)) {
            f.cut_after = Some(self.cut_after);
        }
        if self.stall_rate > 0.0 && rng.random_bool(self.stall_rate.min(1.0)) {
            f.stall = Some((self.stall, self.stall_after));
        }
        if self.malformed_rate > 0.0 && rng.random_bool(self.malformed_rate.min(1.0)) {
            f.malformed_at = Some(1);
        }
        f
    }
}

impl RequestFaults {
    /// Applies an `x-sim-fault` header on top of the drawn faults.
    pub fn apply_header(&mut self, header: &str) -> Result<(), String> {
        for part in header
            .split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let num = |v: &str| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`{part}`: expected a whole number"))
            };
            match k.trim() {
                "error" => {
                    let s = num(v)?;
                    if !(400..=599).contains(&s) {
                        return Err(format!("`{part}`: status must be 400–599"));
                    }
                    self.error = Some(s as u16);
                }
                "cut" => self.cut_after = Some(num(v)?),
                "malformed" => self.malformed_at = Some(num(v)?),
                "stall" => {
                    let (d, at) = v.split_once('@').unwrap_or((v, "1"));
                    self.stall = Some((parse_duration(d)?, num(at)?));
                }
                "delay" => self.delay = parse_duration(v)?,
                "hostile" => self.hostile = Some(v.parse()?),
                other => return Err(format!("unknown fault `{other}`; valid: error=STATUS, cut=N, stall=DUR@N, malformed=N, delay=DUR, hostile=flood|huge-event:BYTES|html|gzip")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_every_fault() {
        let mut f = RequestFaults::default();
        f.apply_header("error=429; cut=5, stall=2s@3; malformed=2; delay=500ms")
            .unwrap();
        assert_eq!(f.error, Some(429));
        assert_eq!(f.cut_after, Some(5));
        assert_eq!(f.stall, Some((Duration::from_secs(2), 3)));
        assert_eq!(f.malformed_at, Some(2));
        assert_eq!(f.delay, Duration::from_millis(500));
        f.apply_header("hostile=huge-event:1024").unwrap();
        assert_eq!(f.hostile, Some(Hostile::HugeEvent(1024)));
        f.apply_header("hostile=html").unwrap();
        assert_eq!(f.hostile, Some(Hostile::Html));
        assert!(f.apply_header("hostile=rude").is_err());
        assert!(f
            .apply_header("explode=1")
            .unwrap_err()
            .contains("unknown fault"));
        assert!(f.apply_header("error=200").is_err());
    }
}
