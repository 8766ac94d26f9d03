//! Counters and histograms kept in memory and written in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of every histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 3600.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Labels as written: `a="x",b="y"` (values escaped as the text format asks). Every HTTP
/// request counts itself, so this is written in one pass into one string.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// Help texts of the known metrics.
fn help(name: &str) -> &'static str {
    match name {
        "longrun_http_requests_total" => "HTTP requests by route, method and status.",
        "longrun_job_duration_seconds" => {
            "Time from start to end of a job's run, by operation and outcome."
        }
        "longrun_claim_latency_seconds" => {
            "Time a job waited in the queue before a worker claimed it."
        }
        _ => "",
    }
}

impl Metrics {
    /// Add `n` to a counter.
    pub fn count(&self, name: &'static str, pairs: &[(&str, &str)], n: u64) {
        *self
            .counters
            .lock()
            .unwrap()
            .entry((name, labels(pairs)))
            .or_default() += n;
    }

    /// Record one observation (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], secs: f64) {
        let mut map = self.histograms.lock().unwrap();
        let h = map.entry((name, labels(pairs))).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut last = "";
        for ((name, l), v) in self.counters.lock().unwrap().iter() {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", help(name));
                last = name;
            }
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        }
        let mut last = "";
        for ((name, l), h) in self.histograms.lock().unwrap().iter() {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", help(name));
                last = name;
            }
            let sep = if l.is_empty() { "" } else { "," };
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count);
        }
    }
}

/// The label of a matched route template, from the router's pattern (`/api/v1/jobs/:id` →
/// `/api/v1/jobs/{id}`, a nested endpoint's rest `/ui/*` kept as it is). Only the service's own
/// patterns reach it, so the labels are as few as its routes.
pub fn route_template(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The label shared by every request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.count(
            "longrun_http_requests_total",
            &[("route", "/x"), ("status", "200")],
            2,
        );
        m.observe(
            "longrun_job_duration_seconds",
            &[("operation", "import")],
            0.2,
        );
        let mut s = String::new();
        m.render(&mut s);
        assert!(
            s.contains("longrun_http_requests_total{route=\"/x\",status=\"200\"} 2"),
            "{s}"
        );
        assert!(
            s.contains("longrun_job_duration_seconds_bucket{operation=\"import\",le=\"0.25\"} 1")
        );
        assert!(
            s.contains("longrun_job_duration_seconds_bucket{operation=\"import\",le=\"0.1\"} 0")
        );
        assert!(s.contains("longrun_job_duration_seconds_count{operation=\"import\"} 1"));
    }

    #[test]
    fn route_templates_name_their_parameters() {
        assert_eq!(
            route_template("/api/v1/jobs/:id/result"),
            "/api/v1/jobs/{id}/result"
        );
        assert_eq!(route_template("/tasks/:id"), "/tasks/{id}");
        assert_eq!(route_template("/api/tools"), "/api/tools");
        assert_eq!(route_template("/"), "/");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("a", "x"), ("b", "q\"b\\s\nl")]),
            "a=\"x\",b=\"q\\\"b\\\\s\\nl\""
        );
        assert_eq!(labels(&[]), "");
    }
}
