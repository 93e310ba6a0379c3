//! Helpers for the deployment tests (tests/tests/deploy*.rs): the repository's files, and the
//! metric names a PromQL expression refers to.

use std::path::PathBuf;

/// The workspace root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A repository file's text (panics, naming it, when unreadable).
pub fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// PromQL words that are not metric names when they are not followed by `(`.
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    // Aggregations written `sum by (x) (...)`: the word is followed by `by`/`without`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Words followed by a parenthesised list of label names.
const PROMQL_LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

pub fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Index just past the string literal starting at `i` (quotes `"`, `'` or `` ` ``).
fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        if b[j] == b'\\' && quote != b'`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// Index just past the bracketed group opening at `i`, strings inside included.
fn skip_group(b: &[u8], i: usize) -> usize {
    let (open, close) = (b[i], matching(b[i]));
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn matching(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        _ => unreachable!("not a bracket: {}", open as char),
    }
}

/// The metric names a PromQL expression selects: identifiers that are not functions (followed
/// by `(`), keywords, label names (inside `{...}` and `by (...)`-style lists), strings,
/// numbers, durations, ranges or Grafana variables (`$name`, `${name}`).
pub fn metric_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'{' | b'[' => i = skip_group(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                i += 1;
                if b.get(i) == Some(&b'{') {
                    i = skip_group(b, i);
                } else {
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                }
            }
            // Numbers and durations: 0.95, 1e-3, 0x1f, 5m, 1h30m.
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                while i < b.len() {
                    let c = b[i];
                    let exponent_sign = (c == b'+' || c == b'-') && matches!(b[i - 1], b'e' | b'E');
                    if c.is_ascii_alphanumeric() || c == b'.' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                let lower = word.to_ascii_lowercase();
                let followed_by_paren = b.get(next) == Some(&b'(');
                if PROMQL_LABEL_LISTS.contains(&lower.as_str()) {
                    if followed_by_paren {
                        i = skip_group(b, next);
                    }
                } else if followed_by_paren || PROMQL_KEYWORDS.contains(&lower.as_str()) {
                    // A function or aggregation: its arguments are scanned as they come.
                } else {
                    names.push(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_metric_name_extraction() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"histogram_quantile(0.99, sum by (le, pid, comm) (rate(http_server_request_duration_seconds_bucket{comm=~"a|b", error_type!=""}[5m])))"#,
                &["http_server_request_duration_seconds_bucket"],
            ),
            (
                "a:b:rate5m < 0.5 * a:b:rate5m offset 1h and on (x) group_left(y) c_total > 1e-3",
                &["a:b:rate5m", "a:b:rate5m", "c_total"],
            ),
            (
                r#"sum without (instance) (rate(x_total{node=~"$node"}[$__rate_interval])) / ignoring(kind) y"#,
                &["x_total", "y"],
            ),
            (
                r#"topk(10, count by (version) (profiler_build_info)) # a comment naming z"#,
                &["profiler_build_info"],
            ),
            (
                r#"label_replace(up, "dst", "$1", "src", "(.*)") > bool 0x10 @ start()"#,
                &["up"],
            ),
            (
                "max(m{a='x'}) - 400 * 1024 * 1024 + .5 - m2[1h:5m]",
                &["m", "m2"],
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(metric_names(expr), *want, "metric names of {expr}");
        }
    }
}
