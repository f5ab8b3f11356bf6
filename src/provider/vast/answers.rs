//! What the tool reads of Vast.ai's answers, decoded tolerantly (as RunPod's are): the fields
//! it needs — offer ids, GPU, price, open ports; an instance's status, address and port map;
//! the new instance's id — and nothing else. A field of the wrong shape reads as absent, an
//! unknown status is kept as text, a wrapped or bare error body is read for its message.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::provider::shared::{lenient, lenient_list};

/// One offer of `POST /api/v0/bundles/`: what is rented with `PUT /api/v0/asks/{id}/`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Offer {
    pub id: u64,
    #[serde(default, deserialize_with = "lenient")]
    pub gpu_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub num_gpus: Option<u32>,
    /// MB per GPU.
    #[serde(default, deserialize_with = "lenient")]
    pub gpu_ram: Option<f64>,
    /// USD per hour for the whole offer, the priced disk included.
    #[serde(default, deserialize_with = "lenient")]
    pub dph_total: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub reliability: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub direct_port_count: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    pub cuda_max_good: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub machine_id: Option<u64>,
    /// `City, CC`.
    #[serde(default, deserialize_with = "lenient")]
    pub geolocation: Option<String>,
}

/// `{"offers": [...]}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Offers {
    #[serde(default, deserialize_with = "lenient_list")]
    pub offers: Vec<Offer>,
}

/// `actual_status`: the documented values; anything else kept as sent. `null` (being
/// provisioned) reads as `Provisioning`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InstanceStatus {
    #[default]
    Provisioning,
    Created,
    Loading,
    Running,
    Stopped,
    Frozen,
    Exited,
    Rebooting,
    Unknown,
    Offline,
    Destroyed,
    Other(String),
}

impl InstanceStatus {
    fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "created" => Self::Created,
            "loading" => Self::Loading,
            "running" => Self::Running,
            "stopped" => Self::Stopped,
            "frozen" => Self::Frozen,
            "exited" => Self::Exited,
            "rebooting" => Self::Rebooting,
            "unknown" => Self::Unknown,
            "offline" => Self::Offline,
            "destroyed" => Self::Destroyed,
            _ => Self::Other(s.to_string()),
        }
    }

    /// As Vast spells it (`provisioning` for `null`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Created => "created",
            Self::Loading => "loading",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Frozen => "frozen",
            Self::Exited => "exited",
            Self::Rebooting => "rebooting",
            Self::Unknown => "unknown",
            Self::Offline => "offline",
            Self::Destroyed => "destroyed",
            Self::Other(s) => s,
        }
    }

    /// It will not reach `running` by itself (the document: destroy it and try another
    /// offer).
    pub fn is_failed(&self) -> bool {
        matches!(
            self,
            Self::Exited
                | Self::Unknown
                | Self::Offline
                | Self::Stopped
                | Self::Frozen
                | Self::Destroyed
        )
    }
}

impl<'de> Deserialize<'de> for InstanceStatus {
    /// Text is parsed, `null` is being provisioned, any other shape is kept as its JSON.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Self::parse(&s),
            serde_json::Value::Null => Self::Provisioning,
            other => Self::Other(other.to_string()),
        })
    }
}

/// One `HostIp` / `HostPort` of a container port; `HostPort` is a string on the wire.
#[derive(Clone, Debug, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostPort", default, deserialize_with = "lenient")]
    host_port: Option<serde_json::Value>,
}

impl PortBinding {
    fn port(&self) -> Option<u16> {
        match self.host_port.as_ref()? {
            serde_json::Value::String(s) => s.trim().parse().ok(),
            serde_json::Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            _ => None,
        }
    }
}

/// What the tool reads of an instance.
#[derive(Clone, Debug, Deserialize)]
pub struct Instance {
    pub id: u64,
    #[serde(default, deserialize_with = "lenient")]
    pub label: Option<String>,
    #[serde(default)]
    pub actual_status: InstanceStatus,
    #[serde(default, deserialize_with = "lenient")]
    pub status_msg: Option<String>,
    /// May carry whitespace on the wire.
    #[serde(default, deserialize_with = "lenient")]
    public_ipaddr: Option<String>,
    /// `{"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "33526"}]}`, once running.
    #[serde(default, deserialize_with = "lenient")]
    ports: Option<BTreeMap<String, Vec<PortBinding>>>,
    #[serde(default, deserialize_with = "lenient")]
    pub dph_total: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub gpu_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub num_gpus: Option<u32>,
    /// GPU utilisation, percent, where the host reports it (Vast's own CLI shows it as
    /// `Util. %` unscaled; the document calls it "a fraction" — the CLI is believed).
    #[serde(default, deserialize_with = "lenient")]
    pub gpu_util: Option<f64>,
    /// Epoch seconds.
    #[serde(default, deserialize_with = "lenient")]
    pub start_date: Option<f64>,
}

impl Instance {
    /// The container could not be created (`created` with Docker's "OCI runtime create
    /// failed"): it will never run (dstack reads it the same way).
    pub fn start_failed(&self) -> bool {
        self.actual_status == InstanceStatus::Created
            && self
                .status_msg
                .as_deref()
                .is_some_and(|m| m.contains("OCI runtime create failed"))
    }

    /// `http://IP:HOSTPORT` where the container's `port` answers, once it is mapped.
    pub fn url_of(&self, port: u16) -> Option<String> {
        let ip = self.public_ipaddr.as_deref().map(str::trim)?;
        let host = self
            .ports
            .as_ref()?
            .get(&format!("{port}/tcp"))?
            .iter()
            .find_map(PortBinding::port)?;
        (!ip.is_empty()).then(|| format!("http://{ip}:{host}"))
    }
}

/// `GET /api/v0/instances/{id}/`: one instance under a plural key, `null` when it is unknown.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OneInstance {
    #[serde(default, deserialize_with = "lenient")]
    pub instances: Option<Instance>,
}

/// `GET /api/v1/instances/`: a page of instances and the cursor to the next.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct InstancePage {
    #[serde(default, deserialize_with = "lenient_list")]
    pub instances: Vec<Instance>,
    #[serde(default, deserialize_with = "lenient")]
    pub next_token: Option<String>,
}

/// `PUT /api/v0/asks/{id}/`: the new instance's id is `new_contract`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Created {
    #[serde(default, deserialize_with = "lenient")]
    pub success: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub new_contract: Option<u64>,
}

/// An error answer: `{"success":false,"error":"…","msg":"…"}`, or `{"detail":"…"}`, or
/// `{"message":"…"}`, or plain text (a 429 often is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    pub error: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn of(body: &str) -> Self {
        #[derive(Deserialize, Default)]
        struct Body {
            #[serde(default, deserialize_with = "lenient")]
            error: Option<String>,
            #[serde(default, deserialize_with = "lenient")]
            msg: Option<String>,
            #[serde(default, deserialize_with = "lenient")]
            message: Option<String>,
            #[serde(default, deserialize_with = "lenient")]
            detail: Option<String>,
        }
        let text = body.trim();
        match serde_json::from_str::<Body>(text) {
            Ok(b) => Refusal {
                message: b
                    .msg
                    .or(b.message)
                    .or(b.detail)
                    .or_else(|| b.error.clone())
                    .unwrap_or_else(|| text.chars().take(300).collect()),
                error: b.error,
            },
            Err(_) => Refusal {
                error: None,
                message: text.chars().take(300).collect(),
            },
        }
    }

    /// The offer was taken (or cannot start) between the search and the create: try the
    /// next offer.
    pub fn offer_gone(&self, status: u16) -> bool {
        matches!(status, 404 | 410)
            && (self.error.as_deref() == Some("no_such_ask")
                || self.message.contains("no_such_ask"))
    }
}

/// The document's own types for the fields the tool reads (`vast-ai-openapi.yaml`: an
/// instance's `id` integer, `actual_status` string or null, `public_ipaddr` string, `ports` a
/// map of lists of `HostIp`/`HostPort` strings, prices numbers; an offer's `id`, `gpu_name`,
/// `num_gpus`, `dph_total`; `new_contract` an integer). Every answer is checked against them
/// once (`shared::Drift`): a difference is said once and the run goes on with what `answers`
/// could read.
pub mod strict {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Offers {
        pub offers: Vec<Offer>,
    }

    #[derive(Deserialize)]
    pub struct Offer {
        pub id: u64,
        pub gpu_name: String,
        pub num_gpus: u32,
        pub dph_total: f64,
        #[serde(default)]
        pub reliability: Option<f64>,
        #[serde(default)]
        pub direct_port_count: Option<u32>,
        #[serde(default)]
        pub geolocation: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct OneInstance {
        pub instances: Option<Instance>,
    }

    #[derive(Deserialize)]
    pub struct InstancePage {
        pub instances: Vec<Instance>,
        #[serde(default)]
        pub next_token: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Instance {
        pub id: u64,
        #[serde(default)]
        pub label: Option<String>,
        #[serde(default)]
        pub actual_status: Option<String>,
        #[serde(default)]
        pub status_msg: Option<String>,
        #[serde(default)]
        pub public_ipaddr: Option<String>,
        #[serde(default)]
        pub ports: Option<BTreeMap<String, Vec<Binding>>>,
        #[serde(default)]
        pub dph_total: Option<f64>,
        #[serde(default)]
        pub gpu_util: Option<f64>,
    }

    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    pub struct Binding {
        pub HostIp: String,
        pub HostPort: String,
    }

    #[derive(Deserialize)]
    pub struct Created {
        pub success: bool,
        pub new_contract: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_keep_the_fields_the_tool_needs_and_skip_a_malformed_one() {
        let body = r#"{"offers":[
            {"id":1234567,"gpu_name":"H100 SXM","num_gpus":1,"gpu_ram":81559,"dph_total":1.93,
             "reliability":0.995,"direct_port_count":20,"cuda_max_good":12.8,"machine_id":42,
             "geolocation":"Oslo, NO","search":{"totalHour":1.93},"new_field":[1,2]},
            {"gpu_name":"no id"},
            {"id":7,"gpu_name":"RTX 4090","dph_total":"0.40","num_gpus":-1}
        ]}"#;
        let o: Offers = serde_json::from_str(body).unwrap();
        assert_eq!(o.offers.len(), 2, "the offer without an id is left out");
        assert_eq!(o.offers[0].id, 1_234_567);
        assert_eq!(o.offers[0].gpu_name.as_deref(), Some("H100 SXM"));
        assert_eq!(o.offers[0].dph_total, Some(1.93));
        assert_eq!(o.offers[0].direct_port_count, Some(20));
        // A price as text and a negative count are of the wrong shape: absent, not fatal.
        assert_eq!((o.offers[1].dph_total, o.offers[1].num_gpus), (None, None));
    }

    #[test]
    fn an_instance_reads_its_status_and_the_address_of_a_mapped_port() {
        let body = r#"{"instances":{"id":12345678,"label":"llm-inf-bench-run-r0",
            "actual_status":"running","intended_status":"running","status_msg":"success",
            "public_ipaddr":"203.0.113.7\n","dph_total":1.95,"gpu_name":"H100 SXM","num_gpus":1,
            "ports":{"8000/tcp":[{"HostIp":"0.0.0.0","HostPort":"33526"}],
                     "22/tcp":[{"HostIp":"0.0.0.0","HostPort":"20000"}]}}}"#;
        let one: OneInstance = serde_json::from_str(body).unwrap();
        let i = one.instances.unwrap();
        assert_eq!(i.actual_status, InstanceStatus::Running);
        assert_eq!(i.url_of(8000).as_deref(), Some("http://203.0.113.7:33526"));
        assert_eq!(i.url_of(9000), None, "an unmapped port has no address");
        let loading: OneInstance = serde_json::from_str(
            r#"{"instances":{"id":1,"actual_status":null,"ports":null,"public_ipaddr":""}}"#,
        )
        .unwrap();
        let l = loading.instances.unwrap();
        assert_eq!(l.actual_status, InstanceStatus::Provisioning);
        assert_eq!(l.url_of(8000), None);
        let gone: OneInstance = serde_json::from_str(r#"{"instances":null}"#).unwrap();
        assert!(gone.instances.is_none());
    }

    #[test]
    fn statuses_that_never_reach_running_are_failures_and_new_ones_are_kept() {
        for (s, failed) in [
            ("loading", false),
            ("created", false),
            ("running", false),
            ("exited", true),
            ("unknown", true),
            ("offline", true),
            ("Exited", true),
        ] {
            let st: InstanceStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(st.is_failed(), failed, "{s}");
        }
        let new: InstanceStatus = serde_json::from_str("\"hibernating\"").unwrap();
        assert_eq!(new, InstanceStatus::Other("hibernating".into()));
    }

    #[test]
    fn refusals_are_read_in_every_documented_shape() {
        let gone = Refusal::of(
            r#"{"success":false,"error":"no_such_ask","msg":"error 410/3907: no_such_ask Instance type 1234567 is no longer available."}"#,
        );
        assert!(gone.offer_gone(410));
        let taken = Refusal::of(
            r#"{"success":false,"error":"invalid_args","msg":"error 404/3603: no_such_ask Instance type by id 1234567 is not available."}"#,
        );
        assert!(taken.offer_gone(404));
        assert!(!taken.offer_gone(400));
        let slow = Refusal::of(r#"{"detail":"API requests too frequent endpoint threshold=4.5"}"#);
        assert!(slow.message.contains("threshold=4.5"));
        let plain = Refusal::of("API requests too frequent");
        assert_eq!(plain.message, "API requests too frequent");
        let created: Created = serde_json::from_str(
            r#"{"success":true,"new_contract":12345678,"instance_api_key":"d15a"}"#,
        )
        .unwrap();
        assert_eq!(created.new_contract, Some(12_345_678));
    }
}
