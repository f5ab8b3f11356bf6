//! Finds the line and column of a key path in YAML text. serde_yaml's `Value` keeps no
//! positions, so this reads the block-style YAML people write for experiments (and one level of
//! `{ flow: mappings }`) to point errors at the right line. Unknown shapes simply give no
//! position; they never give a wrong one silently, because every hit is a literal `key:` match.

use std::collections::HashMap;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Pos>,
}

impl Locator {
    pub fn new(text: &str) -> Self {
        let mut positions = HashMap::new();
        // (indent, key) of the enclosing block mappings.
        let mut stack: Vec<(usize, String)> = Vec::new();
        // Indent of a block scalar (`|`, `>`) being skipped.
        let mut scalar_indent: Option<usize> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = raw.trim_start();
            let indent = raw.len() - trimmed.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(si) = scalar_indent {
                if indent > si {
                    continue;
                }
                scalar_indent = None;
            }
            if trimmed.starts_with("- ") || trimmed == "-" {
                continue;
            }
            let Some((key, rest)) = split_key(trimmed) else {
                continue;
            };
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            path.push(key);
            let full = path.join(".");
            positions.insert(
                full.clone(),
                Pos {
                    line: line_no,
                    column: indent + 1,
                },
            );
            let value = strip_comment(rest).trim();
            if value.starts_with('{') {
                let offset = raw.len() - rest.len();
                flow_keys(rest, offset, line_no, &full, &mut positions);
            } else if value.starts_with('|') || value.starts_with('>') {
                scalar_indent = Some(indent);
            }
            if value.is_empty() {
                stack.push((indent, key.to_string()));
            }
        }
        Self { positions }
    }

    /// Position of `a.b.c`, or of the nearest enclosing key that has one (a list item's,
    /// `a.b[2].c`, is its list's `a.b`).
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }

    /// Position of exactly `a.b.c`.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.positions.get(path).copied()
    }
}

fn split_key(line: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(stripped) = line.strip_prefix('"') {
        let end = stripped.find('"')?;
        (&stripped[..end], &stripped[end + 1..])
    } else if let Some(stripped) = line.strip_prefix('\'') {
        let end = stripped.find('\'')?;
        (&stripped[..end], &stripped[end + 1..])
    } else {
        let end = line.find(':')?;
        (line[..end].trim_end(), &line[end..])
    };
    let rest = rest.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    if key.is_empty() || key.contains(' ') && !line.starts_with(['"', '\'']) {
        return None;
    }
    Some((key, rest))
}

fn strip_comment(s: &str) -> &str {
    match s.find(" #") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Records `key:` positions inside a `{ a: 1, b: { c: 2 } }` flow mapping on one line.
fn flow_keys(rest: &str, offset: usize, line: usize, parent: &str, out: &mut HashMap<String, Pos>) {
    let bytes = rest.as_bytes();
    let mut stack: Vec<String> = vec![parent.to_string()];
    let mut i = 0;
    let mut token_start: Option<usize> = None;
    let mut last_key: Option<String> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                if let Some(k) = last_key.take() {
                    stack.push(k);
                } else if i != rest.find('{').unwrap_or(usize::MAX) {
                    stack.push(String::new());
                }
                token_start = None;
            }
            b'}' => {
                if stack.len() > 1 {
                    stack.pop();
                }
                token_start = None;
                last_key = None;
            }
            b',' | b'[' | b']' => {
                token_start = None;
                last_key = None;
            }
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b':' => {
                if let Some(s) = token_start.take() {
                    let key = rest[s..i].trim();
                    if !key.is_empty() {
                        let prefix = stack.last().cloned().unwrap_or_default();
                        let full = format!("{prefix}.{key}");
                        out.insert(
                            full.clone(),
                            Pos {
                                line,
                                column: offset + s + 1,
                            },
                        );
                        last_key = Some(full);
                    }
                }
            }
            b' ' | b'\t' => {}
            _ => {
                if token_start.is_none() {
                    token_start = Some(i);
                    last_key = None;
                }
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
name: x   # a comment
model:
  id: m
workload:
  concurrency: 4
  dataset: { kind: random, input_len: 10 }
  note: |
    text: not a key
  max_tokens: 5
";

    #[test]
    fn finds_block_and_flow_keys() {
        let l = Locator::new(DOC);
        assert_eq!(l.exact("name"), Some(Pos { line: 1, column: 1 }));
        assert_eq!(l.exact("model.id"), Some(Pos { line: 3, column: 3 }));
        assert_eq!(l.exact("workload.concurrency").unwrap().line, 5);
        let p = l.exact("workload.dataset.input_len").unwrap();
        assert_eq!(p.line, 6);
        assert_eq!(
            &DOC.lines().nth(5).unwrap()[p.column - 1..p.column + 8],
            "input_len"
        );
        assert_eq!(l.exact("workload.max_tokens").unwrap().line, 9);
        assert!(l.exact("workload.note.text").is_none());
        assert_eq!(l.find("workload.dataset.nothing").unwrap().line, 6);
    }
}
