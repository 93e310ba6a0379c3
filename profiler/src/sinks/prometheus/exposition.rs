//! `/metrics` content negotiation: OpenMetrics text when the scraper accepts it (Prometheus
//! does), else the classic Prometheus text format 0.0.4, derived from the same encoding.

use prometheus_client::{encoding::text, registry::Registry};

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics with a non-zero quality.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    accept.split(',').any(|part| {
        let mut fields = part.split(';').map(str::trim);
        let media = fields.next().unwrap_or("");
        let q_zero = fields.any(|f| {
            f.strip_prefix("q=")
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
    })
}

/// The registry encoded for `accept`: (content type, body).
pub fn render(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut body = String::with_capacity(16 * 1024);
    if text::encode(&mut body, registry).is_err() {
        // Only fails on a formatter error writing into a String, i.e. never; an empty page is
        // still a valid answer.
        body.clear();
    }
    if wants_openmetrics(accept) {
        (OPENMETRICS, body)
    } else {
        (CLASSIC, to_classic(&body))
    }
}

/// OpenMetrics text → Prometheus text 0.0.4: counters are declared under their `_total` name,
/// info metrics become gauges named `_info`, and `# UNIT`/`# EOF` lines go.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters = std::collections::HashSet::new();
    let mut infos = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "counter" => {
                    counters.insert(name.to_string());
                }
                "info" => {
                    infos.insert(name.to_string());
                }
                _ => {}
            }
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                Some(format!("{prefix}{name}_total {tail}"))
            } else if infos.contains(name) {
                let tail = if *prefix == "# TYPE " { "gauge" } else { tail };
                Some(format!("{prefix}{name}_info {tail}"))
            } else {
                None
            }
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => {
                // `_created` samples are OpenMetrics-only.
                let name = line.split(['{', ' ']).next().unwrap_or("");
                if name.ends_with("_created") && !line.starts_with('#') {
                    continue;
                }
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_prometheus_does() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prom)));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
        assert!(wants_openmetrics(Some("Application/OpenMetrics-Text")));
    }

    #[test]
    fn classic_text_names_counters_with_total_and_drops_eof() {
        let om = "# HELP requests Requests.\n# TYPE requests counter\nrequests_total{pid=\"1\"} 3\n\
                  # HELP build Build.\n# TYPE build info\nbuild_info{version=\"1\"} 1\n\
                  # HELP lat Latency.\n# TYPE lat histogram\nlat_sum 1.0\nlat_count 1\n\
                  lat_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let classic = to_classic(om);
        assert!(
            classic.contains("# TYPE requests_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP requests_total Requests.\n"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE build_info gauge\n"), "{classic}");
        assert!(classic.contains("build_info{version=\"1\"} 1\n"));
        assert!(classic.contains("# TYPE lat histogram\nlat_sum 1.0\n"));
        assert!(!classic.contains("# EOF"));
    }
}
