//! The web client: the static files of `web/` served at `/`, with the headers a page that
//! uses the camera, the microphone and the media store needs.

use std::path::Path;

use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::AppError;
use crate::state::AppState;

/// Serves `dir` at `/` (`index.html` for the root); anything else not there is the API's
/// JSON 404. `store_origin` is where the page uploads to and downloads from.
pub fn router(dir: &Path, store_origin: &str) -> Router<AppState> {
    let not_found = (|| async { AppError::NotFound }).into_service();
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .not_found_service(not_found);
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob: {store_origin}; media-src 'self' blob: {store_origin}; \
         connect-src 'self' ws: wss: {store_origin}; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'; object-src 'none'"
    );
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'self'"));
    Router::new()
        .fallback_service(files)
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self), geolocation=()"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
}
