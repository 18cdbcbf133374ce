//! `/healthz` and the `meshlift_controller_degraded` gauge: what a load balancer, a monitoring
//! probe or an operator's `curl` learns about the controller at a glance.
//!
//! The controller is *healthy* while its state database takes every write. While a write is
//! failing (disk full, file locked, I/O error) it is *degraded*: it holds every action whose
//! decision is not on disk yet ([`crate::outbox`]) and refuses operator requests that would
//! change state, so a probe must see it — `503` with the store's error in the body, and the
//! gauge at 1 for the alert rule. Nothing else makes the controller unhealthy here: a node
//! offline or a failed upgrade is the fleet's state, not the controller's.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::metrics::Metrics;
use crate::outbox::Degraded;

/// Shared between the loop (which updates it after every flush) and the HTTP handler.
#[derive(Clone, Default)]
pub struct Health {
    degraded: Arc<Mutex<Option<String>>>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Record the outbox's state: the body `/healthz` answers and the gauge.
    pub fn update(&self, degraded: Option<&Degraded>, metrics: &Metrics) {
        let text = degraded.map(|d| {
            format!(
                "degraded: store write failing: {} ({} failed attempts since {} ms UNIX; next retry at {})\n",
                d.error, d.failures, d.since, d.retry_at
            )
        });
        metrics.degraded.set(i64::from(text.is_some()));
        if let Ok(mut h) = self.degraded.lock() {
            *h = text;
        }
    }

    /// What `/healthz` answers: `200 ok`, or `503` naming the store error.
    pub fn respond(&self) -> (StatusCode, String) {
        match self.degraded.lock().ok().and_then(|h| h.clone()) {
            None => (StatusCode::OK, "ok\n".into()),
            Some(text) => (StatusCode::SERVICE_UNAVAILABLE, text),
        }
    }

    /// The `/healthz` route.
    pub fn router(&self) -> axum::Router {
        let h = self.clone();
        axum::Router::new().route(
            "/healthz",
            axum::routing::get(move || {
                let h = h.clone();
                async move { h.respond() }
            }),
        )
    }
}
