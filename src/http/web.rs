//! The web client: the static files of `web/` served at `/`, with the headers a page that
//! uses the camera, the microphone and the media store needs.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// Serves `dir` at `/` (`index.html` for the root and for unknown paths without an
/// extension, so client-side routes load the app). `store_origin` is where the page uploads
/// to and downloads from.
pub fn router(dir: &Path, store_origin: &str) -> Router<AppState> {
    let index = dir.join("index.html");
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(index));
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
