//! The HTTP surface: one router file per resource, the operational endpoints, the OpenAPI
//! document, and the middleware every response passes through.

pub mod ai;
pub mod auth;
pub mod calls;
pub mod chats;
pub mod extract;
pub mod friends;
pub mod groups;
pub mod media;
pub mod ops;
pub mod postman;
pub mod users;
pub mod web;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Response, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::AppError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Huddle API", description = "Accounts, chat and calls for Huddle clients. Errors share one body: `{ \"error\": { \"code\", \"message\" } }`."),
    tags((name = "auth", description = "Registration, sign-in, tokens, passwords"),
         (name = "users", description = "Profiles and search"),
         (name = "friends", description = "Friend requests and friendships"),
         (name = "chats", description = "1:1 and group chats"),
         (name = "groups", description = "Groups with admin roles"),
         (name = "calls", description = "Audio and video calls"),
         (name = "media", description = "Uploads to S3 and download URLs"),
         (name = "messages", description = "Message history and writes"),
         (name = "notifications", description = "The caller's notifications"),
         (name = "ai", description = "The AI chat and chat summaries; answers stream over Socket.IO"),
         (name = "ops", description = "Health, readiness, metrics")),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI document, generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1/auth", auth::router())
        .nest("/api/v1/users", users::router())
        .nest("/api/v1/friends", friends::friend_router())
        .nest("/api/v1/notifications", friends::notification_router())
        .nest("/api/v1/groups", groups::router())
        .nest("/api/v1/calls", calls::router())
        .nest("/api/v1/media", media::router())
        .merge(ai::router())
        .nest("/api/v1/chats", chats::chat_router())
        .nest("/api/v1/messages", chats::message_router())
        .merge(ops::router())
}

/// The whole application with its middleware.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let postman = std::sync::Arc::new(postman::collection(&openapi));
    let docs_csp = HeaderValue::from_static(
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    );
    let docs: Router<AppState> = Router::from(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi)).layer(
        SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, docs_csp),
    );
    let routes = Router::new()
        .merge(api)
        .merge(docs)
        .route(
            "/api/v1/postman.json",
            axum::routing::get(move || {
                let postman = postman.clone();
                async move { axum::Json(postman.as_ref().clone()) }
            }),
        )
        .route("/api/{*rest}", axum::routing::any(|| async { AppError::NotFound }));
    let routes = match &state.config.web_dir {
        Some(dir) if dir.is_dir() => routes.merge(web::router(dir, &state.blobs.origin())),
        _ => routes.fallback(|| async { AppError::NotFound }),
    };
    with_middleware(routes, state)
}

/// Wraps routes in the middleware every response passes through: panic catching, request
/// logs and metrics, security headers, CORS and the body limit.
pub fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let hsts = state.config.hsts;
    routes
        .layer(state.realtime.layer())
        .layer(middleware::from_fn_with_state(state.clone(), limit_handshakes))
        .layer(tower::util::MapRequestLayer::new(crate::realtime::own_request_head))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        // Inside the header, metrics and log layers, so a panic's 500 gets all of them.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors(&state.config.cors_origins))
        .layer(middleware::from_fn(move |req, next| security_headers(hsts, req, next)))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The path only: query strings can carry secrets.
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// The helmet set, on every response (handlers may set a stricter or looser CSP first).
async fn security_headers(hsts: bool, req: Request, next: Next) -> impl IntoResponse {
    let is_auth = req.uri().path().starts_with("/api/v1/auth");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &'static str); 7] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in defaults {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    if is_auth {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The `method` label: the standard methods by name, anything made up as `other`, so no
/// request can add a series (labels come from closed sets; routes are the matched
/// templates or `unmatched`).
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

async fn record_metrics(req: Request, next: Next) -> impl IntoResponse {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("huddle_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("huddle_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    metrics::counter!("huddle_handler_panics_total").increment(1);
    AppError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}

/// Counts each new Engine.IO session (a `/socket.io/` request without `sid`) against its
/// client's per-minute allowance, `HUDDLE_SOCKET_HANDSHAKES_PER_IP`. A session is created
/// before its token is checked, so without this anyone could hold server memory with
/// handshakes alone; past the allowance the handshake gets `429 rate_limited`. IPv6
/// clients are counted by their /64, which one host usually holds whole.
pub async fn limit_handshakes(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    extract::ClientIp(ip): extract::ClientIp,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let new_session = req.uri().path().starts_with("/socket.io")
        && !form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).any(|(name, _)| name == "sid");
    if new_session {
        let key = match ip {
            std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            other => other.to_canonical().to_string(),
        };
        if let Err(retry_after) = state
            .handshakes
            .hit(&key, state.config.socket_handshakes_per_ip, std::time::Instant::now())
            .await
        {
            metrics::counter!("huddle_socket_handshakes_refused_total").increment(1);
            return AppError::TooManyRequests { retry_after }.into_response();
        }
    }
    next.run(req).await
}
