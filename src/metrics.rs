//! A small Prometheus registry, one per application (not a process-global
//! recorder, so several apps in one test process keep their own figures).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
    gauges: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
    help: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Families>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    let mut v: Labels = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    v.sort();
    v
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn inc(&self, name: &'static str, help: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, help, pairs, 1);
    }

    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        n: u64,
    ) {
        self.with(|m| {
            m.help.insert(name, help);
            *m.counters
                .entry(name)
                .or_default()
                .entry(labels(pairs))
                .or_default() += n;
        });
    }

    pub fn set_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        value: f64,
    ) {
        self.with(|m| {
            m.help.insert(name, help);
            m.gauges
                .entry(name)
                .or_default()
                .insert(labels(pairs), value);
        });
    }

    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        seconds: f64,
    ) {
        self.with(|m| {
            m.help.insert(name, help);
            let h = m
                .histograms
                .entry(name)
                .or_default()
                .entry(labels(pairs))
                .or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        });
    }

    /// The value of one counter series, for tests and the status endpoints.
    pub fn counter(&self, name: &str, pairs: &[(&'static str, &str)]) -> u64 {
        self.with(|m| {
            m.counters
                .get(name)
                .and_then(|series| series.get(&labels(pairs)))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            for (name, series) in &m.counters {
                header(&mut out, name, m.help.get(name), "counter");
                for (l, v) in series {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
                }
            }
            for (name, series) in &m.gauges {
                header(&mut out, name, m.help.get(name), "gauge");
                for (l, v) in series {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(l, None));
                }
            }
            for (name, series) in &m.histograms {
                header(&mut out, name, m.help.get(name), "histogram");
                for (l, h) in series {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let le = bound.to_string();
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            fmt_labels(l, Some(&le)),
                            h.counts[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        fmt_labels(l, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(l, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", fmt_labels(l, None), h.count);
                }
            }
            out
        })
    }
}

fn header(out: &mut String, name: &str, help: Option<&&str>, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.copied().unwrap_or(name));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_prometheus_text() {
        let m = Metrics::default();
        m.inc(
            "http_requests_total",
            "HTTP requests",
            &[("route", "/x"), ("status", "200")],
        );
        m.inc(
            "http_requests_total",
            "HTTP requests",
            &[("status", "200"), ("route", "/x")],
        );
        m.observe(
            "http_request_duration_seconds",
            "latency",
            &[("route", "/x")],
            0.02,
        );
        let text = m.render();
        assert!(
            text.contains("http_requests_total{route=\"/x\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("http_request_duration_seconds_bucket{route=\"/x\",le=\"0.025\"} 1"));
        assert!(text.contains("http_request_duration_seconds_bucket{route=\"/x\",le=\"0.01\"} 0"));
        assert!(text.contains("http_request_duration_seconds_count{route=\"/x\"} 1"));
        assert_eq!(
            m.counter("http_requests_total", &[("route", "/x"), ("status", "200")]),
            2
        );
    }
}
