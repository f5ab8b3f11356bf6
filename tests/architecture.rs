//! The house rules of `ARCHITECTURE.md`, checked on the source itself: no import cycle among
//! the crate's modules (neither between top-level modules nor between files), no function
//! over 100 lines anywhere in `src/` (test modules aside), `run/mod.rs` kept to the phases
//! (under 400 lines) and `cli/mod.rs` to clap, dispatch, confirmation and exit codes (under 700). The imports are read as text: every `crate::a::b` path and every
//! `super::x` path in a file, comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's `src/` (or, to check another checkout's, `LLMIB_ARCH_SRC`).
fn src() -> PathBuf {
    match std::env::var_os("LLMIB_ARCH_SRC") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `src/run/point.rs` → `run::point`; `src/run/mod.rs` → `run`; `src/lib.rs` → ``.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its comments (line comments and doc comments).
fn code(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            // Not inside a string: good enough for rustfmt'd code that keeps `//` out of strings
            // on lines with paths (checked: no such line in src/).
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths named in `text` after `prefix` (`crate::` or `super::`): `a::b::C` → `[a, b, C]`;
/// a group `a::{b, c::D}` gives `[a, b]` and `[a, c, D]`.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        tree(rest, Vec::new(), &mut out);
    }
    out
}

/// Reads one use-tree at the start of `text` (`a::b`, `a::{b, c}`, nested), adding each path
/// under `base` to `out`; returns how many bytes it read.
fn tree(text: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = base;
    let mut i = 0;
    let b = text.as_bytes();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            path.push(text[start..i].to_string());
        }
        if text[i..].starts_with("::") {
            i += 2;
            continue;
        }
        if b.get(i) == Some(&b'{') {
            i += 1;
            loop {
                while b
                    .get(i)
                    .is_some_and(|c| c.is_ascii_whitespace() || *c == b',')
                {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
                i += tree(&text[i..], path.clone(), out).max(1);
            }
        }
        out.push(path);
        return i;
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// Edges file → file (by module path) of every import in `src/` (the binary's `main.rs` left out).
fn file_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<PathBuf> = rust_files(&src())
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let me = module_of(f);
        let text = code(f);
        let mut targets = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            targets.extend(resolve(&modules, &p));
        }
        // `super::x` from `a::b` (a file) is `a::x`; from `a` (a mod.rs) it is the parent's `x`.
        let is_dir_module = f.ends_with("mod.rs");
        let mut parent: Vec<String> = me
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if !is_dir_module || !parent.is_empty() {
            parent.pop();
        }
        for p in paths_after(&text, "super::") {
            let mut full = parent.clone();
            full.extend(p);
            targets.extend(resolve(&modules, &full));
        }
        targets.remove(&me);
        g.insert(me, targets);
    }
    g
}

/// A cycle in `g`, as the path that closes it, if there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let g = file_graph();
    assert!(
        g.len() > 40,
        "the scan found the crate's files: {}",
        g.len()
    );
    assert!(
        g["run"].contains("provider"),
        "the scan sees `use crate::` paths"
    );
    assert!(
        g["run::point"].contains("run::ready"),
        "and `super::` paths"
    );
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle between files: {}", c.join(" → "));
    }
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in file_graph() {
        let f = top(&from);
        let entry = g.entry(f.clone()).or_default();
        entry.extend(
            tos.iter()
                .map(|t| top(t))
                .filter(|t| *t != f && !t.is_empty()),
        );
    }
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle between modules: {}", c.join(" → "));
    }
}

#[test]
fn use_trees_are_read_whole() {
    let p = paths_after(
        "use crate::a::{b, c::{D, e}};\nlet x = super::f::G;",
        "crate::",
    );
    assert_eq!(
        p,
        [vec!["a", "b"], vec!["a", "c", "D"], vec!["a", "c", "e"]]
    );
    assert_eq!(
        paths_after("x::crate::y; super::f::G", "super::"),
        [vec!["f", "G"]]
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
}

/// (name, first line, length) of every function in `file` outside its test module (rustfmt'd:
/// the body ends at the first line that is the signature's indentation followed by `}`).
fn functions(file: &Path) -> Vec<(String, usize, usize)> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let sig = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("const ")
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        let Some(name) = sig.strip_prefix("fn ") else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if t.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|x| *x == close) {
            out.push((name, i + 1, end + 1));
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_100_lines() {
    let mut long = Vec::new();
    let mut seen = 0;
    for f in rust_files(&src()) {
        for (name, line, len) in functions(&f) {
            seen += 1;
            if len > 100 {
                long.push(format!("{}:{line} {name}: {len} lines", f.display()));
            }
        }
    }
    assert!(seen > 500, "the scan found the functions: {seen}");
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn the_scan_measures_a_function_to_its_closing_brace() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.rs");
    let body = "    let c = b'{';\n".repeat(3);
    std::fs::write(
        &f,
        format!("pub async fn a() {{\n{body}}}\n\nfn b() -> u8 {{\n    1\n}}\n#[cfg(test)]\nfn t() {{\n}}\n"),
    )
    .unwrap();
    assert_eq!(
        functions(&f),
        [("a".to_string(), 1, 5), ("b".to_string(), 7, 3)]
    );
}

/// How many lines `src/{rel}` has.
fn lines_of(rel: &str) -> usize {
    std::fs::read_to_string(src().join(rel))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn the_cli_keeps_to_clap_dispatch_confirmation_and_exit_codes() {
    let n = lines_of("cli/mod.rs");
    assert!(n < 700, "src/cli/mod.rs has {n} lines");
}

#[test]
fn run_mod_keeps_only_the_phases() {
    let n = lines_of("run/mod.rs");
    assert!(n < 400, "src/run/mod.rs has {n} lines");
}
