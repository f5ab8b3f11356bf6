//! Checks one layer of configuration (a single file, the environment, `--set` flags) against the
//! JSON Schema generated from the Rust types, reporting *every* unknown key and wrong type at
//! once. A layer may be partial (a base file for `extends`), so "missing" is never an error
//! here; required keys are checked after the merge.

use serde_json::Value;

/// One problem found in a layer, with its key path (`workload.dataset.input_len`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerIssue {
    pub path: String,
    pub message: String,
}

pub struct SchemaChecker {
    root: Value,
}

impl SchemaChecker {
    pub fn new(root: Value) -> Self {
        Self { root }
    }

    pub fn for_experiment() -> Self {
        let schema = schemars::schema_for!(super::schema::Experiment);
        Self::new(serde_json::to_value(schema).unwrap_or(Value::Null))
    }

    pub fn check(&self, value: &Value) -> Vec<LayerIssue> {
        let mut out = Vec::new();
        self.walk(value, &self.root, "", &mut out);
        out
    }

    /// Checks one layer and appends its issues to `out`, located in `source`: `prefix` is where
    /// the layer sits in its file (`defaults` in the user config), `locator` finds lines.
    pub fn check_into(
        &self,
        value: &Value,
        source: &str,
        locator: Option<&super::Locator>,
        prefix: &str,
        out: &mut Vec<super::Issue>,
    ) {
        for i in self.check(value) {
            let path = if prefix.is_empty() {
                i.path
            } else {
                format!("{prefix}.{}", i.path)
            };
            out.push(super::Issue {
                source: source.to_string(),
                pos: locator.and_then(|l| l.find(&path)),
                path,
                message: i.message,
            });
        }
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let name = r.rsplit('/').next().unwrap_or_default();
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    fn walk(&self, value: &Value, schema: &Value, path: &str, out: &mut Vec<LayerIssue>) {
        let schema = self.resolve(schema);
        if schema.as_bool() == Some(true) {
            return;
        }
        if schema.get("format").and_then(Value::as_str) == Some("duration") {
            let bad = match value {
                Value::String(s) => super::duration::parse_duration(s).err(),
                Value::Number(n) if n.as_f64().is_some_and(|x| x >= 0.0) => None,
                other => Some(format!(
                    "expected a duration such as `30s`, `10m`, `500ms`, found {}",
                    show(other)
                )),
            };
            if let Some(message) = bad {
                out.push(LayerIssue {
                    path: path.into(),
                    message,
                });
            }
            return;
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(branches) = branches {
            return self.walk_branches(value, branches, path, out);
        }
        if !type_matches(schema, value) {
            out.push(LayerIssue {
                path: path.to_string(),
                message: format!("expected {}, found {}", describe(schema), show(value)),
            });
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                out.push(enum_issue(path, value, allowed));
            }
            return;
        }
        if let Some(c) = schema.get("const") {
            if c != value {
                out.push(LayerIssue {
                    path: path.into(),
                    message: format!("expected {}, found {}", show(c), show(value)),
                });
            }
            return;
        }
        match value {
            Value::Object(map) => self.walk_object(map, schema, path, out),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.walk(v, item_schema, &format!("{path}[{i}]"), out);
                    }
                }
            }
            Value::Number(n) => bounds(n, schema, path, out),
            _ => {}
        }
    }

    /// An object's keys: each against its property's schema, or unknown.
    fn walk_object(
        &self,
        map: &serde_json::Map<String, Value>,
        schema: &Value,
        path: &str,
        out: &mut Vec<LayerIssue>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (k, v) in map {
            let child = join(path, k);
            match props.and_then(|p| p.get(k)) {
                Some(s) => self.walk(v, s, &child, out),
                None => match extra {
                    Some(Value::Bool(false)) | None if props.is_some() => {
                        out.push(unknown_key(&child, k, props))
                    }
                    Some(s) if s.is_object() => self.walk(v, s, &child, out),
                    _ => {}
                },
            }
        }
    }

    /// `anyOf`/`oneOf`: Option<T>, untagged enums and `kind`-tagged enums.
    fn walk_branches(
        &self,
        value: &Value,
        branches: &[Value],
        path: &str,
        out: &mut Vec<LayerIssue>,
    ) {
        // Enums whose variants carry docs come out as one `const` branch per variant (those
        // without docs together in one `enum` branch): every value of every branch is valid.
        let consts: Option<Vec<Vec<Value>>> = branches
            .iter()
            .map(|b| {
                let b = self.resolve(b);
                match (b.get("const"), b.get("enum").and_then(Value::as_array)) {
                    (Some(c), _) => Some(vec![c.clone()]),
                    (None, Some(e)) => Some(e.clone()),
                    (None, None) => None,
                }
            })
            .collect();
        if let Some(allowed) = consts.map(|c| c.concat()) {
            if !allowed.contains(value) {
                out.push(enum_issue(path, value, &allowed));
            }
            return;
        }
        // A `kind`-tagged object picks its branch by `kind`; without `kind` (a partial layer
        // that only overrides some fields) every key of any branch is acceptable.
        let tagged: Vec<(&str, &Value)> = branches
            .iter()
            .map(|b| self.resolve(b))
            .filter_map(|b| {
                let k = b.pointer("/properties/kind")?;
                let k = self.resolve(k);
                let tag = k
                    .get("const")
                    .and_then(Value::as_str)
                    .or_else(|| k.get("enum")?.as_array()?.first()?.as_str())?;
                Some((tag, b))
            })
            .collect();
        if let (false, Value::Object(map)) = (tagged.is_empty(), value) {
            return self.walk_tagged(value, map, &tagged, path, out);
        }
        self.walk_any_branch(value, branches, path, out);
    }

    /// A `kind`-tagged object: the branch of its `kind`, or — without one — each key against
    /// the branch that has it.
    fn walk_tagged(
        &self,
        value: &Value,
        map: &serde_json::Map<String, Value>,
        tagged: &[(&str, &Value)],
        path: &str,
        out: &mut Vec<LayerIssue>,
    ) {
        match map.get("kind") {
            Some(Value::String(kind)) => match tagged.iter().find(|(t, _)| t == kind) {
                Some((_, b)) => self.walk(value, b, path, out),
                None => {
                    let allowed: Vec<Value> = tagged.iter().map(|(t, _)| Value::from(*t)).collect();
                    let kind = Value::from(kind.as_str());
                    out.push(enum_issue(&join(path, "kind"), &kind, &allowed));
                }
            },
            Some(other) => out.push(LayerIssue {
                path: join(path, "kind"),
                message: format!("expected a string, found {}", show(other)),
            }),
            None => {
                for (k, v) in map {
                    let child = join(path, k);
                    let hit = tagged
                        .iter()
                        .find_map(|(_, b)| b.pointer(&format!("/properties/{k}")));
                    match hit {
                        Some(s) => self.walk(v, s, &child, out),
                        None => {
                            let mut all = serde_json::Map::new();
                            for (_, b) in tagged {
                                if let Some(p) = b.get("properties").and_then(Value::as_object) {
                                    all.extend(p.clone());
                                }
                            }
                            out.push(unknown_key(&child, k, Some(&all)));
                        }
                    }
                }
            }
        }
    }

    /// The first branch `value` fits; else the issues of the branch whose type matched.
    fn walk_any_branch(
        &self,
        value: &Value,
        branches: &[Value],
        path: &str,
        out: &mut Vec<LayerIssue>,
    ) {
        let mut best: Option<Vec<LayerIssue>> = None;
        for b in branches {
            let mut issues = Vec::new();
            self.walk(value, b, path, &mut issues);
            if issues.is_empty() {
                return;
            }
            // Prefer the branch whose type matched (its issues are deeper and more useful).
            let typed = type_matches(self.resolve(b), value);
            if typed
                && best
                    .as_ref()
                    .is_none_or(|x| x.len() >= issues.len() || x.iter().any(|i| i.path == path))
            {
                best = Some(issues);
            }
        }
        match best {
            Some(issues) => out.extend(issues),
            None => {
                let expected: Vec<String> = branches
                    .iter()
                    .map(|b| describe(self.resolve(b)))
                    .filter(|d| d != "null")
                    .collect();
                out.push(LayerIssue {
                    path: path.into(),
                    message: format!("expected {}, found {}", expected.join(" or "), show(value)),
                });
            }
        }
    }
}

/// A number against its schema's `minimum` and `maximum`.
fn bounds(n: &serde_json::Number, schema: &Value, path: &str, out: &mut Vec<LayerIssue>) {
    let Some(x) = n.as_f64() else { return };
    if let Some(min) = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .filter(|m| x < *m)
    {
        out.push(LayerIssue {
            path: path.into(),
            message: format!("must be at least {min}, found {n}"),
        });
    }
    if let Some(max) = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .filter(|m| x > *m)
    {
        out.push(LayerIssue {
            path: path.into(),
            message: format!("must be at most {max}, found {n}"),
        });
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    let matches_one = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    };
    match schema.get("type") {
        Some(Value::String(t)) => matches_one(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(matches_one),
        _ => true,
    }
}

fn describe(schema: &Value) -> String {
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e.iter().map(show).collect();
        return format!("one of {}", names.join(", "));
    }
    if let Some(c) = schema.get("const") {
        return show(c);
    }
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        if schema.get("type").is_none() {
            return d.trim_end_matches('.').to_lowercase();
        }
    }
    let one = |t: &str| -> String {
        match t {
            "integer" if schema.get("minimum").and_then(Value::as_f64) == Some(0.0) => {
                "a whole number ≥ 0".into()
            }
            "integer" => "a whole number".into(),
            "number" => "a number".into(),
            "string" => "a string".into(),
            "boolean" => "true or false".into(),
            "array" => "a list".into(),
            "object" => "a mapping".into(),
            other => other.into(),
        }
    };
    match schema.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "a value".into(),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Object(_) => "a mapping".into(),
        Value::Array(_) => "a list".into(),
        Value::Null => "nothing (null)".into(),
        other => format!("`{other}`"),
    }
}

fn enum_issue(path: &str, value: &Value, allowed: &[Value]) -> LayerIssue {
    let names: Vec<String> = allowed
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mut message = format!(
        "unknown value {}; valid values are {}",
        show(value),
        names.join(", ")
    );
    if let Some(s) = value.as_str() {
        if let Some(best) = suggest(s, names.iter().map(String::as_str)) {
            message.push_str(&format!(" (did you mean `{best}`?)"));
        }
    }
    LayerIssue {
        path: path.into(),
        message,
    }
}

fn unknown_key(
    path: &str,
    key: &str,
    props: Option<&serde_json::Map<String, Value>>,
) -> LayerIssue {
    let known: Vec<&str> = props
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut message = format!("unknown key `{key}`");
    match suggest(key, known.iter().copied()) {
        Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
        None if !known.is_empty() => {
            message.push_str(&format!("; valid keys here: {}", known.join(", ")))
        }
        None => {}
    }
    LayerIssue {
        path: path.into(),
        message,
    }
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues(v: Value) -> Vec<LayerIssue> {
        SchemaChecker::for_experiment().check(&v)
    }

    #[test]
    fn reports_every_unknown_key_with_a_suggestion() {
        let found = issues(json!({"workload": {"concurency": 4, "max_tokenz": 3}, "nmae": "x"}));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found
            .iter()
            .any(|i| i.path == "workload.concurency" && i.message.contains("`concurrency`")));
        assert!(found
            .iter()
            .any(|i| i.path == "nmae" && i.message.contains("`name`")));
    }

    #[test]
    fn reports_wrong_types_and_enum_values() {
        let found = issues(json!({
            "workload": {"concurrency": "lots", "pattern": "concurent"},
            "framework": {"kind": "vllm2"},
            "metrics": {"scrape_interval": "5 parsecs"}
        }));
        assert_eq!(found.len(), 4, "{found:?}");
        let msg = |p: &str| found.iter().find(|i| i.path == p).unwrap().message.clone();
        assert!(msg("workload.concurrency").contains("whole number"));
        assert!(msg("workload.pattern").contains("did you mean `concurrent`"));
        assert!(msg("framework.kind").contains("vllm, sglang, llamacpp"));
        assert!(msg("metrics.scrape_interval").contains("duration"));
    }

    #[test]
    fn partial_tagged_enum_is_accepted_and_checked_by_kind() {
        assert!(issues(json!({"workload": {"dataset": {"input_len": 10}}})).is_empty());
        let found = issues(json!({"workload": {"dataset": {"kind": "jsonl", "input_len": 10}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "workload.dataset.input_len");
        let found = issues(json!({"workload": {"dataset": {"kind": "randm"}}}));
        assert!(
            found[0].message.contains("did you mean `random`"),
            "{found:?}"
        );
    }

    #[test]
    fn sweep_accepts_list_and_range() {
        assert!(issues(json!({"workload": {"sweep": {"concurrency": [1, 2]}}})).is_empty());
        assert!(
            issues(json!({"workload": {"sweep": {"concurrency": {"start": 1, "end": 8}}}}))
                .is_empty()
        );
        assert!(!issues(json!({"workload": {"sweep": {"concurrency": "many"}}})).is_empty());
    }
}
