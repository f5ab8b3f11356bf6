//! Experiment configuration: the schema types, `extends` chains, layering (built-in defaults <
//! user config < experiment chain < `LLM_INF_BENCH_*` environment < `--set`), and validation
//! that names the file, key path, line and column of every problem, all at once.

pub mod check;
pub mod deploy;
pub mod duration;
pub mod evals;
pub mod gpus;
pub mod load;
pub mod locate;
pub mod schema;
pub mod secret;
pub mod sessions;
pub mod site;
mod validate;
pub use validate::parse_seq_len;

use std::fmt;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Deserialize;
use serde_json::Value;

pub use duration::HumanDuration;
pub use evals::{EvalApi, EvalDeployments, EvalTask, Evals, Extract, ExtractRule, LmEvalTask};
pub use load::{Load, Pace, Points};
pub use locate::{Locator, Pos};
pub use schema::*;
pub use secret::Secret;
pub use site::{ExistingSite, RunPodSite, Site};

use check::SchemaChecker;

/// Environment variables with this prefix override experiment keys; `__` separates levels:
/// `LLM_INF_BENCH_WORKLOAD__CONCURRENCY=8` sets `workload.concurrency`.
pub const ENV_PREFIX: &str = "LLM_INF_BENCH_";
/// Points at a user config file instead of the default location.
pub const ENV_USER_CONFIG: &str = "LLM_INF_BENCH_CONFIG";
/// Variables with the prefix that are not experiment keys.
const ENV_RESERVED: &[&str] = &[
    "LLM_INF_BENCH_CONFIG",
    "LLM_INF_BENCH_LOG",
    "LLM_INF_BENCH_STATE_DIR",
    "LLM_INF_BENCH_VAST_PACE",
];

/// One problem in the configuration, located as precisely as the layer allows.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    /// The file (or `environment` / `--set` / `built-in default`) that set the value.
    pub source: String,
    /// Dotted key path, e.g. `workload.dataset.input_len`.
    pub path: String,
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: ", self.source, p.line, p.column)?,
            None => write!(f, "{}: ", self.source)?,
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: crate::files::FileError,
    },
    #[error("{}{}: invalid YAML: {message}", path.display(), pos.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default())]
    Yaml {
        path: PathBuf,
        pos: Option<Pos>,
        message: String,
    },
    #[error("`extends` cycle: {}", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" → "))]
    Cycle { chain: Vec<PathBuf> },
    #[error("{}{}: `extends` names {}, which does not exist (paths are relative to the file that names them)",
        child.display(), pos.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default(), parent.display())]
    MissingParent {
        child: PathBuf,
        pos: Option<Pos>,
        parent: PathBuf,
    },
    #[error("{} problem{} in the configuration:\n{}", issues.len(), if issues.len() == 1 { "" } else { "s" },
        issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid { issues: Vec<Issue> },
    #[error("`--set {0}`: expected `key.path=value`, e.g. `--set workload.concurrency=8`")]
    BadSet(String),
}

impl ConfigError {
    /// Every issue at once, ordered by file and line.
    fn invalid(mut issues: Vec<Issue>) -> Self {
        issues.sort_by(|a, b| {
            (&a.source, a.pos.map(|p| p.line)).cmp(&(&b.source, b.pos.map(|p| p.line)))
        });
        Self::Invalid { issues }
    }
}

/// One file of an `extends` chain, parsed.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub locator: Locator,
    /// The file's content without `extends`.
    pub value: Value,
}

/// Keys that may live in the user config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    pub api_keys: ApiKeys,
    /// Experiment keys applied before any experiment file (e.g. `output.dir`).
    pub defaults: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeys {
    pub runpod: Option<Secret>,
    /// Vast.ai (else `$VAST_API_KEY`).
    pub vast: Option<Secret>,
    pub huggingface: Option<Secret>,
    pub openai: Option<Secret>,
}

/// Where the user config comes from.
#[derive(Clone, Debug, Default)]
pub enum UserConfigSource {
    /// `$LLM_INF_BENCH_CONFIG`, else the platform config dir, plus the legacy `~/.llm-inf-bench/`.
    #[default]
    Auto,
    Path(PathBuf),
    None,
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `key.path=value` overrides, in order.
    pub sets: Vec<String>,
    pub user_config: UserConfigSource,
    /// The environment to read `LLM_INF_BENCH_*` from (`None`: the process environment).
    pub env: Option<Vec<(String, String)>>,
}

/// A fully resolved, validated experiment and where each of its values came from.
pub struct Resolved {
    pub experiment: Experiment,
    /// The chain, root parent first, the named file last.
    pub files: Vec<SourceFile>,
    pub user: UserConfig,
    pub user_config_paths: Vec<PathBuf>,
    /// Non-fatal findings (e.g. a user config readable by others).
    pub warnings: Vec<String>,
    figment: Figment,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("experiment", &self.experiment)
            .field(
                "files",
                &self.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// The same layers with another experiment (a deployment of a matrix).
    pub fn with_experiment(&self, experiment: Experiment) -> Resolved {
        Resolved {
            experiment,
            files: self.files.clone(),
            user: self.user.clone(),
            user_config_paths: self.user_config_paths.clone(),
            warnings: self.warnings.clone(),
            figment: self.figment.clone(),
        }
    }

    /// Which layer set `path` (a file path, `environment`, `--set`, `user config` or `built-in default`).
    pub fn provenance(&self, path: &str) -> String {
        match self.figment.find_metadata(path) {
            Some(m) => describe_metadata(m),
            None => "built-in default".into(),
        }
    }

    fn source_file(&self, path: &str) -> Option<&SourceFile> {
        // figment finds keys, not list items: an item (and any key in it) comes from the layer
        // that set its list (lists replace, never merge).
        let path = path.split('[').next().unwrap_or(path);
        let meta = self.figment.find_metadata(path)?;
        match &meta.source {
            Some(Source::File(p)) => self.files.iter().find(|f| &f.path == p),
            _ => None,
        }
    }

    /// Resolves a relative path set at `key` against the directory of the file that set it
    /// (the working directory for the environment and `--set`).
    pub fn resolve_path(&self, key: &str, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.source_file(key).and_then(|f| f.path.parent()) {
            Some(dir) => dir.join(p),
            None => p.to_path_buf(),
        }
    }

    /// An issue at `path`, located in the layer that set it.
    pub fn issue_at(&self, path: &str, message: impl Into<String>) -> Issue {
        let (source, pos) = match self.source_file(path) {
            Some(f) => (f.path.display().to_string(), f.locator.find(path)),
            None => (self.provenance(path), None),
        };
        Issue {
            source,
            path: path.into(),
            pos,
            message: message.into(),
        }
    }

    /// The resolved experiment as YAML, each leaf annotated with the layer it came from.
    pub fn annotated_yaml(&self) -> String {
        // As result files show it: `framework.env` values are secrets (HF_TOKEN, keys).
        let value = redacted(&self.experiment);
        let mut out = String::new();
        self.annotate(&value, "", 0, &mut out);
        out
    }

    fn annotate(&self, value: &Value, path: &str, indent: usize, out: &mut String) {
        let Value::Object(map) = value else { return };
        for (k, v) in map {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let pad = " ".repeat(indent);
            match v {
                Value::Object(m) if !m.is_empty() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    self.annotate(v, &child, indent + 2, out);
                }
                _ => {
                    let shown = serde_json::to_string(v).unwrap_or_default();
                    let origin = match self.source_file(&child) {
                        Some(f) => match f.locator.exact(&child) {
                            Some(p) => format!("{}:{}", f.path.display(), p.line),
                            None => f.path.display().to_string(),
                        },
                        None => self.provenance(&child),
                    };
                    out.push_str(&format!("{pad}{k}: {shown}  # {origin}\n"));
                }
            }
        }
    }
}

/// `e` as JSON with every `framework.env` value replaced by `<redacted>`: what result files,
/// indexes and `config show` print (the names stay, so a reader sees what was set).
pub fn redacted(e: &Experiment) -> Value {
    let mut config = serde_json::to_value(e).unwrap_or_default();
    if let Some(m) = config
        .pointer_mut("/framework/env")
        .and_then(|v| v.as_object_mut())
    {
        for v in m.values_mut() {
            *v = "<redacted>".into();
        }
    }
    config
}

fn describe_metadata(m: &Metadata) -> String {
    match &m.source {
        Some(Source::File(p)) => p.display().to_string(),
        _ => m.name.to_string(),
    }
}

/// A configuration layer handed to figment, carrying its own provenance.
struct Layer {
    name: String,
    file: Option<PathBuf>,
    value: Value,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let m = Metadata::named(self.name.clone());
        match &self.file {
            Some(p) => m.source(Source::File(p.clone())),
            None => m,
        }
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.value).data()
    }
}

/// Reads a YAML file into JSON values (so one checker and one merge serve every layer).
fn read_yaml(path: &Path) -> Result<(String, Value), ConfigError> {
    let max = crate::files::MAX_EXPERIMENT_BYTES;
    let text = crate::files::read_text(path, max, "an experiment file").map_err(|source| {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    // The YAML parser takes time quadratic in flow nesting (100 000 `[` took 20 s to refuse):
    // refused here, in one pass, first.
    if let Some((line, column)) = too_deep(&text, MAX_FLOW_NESTING) {
        return Err(ConfigError::Yaml {
            path: path.to_path_buf(),
            pos: Some(Pos { line, column }),
            message: format!(
                "`[` / `{{` nested more than {MAX_FLOW_NESTING} deep; an experiment needs a few levels"
            ),
        });
    }
    let value: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_yaml::from_str(&text).map_err(|e| ConfigError::Yaml {
            path: path.to_path_buf(),
            pos: e.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            }),
            message: e.to_string(),
        })?
    };
    Ok((text, value))
}

/// Whether `url`'s authority carries `user[:password]@` (refused, and never echoed: the part
/// before `@` may be a password).
pub fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.contains('@')
}

/// YAML's quotes and braces, as escapes: a quote or a brace in a character literal confuses
/// the line-based readers of this code (the function-length check counts braces).
const QUOTE: char = '\u{22}';
const APOSTROPHE: char = '\u{27}';
const BRACE_OPEN: char = '\u{7b}';
const BRACE_CLOSE: char = '\u{7d}';

/// How deep `[` / `{` may nest in an experiment file.
pub const MAX_FLOW_NESTING: usize = 64;

/// Where (line, column, from 1) flow collections first nest deeper than `max`, if they do.
/// Quoted text and comments are skipped; outside a flow collection a bracket counts only where a
/// value starts (after `:`, `-`, or at the start of a line), as YAML reads it.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        // The last character that was not whitespace, on this line.
        let mut sig: Option<char> = None;
        let mut spaced = true;
        for (j, c) in line.chars().enumerate() {
            let value_starts =
                sig.is_none() || matches!(sig, Some(':' | '-' | '[' | BRACE_OPEN | ','));
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, QUOTE | APOSTROPHE) if value_starts => quote = Some(c),
                (None, '#') if spaced => break,
                (None, '[' | BRACE_OPEN) if depth > 0 || value_starts => {
                    depth += 1;
                    if depth > max {
                        return Some((i + 1, j + 1));
                    }
                }
                (None, ']' | BRACE_CLOSE) if depth > 0 => depth -= 1,
                _ => {}
            }
            spaced = c.is_whitespace();
            if !spaced {
                sig = Some(c);
            }
        }
    }
    None
}

/// Follows `extends` from `path` to the root; returns the chain root first.
pub fn load_chain(path: &Path) -> Result<Vec<SourceFile>, ConfigError> {
    let mut chain: Vec<SourceFile> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut next = Some((path.to_path_buf(), None::<(PathBuf, Option<Pos>)>));
    while let Some((p, named_by)) = next.take() {
        if !p.exists() {
            return Err(match named_by {
                Some((child, pos)) => ConfigError::MissingParent {
                    child,
                    pos,
                    parent: p,
                },
                None => ConfigError::Io {
                    path: p,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
                        .into(),
                },
            });
        }
        let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.contains(&canon) {
            let mut cycle: Vec<PathBuf> = chain.iter().map(|f| f.path.clone()).collect();
            cycle.push(p);
            return Err(ConfigError::Cycle { chain: cycle });
        }
        seen.push(canon);
        let (text, mut value) = read_yaml(&p)?;
        let locator = Locator::new(&text);
        if !value.is_object() {
            return Err(ConfigError::Invalid {
                issues: vec![Issue {
                    source: p.display().to_string(),
                    path: String::new(),
                    pos: Some(Pos { line: 1, column: 1 }),
                    message:
                        "an experiment file must be a mapping of keys (name:, model:, workload: …)"
                            .into(),
                }],
            });
        }
        let extends = value.as_object_mut().and_then(|m| m.remove("extends"));
        match extends {
            Some(Value::String(parent)) => {
                let dir = p.parent().unwrap_or(Path::new("."));
                next = Some((
                    normalize(&dir.join(parent)),
                    Some((p.clone(), locator.exact("extends"))),
                ));
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                return Err(ConfigError::Invalid {
                    issues: vec![Issue {
                        source: p.display().to_string(),
                        path: "extends".into(),
                        pos: locator.exact("extends"),
                        message: format!("expected a file path, found {other}"),
                    }],
                })
            }
        }
        chain.push(SourceFile {
            path: p,
            locator,
            value,
        });
    }
    chain.reverse();
    Ok(chain)
}

/// Removes `.` and `dir/..` lexically so chains print as people write paths.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// What `validate` found a file to be.
pub enum Validated {
    /// A base (a fragment for `extends`: no file of its chain names the experiment), checked
    /// key by key and type by type; the chain, root first.
    Base(Vec<PathBuf>),
    /// A complete experiment, fully resolved and validated.
    Complete(Box<Resolved>),
}

/// Checks every file of a chain on its own, so each issue has its file's line and column.
fn check_chain(checker: &SchemaChecker, files: &[SourceFile], issues: &mut Vec<Issue>) {
    for f in files {
        checker.check_into(
            &f.value,
            &f.path.display().to_string(),
            Some(&f.locator),
            "",
            issues,
        );
    }
}

/// Validates a file, reading its `extends` chain once: a base is checked key by key and type
/// by type; a complete experiment is loaded as `run` would load it.
pub fn validate_file(path: &Path, opts: &LoadOptions) -> Result<Validated, ConfigError> {
    let files = load_chain(path)?;
    if files.iter().any(|f| f.value.get("name").is_some()) {
        return load_files(files, opts).map(|r| Validated::Complete(Box::new(r)));
    }
    let mut issues = Vec::new();
    check_chain(&SchemaChecker::for_experiment(), &files, &mut issues);
    if issues.is_empty() {
        Ok(Validated::Base(files.into_iter().map(|f| f.path).collect()))
    } else {
        Err(ConfigError::Invalid { issues })
    }
}

/// Turns `a.b.c=value` into `{a: {b: {c: value}}}`; the value is read as YAML (`8`, `true`, `[1, 2]`).
fn parse_set(s: &str) -> Result<(String, Value), ConfigError> {
    let (key, raw) = s
        .split_once('=')
        .ok_or_else(|| ConfigError::BadSet(s.into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(ConfigError::BadSet(s.into()));
    }
    let value: Value = serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let value =
        if value.is_null() && !raw.trim().is_empty() && raw.trim() != "null" && raw.trim() != "~" {
            Value::String(raw.into())
        } else {
            value
        };
    Ok((key.to_string(), value))
}

fn nest(key: &str, value: Value) -> Value {
    key.rsplit('.').fold(value, |acc, k| {
        let mut m = serde_json::Map::new();
        m.insert(k.to_string(), acc);
        Value::Object(m)
    })
}

/// Deep merge with the experiment semantics: maps merge, everything else replaces.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A `kind`-tagged map (the dataset) whose `kind` changes in a later layer replaces the earlier
/// one instead of merging into it: a JSONL dataset must not inherit `input_len` from a random one.
fn reset_retagged(layers: &mut [Layer]) {
    let mut merged = Value::Object(Default::default());
    for i in 0..layers.len() {
        let mut retagged = Vec::new();
        collect_retagged(&merged, &layers[i].value, "", &mut retagged);
        for path in &retagged {
            for earlier in layers[..i].iter_mut() {
                remove_path(&mut earlier.value, path);
            }
            remove_path(&mut merged, path);
        }
        merge(&mut merged, layers[i].value.clone());
    }
}

fn collect_retagged(base: &Value, over: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(b), Value::Object(o)) = (base, over) else {
        return;
    };
    if let (Some(bk), Some(ok)) = (b.get("kind"), o.get("kind")) {
        if bk != ok {
            out.push(path.to_string());
            return;
        }
    }
    for (k, v) in o {
        if let Some(bv) = b.get(k) {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            collect_retagged(bv, v, &child, out);
        }
    }
}

fn remove_path(v: &mut Value, path: &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = v;
    for p in parts {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Where the tool keeps state between runs (markers of pods that may still be billing, results
/// that could not go where they belonged): `$LLM_INF_BENCH_STATE_DIR`, else the user's state
/// directory (`~/.local/state/llm-inf-bench` on Linux).
pub fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LLM_INF_BENCH_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let p = directories::ProjectDirs::from("", "", "llm-inf-bench")?;
    Some(
        p.state_dir()
            .unwrap_or_else(|| p.data_local_dir())
            .to_path_buf(),
    )
}

fn default_user_config_paths() -> Vec<PathBuf> {
    if let Ok(p) = std::env::var(ENV_USER_CONFIG) {
        if !p.is_empty() {
            return vec![PathBuf::from(p)];
        }
    }
    let mut out = Vec::new();
    if let Some(home) = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()) {
        out.push(home.join(".llm-inf-bench").join("config.yaml"));
    }
    if let Some(dirs) = directories::ProjectDirs::from("", "", "llm-inf-bench") {
        out.push(dirs.config_dir().join("config.yaml"));
    }
    out
}

impl ApiKeys {
    /// Takes the keys `later` sets (a later file wins).
    fn absorb(&mut self, later: ApiKeys) {
        let ApiKeys {
            runpod,
            vast,
            huggingface,
            openai,
        } = later;
        self.runpod = runpod.or(self.runpod.take());
        self.vast = vast.or(self.vast.take());
        self.huggingface = huggingface.or(self.huggingface.take());
        self.openai = openai.or(self.openai.take());
    }
}

/// The user config alone (for commands without an experiment, such as `pods`): its API keys,
/// later files winning, with the same permission warning as `load`.
pub fn load_user_config() -> Result<UserConfig, ConfigError> {
    let mut user = UserConfig::default();
    for p in default_user_config_paths().iter().filter(|p| p.exists()) {
        let mut warnings = Vec::new();
        check_permissions(p, &mut warnings);
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let (_, value) = read_yaml(p)?;
        let u: UserConfig = serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
            issues: vec![Issue {
                source: p.display().to_string(),
                path: String::new(),
                pos: None,
                message: e.to_string(),
            }],
        })?;
        user.api_keys.absorb(u.api_keys);
    }
    Ok(user)
}

/// Where `init` and the docs say the user config lives on this machine.
pub fn user_config_path() -> Option<PathBuf> {
    default_user_config_paths().pop()
}

fn check_permissions(path: &Path, warnings: &mut Vec<String>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                warnings.push(format!(
                    "{} is readable by group or others (mode {:o}) and may hold API keys; run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ));
            }
        }
    }
}

/// Loads, layers and validates an experiment. Every problem is reported at once.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Resolved, ConfigError> {
    load_files(load_chain(path)?, opts)
}

/// [`load`] for a chain already read by [`load_chain`].
fn load_files(files: Vec<SourceFile>, opts: &LoadOptions) -> Result<Resolved, ConfigError> {
    let checker = SchemaChecker::for_experiment();
    let mut issues: Vec<Issue> = Vec::new();
    let mut warnings = Vec::new();
    let mut layers: Vec<Layer> = vec![Layer {
        name: "built-in default".into(),
        file: None,
        value: serde_json::to_value(Experiment::default()).unwrap_or(Value::Null),
    }];
    let (user, user_config_paths) =
        user_layers(opts, &checker, &mut layers, &mut issues, &mut warnings)?;
    // The experiment chain: each file checked on its own, so positions are exact.
    check_chain(&checker, &files, &mut issues);
    for f in &files {
        layers.push(Layer {
            name: f.path.display().to_string(),
            file: Some(f.path.clone()),
            value: f.value.clone(),
        });
    }
    override_layers(opts, &checker, &mut layers, &mut issues)?;
    if !issues.is_empty() {
        return Err(ConfigError::invalid(issues));
    }
    reset_retagged(&mut layers);
    let figment = layers.into_iter().fold(Figment::new(), |f, l| f.merge(l));
    let experiment: Experiment = figment.extract().map_err(|errors| ConfigError::Invalid {
        issues: located(errors, &files),
    })?;
    let resolved = Resolved {
        experiment,
        files,
        user,
        user_config_paths,
        warnings,
        figment,
    };
    let mut issues = validate::cross_field(&resolved);
    // What a deployment may change is checked per deployment (a matrix may supply the GPU).
    if resolved.experiment.deployments.is_some() {
        issues.retain(|i| !deploy::varies(&i.path));
    }
    if !issues.is_empty() {
        return Err(ConfigError::invalid(issues));
    }
    // Every deployment of a matrix is checked as the experiment is.
    let deployments = deploy::expand(&resolved)?;
    let mut resolved = resolved;
    stray_warnings(&mut resolved, &deployments);
    Ok(resolved)
}

/// A warning for each `infrastructure` key no provider of the run reads (a matrix's: any of
/// its deployments'), at the line that wrote it.
fn stray_warnings(r: &mut Resolved, deployments: &[deploy::Deployment]) {
    let mut providers: Vec<ProviderKind> = deployments
        .iter()
        .map(|d| d.resolved.experiment.infrastructure.provider)
        .collect();
    if providers.is_empty() {
        providers.push(r.experiment.infrastructure.provider);
    }
    providers.sort_by_key(|p| p.as_str());
    providers.dedup();
    for (path, message) in r.experiment.infrastructure.strays(&providers) {
        let issue = r.issue_at(&path, message);
        r.warnings.push(issue.to_string());
    }
}

/// The user config's layer (its `defaults:`) and keys; the files it was read from.
fn user_layers(
    opts: &LoadOptions,
    checker: &SchemaChecker,
    layers: &mut Vec<Layer>,
    issues: &mut Vec<Issue>,
    warnings: &mut Vec<String>,
) -> Result<(UserConfig, Vec<PathBuf>), ConfigError> {
    let user_paths = match &opts.user_config {
        UserConfigSource::Auto => default_user_config_paths(),
        UserConfigSource::Path(p) => vec![p.clone()],
        UserConfigSource::None => vec![],
    };
    let mut user = UserConfig::default();
    let mut user_config_paths = Vec::new();
    for p in user_paths.iter().filter(|p| p.exists()) {
        check_permissions(p, warnings);
        let (text, value) = read_yaml(p)?;
        let locator = Locator::new(&text);
        match serde_json::from_value::<UserConfig>(value) {
            Ok(u) => {
                if let Some(d) = &u.defaults {
                    checker.check_into(d, &p.display().to_string(), Some(&locator), "defaults", issues);
                    layers.push(Layer {
                        name: format!("user config {}", p.display()),
                        file: None,
                        value: d.clone(),
                    });
                }
                user.api_keys.absorb(u.api_keys);
                user_config_paths.push(p.clone());
            }
            Err(e) => issues.push(Issue {
                source: p.display().to_string(),
                path: String::new(),
                pos: None,
                message: format!("{e}; a user config has `api_keys: {{runpod, vast, huggingface, openai}}` and `defaults:` (experiment keys)"),
            }),
        }
    }
    Ok((user, user_config_paths))
}

/// The layers above the files: `LLM_INF_BENCH_*` environment variables, then `--set` flags.
fn override_layers(
    opts: &LoadOptions,
    checker: &SchemaChecker,
    layers: &mut Vec<Layer>,
    issues: &mut Vec<Issue>,
) -> Result<(), ConfigError> {
    let env: Vec<(String, String)> = match &opts.env {
        Some(e) => e.clone(),
        None => std::env::vars().collect(),
    };
    let mut env_vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_RESERVED.contains(&k.as_str()))
        .collect();
    env_vars.sort();
    for (k, v) in env_vars {
        let key = k[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
        let (key, value) = parse_set(&format!("{key}={v}"))?;
        let value = nest(&key, value);
        let name = format!("environment variable {k}");
        checker.check_into(&value, &name, None, "", issues);
        layers.push(Layer {
            name,
            file: None,
            value,
        });
    }
    for s in &opts.sets {
        let (key, value) = parse_set(s)?;
        let value = nest(&key, value);
        checker.check_into(&value, &format!("--set {s}"), None, "", issues);
        layers.push(Layer {
            name: format!("--set {key}"),
            file: None,
            value,
        });
    }
    Ok(())
}

/// figment's errors on the merged experiment, each with the file (and line) that set it.
fn located(errors: figment::Error, files: &[SourceFile]) -> Vec<Issue> {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let (source, pos) = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(Source::File(p)) => (
                    p.display().to_string(),
                    files
                        .iter()
                        .find(|f| &f.path == p)
                        .and_then(|f| f.locator.find(&key)),
                ),
                _ => (
                    e.metadata
                        .as_ref()
                        .map(describe_metadata)
                        .unwrap_or_else(|| "merged configuration".into()),
                    None,
                ),
            };
            Issue {
                source,
                path: key,
                pos,
                message: e.kind.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_maps_deeply_and_replaces_lists() {
        let mut a = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut a, serde_json::json!({"a": {"c": [3]}, "e": 2}));
        assert_eq!(
            a,
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": 1, "e": 2})
        );
    }

    #[test]
    fn set_values_are_read_as_yaml() {
        assert_eq!(
            parse_set("a.b=8").unwrap(),
            ("a.b".into(), serde_json::json!(8))
        );
        assert_eq!(parse_set("a=true").unwrap().1, serde_json::json!(true));
        assert_eq!(parse_set("a=[1, 2]").unwrap().1, serde_json::json!([1, 2]));
        assert_eq!(parse_set("a=10m").unwrap().1, serde_json::json!("10m"));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("a..b=1").is_err());
    }
}
