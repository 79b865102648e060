//! Operations routes, node-local: `/metrics` (Prometheus text), `/readyz` (with the state
//! digest and the entry version this build applies) and `GET /api/v1/trust`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::FailureKind;
use super::server::*;
use crate::inventory::BundleStatus;

/// Prometheus text format, this node's view: handshakes by outcome, the serving index's
/// generation and size, each served certificate's not-after, Raft progress.
pub(super) async fn metrics(State(st): State<S>) -> Response {
    use std::fmt::Write as _;
    let m = st.raft.metrics().borrow().clone();
    let mut out = String::new();
    let node = st.node_id;
    let _ = writeln!(
        out,
        "# HELP certraft_raft_term Current Raft term.\n# TYPE certraft_raft_term gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_term{{node=\"{node}\"}} {}",
        m.current_term
    );
    let _ = writeln!(out, "# HELP certraft_raft_last_applied Last log index applied to the inventory.\n# TYPE certraft_raft_last_applied gauge");
    let _ = writeln!(
        out,
        "certraft_raft_last_applied{{node=\"{node}\"}} {}",
        m.last_applied.map(|l| l.index).unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "# HELP certraft_raft_running 0 once the Raft core stopped (a storage error: see the log).\n# TYPE certraft_raft_running gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_running{{node=\"{node}\"}} {}",
        u8::from(m.running_state.is_ok())
    );
    let _ = writeln!(
        out,
        "# HELP certraft_raft_is_leader 1 on the leader.\n# TYPE certraft_raft_is_leader gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_is_leader{{node=\"{node}\"}} {}",
        u8::from(m.current_leader == Some(node))
    );
    let _ = writeln!(
        out,
        "# HELP certraft_auth_failures_total Failed sign-ins on this node's admin port, by what was tried.\n# TYPE certraft_auth_failures_total counter"
    );
    for kind in [FailureKind::AdminToken, FailureKind::JoinToken] {
        let v = match kind {
            FailureKind::AdminToken => &st.failures.admin_token,
            FailureKind::JoinToken => &st.failures.join_token,
        };
        let _ = writeln!(
            out,
            "certraft_auth_failures_total{{node=\"{node}\",kind=\"{}\"}} {}",
            kind.label(),
            v.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP certraft_auth_rate_limited_total Requests answered 429 because their source failed to sign in too often.\n# TYPE certraft_auth_rate_limited_total counter"
    );
    let _ = writeln!(
        out,
        "certraft_auth_rate_limited_total{{node=\"{node}\"}} {}",
        st.failures
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(serving) = &st.serving {
        let c = &serving.counters;
        let _ = writeln!(out, "# HELP certraft_handshakes_total TLS handshakes on the serve port by outcome.\n# TYPE certraft_handshakes_total counter");
        for (outcome, v) in [
            ("exact", &c.exact),
            ("wildcard", &c.wildcard),
            ("default", &c.default),
            ("node_certificate", &c.node_cert),
            ("rejected", &c.rejected),
            ("failed", &c.failed),
            ("over_limit", &c.over_limit),
            ("evicted", &c.evicted),
        ] {
            let _ = writeln!(
                out,
                "certraft_handshakes_total{{node=\"{node}\",outcome=\"{outcome}\"}} {}",
                v.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        let ix = serving.index();
        let _ = writeln!(out, "# HELP certraft_index_generation Serving index generation on this node.\n# TYPE certraft_index_generation gauge");
        let _ = writeln!(
            out,
            "certraft_index_generation{{node=\"{node}\"}} {}",
            ix.generation
        );
        let _ = writeln!(out, "# HELP certraft_index_certificates Certificates in the serving index.\n# TYPE certraft_index_certificates gauge");
        let _ = writeln!(
            out,
            "certraft_index_certificates{{node=\"{node}\"}} {}",
            ix.len()
        );
        let _ = writeln!(
            out,
            "# HELP certraft_index_applied_index Raft log index the serving index reflects.\n# TYPE certraft_index_applied_index gauge"
        );
        let _ = writeln!(
            out,
            "certraft_index_applied_index{{node=\"{node}\"}} {}",
            serving.applied.load(std::sync::atomic::Ordering::Acquire)
        );
    }
    let inv = st.sm.inventory();
    let _ = writeln!(out, "# HELP certraft_certificate_not_after_seconds Not-after of each certificate (Unix seconds).\n# TYPE certraft_certificate_not_after_seconds gauge");
    for b in inv.bundles.values() {
        let name = b.name.replace('\\', "\\\\").replace('"', "\\\"");
        let status = match b.status {
            BundleStatus::Active => "active",
            BundleStatus::Retired => "retired",
        };
        let _ = writeln!(
            out,
            "certraft_certificate_not_after_seconds{{name=\"{name}\",status=\"{status}\"}} {}",
            b.meta.not_after
        );
    }
    issuing_metrics(&mut out, &inv, crate::clock::unix_now());
    (
        [(
            "content-type",
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
        .into_response()
}

/// Node-local state, unauthenticated (no names, no secrets): 200 once a leader is known.
pub(super) async fn readyz(State(st): State<S>) -> Response {
    // The divergence check (issue 22): the state digest at the applied index, computed once
    // per index off the async workers.
    let sm = st.sm.clone();
    let (digest_index, digest) = tokio::task::spawn_blocking(move || sm.digest())
        .await
        .map(|(i, d)| (i, Some(hex::encode(d))))
        .unwrap_or((None, None));
    let m = st.raft.metrics().borrow().clone();
    // A Raft core stopped by a storage error (a full disk) keeps its last metrics: the
    // leader it names is stale, so the node is not ready whatever it says.
    let raft_error = m
        .running_state
        .as_ref()
        .err()
        .map(|fatal| crate::raft::raft_stopped(st.node_id, fatal));
    let ready = m.current_leader.is_some() && raft_error.is_none();
    let body = serde_json::json!({
        "ready": ready,
        "raft_error": raft_error,
        "node_id": st.node_id,
        "leader": m.current_leader,
        "term": m.current_term,
        "state": format!("{:?}", m.state).to_lowercase(),
        "last_log_index": m.last_log_index,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot_index": m.snapshot.map(|l| l.index),
        "purged_index": m.purged.map(|l| l.index),
        // The newest entry version this build applies (the feature gate reads it), and the
        // features the cluster has enabled, as this node has applied them.
        "apply_version": crate::inventory::REQUEST_VERSION,
        "features": st.sm.inventory().features.iter().map(|f| f.name()).collect::<Vec<_>>(),
        // SHA-256 of the applied state at `digest_index`: equal on every replica at the same
        // index, whatever mix of log and snapshots brought it there.
        "state_digest": digest,
        "digest_index": digest_index,
        "voting": m.membership_config.membership().voter_ids().any(|id| id == st.node_id),
        // The log index of the last serving change (certificate, default, ticket key) the
        // serve port has swapped in; none on a witness.
        "serving_applied": st
            .serving
            .as_ref()
            .map(|s| s.applied.load(std::sync::atomic::Ordering::Acquire)),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(super) async fn trust(State(st): State<S>) -> Response {
    let pem = crate::issuing::pem_lf("CERTIFICATE", st.ca.cert_der().to_vec());
    (
        [(
            "content-type",
            HeaderValue::from_static("application/x-pem-file"),
        )],
        pem,
    )
        .into_response()
}

/// Days to expiry of every active certificate, the renewal state of those the cluster
/// issued, and the notice outbox (issue 14).
fn issuing_metrics(out: &mut String, inv: &crate::inventory::Inventory, now: i64) {
    use crate::inventory::{renewal_due, renewal_seed, renewal_step, RenewalStep};
    use std::fmt::Write as _;
    let esc = |n: &str| n.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(out, "# HELP certraft_certificate_days_left Days until an active certificate's not-after (negative once expired).\n# TYPE certraft_certificate_days_left gauge");
    for b in inv
        .bundles
        .values()
        .filter(|b| b.status == BundleStatus::Active)
    {
        let _ = writeln!(
            out,
            "certraft_certificate_days_left{{name=\"{}\"}} {:.3}",
            esc(&b.name),
            (b.meta.not_after - now) as f64 / 86_400.0
        );
    }
    let _ = writeln!(out, "# HELP certraft_renewal_last_attempt_seconds Last renewal attempt of a certificate the cluster issued (Unix seconds; 0: none yet).\n# TYPE certraft_renewal_last_attempt_seconds gauge\n# HELP certraft_renewal_next_attempt_seconds When its next renewal is due or retried (Unix seconds).\n# TYPE certraft_renewal_next_attempt_seconds gauge\n# HELP certraft_renewal_consecutive_failures Renewal failures in a row.\n# TYPE certraft_renewal_consecutive_failures gauge");
    let mut acme_states = String::new();
    for (name, m) in &inv.issuance.managed {
        if let Some(a) = super::acme::state_of(inv, name) {
            let n = esc(name);
            let _ = writeln!(
                acme_states,
                "certraft_acme_state{{name=\"{n}\",issuer=\"{}\",state=\"{}\"}} 1",
                esc(&a.issuer),
                a.state
            );
            let _ = writeln!(
                out,
                "certraft_renewal_last_attempt_seconds{{name=\"{n}\"}} {}\ncertraft_renewal_next_attempt_seconds{{name=\"{n}\"}} {}\ncertraft_renewal_consecutive_failures{{name=\"{n}\"}} {}",
                m.renewal.last_attempt.unwrap_or(0),
                a.next_attempt_unix.unwrap_or(now),
                m.renewal.consecutive_failures
            );
            continue;
        }
        let Some(b) = inv.bundles.get(name) else {
            continue;
        };
        let due = renewal_due(
            b.meta.not_before,
            b.meta.not_after,
            m.renew_at_permille,
            &renewal_seed(name, &b.id()),
        );
        let next = match renewal_step(due, &m.renewal, now) {
            RenewalStep::WaitUntil(at) => at,
            RenewalStep::Renew => now,
        };
        let n = esc(name);
        let _ = writeln!(
            out,
            "certraft_renewal_last_attempt_seconds{{name=\"{n}\"}} {}\ncertraft_renewal_next_attempt_seconds{{name=\"{n}\"}} {next}\ncertraft_renewal_consecutive_failures{{name=\"{n}\"}} {}",
            m.renewal.last_attempt.unwrap_or(0),
            m.renewal.consecutive_failures
        );
    }
    let _ = writeln!(out, "# HELP certraft_acme_state Where each ACME certificate stands (state: ordering, validating, issued, retrying, fallback).\n# TYPE certraft_acme_state gauge");
    out.push_str(&acme_states);
    let _ = writeln!(out, "# HELP certraft_acme_requests_total Requests this node sent to ACME CAs since it started (only a leader sends any).\n# TYPE certraft_acme_requests_total counter\ncertraft_acme_requests_total {}", crate::issuing::acme::REQUESTS.load(std::sync::atomic::Ordering::Relaxed));
    let _ = writeln!(out, "# HELP certraft_notices_pending Notices queued for webhook targets and not yet acknowledged.\n# TYPE certraft_notices_pending gauge\ncertraft_notices_pending {}", inv.issuance.notices.len());
}
