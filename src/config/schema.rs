//! The experiment file format (DESIGN §4) as serde types. Every struct denies unknown keys and
//! every field has its default here, in one place, so a partial file (a base that others
//! `extends`) is itself a valid document and can be checked on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// One benchmark experiment: what to deploy, where, and what load to drive at it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Experiment {
    /// Parent experiment file, relative to this file. Maps merge key by key; a child's scalars
    /// and lists replace the parent's. Parents may extend too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// Used in the result file name: `{name}-{YYYYMMDD-HHMMSS}.json`. Letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Free text stored with the results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed for every random choice (arrivals, random prompts, simulator draws).
    pub seed: u64,
    pub model: Model,
    pub framework: Framework,
    pub infrastructure: Infrastructure,
    /// Compare deployments: a matrix of what is deployed (framework, GPU, TP, model, server
    /// arguments), each combination its own server running the same load points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Deployments>,
    pub workload: Workload,
    /// Graded tasks against each deployment's server (accuracy beside speed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evals: Option<super::evals::Evals>,
    pub metrics: MetricsConfig,
    pub output: Output,
}

/// `deployments`: every combination of one value per axis is a deployment — its own server
/// (pod, local process, Slurm job, simulator) running the experiment's load points.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Deployments {
    /// How many deployments run at once, each with its own server (and, on RunPod, its own
    /// watchdog). One budget (`infrastructure.max_cost_usd`) covers them all.
    pub max_parallel: u32,
    /// Axes, in order: `axis: {value-name: {what this value changes}}`. A value changes only
    /// `model`, `framework` and `infrastructure` keys, merged over the experiment like
    /// `extends` (maps merge, lists and scalars replace). The deployment's name joins its value
    /// names with `-` (`vllm-h100`), in result file names, `sweep_point` and the index.
    #[schemars(with = "BTreeMap<String, BTreeMap<String, serde_json::Value>>")]
    pub matrix: serde_json::Map<String, serde_json::Value>,
}

impl Default for Deployments {
    fn default() -> Self {
        Self {
            max_parallel: 1,
            matrix: serde_json::Map::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Model {
    /// Model id as the server serves it (Hugging Face id for vLLM/SGLang).
    pub id: String,
    /// Where the server loads the model from, when that is not `id`: a local directory (or a
    /// GGUF file for llama.cpp), or another Hugging Face id. The server then serves it under
    /// `id` (vLLM and SGLang `--served-model-name`, llama.cpp `--alias`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Context length passed to the server (`--max-model-len`); prompts must fit in it.
    /// Without it, a prompt and its answer may not pass [`MAX_CONTEXT_TOKENS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u32>,
    /// Local `tokenizer.json` used to build random prompts of exact token length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// LoRA adapters on the base model, and how requests are spread over them: each request
    /// names one adapter as its `model` (a conversation or agent session keeps its adapter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapters: Option<Adapters>,
}

/// `model.adapters`: a multi-LoRA traffic mix.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Adapters {
    /// Adapter names, as the server serves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Or this many adapters named `adapter-0`, `adapter-1`, … (the simulator serves any
    /// count; a real server must serve those names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The adapters' weights (directories), in `names` order, for a server the tool starts:
    /// vLLM `--enable-lora --lora-modules NAME=PATH …`, SGLang `--enable-lora --lora-paths
    /// NAME=PATH …`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Relative weights of the adapters (`names` order); instead of `distribution`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<f64>,
    /// `uniform` (default), or `zipf`: the k-th adapter (from 1) weighted 1 / k^`zipf_exponent`.
    pub distribution: AdapterDistribution,
    /// The exponent of `zipf` (default 1.0).
    pub zipf_exponent: f64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AdapterDistribution {
    #[default]
    Uniform,
    Zipf,
}

impl Default for Adapters {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            count: None,
            paths: Vec::new(),
            weights: Vec::new(),
            distribution: AdapterDistribution::Uniform,
            zipf_exponent: 1.0,
        }
    }
}

impl Adapters {
    /// The adapters' names: `names`, or `adapter-0` … `adapter-{count-1}`.
    pub fn all(&self) -> Vec<String> {
        match self.count {
            Some(n) if self.names.is_empty() => (0..n).map(|k| format!("adapter-{k}")).collect(),
            _ => self.names.clone(),
        }
    }

    /// Each adapter's share of the requests (sums to 1).
    pub fn shares(&self) -> Vec<f64> {
        let n = self.all().len();
        let raw: Vec<f64> = if !self.weights.is_empty() {
            self.weights.clone()
        } else {
            match self.distribution {
                AdapterDistribution::Uniform => vec![1.0; n],
                AdapterDistribution::Zipf => (1..=n)
                    .map(|k| 1.0 / (k as f64).powf(self.zipf_exponent))
                    .collect(),
            }
        };
        let total: f64 = raw.iter().sum();
        raw.iter()
            .map(|w| if total > 0.0 { w / total } else { 0.0 })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FrameworkKind {
    #[default]
    Vllm,
    Sglang,
    Llamacpp,
    /// NVIDIA TensorRT-LLM's `trtllm-serve` (its PyTorch backend).
    Trtllm,
}

impl FrameworkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Sglang => "sglang",
            Self::Llamacpp => "llamacpp",
            Self::Trtllm => "trtllm",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Framework {
    /// Inference server: `vllm`, `sglang`, `llamacpp` or `trtllm` (TensorRT-LLM's `trtllm-serve`).
    pub kind: FrameworkKind,
    /// Container image (pinned tag) for pod providers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extra server arguments, appended after the ones the tool derives.
    pub args: Vec<String>,
    /// Extra environment for the server. Secrets (HF_TOKEN) come from your environment, never the file.
    pub env: BTreeMap<String, String>,
    /// Port the server listens on inside the pod.
    pub port: u16,
    /// The server program where no container supplies it (`provider: local` without
    /// `infrastructure.command`, a Slurm job without a container): vLLM's `vllm` CLI, SGLang's
    /// Python, `llama-server`. A path (e.g. a virtualenv's `bin/vllm`) or a name on `PATH`;
    /// default `vllm`, `python3`, `llama-server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<PathBuf>,
}

impl Default for Framework {
    fn default() -> Self {
        Self {
            kind: FrameworkKind::Vllm,
            image: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            port: 8000,
            executable: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Runpod,
    Local,
    Existing,
    #[default]
    Simulator,
    /// A batch job on a Slurm cluster (`infrastructure.slurm`).
    Slurm,
    /// An instance rented on Vast.ai's marketplace (`infrastructure.vast`).
    Vast,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runpod => "runpod",
            Self::Local => "local",
            Self::Existing => "existing",
            Self::Simulator => "simulator",
            Self::Slurm => "slurm",
            Self::Vast => "vast",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    #[default]
    Secure,
    Community,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PortExposure {
    /// Public IP and port: no proxy hop, no 100 s proxy timeout, truer latency.
    #[default]
    Tcp,
    /// `https://{pod}-{port}.proxy.runpod.net` through RunPod's HTTP proxy.
    Http,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Infrastructure {
    /// Where the server runs: `runpod`, `vast`, `slurm`, `local`, `existing` or `simulator`.
    pub provider: ProviderKind,
    /// The GPU: a portable name (`H100 80GB`, `A100 80GB SXM`, `RTX 4090`, …) each cloud is
    /// asked for in its own words, or a catalog's own name (RunPod's type id `NVIDIA H100 80GB
    /// HBM3`, Vast's `H100 SXM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// Further GPU types to try, in order, when the first has no capacity (RunPod) or no
    /// offer (Vast).
    pub fallback_gpu_types: Vec<String>,
    /// Data centers to try, in order (empty: any).
    pub data_centers: Vec<String>,
    /// GPUs per pod; also the tensor-parallel size.
    pub gpu_count: u32,
    /// RunPod cloud: `secure` or `community`.
    pub cloud: Cloud,
    /// How the server port is reached on RunPod: `tcp` (default) or `http` (proxy).
    pub expose: PortExposure,
    /// Hard budget in USD: the run stops and cleans up when the running cost reaches it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The server's price per hour in USD, for the cost of work ($ per million tokens): on
    /// RunPod the catalog's price wins and this is the fallback; for `local`, `existing` and
    /// the simulator it is the price of your own hardware (nothing is billed by this tool).
    /// Per server: with replicas the run's price is this times their number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_hour_usd: Option<f64>,
    /// Keep the pod (or Vast instance) after the run (prints how to terminate it).
    pub keep_pod: bool,
    /// A watchdog terminates the pod after this long, even if this tool dies; on Slurm it is
    /// also the job's own time limit (`--time`), which the cluster enforces.
    pub max_lifetime: HumanDuration,
    /// Container disk in GB for pod providers (RunPod; Vast: at least 8, priced into the
    /// offer's `dph_total`).
    pub container_disk_gb: u32,
    /// How long to wait for the server to answer `/health` and list the model.
    pub health_timeout: HumanDuration,
    /// `existing`: the server's base URL, e.g. `http://127.0.0.1:8000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `existing`: several servers behind one run (replicas the tool routes between with
    /// `workload.routing`), instead of `base_url`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<String>,
    /// Servers of the same spec behind one run (default 1): `simulator`, `local`, `runpod`
    /// (N pods) and `slurm` (N jobs) start N; each is scraped, requests are spread over them
    /// by `workload.routing`, and the budget and cost count all of them.
    pub replicas: u32,
    /// `existing`: name of the environment variable holding the server's API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// `existing` over `https://`: a PEM file with the CA certificate(s) that signed the
    /// server's certificate (a private CA, a self-signed server); only those are trusted.
    /// Without it the system's roots are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// `local`: the server command; `{port}` and `{model}` are substituted. Without it the
    /// tool starts the framework's own server (`framework.kind`, `.executable`, `.args`,
    /// `.env`, `model.*`) as it would in a container.
    pub command: Vec<String>,
    /// `simulator`: the built-in simulated server's settings.
    pub simulator: SimulatorOptions,
    /// `slurm`: the batch job that runs the server.
    pub slurm: SlurmOptions,
    /// `vast`: which Vast.ai offers may be rented.
    pub vast: VastOptions,
}

/// Which of Vast.ai's offers may be rented: the cheapest offer (`dph_total`, disk included)
/// that has the GPU and count, at least one open port (the server is reached on the host's
/// public IP and a mapped port), and passes these filters.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VastOptions {
    /// The host's reliability score at least (0–1).
    pub min_reliability: f64,
    /// No offer dearer than this, USD per hour for the whole instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price_per_hour_usd: Option<f64>,
    /// Hosts only in these countries (two-letter codes, e.g. `[US, CA]`); empty: anywhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// The CUDA version the host's driver runs, at least (e.g. `12.8`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cuda: Option<f64>,
    /// GPU memory per GPU at least, GB (else the card's own, where two variants share a name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_gpu_ram_gb: Option<u32>,
    /// How many offers to try, cheapest first, when one is taken or fails to start.
    pub offers_to_try: u32,
}

impl VastOptions {
    /// Vast refuses a smaller disk.
    pub const MIN_DISK_GB: u32 = 8;
}

impl Default for VastOptions {
    fn default() -> Self {
        Self {
            min_reliability: 0.98,
            max_price_per_hour_usd: None,
            countries: Vec::new(),
            min_cuda: None,
            min_gpu_ram_gb: None,
            offers_to_try: 5,
        }
    }
}

/// How the server's GPUs are asked for in the batch script.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpuFlag {
    /// `#SBATCH --gres=gpu:N`.
    #[default]
    Gres,
    /// `#SBATCH --gpus=N`.
    Gpus,
    /// No GPU request (CPU-only servers, the simulator, a site that adds its own).
    None,
}

/// How the image runs on the cluster, if it does.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRuntime {
    /// No container: the command runs on the node as it is (a module, a virtualenv).
    #[default]
    None,
    /// Pyxis/Enroot: `#SBATCH --container-image=IMAGE`.
    Pyxis,
    /// Apptainer: `apptainer exec --nv docker://IMAGE COMMAND`.
    Apptainer,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmOptions {
    /// Run `sbatch`, `squeue` and `scancel` on this login host over `ssh` (else here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_host: Option<String>,
    /// The ssh command for `login_host` (default `ssh -o BatchMode=yes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<String>,
    /// `#SBATCH --partition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `#SBATCH --account`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// How GPUs are requested: `gres` (`--gres=gpu:N`), `gpus` (`--gpus=N`) or `none`;
    /// N is `infrastructure.gpu_count`.
    pub gpu_flag: GpuFlag,
    /// Run `framework.image` through the cluster's container plugin: `none`, `pyxis`,
    /// `apptainer`.
    pub container: ContainerRuntime,
    /// Further `#SBATCH` lines, e.g. `--mem=64G`, `--constraint=h100`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sbatch: Vec<String>,
    /// Shell lines run in the job before the server (`module load cuda`, `source venv/bin/activate`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    /// The server command; `{port}` and `{model}` are substituted. Default: the framework's
    /// server (vLLM's OpenAI server, `sglang.launch_server`, `llama-server`) with the
    /// experiment's model, port, TP and `framework.args`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The port the server listens on, on its node (default: one from the run's name, 20000–32767, under Linux's ephemeral ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How the client reaches the node: `{node}` is the node Slurm ran the job on (default
    /// `{node}`; e.g. `{node}.cluster.example.org`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_address: Option<String>,
    /// USD per GPU-hour, for the cost estimate, the budget and the cost of work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_gpu_hour_usd: Option<f64>,
}

impl Default for Infrastructure {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Simulator,
            gpu_type: None,
            fallback_gpu_types: Vec::new(),
            data_centers: Vec::new(),
            gpu_count: 1,
            cloud: Cloud::Secure,
            expose: PortExposure::Tcp,
            max_cost_usd: None,
            price_per_hour_usd: None,
            keep_pod: false,
            max_lifetime: HumanDuration::from_secs(4 * 3600),
            container_disk_gb: 50,
            health_timeout: HumanDuration::from_secs(900),
            base_url: None,
            base_urls: Vec::new(),
            replicas: 1,
            api_key_env: None,
            tls_ca_file: None,
            command: Vec::new(),
            simulator: SimulatorOptions::default(),
            slurm: SlurmOptions::default(),
            vast: VastOptions::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Personality {
    #[default]
    Vllm,
    Sglang,
    /// TensorRT-LLM's `trtllm-serve`: its metrics at `/prometheus/metrics` with `trtllm_` names.
    Trtllm,
}

/// The simulator's engine profile: its timings and capacity (`sim::engine::profile`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum SimProfile {
    /// Llama-3.1-8B bf16 on one H100 SXM.
    #[default]
    #[serde(rename = "h100-llama8b")]
    H100Llama8b,
    /// Llama-3.1-70B fp8 on A100s: slower steps, a smaller KV budget.
    #[serde(rename = "a100-llama70b")]
    A100Llama70b,
    /// No delays: answers as fast as the server can write them (client benchmarks).
    #[serde(rename = "instant")]
    Instant,
    /// TTFT 50 ms and ITL 10 ms for every request: the ground truth for timing error.
    #[serde(rename = "fixed-50ms-10ms")]
    Fixed50ms10ms,
}

impl SimProfile {
    /// Every profile, in the order help texts list them.
    pub const ALL: [SimProfile; 4] = [
        Self::H100Llama8b,
        Self::A100Llama70b,
        Self::Instant,
        Self::Fixed50ms10ms,
    ];

    /// The name used in experiment files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H100Llama8b => "h100-llama8b",
            Self::A100Llama70b => "a100-llama70b",
            Self::Instant => "instant",
            Self::Fixed50ms10ms => "fixed-50ms-10ms",
        }
    }

    /// `h100-llama8b, a100-llama70b, …`, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl std::fmt::Display for SimProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SimProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown simulator profile `{s}`; valid profiles are {}",
                    Self::names()
                )
            })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorOptions {
    /// Engine profile: `h100-llama8b`, `a100-llama70b`, `instant` or `fixed-50ms-10ms`.
    pub profile: SimProfile,
    /// Which server to look like from the outside: `vllm`, `sglang` or `trtllm`.
    pub personality: Personality,
    /// Time scale: 2.0 runs twice as fast as the profile says.
    pub speed: f64,
    /// A reasoning model: this share (0–1) of every answer's tokens are reasoning deltas, sent
    /// before the content.
    #[serde(skip_serializing_if = "is_zero")]
    pub reasoning_share: f64,
    /// A model that never emits EOS (as a random-weight one): every answer runs to its cap, as
    /// `ignore_eos` would make it — for `api: messages`, which cannot ask for that.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub never_eos: bool,
    /// The KV cache in tokens, instead of the profile's: it bounds the batch and the prefix
    /// cache (least recently used blocks are evicted), e.g. a small one to see evictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_tokens: Option<u64>,
    /// Served LoRA adapters (`model.adapters`) cost this much more per engine step that holds
    /// any (0.2: 20 % slower steps), as the extra adapter kernels of a real engine do.
    #[serde(skip_serializing_if = "is_zero")]
    pub lora_slowdown: f64,
    /// Speculative decoding in the simulated engine (not the `instant` or `fixed-…` profiles):
    /// K draft tokens a step, verified at the cost of K more sequences in the batch, each
    /// accepted with a chance; `/metrics` carries vLLM's spec-decode counters (SGLang's gauges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_decode: Option<SimSpecDecode>,
    /// Answer the experiment's graded sets (`evals.tasks` with a `set` or a `file`) from their
    /// key — "The answer is 42." — wrong on exactly ⌊n·error_rate⌋ of any first n items, so a
    /// grader's score can be checked to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_key: Option<SimAnswerKey>,
}

/// The simulator's answer key.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimAnswerKey {
    /// The share of items answered wrongly (0–1), spread evenly through the set.
    pub error_rate: f64,
}

/// The simulated engine's speculative decoding.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimSpecDecode {
    /// Draft tokens proposed per step (vLLM's `num_speculative_tokens`), 1–16.
    pub num_speculative_tokens: u32,
    /// The chance each draft token is accepted, given the ones before it were (0–1). The
    /// acceptance rate the server reports is lower: a draft token after a rejected one is
    /// never accepted.
    pub token_acceptance: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            profile: SimProfile::H100Llama8b,
            personality: Personality::Vllm,
            speed: 1.0,
            reasoning_share: 0.0,
            never_eos: false,
            kv_tokens: None,
            lora_slowdown: 0.0,
            spec_decode: None,
            answer_key: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI chat completions (`POST /v1/chat/completions`).
    #[default]
    Chat,
    /// OpenAI completions (`POST /v1/completions`): a plain prompt, no chat template.
    Completions,
    /// OpenAI Responses (`POST /v1/responses`): `input` messages, text in
    /// `response.output_text.delta` events, the usage in `response.completed`; sent with
    /// `store: false` (the server keeps nothing).
    Responses,
    /// Anthropic Messages (`POST /v1/messages`): `messages` with any system prompt in the
    /// top-level `system`, text in `content_block_delta` events (`text_delta`, reasoning in
    /// `thinking_delta`), the usage in `message_start` and `message_delta`. The API has no
    /// `ignore_eos`: answers end where the model stops (or at `max_tokens`).
    Messages,
    /// OpenAI embeddings (`POST /v1/embeddings`, a pooling model): `input` is one text, or
    /// `inputs_per_request` texts; not streamed (no TTFT or ITL), the prompt tokens from
    /// `usage`.
    Embeddings,
    /// Rerank (`POST /v1/rerank`, Jina/Cohere's shape, a pooling model): one `query` and
    /// `inputs_per_request` `documents`; not streamed, the prompt tokens from `usage`.
    Rerank,
}

/// How requests are spread over replicas (`workload.routing`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Each request to the next replica in turn.
    RoundRobin,
    /// Each request to the replica with the fewest of this run's requests in flight (ties: the
    /// next in turn).
    LeastInFlight,
    /// A unit of work (a request; a whole conversation or agent session) to the replica its
    /// hash picks, as a consistent-hash router does: a session's turns all reach one replica,
    /// and its prefix cache.
    SessionSticky,
}

impl Routing {
    /// The policy in words, for the plan line: `round-robin`, `least-in-flight`,
    /// `session-sticky`.
    pub fn describe(self) -> &'static str {
        match self {
            Routing::RoundRobin => "round-robin",
            Routing::LeastInFlight => "least-in-flight",
            Routing::SessionSticky => "session-sticky",
        }
    }
}

impl Api {
    /// A pooling API: one JSON answer per request, no tokens generated (no TTFT, ITL or TPOT).
    pub fn pooling(self) -> bool {
        matches!(self, Api::Embeddings | Api::Rerank)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// One request at a time.
    Sequential,
    /// A fixed number of requests in flight (closed loop).
    #[default]
    Concurrent,
    /// Open loop: requests leave at `rate` per second, whatever the server does.
    Rate,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    #[default]
    Poisson,
    Gamma,
    Constant,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnDeadline {
    /// Stop sending at the deadline and let requests in flight finish.
    #[default]
    Wait,
    /// Cancel requests in flight at the deadline (counted as aborted, not in latencies).
    Abort,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Endpoint: `chat` (/v1/chat/completions), `completions` (/v1/completions), `responses`,
    /// `messages`, `embeddings` or `rerank`.
    pub api: Api,
    /// Texts per request of a pooling API (default 1): `embeddings` embeds this many prompts
    /// in one `input` list; `rerank` scores this many `documents` against one query. Each is
    /// a prompt of the dataset. Only with `api: embeddings` or `rerank`.
    pub inputs_per_request: u32,
    /// How requests are spread over several servers (`infrastructure.replicas`, `base_urls`):
    /// `round_robin`, `least_in_flight` or `session_sticky` (every request of a conversation
    /// or agent session to one replica, chosen by a hash of the session). Default:
    /// `session_sticky` for conversations and agents, `round_robin` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    /// `sequential`, `concurrent` or `rate`.
    pub pattern: Pattern,
    /// Requests in flight for `concurrent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Requests per second for `rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Arrival process for `rate`: `poisson`, `gamma` or `constant`.
    pub arrival: ArrivalKind,
    /// Gamma shape: 1.0 is Poisson, < 1 burstier, > 1 more regular.
    pub burstiness: f64,
    /// Cap on requests in flight for `rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Stop after this many measured requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Stop sending after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// What happens to requests in flight at the duration deadline: `wait` or `abort`.
    pub on_deadline: OnDeadline,
    /// Requests sent before the measured window, on its own connections, excluded from every
    /// figure. At least `concurrency` warms every connection.
    pub warmup_requests: u32,
    /// Where prompts come from.
    pub dataset: Dataset,
    /// Output cap for JSONL prompts (random prompts use `output_len`).
    pub max_tokens: u32,
    /// Ask the server to ignore EOS (also sends `min_tokens = max_tokens`).
    pub ignore_eos: bool,
    /// A request that takes longer is cancelled and counted as a timeout.
    pub request_timeout: HumanDuration,
    /// The largest single SSE event a stream may send, in bytes (default 1 MiB); a longer one
    /// fails its request (`parse`) instead of growing the client's memory.
    pub max_event_bytes: u64,
    /// Stop early when the share of failed requests exceeds this (0–1), after 20 requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Conversations: stop starting sessions after this many (`dataset: {kind: conversation}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Ramp-up: reach `rate` (open loop) or `concurrency` (closed loop) gradually.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// Run several points (one result file each, plus an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// Find the highest load meeting the SLO by probing (instead of a fixed grid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
    /// Measure each point until its figures are stable (then stop), or until its cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyState>,
    /// Stop an open-loop point early when the server cannot keep up (its queue grows).
    pub saturation: Saturation,
    /// The server's prefix cache before each point: emptied (`flush`), then primed with the
    /// shared prefixes (`prime`), neither measured.
    pub cache: CachePhases,
}

/// A share, written `5%` or `0.05`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(x) => Ok(Share(x)),
            Raw::S(s) => {
                let t = s.trim();
                let (num, scale) = match t.strip_suffix('%') {
                    Some(n) => (n.trim(), 100.0),
                    None => (t, 1.0),
                };
                num.parse::<f64>().map(|x| Share(x / scale)).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "`{s}` is not a share: write e.g. `5%` or `0.05`"
                    ))
                })
            }
        }
    }
}

/// What a capacity search varies.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SearchOver {
    /// Requests per second (open loop, `pattern: rate`).
    #[default]
    Rate,
    /// Requests in flight (closed loop).
    Concurrency,
    /// Sessions at once (a closed loop of conversations or agent sessions): how many users a
    /// deployment serves within the SLO.
    Sessions,
}

impl SearchOver {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Concurrency => "concurrency",
            Self::Sessions => "sessions",
        }
    }

    /// A closed loop: the load is a whole number of slots (requests or sessions).
    pub fn is_closed(self) -> bool {
        self != Self::Rate
    }
}

/// One SLO tier of a capacity search (`search.tiers`): its name and its limits.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloTier {
    /// e.g. `interactive`, `batch`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2el_ms: Option<f64>,
}

impl SloTier {
    pub fn slo(&self) -> Slo {
        Slo {
            ttft_ms: self.ttft_ms,
            tpot_ms: self.tpot_ms,
            e2el_ms: self.e2el_ms,
        }
    }
}

/// `workload.search`: the highest load meeting every SLO, found by probing.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Search {
    /// `rate`, `concurrency` or `sessions`.
    pub over: SearchOver,
    /// The limits at `percentile` (default: `metrics.slo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Several SLOs, each answered on its own (`[{name: interactive, ttft_ms: 500, tpot_ms:
    /// 30}, {name: batch, ttft_ms: 5000}]`), instead of `slo`; a probe one tier measured is
    /// reused by the others (and counts toward their `max_points`, as in a search of its own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<SloTier>,
    /// The percentile the SLO holds at (e.g. 99: p99 TTFT ≤ slo.ttft_ms).
    pub percentile: f64,
    /// Stop when the highest passing load is within this share of the lowest failing one.
    pub tolerance: Share,
    /// The most probes (each a measured point with its own result file).
    pub max_points: u32,
    /// The lowest load to probe (default 1).
    pub start: f64,
    /// The highest load to probe; the second probe runs here to measure the server's capacity.
    pub max: f64,
}

impl Default for Search {
    fn default() -> Self {
        Self {
            over: SearchOver::Rate,
            slo: None,
            tiers: Vec::new(),
            percentile: 99.0,
            tolerance: Share(0.05),
            max_points: 8,
            start: 1.0,
            max: 256.0,
        }
    }
}

/// `workload.steady_state`: stop once the figures have settled.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SteadyState {
    /// The figures (p50/p99 TTFT and TPOT, output throughput) of consecutive windows this long
    /// are compared.
    pub window: HumanDuration,
    /// Steady when three consecutive windows differ by less than this share.
    pub threshold: Share,
}

impl Default for SteadyState {
    fn default() -> Self {
        Self {
            window: HumanDuration::from_secs(10),
            threshold: Share(0.05),
        }
    }
}

/// `workload.saturation`: over capacity, an open-loop point's queue grows without bound.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Saturation {
    /// Stop the point (`termination_reason: saturated`) when requests in flight and TTFT both
    /// grow steadily with time (open loop only); requests in flight are then aborted.
    pub stop: bool,
    /// Not before this much of the point has run.
    pub after: HumanDuration,
    /// The trend is fitted over at most this much of the recent past.
    pub window: HumanDuration,
}

impl Default for Saturation {
    fn default() -> Self {
        Self {
            stop: true,
            after: HumanDuration::from_secs(10),
            window: HumanDuration::from_secs(30),
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            api: Api::Chat,
            inputs_per_request: 1,
            routing: None,
            pattern: Pattern::Concurrent,
            concurrency: None,
            rate: None,
            arrival: ArrivalKind::Poisson,
            burstiness: 1.0,
            max_concurrency: None,
            requests: None,
            duration: None,
            on_deadline: OnDeadline::Wait,
            warmup_requests: 0,
            dataset: Dataset::default(),
            max_tokens: 256,
            ignore_eos: false,
            request_timeout: HumanDuration::from_secs(600),
            max_event_bytes: 1 << 20,
            max_error_rate: None,
            sessions: None,
            ramp: None,
            sweep: None,
            search: None,
            steady_state: None,
            saturation: Saturation::default(),
            cache: CachePhases::default(),
        }
    }
}

/// Where the prompts come from, chosen by `kind`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dataset {
    /// Random prompts of controlled token length.
    Random {
        /// Prompt tokens per request.
        input_len: u32,
        /// Output tokens per request (sent as `max_tokens`).
        output_len: u32,
        /// Lengths are drawn uniformly from `[len·(1−r), len·(1+r)]`; 0 gives exact lengths.
        #[serde(default)]
        range_ratio: f64,
    },
    /// JSONL file, one `{"messages": [...]}` (or `{"prompt": "..."}`) per line; cycles.
    Jsonl {
        /// Path relative to the experiment file that names it.
        path: PathBuf,
    },
    /// `groups` shared prefixes, each followed by a distinct suffix (exercises prefix caching).
    SharedPrefix {
        prefix_len: u32,
        suffix_len: u32,
        #[serde(default = "default_groups")]
        groups: u32,
        output_len: u32,
        /// Split each prompt (`prefix_len + suffix_len` tokens) so the shared prefix is this
        /// share of it, in whole `metrics.cache_block_size` blocks: the ideal prefix-cache hit
        /// rate once every group's prefix is cached (`workload.cache.prime`). The measured
        /// rate is checked against it after the point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_hit_rate: Option<f64>,
    },
    /// Multi-turn sessions: each turn re-sends the whole history, with the assistant's earlier
    /// answers as the server streamed them. Synthetic (`turns`, `input_len`, `output_len`) or
    /// read from `path`.
    Conversation {
        /// Turns per session: `3` or `[2, 6]` (synthetic sessions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turns: Option<Count>,
        /// New user tokens per turn (synthetic sessions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_len: Option<u32>,
        /// Tokens of each session's first user turn, when it differs (an agent's task, tools
        /// and files up front, short turns after); default `input_len`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_input_len: Option<u32>,
        /// Output tokens per turn (`max_tokens`); for files, overrides the recorded answers' lengths.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_len: Option<u32>,
        /// A system prompt of this many tokens, the same for every session (0: none).
        #[serde(default)]
        system_prompt_len: u32,
        /// Size the shared system prompt so the sessions' ideal prefix-cache hit rate is this
        /// share (synthetic sessions; instead of `system_prompt_len`). Each turn re-sends the
        /// history, so a conversation has a floor: a lower target is refused with it. The
        /// measured rate is checked against it after the point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_hit_rate: Option<f64>,
        /// Recorded conversations (relative to the experiment file), instead of synthetic ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        /// `sharegpt` or `messages`, for `path`.
        #[serde(default)]
        format: ConversationFormat,
        /// Pause between an answer and the session's next turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        think_time: Option<HumanDuration>,
        /// `constant`, `exponential` or `uniform` around `think_time`.
        #[serde(default)]
        think_distribution: ThinkDistribution,
    },
    /// Replay of a timestamped request trace: requests leave at the trace's times.
    Trace {
        /// The trace file (relative to the experiment file).
        path: PathBuf,
        /// `mooncake` or `jsonl`.
        #[serde(default)]
        format: TraceFormat,
        /// Multiplies every gap: 2.0 replays at half speed, 0.5 at twice the speed.
        #[serde(default = "default_time_scale")]
        time_scale: f64,
        /// Tokens per `hash_ids` block (Mooncake: 512).
        #[serde(default = "default_block_size")]
        block_size: u32,
    },
    /// Agent sessions replayed from recorded traces (Weka: one JSON object per coding session,
    /// with sub-agents): each request's prompt is built from its `hash_ids` blocks, a session
    /// is the unit of concurrency, and a sub-agent runs beside its parent from where it forked.
    Agentic {
        /// A trace file, a directory of them (`*.json`), or a JSON Lines file of traces
        /// (relative to the experiment file).
        path: PathBuf,
        /// `weka`.
        #[serde(default)]
        format: AgenticFormat,
        /// The longest pause a session takes between requests (tool time and idle gaps as
        /// recorded, from the end of what the request waited for to its start); longer gaps
        /// are cut to it.
        #[serde(default = "default_max_gap")]
        max_gap: HumanDuration,
        /// Where each session starts in its main agent's requests, drawn uniformly per
        /// session as a share of them: `[0, 0]` (default) starts every session at its first
        /// request, `[0, 1]` anywhere, so a run does not begin with every context empty.
        #[serde(default = "default_start")]
        start: [f64; 2],
        /// Give each session's context a prefix of its own (a marker drawn per run), so two
        /// runs of one trace, or two plays of one trace in a run, share no cached prefix.
        #[serde(default)]
        cache_bust: bool,
        /// The share of requests whose context (input + output) may exceed
        /// `model.max_model_len` before the point is marked invalid (default 0: any).
        #[serde(default)]
        max_overflow_share: f64,
    },
}

/// What is done to the server's prefix cache before a point's measured window.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CachePhases {
    /// Empty the prefix cache first: vLLM `POST /reset_prefix_cache` (a development endpoint:
    /// the server must run with `VLLM_SERVER_DEV_MODE=1`), SGLang `POST /flush_cache`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flush: bool,
    /// Then send each shared prefix once (`shared_prefix`: every group's prefix), unmeasured,
    /// so the measured window starts from the cache the workload means.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prime: bool,
}

/// The file format of agent traces.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgenticFormat {
    /// The Weka KV-cache-tester format (AIPerf, inference-perf, SemiAnalysis AgentX):
    /// `{"id", "block_size", "hash_id_scope", "requests": [{"t", "type": "n"|"s", "in",
    /// "out", "hash_ids", "think_time"?, "api_time"?} | {"t", "type": "subagent", "requests",
    /// "status", "duration_ms"?, …}]}`.
    #[default]
    Weka,
}

fn default_max_gap() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_start() -> [f64; 2] {
    [0.0, 0.0]
}

/// How a ramp climbs to its target.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RampStrategy {
    /// The rate (or the number of open slots) rises by the same amount every second.
    #[default]
    Linear,
    /// It multiplies by the same factor every second (needs `from` > 0).
    Exponential,
}

/// A ramp from `from` to the workload's `rate` or `concurrency` over `over`, measured from the
/// timed window's start; the target holds afterwards.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// How long the climb takes, e.g. `30s`.
    pub over: HumanDuration,
    /// `linear` (default) or `exponential`.
    #[serde(default)]
    pub strategy: RampStrategy,
    /// Where it starts: requests per second for `rate` (default 0 for linear, 1 for
    /// exponential), sessions or requests in flight for closed loops (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
}

/// A count that is fixed or drawn uniformly from `[min, max]` per session: `3` or `[2, 6]`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum Count {
    Fixed(u32),
    Range([u32; 2]),
}

impl Count {
    /// `(min, max)`.
    pub fn bounds(self) -> (u32, u32) {
        match self {
            Self::Fixed(n) => (n, n),
            Self::Range([a, b]) => (a.min(b), a.max(b)),
        }
    }
}

/// The file format of recorded conversations.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConversationFormat {
    /// One `{"conversations": [{"from": "human"|"gpt", "value": …}, …]}` per line (or a JSON
    /// array of them, as ShareGPT ships).
    #[default]
    Sharegpt,
    /// One `{"messages": [{"role", "content"}, …]}` per line, with several user turns.
    Messages,
}

/// How think time between a session's turns is drawn.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ThinkDistribution {
    /// Exactly `think_time`.
    #[default]
    Constant,
    /// Exponential with mean `think_time` (a user who sometimes answers at once).
    Exponential,
    /// Uniform in `[0, 2·think_time]`.
    Uniform,
}

/// The file format of a request trace.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// Mooncake: `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`.
    #[default]
    Mooncake,
    /// `{"timestamp_ms", "messages": [...] | "prompt": "..." | "input_len", "output_len"}`.
    Jsonl,
}

fn default_block_size() -> u32 {
    512
}

fn default_time_scale() -> f64 {
    1.0
}

fn default_groups() -> u32 {
    8
}

impl Default for Dataset {
    fn default() -> Self {
        Self::Random {
            input_len: 256,
            output_len: 128,
            range_ratio: 0.0,
        }
    }
}

impl Dataset {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Random { .. } => "random",
            Self::Jsonl { .. } => "jsonl",
            Self::SharedPrefix { .. } => "shared_prefix",
            Self::Conversation { .. } => "conversation",
            Self::Trace { .. } => "trace",
            Self::Agentic { .. } => "agentic",
        }
    }
}

/// Sweep axes; every combination runs, on the same server.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sweep {
    /// Concurrency values, as a list or `{start, end, factor}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<SweepValues>,
    /// Request rates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate: Vec<f64>,
    /// Input/output length pairs, e.g. `1k1k`, `1k8k`, `8k1k`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seq_lens: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum SweepValues {
    List(Vec<u32>),
    Geometric(GeometricRange),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeometricRange {
    pub start: u32,
    pub end: u32,
    #[serde(default = "default_factor")]
    pub factor: u32,
}

fn default_factor() -> u32 {
    2
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// How often to scrape the server's Prometheus `/metrics`.
    pub scrape_interval: HumanDuration,
    /// Scrape the server's `/metrics` at all.
    pub scrape: bool,
    /// Percentiles reported for every latency (0 < p ≤ 100).
    pub percentiles: Vec<f64>,
    /// Service-level objectives; goodput counts requests meeting all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// The server's prefix-cache block in tokens, for the ideal hit rate of a workload built
    /// from blocks (traces, agent traces, `target_hit_rate`). Default: the server's own — vLLM
    /// says it in `/metrics` (`vllm:cache_config_info{block_size=…}`: 16 on GPUs, 128 on its
    /// CPU build) — else 16 for vLLM, 1 for SGLang's radix cache (`--page-size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_block_size: Option<u32>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            scrape_interval: HumanDuration::from_secs(1),
            scrape: true,
            percentiles: vec![50.0, 90.0, 95.0, 99.0],
            slo: None,
            cache_block_size: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Slo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2el_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// Per-request records with ITL summarised.
    #[default]
    Summary,
    /// Also every ITL gap of every request.
    Full,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Output {
    /// Directory result files land in (relative to the working directory).
    pub dir: PathBuf,
    /// `summary` or `full` (every ITL gap of every request).
    pub detail: Detail,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("results"),
            detail: Detail::Summary,
        }
    }
}

/// The longest prompt + answer (tokens) an experiment may ask for without
/// `model.max_model_len`: the largest context windows served in 2026 (10 M tokens). Past it a
/// length is a typo, and making such a prompt would take gigabytes before anything is sent.
pub const MAX_CONTEXT_TOKENS: u32 = 10_000_000;
