//! What the tool sends to Vast.ai, exactly as `reference/vast-ai.md` and the document say:
//! the offer search (`POST /api/v0/bundles/`, every filter `{"field": {"op": value}}`) and an
//! instance from an offer (`PUT /api/v0/asks/{id}/`: the image, its arguments, `env` as an
//! object with the port mapping as a `-p` key).

use serde_json::{json, Map, Value};

/// An offer search: the GPU, how many, its memory, the CUDA the driver runs, the host's
/// reliability, and at least one open port (the server is reached on the host's public IP and
/// a mapped port; there is no proxy); cheapest first.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferQuery {
    /// Vast's name, with spaces: `H100 SXM`.
    pub gpu_name: String,
    pub num_gpus: u32,
    /// Memory per GPU at least, MB (Vast's unit in REST).
    pub min_gpu_ram_mb: Option<u64>,
    pub min_cuda: Option<f64>,
    /// 0–1.
    pub min_reliability: f64,
    /// GB of disk priced into `dph_total`.
    pub disk_gb: u32,
    /// Two-letter country codes, where the user names some.
    pub countries: Vec<String>,
    /// USD per hour at most (`dph_total`), where the user sets a ceiling.
    pub max_dph: Option<f64>,
    pub limit: u32,
}

impl OfferQuery {
    /// The request body.
    pub fn body(&self) -> Value {
        let mut q = Map::new();
        let mut put = |k: &str, v: Value| {
            q.insert(k.to_string(), v);
        };
        put("verified", json!({"eq": true}));
        put("rentable", json!({"eq": true}));
        put("rented", json!({"eq": false}));
        put("external", json!({"eq": false}));
        put("gpu_name", json!({"eq": self.gpu_name}));
        put("num_gpus", json!({"eq": self.num_gpus}));
        put("direct_port_count", json!({"gte": 1}));
        put("reliability", json!({"gte": self.min_reliability}));
        if let Some(m) = self.min_gpu_ram_mb {
            put("gpu_ram", json!({"gte": m}));
        }
        if let Some(c) = self.min_cuda {
            put("cuda_max_good", json!({"gte": c}));
        }
        if !self.countries.is_empty() {
            put("geolocation", json!({"in": self.countries}));
        }
        if let Some(p) = self.max_dph {
            put("dph_total", json!({"lte": p}));
        }
        // Cheapest first, the more reliable host first at one price. Two entries: the
        // document's schema gives `order` exactly two items (`minItems`/`maxItems` 2).
        put(
            "order",
            json!([["dph_total", "asc"], ["reliability", "desc"]]),
        );
        put("type", json!("ondemand"));
        put("allocated_storage", json!(self.disk_gb));
        put("limit", json!(self.limit));
        Value::Object(q)
    }
}

/// An instance from an offer, running the framework's image with its own entrypoint
/// (`runtype: args`: no SSH is provisioned), the container port mapped, named by `label`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateInstance {
    pub image: String,
    /// GB, at least 8 (Vast's minimum); fixed at creation.
    pub disk_gb: u32,
    pub label: String,
    /// The server's arguments, after the image's entrypoint.
    pub args: Vec<String>,
    /// Environment variables (the server's key among them).
    pub env: Vec<(String, String)>,
    /// The container port the server listens on.
    pub port: u16,
}

/// Vast refuses a smaller disk.
pub const MIN_DISK_GB: u32 = crate::config::VastOptions::MIN_DISK_GB;

impl CreateInstance {
    /// The request body. `cancel_unavail`: an offer that cannot start now is an error (the
    /// next offer is tried), never a stopped instance that bills its disk.
    pub fn body(&self) -> Value {
        let mut env = Map::new();
        for (k, v) in &self.env {
            env.insert(k.clone(), Value::String(v.clone()));
        }
        env.insert(format!("-p {0}:{0}", self.port), Value::String("1".into()));
        json!({
            "image": self.image,
            "disk": self.disk_gb.max(MIN_DISK_GB),
            "label": self.label,
            "runtype": "args",
            "args": self.args,
            "env": env,
            "cancel_unavail": true,
            "target_state": "running",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_search_asks_for_the_gpu_an_open_port_and_the_cheapest_first() {
        let q = OfferQuery {
            gpu_name: "H100 SXM".into(),
            num_gpus: 2,
            min_gpu_ram_mb: Some(80_000),
            min_cuda: Some(12.4),
            min_reliability: 0.98,
            disk_gb: 100,
            countries: vec!["US".into(), "CA".into()],
            max_dph: None,
            limit: 64,
        };
        assert_eq!(
            q.body(),
            json!({
                "verified": {"eq": true}, "rentable": {"eq": true}, "rented": {"eq": false},
                "external": {"eq": false},
                "gpu_name": {"eq": "H100 SXM"}, "num_gpus": {"eq": 2},
                "direct_port_count": {"gte": 1}, "reliability": {"gte": 0.98},
                "gpu_ram": {"gte": 80000}, "cuda_max_good": {"gte": 12.4},
                "geolocation": {"in": ["US", "CA"]},
                "order": [["dph_total", "asc"], ["reliability", "desc"]], "type": "ondemand",
                "allocated_storage": 100, "limit": 64
            })
        );
    }

    #[test]
    fn an_instance_keeps_the_images_entrypoint_and_maps_the_port_in_env() {
        let c = CreateInstance {
            image: "vllm/vllm-openai:v0.11.0".into(),
            disk_gb: 4,
            label: "llm-inf-bench-run-20261206-r0".into(),
            args: vec!["--model".into(), "m".into(), "--port".into(), "8000".into()],
            env: vec![("VLLM_API_KEY".into(), "k".into())],
            port: 8000,
        };
        assert_eq!(
            c.body(),
            json!({
                "image": "vllm/vllm-openai:v0.11.0", "disk": 8,
                "label": "llm-inf-bench-run-20261206-r0", "runtype": "args",
                "args": ["--model", "m", "--port", "8000"],
                "env": {"VLLM_API_KEY": "k", "-p 8000:8000": "1"},
                "cancel_unavail": true, "target_state": "running"
            })
        );
    }
}
