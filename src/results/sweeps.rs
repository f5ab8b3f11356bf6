//! Result files as sweep points, for `plot` and `report`: each input is a sweep index
//! (`*.sweep.json`, all its points) or a single result file; files of one sweep (or of one
//! experiment name) form a series.

use std::path::{Path, PathBuf};

use super::ResultsError;

/// The engine's own estimate of its work per GPU (vLLM `--enable-mfu-metrics`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hardware {
    pub tflops: Option<f64>,
    pub tb_per_s: Option<f64>,
    /// Against the GPU's peaks, where the GPU is known.
    pub mfu: Option<f64>,
    pub mbu: Option<f64>,
}

/// One measured point, reduced to what the plots and tables show.
#[derive(Clone, Debug, PartialEq)]
pub struct PointData {
    pub file: PathBuf,
    /// The load point (`c16`), without its deployment.
    pub label: String,
    /// The deployment of a matrix it ran on.
    pub deployment: Option<String>,
    pub input_len: Option<u64>,
    pub output_len: Option<u64>,
    pub concurrency: Option<u64>,
    pub rate: Option<f64>,
    pub gpus: u64,
    pub completed: u64,
    pub failed: u64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub output_throughput_per_gpu: f64,
    /// Tokens per second per user: the summary's median interactivity (1000 / median TPOT).
    pub interactivity: Option<f64>,
    pub ttft_p50: Option<f64>,
    pub ttft_p99: Option<f64>,
    pub tpot_p50: Option<f64>,
    pub tpot_p99: Option<f64>,
    pub e2el_p50: Option<f64>,
    pub e2el_p99: Option<f64>,
    /// A pooling API's point (`embeddings`, `rerank`): texts per second; it has no TTFT,
    /// TPOT or output throughput.
    pub texts_per_s: Option<f64>,
    pub input_throughput: Option<f64>,
    /// The run's own `metrics.slo` (TTFT, TPOT ms), the default SLO of plots and reports.
    pub slo: (Option<f64>, Option<f64>),
    /// Median time to first output token, where streams reasoned.
    pub ttfo_p50: Option<f64>,
    /// Conversations: the figures of each turn index.
    pub by_turn: Vec<crate::metrics::summary::TurnSummary>,
    /// LoRA adapters: the figures of each one's requests.
    pub by_adapter: Vec<crate::metrics::summary::AdapterSummary>,
    /// Several servers: the figures of each one's requests.
    pub by_replica: Vec<crate::metrics::summary::ReplicaSummary>,
    /// USD per million output tokens at this point's throughput, where a price is known.
    pub usd_per_mtok_output: Option<f64>,
    /// The engine's achieved work per GPU and its share of the GPU's peaks, where reported.
    pub hardware: Option<Hardware>,
    /// The workload's ideal prefix-cache hit rate and the server's measured one, when the
    /// point has them (a workload built from blocks).
    pub prefix_cache: Option<(f64, Option<f64>)>,
    /// Speculative decoding: the acceptance rate and length the server reported, when it
    /// speculated.
    pub spec_decode: Option<(f64, Option<f64>)>,
    /// Graded tasks run on this point's server after it (or beside it).
    pub evals: Vec<super::index::IndexEval>,
}

impl PointData {
    /// `1k/1k`-style shape of the point (`ISL/OSL`), or `mixed` when unknown.
    pub fn shape(&self) -> String {
        let k = |n: u64| {
            if n.is_multiple_of(1024) {
                format!("{}k", n / 1024)
            } else {
                n.to_string()
            }
        };
        match (self.input_len, self.output_len) {
            (Some(i), Some(o)) => format!("{}/{}", k(i), k(o)),
            _ => "mixed lengths".into(),
        }
    }

    /// Whether the point meets the SLO (median TTFT and median TPOT, in ms).
    pub fn meets(&self, ttft_ms: Option<f64>, tpot_ms: Option<f64>) -> bool {
        let ok = |limit: Option<f64>, v: Option<f64>| match (limit, v) {
            (None, _) => true,
            (Some(l), Some(v)) => v <= l,
            (Some(_), None) => false,
        };
        ok(ttft_ms, self.ttft_p50) && ok(tpot_ms, self.tpot_p50)
    }
}

/// Points of one sweep (or of one experiment name), in load order.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<PointData>,
    /// Capacity searches' probes and answers, one per SLO tier (the probes are also among
    /// `points`).
    pub searches: Vec<super::index::IndexSearch>,
}

impl Series {
    /// Each search with the name it is shown by: the series', and its SLO tier's.
    pub fn named_searches(&self) -> impl Iterator<Item = (String, &super::index::IndexSearch)> {
        self.searches.iter().map(|s| match &s.tier {
            Some(t) => (format!("{} · {t}", self.name), s),
            None => (self.name.clone(), s),
        })
    }
}

fn point(file: &Path, r: &super::ResultHead) -> PointData {
    let f = r.facts();
    let w = &f.workload;
    let m = &r.summary;
    let gpus = r.environment.gpu_count.max(1) as u64;
    let out = m.output_throughput.unwrap_or(0.0);
    let slo = f.metrics.slo.unwrap_or_default();
    PointData {
        file: file.to_path_buf(),
        label: match (&r.sweep_point, &r.deployment) {
            (Some(k), Some(d)) => k.strip_prefix(&format!("{d}/")).unwrap_or(k).to_string(),
            (Some(k), None) => k.clone(),
            (None, _) => r.name.clone(),
        },
        deployment: r.deployment.clone(),
        input_len: w.dataset.input_len,
        output_len: w.dataset.output_len,
        concurrency: w.concurrency.or(w.max_concurrency),
        rate: w.rate,
        gpus,
        completed: m.completed,
        failed: m.failed,
        request_throughput: m.request_throughput.unwrap_or(0.0),
        output_throughput: out,
        output_throughput_per_gpu: m.output_throughput_per_gpu.unwrap_or(out / gpus as f64),
        interactivity: m.median_interactivity(),
        ttft_p50: m.median_ttft_ms,
        ttft_p99: m.figure("p99_ttft_ms"),
        tpot_p50: m.median_tpot_ms,
        tpot_p99: m.figure("p99_tpot_ms"),
        e2el_p50: m.median_e2el_ms,
        e2el_p99: m.figure("p99_e2el_ms"),
        texts_per_s: m.input_item_throughput,
        input_throughput: m.input_throughput,
        slo: (slo.ttft_ms, slo.tpot_ms),
        ttfo_p50: m.median_ttfo_ms,
        by_turn: m.by_turn.clone(),
        by_adapter: m.by_adapter.clone(),
        by_replica: m.by_replica.clone(),
        // Files written before the figure existed: from their price and throughput.
        usd_per_mtok_output: m.usd_per_million_output_tokens.or_else(|| {
            crate::metrics::summary::usd_per_million(r.environment.price_per_hour_usd, Some(out))
        }),
        spec_decode: m
            .spec_acceptance_rate
            .map(|r| (r, m.spec_acceptance_length)),
        evals: r.evals.clone(),
        prefix_cache: m.ideal_prefix_cache_hit_rate.map(|ideal| {
            let s = r.server_metrics.as_ref().map(|sm| &sm.summary);
            (ideal, s.and_then(|s| s.hit_rate()))
        }),
        hardware: r
            .server_metrics
            .as_ref()
            .map(|sm| &sm.summary)
            .filter(|x| x.tflops_per_gpu.is_some() || x.tb_per_s_per_gpu.is_some())
            .map(|x| Hardware {
                tflops: x.tflops_per_gpu,
                tb_per_s: x.tb_per_s_per_gpu,
                mfu: x.mfu,
                mbu: x.mbu,
            }),
    }
}

/// Reads every input; a sweep index contributes all its points as one series.
pub fn load(files: &[PathBuf]) -> Result<Vec<Series>, ResultsError> {
    let mut series: Vec<Series> = Vec::new();
    let mut add = |name: String, p: PointData| match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push(p),
        None => series.push(Series {
            name,
            points: vec![p],
            searches: Vec::new(),
        }),
    };
    let mut searches: Vec<(String, super::index::IndexSearch)> = Vec::new();
    for f in files {
        if f.to_string_lossy().ends_with(".sweep.json") {
            let text = super::read_result_text(f)?;
            let idx: super::index::SweepIndex =
                serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
                    path: f.clone(),
                    message: e.to_string(),
                })?;
            let name = format!("{} ({})", idx.name, idx.started_at);
            let dir = f.parent().unwrap_or(Path::new("."));
            for p in idx.points {
                let path = super::index::point_path(f, dir, &p.file)?;
                let r = super::read_head(&path)?;
                // A matrix: each deployment is a series of its own.
                let series = match &p.deployment {
                    Some(d) => format!("{d} ({})", idx.name),
                    None => name.clone(),
                };
                add(series, point(&path, &r));
            }
            for s in idx.searches {
                let name = match &s.deployment {
                    Some(d) => format!("{d} ({})", idx.name),
                    None => name.clone(),
                };
                searches.push((name, s));
            }
        } else {
            let r = super::read_head(f)?;
            add(r.name.clone(), point(f, &r));
        }
    }
    for (name, s) in searches {
        match series.iter_mut().find(|x| x.name == name) {
            Some(x) => x.searches.push(s),
            None => series.push(Series {
                name,
                points: Vec::new(),
                searches: vec![s],
            }),
        }
    }
    short_names(&mut series);
    for s in &mut series {
        distinct_labels(&mut s.points);
        s.points.sort_by_key(|p| {
            (
                p.input_len,
                p.output_len,
                p.concurrency,
                p.rate.map(|r| (r * 1000.0) as u64),
            )
        });
    }
    Ok(series)
}

/// A series is named `NAME (started)` (a sweep) or `DEPLOYMENT (EXPERIMENT)` (a matrix) while
/// files are grouped; legends and tables show the first part alone where no other series has
/// it, and the whole name only to tell two apart (two sweeps of one experiment).
fn short_names(series: &mut [Series]) {
    let short = |n: &str| -> String {
        match n.rsplit_once(" (") {
            Some((head, tail)) if tail.ends_with(')') => head.to_string(),
            _ => n.to_string(),
        }
    };
    let shorts: Vec<String> = series.iter().map(|s| short(&s.name)).collect();
    for (s, k) in series.iter_mut().zip(&shorts) {
        if shorts.iter().filter(|x| *x == k).count() == 1 {
            s.name = k.clone();
        }
    }
}

/// Points of a series that share a label (two runs of one experiment, each labelled with its
/// name) are told apart by their files' stamps: `quickstart-20261205-120000.json` →
/// `20261205-120000`.
fn distinct_labels(points: &mut [PointData]) {
    let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    for p in points.iter_mut() {
        if labels.iter().filter(|l| **l == p.label).count() < 2 {
            continue;
        }
        let stem = p
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.label = stem
            .strip_prefix(&format!("{}-", p.label))
            .unwrap_or(&stem)
            .to_string();
    }
}

/// The shapes (ISL/OSL) present, in first-seen order.
pub fn shapes(series: &[Series]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in series.iter().flat_map(|s| &s.points) {
        let s = p.shape();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Points not beaten on both interactivity and throughput per GPU by another point of the
/// same series and shape: the throughput/latency frontier, by rising interactivity.
pub fn frontier<'a>(points: &[&'a PointData]) -> Vec<&'a PointData> {
    let mut f: Vec<&PointData> = points
        .iter()
        .copied()
        .filter(|p| {
            let (Some(x), y) = (p.interactivity, p.output_throughput_per_gpu) else {
                return false;
            };
            !points.iter().any(|q| {
                q.interactivity.is_some_and(|qx| {
                    let qy = q.output_throughput_per_gpu;
                    qx >= x && qy >= y && (qx > x || qy > y)
                })
            })
        })
        .collect();
    f.sort_by(|a, b| {
        a.interactivity
            .partial_cmp(&b.interactivity)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    f
}

impl PointData {
    /// Output tokens per USD (10⁶ / `usd_per_mtok_output`), where a price is known.
    pub fn tokens_per_usd(&self) -> Option<f64> {
        self.usd_per_mtok_output
            .filter(|c| *c > 0.0)
            .map(|c| 1e6 / c)
    }
}

/// The cheapest point per output token meeting the SLO.
pub fn cheapest_within<'a>(
    points: &[&'a PointData],
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
) -> Option<&'a PointData> {
    // The most tokens per dollar is the cheapest per token.
    best_by(points, ttft_ms, tpot_ms, PointData::tokens_per_usd)
}

/// The point meeting the SLO with the highest `key` (points without one left out).
fn best_by<'a>(
    points: &[&'a PointData],
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    key: impl Fn(&PointData) -> Option<f64>,
) -> Option<&'a PointData> {
    points
        .iter()
        .copied()
        .filter(|p| p.meets(ttft_ms, tpot_ms))
        .filter_map(|p| Some((key(p)?, p)))
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(_, p)| p)
}

/// The best throughput per GPU meeting the SLO.
pub fn best_within<'a>(
    points: &[&'a PointData],
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
) -> Option<&'a PointData> {
    best_by(points, ttft_ms, tpot_ms, |p| {
        Some(p.output_throughput_per_gpu)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64, ttft: f64) -> PointData {
        PointData {
            file: PathBuf::new(),
            label: String::new(),
            deployment: None,
            input_len: Some(1024),
            output_len: Some(1024),
            concurrency: None,
            rate: None,
            gpus: 1,
            completed: 1,
            failed: 0,
            request_throughput: 0.0,
            output_throughput: y,
            output_throughput_per_gpu: y,
            interactivity: Some(x),
            ttft_p50: Some(ttft),
            ttft_p99: None,
            tpot_p50: Some(1000.0 / x),
            tpot_p99: None,
            e2el_p50: None,
            e2el_p99: None,
            texts_per_s: None,
            input_throughput: None,
            slo: (None, None),
            ttfo_p50: None,
            by_turn: vec![],
            by_adapter: vec![],
            by_replica: vec![],
            usd_per_mtok_output: None,
            hardware: None,
            prefix_cache: None,
            spec_decode: None,
            evals: vec![],
        }
    }

    #[test]
    fn the_frontier_drops_dominated_points_and_the_slo_picks_the_best_allowed() {
        let pts = [
            p(100.0, 500.0, 50.0),
            p(50.0, 1500.0, 200.0),
            p(40.0, 1200.0, 300.0),
            p(20.0, 2000.0, 900.0),
        ];
        let refs: Vec<&PointData> = pts.iter().collect();
        let f: Vec<f64> = frontier(&refs)
            .iter()
            .map(|p| p.output_throughput_per_gpu)
            .collect();
        assert_eq!(f, [2000.0, 1500.0, 500.0]);
        // TTFT ≤ 250 ms and ≥ 25 tok/s/user (TPOT ≤ 40 ms): the 1 500 tok/s point.
        let b = best_within(&refs, Some(250.0), Some(40.0)).unwrap();
        assert_eq!(b.output_throughput_per_gpu, 1500.0);
        assert!(best_within(&refs, Some(10.0), None).is_none());
        assert_eq!(pts[0].shape(), "1k/1k");
    }
}
