//! `/metrics` as the caller may see it, and the route label every request is counted under.

use poem::{PathPattern, Response};

use super::{access, Allowed, AppState};

/// The metrics label of a request: the route the router matched, named by its documented
/// template (`/api/v1/jobs/{id}`; the router names its parameters `param0`, …); for an answer
/// given before routing (a refused body, a background request, an idempotent replay), the
/// documented template its path fits; else one shared label. Never the raw path, so the series
/// stay as few as the routes.
pub(super) fn route_label(
    answer: &Response,
    method: &str,
    path: &str,
    allowed: &Allowed,
) -> String {
    let matched = answer
        .data::<PathPattern>()
        .map(|p| crate::metrics::route_template(&p.0))
        .filter(|p| !p.is_empty());
    if let Some(pattern) = matched {
        return allowed
            .template_of(&pattern)
            .map(str::to_string)
            .unwrap_or(pattern);
    }
    match allowed.find(path) {
        Some((template, methods)) if methods.split(", ").any(|m| m == method) => {
            template.to_string()
        }
        _ => crate::metrics::UNMATCHED_ROUTE.to_string(),
    }
}

/// Counters, gauges and histograms in the Prometheus text format. The operator (the open
/// service, or an admin key of `LONGRUN_OPERATOR_TENANT`) sees everything, the jobs per tenant;
/// another tenant's admin sees its own tenant's jobs and queue, and not the process's counters,
/// which count every tenant's work.
pub(super) async fn metrics_text(state: &AppState, caller: &access::Caller) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let operator = caller.sees_all_tenants(state.operator_tenant.as_deref());
    let mut out = String::new();
    if let Ok(rows) = state.engine.store().count_by_status().await {
        // `longrun_jobs`: the visible tenants' jobs summed by status and operation.
        let mut sums: Vec<(&str, &str, i64)> = Vec::new();
        for (tenant, status, op, n) in &rows {
            if !operator && tenant != caller.tenant() {
                continue;
            }
            match sums.iter_mut().find(|r| r.0 == status && r.1 == op) {
                Some(r) => r.2 += n,
                None => sums.push((status, op, *n)),
            }
        }
        out.push_str(if operator {
            "# HELP longrun_jobs Jobs stored, by status and operation (every tenant).\n"
        } else {
            "# HELP longrun_jobs Jobs stored, by status and operation (this key's tenant).\n"
        });
        out.push_str("# TYPE longrun_jobs gauge\n");
        for (status, op, n) in &sums {
            let labels = crate::metrics::labels(&[("status", status), ("operation", op)]);
            out.push_str(&format!("longrun_jobs{{{labels}}} {n}\n"));
        }
        let queued: i64 = sums.iter().filter(|r| r.0 == "QUEUED").map(|r| r.2).sum();
        out.push_str(&format!(
            "# HELP longrun_queue_depth Jobs waiting for a worker.\n# TYPE longrun_queue_depth gauge\nlongrun_queue_depth {queued}\n"
        ));
        if operator {
            out.push_str("# HELP longrun_tenant_jobs Jobs stored, by tenant, status and operation.\n# TYPE longrun_tenant_jobs gauge\n");
            for (tenant, status, op, n) in &rows {
                let labels = crate::metrics::labels(&[
                    ("tenant", tenant),
                    ("status", status),
                    ("operation", op),
                ]);
                out.push_str(&format!("longrun_tenant_jobs{{{labels}}} {n}\n"));
            }
        }
    }
    if !operator {
        return out;
    }
    let m = state.engine.delivery_metrics();
    for (name, help, v) in [
        (
            "longrun_deliveries_delivered_total",
            "Callbacks and notification events delivered.",
            m.delivered.load(Relaxed),
        ),
        (
            "longrun_delivery_failed_tries_total",
            "Delivery tries that failed (non-2xx, timeout, refused).",
            m.failed_tries.load(Relaxed),
        ),
        (
            "longrun_deliveries_given_up_total",
            "Deliveries given up after their last try or a 410 from the receiver.",
            m.given_up.load(Relaxed),
        ),
        (
            "longrun_delivery_endpoints_disabled_total",
            "Endpoints switched off by this instance after failing for LONGRUN_DELIVERY_DISABLE_AFTER.",
            m.endpoints_disabled.load(Relaxed),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    state.engine.metrics().render(&mut out);
    out
}
