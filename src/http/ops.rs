//! Operational endpoints: `/health` (the process is up), `/ready` (MongoDB and S3 answer),
//! `/metrics` (Prometheus text format).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` while the database does not answer.
    status: &'static str,
    /// Only when unavailable: `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    mongodb: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `ok` or `unavailable`.
    mongodb: &'static str,
    /// `ok` or `unavailable`.
    s3: &'static str,
}

/// Health, for a load balancer: 200 while this process serves requests and reaches its
/// database; 503 while the database does not answer (an embedded one is being started
/// again), so traffic goes elsewhere meanwhile.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn health(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => axum::Json(Health {
            status: "ok",
            mongodb: None,
        })
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health {
                status: "unavailable",
                mongodb: Some("unavailable"),
            }),
        )
            .into_response(),
    }
}

/// Readiness: MongoDB and the S3 bucket both answer.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(State(state): State<AppState>) -> Response {
    let (db, s3) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.blobs.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let s3_ok = matches!(s3, Ok(Ok(())));
    if let Ok(Err(e)) = &db {
        tracing::warn!(error = %e, "readiness: MongoDB unavailable");
    }
    if let Ok(Err(e)) = &s3 {
        tracing::warn!(error = %e, "readiness: S3 unavailable");
    }
    let label = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = Readiness {
        status: if db_ok && s3_ok { "ready" } else { "unavailable" },
        mongodb: label(db_ok),
        s3: label(s3_ok),
    };
    let status = if db_ok && s3_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}
