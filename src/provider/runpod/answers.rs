//! What the tool reads of RunPod's answers, decoded tolerantly. Live APIs drift from their
//! documents; a field the tool never uses must not cost the user a run. So answers are read
//! into these views — the fields the tool needs (ids, status, cost, the port map, the GPU
//! price) and nothing else; every other field is ignored, a field of the wrong shape is
//! treated as absent, a status in another letter case (or a new one) is kept — and checked
//! once against the document's own types (`types`, generated from the vendored spec): the
//! first difference is reported once per API client (per run), naming the field, and the run
//! goes on. What we *send* stays exactly per the document (`types::CreatePodRequest`).

use serde::{Deserialize, Deserializer};

use crate::provider::shared::{lenient, lenient_list};

/// A pod's state. The document's values in its letter case; anything else is kept as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PodStatus {
    #[default]
    Provisioning,
    Starting,
    Running,
    Exited,
    Error,
    Terminated,
    /// A value the document does not list (kept as sent).
    Other(String),
}

impl PodStatus {
    fn parse(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "PROVISIONING" => Self::Provisioning,
            "STARTING" => Self::Starting,
            "RUNNING" => Self::Running,
            "EXITED" => Self::Exited,
            "ERROR" => Self::Error,
            "TERMINATED" => Self::Terminated,
            _ => Self::Other(s.to_string()),
        }
    }

    /// The document's spelling, or the text as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Provisioning => "PROVISIONING",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Exited => "EXITED",
            Self::Error => "ERROR",
            Self::Terminated => "TERMINATED",
            Self::Other(s) => s,
        }
    }

    /// The pod is gone or stopped for good: it will not start running by itself.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Exited | Self::Error | Self::Terminated)
    }
}

impl<'de> Deserialize<'de> for PodStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// What the tool reads of a pod.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    pub id: String,
    /// Our pods are named `llm-inf-bench-…`; a pod without a name is not ours.
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    pub status: PodStatus,
    /// USD per hour, as billed now.
    #[serde(default, deserialize_with = "lenient")]
    pub cost: Option<f64>,
    /// RFC 3339, when the document's shape is kept (for `pods list`'s age).
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The port map and GPU gauges of a running pod.
    #[serde(default, deserialize_with = "lenient")]
    pub runtime: Option<Runtime>,
}

impl Pod {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub fn cost(&self) -> f64 {
        self.cost.unwrap_or(0.0)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Runtime {
    #[serde(default, deserialize_with = "lenient_list")]
    pub ports: Vec<Port>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub gpus: Vec<GpuGauge>,
}

/// One mapped port: `private` inside the pod, `public` on `ip`.
#[derive(Clone, Debug, Deserialize)]
pub struct Port {
    #[serde(default, deserialize_with = "lenient")]
    pub private: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub public: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub ip: Option<String>,
}

/// One GPU's gauges on a running pod (percent).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuGauge {
    #[serde(default, deserialize_with = "lenient")]
    pub util: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub memory_util: Option<f64>,
}

/// `GET /pods`.
#[derive(Clone, Debug, Deserialize)]
pub struct PodList {
    #[serde(default, deserialize_with = "lenient_list")]
    pub pods: Vec<Pod>,
}

/// What the tool reads of a GPU type: its list price per GPU and hour.
#[derive(Clone, Debug, Deserialize)]
pub struct GpuType {
    pub price: GpuPrice,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GpuPrice {
    #[serde(default, deserialize_with = "lenient")]
    pub secure: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub community: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::shared::Drift;

    #[test]
    fn a_drifted_pod_still_gives_what_the_tool_needs() {
        let drifted = serde_json::json!({
            "id": "p1", "name": "llm-inf-bench-x", "status": "running", "cost": 2,
            "createdAt": "yesterday", "ssh": null, "newThing": {"a": 1},
            "runtime": {"gpus": null, "ports": [
                {"private": 8000, "public": 41000, "type": "TCP", "ip": "10.0.0.1"},
                "not a port"
            ]}
        });
        let p: Pod = serde_json::from_value(drifted.clone()).unwrap();
        assert_eq!(p.status, PodStatus::Running);
        assert_eq!(p.cost(), 2.0);
        assert!(p.created_at.is_none());
        let rt = p.runtime.unwrap();
        assert_eq!(rt.ports.len(), 1);
        assert!(rt.gpus.is_empty());
        let s: Pod =
            serde_json::from_value(serde_json::json!({"id": "p", "status": "HIBERNATING"}))
                .unwrap();
        assert_eq!(s.status, PodStatus::Other("HIBERNATING".into()));
        // Without an id or a status the answer is of no use: an error.
        assert!(serde_json::from_value::<Pod>(serde_json::json!({"id": "p"})).is_err());
        // The strict check names where it differs, once.
        let d = Drift::new("RunPod");
        let bytes = serde_json::to_vec(&drifted).unwrap();
        d.check::<super::super::types::Pod>("GET /pods/p1", &bytes);
        let msg = d.first().unwrap();
        assert!(
            msg.contains("GET /pods/p1") && msg.contains("at `"),
            "{msg}"
        );
        assert!(d
            .check::<super::super::types::Pod>("GET /pods/p1", &bytes)
            .is_none());
    }
}
