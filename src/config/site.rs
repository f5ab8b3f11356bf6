//! Where the server runs, decided once from `infrastructure`'s keys: each provider's own section,
//! typed, so a provider reads only what is its own. `Infrastructure::site` is the one place that
//! says which key belongs to which provider; `Infrastructure::strays` names the keys an
//! experiment wrote that its provider never reads (a warning: they change nothing).
//!
//! The YAML stays flat (`gpu_type`, `cloud`, `base_url`, `command`, …) and the two sections that
//! were always their own (`simulator`, `slurm`) stay nested: every published experiment file,
//! every matrix axis (`infrastructure: { gpu_type: … }`) and every `--set infrastructure.…`
//! keeps working, and the result files' `config` keeps its shape.

use std::path::Path;

use super::{
    gpus, Cloud, Infrastructure, PortExposure, ProviderKind, SimulatorOptions, SlurmOptions,
    VastOptions,
};

/// One provider's section of `infrastructure` (see the module's header). Keys every provider
/// reads (`gpu_count`, `max_cost_usd`, `price_per_hour_usd`, `max_lifetime`, `health_timeout`,
/// `gpu_type` as a label, `api_key_env` where a server wants a key) stay on `Infrastructure`.
#[derive(Clone, Debug, PartialEq)]
pub enum Site<'a> {
    /// A RunPod pod.
    RunPod(RunPodSite<'a>),
    /// An instance rented on Vast.ai.
    Vast(VastSite<'a>),
    /// A batch job on a Slurm cluster.
    Slurm(&'a SlurmOptions),
    /// A process on this machine: `command` as written, or the framework's own server if empty.
    Local { command: &'a [String] },
    /// A server that is already running.
    Existing(ExistingSite<'a>),
    /// The built-in simulated server.
    Simulator(&'a SimulatorOptions),
}

/// What a RunPod pod is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPodSite<'a> {
    /// `gpu_type`, then `fallback_gpu_types`: the order in which GPU types are tried.
    pub gpu_types: Vec<&'a str>,
    pub data_centers: &'a [String],
    pub cloud: Cloud,
    pub expose: PortExposure,
    pub container_disk_gb: u32,
    pub keep_pod: bool,
}

/// What a Vast.ai instance is rented from: the GPUs to search for, in order, and the filters.
#[derive(Clone, Debug, PartialEq)]
pub struct VastSite<'a> {
    /// `gpu_type`, then `fallback_gpu_types`, as written (each is mapped to Vast's name when
    /// searched, `config::gpus::vast_name`).
    pub gpu_types: Vec<&'a str>,
    pub container_disk_gb: u32,
    pub keep: bool,
    pub offers: &'a VastOptions,
}

/// Where an already running server is.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingSite<'a> {
    /// `base_url`, or `base_urls` (replicas); empty when neither is written.
    pub base_urls: Vec<&'a str>,
    /// The CA that signed an https:// server's certificate (else the system's roots).
    pub tls_ca_file: Option<&'a Path>,
}

/// The providers that read a key of `infrastructure` that only some do.
const RUNPOD: &[ProviderKind] = &[ProviderKind::Runpod];
const CLOUDS: &[ProviderKind] = &[ProviderKind::Runpod, ProviderKind::Vast];
const VAST: &[ProviderKind] = &[ProviderKind::Vast];
const EXISTING: &[ProviderKind] = &[ProviderKind::Existing];
const KEYED: &[ProviderKind] = &[
    ProviderKind::Existing,
    ProviderKind::Local,
    ProviderKind::Slurm,
];
const LOCAL: &[ProviderKind] = &[ProviderKind::Local];
const STARTED: &[ProviderKind] = &[
    ProviderKind::Simulator,
    ProviderKind::Local,
    ProviderKind::Runpod,
    ProviderKind::Vast,
    ProviderKind::Slurm,
];
const SIMULATOR: &[ProviderKind] = &[ProviderKind::Simulator];
const SLURM: &[ProviderKind] = &[ProviderKind::Slurm];

impl Infrastructure {
    /// The provider's own section.
    pub fn site(&self) -> Site<'_> {
        match self.provider {
            ProviderKind::Runpod => Site::RunPod(self.runpod()),
            ProviderKind::Vast => Site::Vast(VastSite {
                gpu_types: self.gpu_types(),
                container_disk_gb: self.container_disk_gb,
                keep: self.keep_pod,
                offers: &self.vast,
            }),
            ProviderKind::Slurm => Site::Slurm(&self.slurm),
            ProviderKind::Local => Site::Local {
                command: &self.command,
            },
            ProviderKind::Existing => Site::Existing(ExistingSite {
                base_urls: self
                    .base_url
                    .iter()
                    .chain(&self.base_urls)
                    .map(String::as_str)
                    .collect(),
                tls_ca_file: self.tls_ca_file.as_deref(),
            }),
            ProviderKind::Simulator => Site::Simulator(&self.simulator),
        }
    }

    /// The variable holding the server's API key, if the provider sends one from it (a RunPod
    /// pod and the simulator get a key of the run's own, or none).
    pub fn api_key_env(&self) -> Option<&str> {
        match KEYED.contains(&self.provider) {
            true => self.api_key_env.as_deref(),
            false => None,
        }
    }

    /// `gpu_type`, then `fallback_gpu_types`, as written.
    fn gpu_types(&self) -> Vec<&str> {
        self.gpu_type
            .iter()
            .chain(&self.fallback_gpu_types)
            .map(String::as_str)
            .collect()
    }

    /// The RunPod section, whatever the provider (a plan or a cost for a pod not yet chosen).
    /// GPU names are RunPod's type ids (a portable name is mapped, `config::gpus`).
    pub fn runpod(&self) -> RunPodSite<'_> {
        RunPodSite {
            gpu_types: self.gpu_types().into_iter().map(gpus::runpod_id).collect(),
            data_centers: &self.data_centers,
            cloud: self.cloud,
            expose: self.expose,
            container_disk_gb: self.container_disk_gb,
            keep_pod: self.keep_pod,
        }
    }

    /// The provider-specific keys written with a value other than their default, each with the
    /// providers that read it.
    fn written(&self) -> Vec<(&'static str, &'static [ProviderKind])> {
        let d = Infrastructure::default();
        let keys: [(bool, &'static str, &'static [ProviderKind]); 14] = [
            (
                !self.fallback_gpu_types.is_empty(),
                "fallback_gpu_types",
                CLOUDS,
            ),
            (!self.data_centers.is_empty(), "data_centers", RUNPOD),
            (self.cloud != d.cloud, "cloud", RUNPOD),
            (self.expose != d.expose, "expose", RUNPOD),
            (
                self.container_disk_gb != d.container_disk_gb,
                "container_disk_gb",
                CLOUDS,
            ),
            (self.keep_pod, "keep_pod", CLOUDS),
            (self.base_url.is_some(), "base_url", EXISTING),
            (!self.base_urls.is_empty(), "base_urls", EXISTING),
            (self.replicas != d.replicas, "replicas", STARTED),
            (self.api_key_env.is_some(), "api_key_env", KEYED),
            (!self.command.is_empty(), "command", LOCAL),
            (self.simulator != d.simulator, "simulator", SIMULATOR),
            (self.slurm != d.slurm, "slurm", SLURM),
            (self.vast != d.vast, "vast", VAST),
        ];
        keys.into_iter()
            .filter(|(set, _, _)| *set)
            .map(|(_, key, who)| (key, who))
            .collect()
    }

    /// The keys written that none of `providers` reads (a matrix may run on several), as
    /// `(path, message)`. `tls_ca_file` is not among them: outside `existing` it is an error.
    pub fn strays(&self, providers: &[ProviderKind]) -> Vec<(String, String)> {
        let runs_on = providers
            .iter()
            .map(|p| format!("`{}`", p.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        self.written()
            .into_iter()
            .filter(|(_, who)| !who.iter().any(|p| providers.contains(p)))
            .map(|(key, who)| {
                let read_by = who
                    .iter()
                    .map(|p| format!("`provider: {}`", p.as_str()))
                    .collect::<Vec<_>>()
                    .join(" or ");
                (
                    format!("infrastructure.{key}"),
                    format!("only {read_by} reads it, and this experiment runs on {runs_on}: it changes nothing"),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_gets_its_own_section() {
        let mut inf = Infrastructure {
            provider: ProviderKind::Runpod,
            gpu_type: Some("H100".into()),
            fallback_gpu_types: vec!["A100".into()],
            ..Infrastructure::default()
        };
        let Site::RunPod(p) = inf.site() else {
            panic!("runpod is a RunPod site")
        };
        assert_eq!(p.gpu_types, ["H100", "A100"]);
        inf.provider = ProviderKind::Existing;
        inf.base_url = Some("http://127.0.0.1:9".into());
        assert_eq!(
            inf.site(),
            Site::Existing(ExistingSite {
                base_urls: vec!["http://127.0.0.1:9"],
                tls_ca_file: None
            })
        );
        inf.provider = ProviderKind::Slurm;
        assert_eq!(inf.site(), Site::Slurm(&SlurmOptions::default()));
    }

    #[test]
    fn a_key_no_provider_of_the_run_reads_is_a_stray() {
        let inf = Infrastructure {
            provider: ProviderKind::Slurm,
            data_centers: vec!["EU-RO-1".into()],
            api_key_env: Some("KEY".into()),
            cloud: Cloud::Community,
            ..Infrastructure::default()
        };
        let paths = |ps: &[ProviderKind]| -> Vec<String> {
            inf.strays(ps).into_iter().map(|(p, _)| p).collect()
        };
        // Slurm reads the key variable, not where or how RunPod places a pod.
        assert_eq!(
            paths(&[ProviderKind::Slurm]),
            ["infrastructure.data_centers", "infrastructure.cloud"]
        );
        // A matrix that also runs on RunPod reads all three.
        assert!(paths(&[ProviderKind::Slurm, ProviderKind::Runpod]).is_empty());
        let (_, message) = &inf.strays(&[ProviderKind::Simulator])[2];
        assert_eq!(
            message,
            "only `provider: existing` or `provider: local` or `provider: slurm` reads it, and this experiment runs on `simulator`: it changes nothing"
        );
        // Defaults written out are not strays.
        assert!(Infrastructure::default()
            .strays(&[ProviderKind::Existing])
            .is_empty());
    }
}
