//! `cargo xtask layers`: the import rules of `profiler/src` (docs/DEVELOPMENT.md, "Layout"),
//! checked from the code. Reads every `crate::`/`super::`/`self::` path of every file (use
//! items, paths in code, paths inside macro arguments), resolves each to the file that defines
//! the module it names, and fails on an import cycle between files, on an import that points
//! up the layer order, and on one capability importing another; also on a file over
//! `MAX_FILE_LINES` lines or a function over `MAX_FN_LINES`. Pure apart from reading files.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

use crate::shell::root;

/// Top-level modules of `profiler/src`, lowest layer first. A file may import files of its
/// own layer or a lower one; within the capability layer only its own folder.
const LAYERS: &[(&str, &[&str])] = &[
    ("util", &["util", "error"]),
    ("host", &["host"]),
    ("bpf", &["bpf"]),
    (
        "capabilities",
        &["sched", "http", "cuda", "counters", "gpu", "energy"],
    ),
    ("derived figures", &["derive"]),
    ("sinks", &["sinks"]),
    ("session", &["session", "check"]),
    ("cli", &["cli"]),
    ("main", &["main", "lib"]),
];
const CAPABILITY_LAYER: usize = 3;

/// Longest file and function (lines, signature to closing brace) the layout allows.
const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 100;

/// `show_edges`: also print every file's imports (for reading the structure).
pub fn run(show_edges: bool) -> Result<()> {
    let src = root().join("profiler/src");
    let graph = Graph::read(&src)?;
    if show_edges {
        for (from, targets) in &graph.edges {
            let list: Vec<&str> = targets.iter().map(String::as_str).collect();
            println!("{from}: {}", list.join(" "));
        }
    }
    let problems = graph.problems();
    println!(
        "layers: {} files, {} imports between them",
        graph.files.len(),
        graph.edges.values().map(BTreeSet::len).sum::<usize>()
    );
    if problems.is_empty() {
        println!(
            "layers: no cycles, nothing points up, no capability imports another; no file over \
             {MAX_FILE_LINES} lines, no function over {MAX_FN_LINES}"
        );
        return Ok(());
    }
    for p in &problems {
        println!("layers: {p}");
    }
    bail!("{} layering problem(s) in profiler/src", problems.len())
}

/// Files (paths relative to `profiler/src`, `/`-separated) and the files each one imports.
struct Graph {
    files: BTreeSet<String>,
    edges: BTreeMap<String, BTreeSet<String>>,
    /// Files and functions over the size limits, as messages.
    oversized: Vec<String>,
}

impl Graph {
    fn read(src: &Path) -> Result<Self> {
        let mut sources = BTreeMap::new();
        collect(src, src, &mut sources)?;
        Ok(Self::from_sources(&sources))
    }

    /// `sources`: file path → its text.
    fn from_sources(sources: &BTreeMap<String, String>) -> Self {
        let files: BTreeSet<String> = sources.keys().cloned().collect();
        let mut edges = BTreeMap::new();
        let mut oversized = Vec::new();
        for (file, text) in sources {
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                oversized.push(format!("{file}: {lines} lines (at most {MAX_FILE_LINES})"));
            }
            let mut paths = PathCollector::default();
            match syn::parse_file(text) {
                Ok(ast) => paths.visit_file(&ast),
                Err(_) => continue, // rustc reports it; the check is about structure
            }
            for (name, line, len) in &paths.long_fns {
                oversized.push(format!(
                    "{file}:{line}: fn {name} has {len} lines (at most {MAX_FN_LINES})"
                ));
            }
            let module = module_of(file);
            let targets: BTreeSet<String> = paths
                .paths
                .iter()
                .filter_map(|(inline, p)| absolute(&[module.clone(), inline.clone()].concat(), p))
                .filter_map(|p| resolve(&files, &p))
                // The crate root only declares modules (exported macros live in their files).
                .filter(|t| t != file && t != "lib.rs" && t != "main.rs")
                .collect();
            edges.insert(file.clone(), targets);
        }
        Self {
            files,
            edges,
            oversized,
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (from, targets) in &self.edges {
            for to in targets {
                if let Some(p) = rule_broken(from, to)
                    && !out.contains(&p)
                {
                    out.push(p);
                }
            }
        }
        for cycle in self.cycles() {
            out.push(format!("import cycle: {}", cycle.join(" → ")));
        }
        out.extend(self.oversized.iter().cloned());
        out
    }

    /// Strongly connected components of more than one file (Tarjan), each as a file list.
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Tarjan<'a> {
            g: &'a Graph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            out: Vec<Vec<String>>,
        }
        impl<'a> Tarjan<'a> {
            fn visit(&mut self, v: &'a str) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.g.edges.get(v).into_iter().flatten() {
                    if !self.index.contains_key(w.as_str()) {
                        self.visit(w);
                        let lw = self.low[w.as_str()];
                        let lv = self.low.get_mut(v).expect("visited");
                        *lv = (*lv).min(lw);
                    } else if self.on_stack.contains(w.as_str()) {
                        let iw = self.index[w.as_str()];
                        let lv = self.low.get_mut(v).expect("visited");
                        *lv = (*lv).min(iw);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        component.push(w.to_string());
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort();
                        self.out.push(component);
                    }
                }
            }
        }
        let mut t = Tarjan {
            g: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for f in &self.files {
            if !t.index.contains_key(f.as_str()) {
                t.visit(f);
            }
        }
        t.out
    }
}

/// Every `.rs` file under `dir` but the separate binaries in `bin/`.
fn collect(src: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let rel = relative(src, &path);
        if path.is_dir() {
            if rel != "bin" {
                collect(src, &path, out)?;
            }
        } else if rel.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.insert(rel, text);
        }
    }
    Ok(())
}

fn relative(src: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(src).unwrap_or(path).to_path_buf();
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The module path a file defines: `http/conn.rs` → [http, conn]; `http/mod.rs` → [http].
fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// A path as written (`crate::a::b`, `super::x`, `self::y`) made absolute from `module`;
/// `None` for paths into other crates.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut m = module.to_vec();
            m.pop()?;
            m
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().map(|s| s.as_str()) == Some("super") {
        base.pop()?;
        rest.next();
    }
    base.extend(rest.cloned());
    Some(base)
}

/// The deepest file whose module is a prefix of `path`.
fn resolve(files: &BTreeSet<String>, path: &[String]) -> Option<String> {
    let mut found = None;
    for len in 0..=path.len() {
        let prefix = path[..len].join("/");
        let candidates = if len == 0 {
            vec!["lib.rs".to_string(), "main.rs".to_string()]
        } else {
            vec![format!("{prefix}.rs"), format!("{prefix}/mod.rs")]
        };
        if let Some(c) = candidates.into_iter().find(|c| files.contains(c)) {
            found = Some(c);
        }
    }
    found
}

fn layer_of(file: &str) -> Option<usize> {
    let top = file.split('/').next()?.trim_end_matches(".rs");
    LAYERS.iter().position(|(_, tops)| tops.contains(&top))
}

fn top_of(file: &str) -> &str {
    file.split('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".rs")
}

fn rule_broken(from: &str, to: &str) -> Option<String> {
    let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
        let unplaced = if layer_of(from).is_none() { from } else { to };
        return Some(format!(
            "{unplaced} is in no layer (top-level modules: {})",
            LAYERS
                .iter()
                .flat_map(|(_, t)| t.iter())
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if lt > lf {
        return Some(format!(
            "{from} ({}) imports {to} ({}), a higher layer",
            LAYERS[lf].0, LAYERS[lt].0
        ));
    }
    if lf == CAPABILITY_LAYER && lt == CAPABILITY_LAYER && top_of(from) != top_of(to) {
        return Some(format!("capability {from} imports capability {to}"));
    }
    None
}

/// Every path that starts with `crate`, `self` or `super`, from use items, code and the token
/// streams of macro calls.
#[derive(Default)]
struct PathCollector {
    /// (the inline `mod x { … }` blocks the path sits in, the path).
    paths: Vec<(Vec<String>, Vec<String>)>,
    inline: Vec<String>,
    /// Functions over `MAX_FN_LINES`: (name, first line, lines).
    long_fns: Vec<(String, usize, usize)>,
}

impl PathCollector {
    /// `first`: the `fn` keyword (not the doc comment); `last`: the closing brace.
    fn measure(&mut self, name: &syn::Ident, first: proc_macro2::Span, last: proc_macro2::Span) {
        let (start, end) = (first.start().line, last.end().line);
        let len = end.saturating_sub(start) + 1;
        if len > MAX_FN_LINES {
            self.long_fns.push((name.to_string(), start, len));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_use(prefix, Some(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.push_use(prefix, Some(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.push_use(prefix, None),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn push_use(&mut self, prefix: &[String], last: Option<String>) {
        let mut path = prefix.to_vec();
        // `use crate::a::{self}` names `a` itself.
        if let Some(l) = last.filter(|l| l != "self") {
            path.push(l);
        }
        self.paths.push((self.inline.clone(), path));
    }

    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&&*id.to_string()) => {
                    let mut path = vec![id.to_string()];
                    let mut j = i + 1;
                    // `::` is two `:` puncts; then an identifier.
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        path.push(next.to_string());
                        j += 3;
                    }
                    if path.len() > 1 {
                        self.paths.push((self.inline.clone(), path));
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.paths.push((self.inline.clone(), segments));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let close = f.block.brace_token.span.close();
        self.measure(&f.sig.ident, f.sig.fn_token.span, close);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let close = f.block.brace_token.span.close();
        self.measure(&f.sig.ident, f.sig.fn_token.span, close);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // `super` inside `mod tests { … }` is the file's own module.
        let inline = item.content.is_some();
        if inline {
            self.inline.push(item.ident.to_string());
        }
        syn::visit::visit_item_mod(self, item);
        if inline {
            self.inline.pop();
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        let sources = files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        Graph::from_sources(&sources)
    }

    fn edges(g: &Graph, from: &str) -> Vec<String> {
        g.edges[from].iter().cloned().collect()
    }

    #[test]
    fn use_trees_code_paths_and_macro_arguments_are_read() {
        let g = graph(&[
            ("lib.rs", "pub mod util; pub mod http; pub mod sinks;"),
            ("util/mod.rs", "pub mod fmt; pub mod num;"),
            ("util/fmt.rs", "pub fn f() {}"),
            ("util/num.rs", "pub fn ratio() {}"),
            ("http/mod.rs", "pub mod conn;"),
            (
                "http/conn.rs",
                "use crate::util::{fmt::f, self};\nfn g() { crate::util::num::ratio(); }",
            ),
            (
                "sinks/report.rs",
                "fn h() { println!(\"{}\", crate::http::conn::x()); }",
            ),
        ]);
        assert_eq!(
            edges(&g, "http/conn.rs"),
            ["util/fmt.rs", "util/mod.rs", "util/num.rs"]
        );
        assert_eq!(edges(&g, "sinks/report.rs"), ["http/conn.rs"]);
        assert!(g.problems().is_empty(), "{:?}", g.problems());
    }

    #[test]
    fn super_paths_resolve_against_the_file_module() {
        let g = graph(&[
            ("http/mod.rs", "pub mod conn; pub mod parse;"),
            ("http/parse.rs", "pub struct Head;"),
            ("http/conn.rs", "use super::parse::Head;"),
            ("http/conn_tests.rs", "use super::*;"),
            (
                "http/sse.rs",
                "use super::parse::Head; #[cfg(test)] mod tests { use super::*; }",
            ),
        ]);
        assert_eq!(edges(&g, "http/sse.rs"), ["http/parse.rs"]);
        assert_eq!(edges(&g, "http/conn.rs"), ["http/parse.rs"]);
        assert_eq!(edges(&g, "http/conn_tests.rs"), ["http/mod.rs"]);
    }

    #[test]
    fn upward_imports_capability_crossings_and_cycles_are_reported() {
        let g = graph(&[
            ("util/fmt.rs", "use crate::sinks::report::X;"),
            ("sinks/report.rs", "use crate::util::fmt::Y;"),
            ("cuda/stats.rs", "use crate::http::record::R;"),
            ("http/record.rs", "pub struct R;"),
            ("misc.rs", "use crate::util::fmt::Y;"),
        ]);
        let problems = g.problems().join("\n");
        assert!(
            problems.contains("util/fmt.rs (util) imports sinks/report.rs (sinks)"),
            "{problems}"
        );
        assert!(
            problems.contains("capability cuda/stats.rs imports capability http/record.rs"),
            "{problems}"
        );
        assert!(
            problems.contains("import cycle: sinks/report.rs → util/fmt.rs"),
            "{problems}"
        );
        assert!(problems.contains("misc.rs is in no layer"), "{problems}");
    }

    #[test]
    fn long_functions_and_files_are_reported() {
        let body = "    let _x = 1;\n".repeat(MAX_FN_LINES);
        let long_fn = format!("fn short() {{}}\n\nfn long() {{\n{body}}}\n");
        let long_file = "// line\n".repeat(MAX_FILE_LINES + 1);
        let g = graph(&[("util/a.rs", &long_fn), ("util/b.rs", &long_file)]);
        let problems = g.problems().join("\n");
        assert!(
            problems.contains(&format!(
                "util/a.rs:3: fn long has {} lines",
                MAX_FN_LINES + 2
            )),
            "{problems}"
        );
        assert!(!problems.contains("fn short"), "{problems}");
        assert!(
            problems.contains(&format!("util/b.rs: {} lines", MAX_FILE_LINES + 1)),
            "{problems}"
        );
    }
}
