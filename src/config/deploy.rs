//! `deployments.matrix`: the experiment once per deployment. Each combination of one value per
//! axis is merged over the experiment (the `extends` rule: maps merge, the rest replaces),
//! decoded and checked like a file of its own, so a bad combination is found before anything
//! starts — and named.

use serde_json::{Map, Value};

use super::{merge, validate, ConfigError, Experiment, Issue, Resolved};

/// The most deployments one matrix may hold (each is a server to start).
pub const MAX_DEPLOYMENTS: usize = 256;

/// What a matrix value may change: what is deployed, never the load or the output.
const DEPLOYMENT_KEYS: [&str; 3] = ["model", "framework", "infrastructure"];

/// One deployment of a matrix: its name (value names joined by `-`) and its experiment.
pub struct Deployment {
    pub name: String,
    pub resolved: Resolved,
}

/// The matrix's deployments, in order (the first axis outermost); empty without `deployments`.
pub fn expand(r: &Resolved) -> Result<Vec<Deployment>, ConfigError> {
    let Some(d) = &r.experiment.deployments else {
        return Ok(Vec::new());
    };
    let mut issues = Vec::new();
    if d.max_parallel == 0 {
        issues.push(r.issue_at(
            "deployments.max_parallel",
            "must be at least 1 (how many deployments run at once)",
        ));
    }
    let axes = axes(r, &d.matrix, &mut issues);
    if !issues.is_empty() {
        return Err(ConfigError::invalid(issues));
    }
    let combos = combinations(&axes);
    if combos.len() > MAX_DEPLOYMENTS {
        return Err(ConfigError::invalid(vec![r.issue_at(
            "deployments.matrix",
            format!(
                "{} deployments: at most {MAX_DEPLOYMENTS} (each is a server to start); split the matrix",
                combos.len()
            ),
        )]));
    }
    let mut base = serde_json::to_value(&r.experiment).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut base {
        m.remove("deployments");
    }
    let mut out: Vec<Deployment> = Vec::new();
    for combo in combos {
        let name = combo
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("-");
        if out.iter().any(|x| x.name == name) {
            issues.push(r.issue_at(
                "deployments.matrix",
                format!("two combinations are both named `{name}`: rename a value so names stay distinct"),
            ));
            continue;
        }
        let mut v = base.clone();
        for (_, over) in &combo {
            merge(&mut v, over.clone());
        }
        match deployment(r, &name, v) {
            Ok(resolved) => out.push(Deployment { name, resolved }),
            Err(mut more) => issues.append(&mut more),
        }
    }
    match issues.is_empty() {
        true => Ok(out),
        false => Err(ConfigError::invalid(issues)),
    }
}

/// One combination decoded and checked; its problems are prefixed with its name.
fn deployment(r: &Resolved, name: &str, v: Value) -> Result<Resolved, Vec<Issue>> {
    let named = |path: String, message: String| Issue {
        source: format!("deployment `{name}`"),
        path,
        pos: None,
        message,
    };
    let e: Experiment = serde_path_to_error::deserialize(v).map_err(|err| {
        let path = err.path().to_string();
        vec![named(path, err.into_inner().to_string())]
    })?;
    let resolved = r.with_experiment(e);
    // The rest was checked on the experiment itself, with its file and line.
    let mut issues = validate::cross_field(&resolved);
    issues.retain(|i| varies(&i.path));
    if !issues.is_empty() {
        return Err(issues
            .into_iter()
            .map(|i| named(i.path, i.message))
            .collect());
    }
    Ok(resolved)
}

/// The axes with their values in the order they were written (the merged configuration keeps
/// keys sorted; the file that wrote the matrix says the order), each value checked.
fn axes(
    r: &Resolved,
    matrix: &Map<String, Value>,
    issues: &mut Vec<Issue>,
) -> Vec<Vec<(String, Value)>> {
    if matrix.is_empty() {
        issues.push(r.issue_at(
            "deployments.matrix",
            "needs at least one axis, e.g. `matrix: {engine: {vllm: {framework: {kind: vllm}}, sglang: {framework: {kind: sglang}}}}`",
        ));
    }
    let written = written_matrix(r);
    let mut out = Vec::new();
    for axis in ordered(matrix, written) {
        let path = format!("deployments.matrix.{axis}");
        let Some(Value::Object(values)) = matrix.get(&axis) else {
            issues.push(r.issue_at(&path, "an axis maps value names to what each changes, e.g. `h100: {infrastructure: {gpu_type: NVIDIA H100 80GB HBM3}}`"));
            continue;
        };
        if values.is_empty() {
            issues.push(r.issue_at(&path, "an axis needs at least one value"));
        }
        let written_values = written
            .and_then(|w| w.get(&axis))
            .and_then(Value::as_object);
        let mut axis_values = Vec::new();
        for name in ordered(values, written_values) {
            let vpath = format!("{path}.{name}");
            let over = values.get(&name).cloned().unwrap_or(Value::Null);
            if let Some(msg) = check_value(&name, &over) {
                issues.push(r.issue_at(&vpath, msg));
            }
            let over = match over {
                Value::Null => Value::Object(Map::new()),
                v => v,
            };
            axis_values.push((name, over));
        }
        out.push(axis_values);
    }
    out
}

/// Whether a key is one a deployment may change (so checked per deployment).
pub fn varies(path: &str) -> bool {
    DEPLOYMENT_KEYS
        .iter()
        .any(|k| path == *k || path.starts_with(&format!("{k}.")))
}

/// Why a matrix value cannot be used, if it cannot.
fn check_value(name: &str, over: &Value) -> Option<String> {
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok_name {
        return Some(format!(
            "`{name}` names deployments and result files: use letters, digits, `-`, `_`, `.`"
        ));
    }
    let map = match over {
        Value::Null => return None,
        Value::Object(m) => m,
        _ => return Some("a value is a map of what it changes, e.g. `{framework: {kind: sglang}}` (or `{}` for no change)".into()),
    };
    if let Some(k) = map.keys().find(|k| !DEPLOYMENT_KEYS.contains(&k.as_str())) {
        return Some(format!(
            "`{k}` cannot vary by deployment: a value changes only {} (every deployment runs the same load points)",
            DEPLOYMENT_KEYS.map(|k| format!("`{k}`")).join(", ")
        ));
    }
    let budget = map
        .get("infrastructure")
        .and_then(Value::as_object)
        .is_some_and(|i| i.contains_key("max_cost_usd"));
    budget.then(|| {
        "`infrastructure.max_cost_usd` is one budget for the whole matrix: set it at the top level, not per deployment".into()
    })
}

/// `deployments.matrix` as the last file that wrote it has it (keys in written order).
fn written_matrix(r: &Resolved) -> Option<&Map<String, Value>> {
    r.files
        .iter()
        .rev()
        .find_map(|f| f.value.get("deployments")?.get("matrix")?.as_object())
}

/// `merged`'s keys: those `written` has, in its order, then the rest.
fn ordered(merged: &Map<String, Value>, written: Option<&Map<String, Value>>) -> Vec<String> {
    let mut keys: Vec<String> = written
        .map(|w| {
            w.keys()
                .filter(|k| merged.contains_key(*k))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for k in merged.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// Every combination of one value per axis, the first axis outermost.
fn combinations(axes: &[Vec<(String, Value)>]) -> Vec<Vec<(String, Value)>> {
    let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                axis.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, LoadOptions, UserConfigSource};

    fn load_text(text: &str) -> Result<Resolved, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("exp.yaml");
        std::fs::write(&f, text).unwrap();
        let opts = LoadOptions {
            user_config: UserConfigSource::None,
            env: Some(Vec::new()),
            ..Default::default()
        };
        load(&f, &opts)
    }

    const BASE: &str = "name: m\nmodel: {id: x}\nworkload: {concurrency: 2, requests: 10}\n";

    #[test]
    fn the_matrix_expands_in_written_order_with_overlays_merged() {
        let r = load_text(&format!(
            "{BASE}infrastructure: {{gpu_count: 1, simulator: {{speed: 2.0}}}}\ndeployments:\n  max_parallel: 2\n  matrix:\n    profile:\n      h100: {{infrastructure: {{simulator: {{profile: h100-llama8b}}}}}}\n      a100: {{infrastructure: {{simulator: {{profile: a100-llama70b}}, gpu_count: 2}}}}\n    engine:\n      vllm: {{}}\n      sglang: {{framework: {{kind: sglang}}}}\n"
        ))
        .unwrap();
        let d = expand(&r).unwrap();
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["h100-vllm", "h100-sglang", "a100-vllm", "a100-sglang"]
        );
        let a = &d[3].resolved.experiment;
        assert_eq!(a.infrastructure.gpu_count, 2);
        // Maps merge: the base's speed stays beside the value's profile.
        assert_eq!(a.infrastructure.simulator.speed, 2.0);
        assert_eq!(a.framework.kind, crate::config::FrameworkKind::Sglang);
        assert!(a.deployments.is_none());
        assert_eq!(d[0].resolved.experiment.infrastructure.gpu_count, 1);
    }

    #[test]
    fn a_value_that_changes_the_load_or_the_budget_is_refused_where_it_is() {
        let err = load_text(&format!(
            "{BASE}deployments:\n  matrix:\n    a:\n      x: {{workload: {{concurrency: 4}}}}\n      y: {{infrastructure: {{max_cost_usd: 3}}}}\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("`workload` cannot vary by deployment"),
            "{err}"
        );
        assert!(err.contains("one budget for the whole matrix"), "{err}");
        assert!(err.contains("deployments.matrix.a.x"), "{err}");
    }

    #[test]
    fn a_bad_combination_is_named() {
        let err = load_text(&format!(
            "{BASE}deployments:\n  matrix:\n    gpu:\n      ok: {{}}\n      bad: {{infrastructure: {{gpu_count: 0, gpu_typ: H100}}}}\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("deployment `bad`"), "{err}");
        assert!(err.contains("gpu_typ"), "{err}");
        assert!(!err.contains("deployment `ok`"), "{err}");
    }

    #[test]
    fn what_a_matrix_supplies_need_not_be_in_the_experiment() {
        let r = load_text(&format!(
            "{BASE}infrastructure: {{provider: runpod}}\nframework: {{image: img:1}}\ndeployments:\n  matrix:\n    gpu:\n      h100: {{infrastructure: {{gpu_type: NVIDIA H100 80GB HBM3}}}}\n"
        ))
        .unwrap();
        assert_eq!(expand(&r).unwrap().len(), 1);
        let err = load_text(&format!(
            "{BASE}infrastructure: {{provider: runpod}}\nframework: {{image: img:1}}\ndeployments:\n  matrix:\n    gpu:\n      h100: {{infrastructure: {{gpu_type: NVIDIA H100 80GB HBM3}}}}\n      none: {{}}\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("deployment `none`") && err.contains("gpu_type"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_matrix_and_no_parallelism_are_refused() {
        let err = load_text(&format!("{BASE}deployments: {{max_parallel: 0}}\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("at least one axis"), "{err}");
        assert!(err.contains("max_parallel"), "{err}");
    }
}
