//! The embedded S3-compatible store: `s3s-fs` served on a loopback port inside this process,
//! with storage in `<data dir>/media`. The server talks to it through the same `aws-sdk-s3`
//! client as to AWS, with credentials minted for this run.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use rand::distr::{Alphanumeric, SampleString};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running embedded S3 endpoint. Dropping it stops the listener.
#[derive(Debug)]
pub struct EmbeddedS3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl EmbeddedS3 {
    /// Starts the store. `cors_origins` may POST uploads and GET downloads from a browser, as
    /// a bucket's CORS rules would allow them on AWS.
    pub async fn start(data_dir: &Path, cors_origins: &[String], limits: PostLimits) -> anyhow::Result<Self> {
        let root = data_dir.join("media");
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| anyhow::anyhow!("cannot open S3 storage at {}: {e:?}", root.display()))?;
        let mut rng = rand::rng();
        let access_key = format!("huddle{}", Alphanumeric.sample_string(&mut rng, 14));
        let secret_key = Alphanumeric.sample_string(&mut rng, 40);
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
            builder.build()
        };
        let origins: std::sync::Arc<[String]> = cors_origins.into();
        let buffer = std::sync::Arc::new(tokio::sync::Semaphore::new(kib(limits.buffer_bytes)));
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            let graceful = GracefulShutdown::new();
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(e) => {
                            tracing::warn!(error = %e, "embedded S3: accept failed");
                            continue;
                        }
                    },
                    _ = stopped.changed() => break,
                };
                let cors = Cors {
                    inner: service.clone(),
                    origins: origins.clone(),
                    buffer: buffer.clone(),
                    buffer_kib: kib(limits.buffer_bytes),
                    idle: limits.idle,
                };
                let conn = http.serve_connection(TokioIo::new(socket), cors);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
        });
        Ok(Self {
            endpoint,
            access_key,
            secret_key,
            stop,
            task: Some(task),
        })
    }

    /// Stops accepting and waits (briefly) for open requests to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What bounds form uploads into the embedded store. The store reads a form's whole file
/// into memory before it writes it, so the bytes of forms in flight are budgeted (by their
/// `Content-Length`), and a request that stops sending is dropped.
#[derive(Clone, Copy, Debug)]
pub struct PostLimits {
    /// Form bytes held at once (`HUDDLE_EMBEDDED_S3_POST_BUFFER`).
    pub buffer_bytes: u64,
    /// Longest pause in a request body (`HUDDLE_UPLOAD_IDLE_TIMEOUT`).
    pub idle: std::time::Duration,
}

/// Budget units: KiB, so any budget fits a semaphore's permits.
fn kib(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(1024)).unwrap_or(usize::MAX)
}

/// How long a form waits for its bytes to fit in the budget before it is refused with
/// `503 SlowDown` (which S3 clients retry).
const BUFFER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Browser access to the embedded store: preflights from allowed origins are answered, and
/// responses to them carry the CORS headers (what a bucket's CORS configuration does on AWS).
/// Downloads are served the way S3 serves presigned GETs: the signed `response-content-type`
/// and `response-content-disposition` replace the stored headers (the store below ignores
/// them), and every response says `nosniff` and sandboxes anything a browser might render.
#[derive(Clone)]
struct Cors {
    inner: s3s::service::S3Service,
    origins: std::sync::Arc<[String]>,
    buffer: std::sync::Arc<tokio::sync::Semaphore>,
    buffer_kib: usize,
    idle: std::time::Duration,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Cors {
    type Response = http::Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let origin = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| self.origins.iter().any(|allowed| allowed == o))
            .map(str::to_owned);
        let allow = |response: &mut http::Response<s3s::Body>, origin: &str| {
            let headers = response.headers_mut();
            if let Ok(value) = http::HeaderValue::from_str(origin) {
                headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            headers.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
        };
        if req.method() == http::Method::OPTIONS {
            let mut response = http::Response::new(s3s::Body::empty());
            if let Some(origin) = origin.as_deref() {
                allow(&mut response, origin);
                let headers = response.headers_mut();
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    http::HeaderValue::from_static("GET, HEAD, POST"),
                );
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                    http::HeaderValue::from_static("content-type"),
                );
                headers.insert(
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    http::HeaderValue::from_static("600"),
                );
            } else {
                *response.status_mut() = http::StatusCode::FORBIDDEN;
            }
            return Box::pin(async move { Ok(response) });
        }
        let overrides = response_overrides(&req);
        let mut inner = self.inner.clone();
        let form_bytes = form_upload_length(&req);
        let buffer = self.buffer.clone();
        let buffer_kib = self.buffer_kib;
        let req = req.map(|body| IdleBody::new(body, self.idle));
        Box::pin(async move {
            let _reserved = match form_bytes {
                None => None,
                Some(None) => {
                    return Ok(s3_error(
                        http::StatusCode::LENGTH_REQUIRED,
                        "MissingContentLength",
                        "a form upload must give its Content-Length",
                    ));
                }
                Some(Some(bytes)) if kib(bytes) > buffer_kib => {
                    return Ok(s3_error(
                        http::StatusCode::BAD_REQUEST,
                        "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed object size.",
                    ));
                }
                Some(Some(bytes)) => {
                    let wanted = u32::try_from(kib(bytes)).unwrap_or(u32::MAX);
                    match tokio::time::timeout(BUFFER_WAIT, buffer.acquire_many_owned(wanted)).await {
                        Ok(Ok(permit)) => Some(permit),
                        _ => {
                            metrics::counter!("huddle_uploads_refused_total", "reason" => "busy").increment(1);
                            return Ok(s3_error(
                                http::StatusCode::SERVICE_UNAVAILABLE,
                                "SlowDown",
                                "too many uploads at once; retry shortly",
                            ));
                        }
                    }
                }
            };
            let mut response = tower::Service::call(&mut inner, req).await?;
            if let Some(origin) = origin.as_deref() {
                allow(&mut response, origin);
            }
            if response.status().is_success() {
                for (name, value) in overrides {
                    response.headers_mut().insert(name, value);
                }
            }
            let headers = response.headers_mut();
            headers.insert(
                http::header::X_CONTENT_TYPE_OPTIONS,
                http::HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                http::header::CONTENT_SECURITY_POLICY,
                http::HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            Ok(response)
        })
    }
}

/// For a browser form upload (`POST` of `multipart/form-data`): its `Content-Length`, or
/// `Some(None)` without one. `None` for every other request.
fn form_upload_length<B>(req: &http::Request<B>) -> Option<Option<u64>> {
    let form = req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !form {
        return None;
    }
    Some(
        req.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
    )
}

/// An S3 error document.
fn s3_error(status: http::StatusCode, code: &str, message: &str) -> http::Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    }
    response
}

/// A request body that fails once it has sent nothing for `idle`, so a client that stops
/// mid-upload does not hold what it sent so far.
struct IdleBody {
    inner: hyper::body::Incoming,
    idle: std::time::Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleBody {
    fn new(inner: hyper::body::Incoming, idle: std::time::Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl axum::body::HttpBody for IdleBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body stopped arriving",
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The response headers a GET's signed query asks for (`response-content-type`,
/// `response-content-disposition`); applied only once the store has accepted the signature.
fn response_overrides(req: &http::Request<hyper::body::Incoming>) -> Vec<(http::HeaderName, http::HeaderValue)> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return Vec::new();
    }
    let query = req.uri().query().unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
        .filter_map(|(name, value)| {
            let header = match name.as_ref() {
                "response-content-type" => http::header::CONTENT_TYPE,
                "response-content-disposition" => http::header::CONTENT_DISPOSITION,
                _ => return None,
            };
            Some((header, http::HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}
