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
        let cors = tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::AllowOrigin::list(
                cors_origins.iter().filter_map(|o| http::HeaderValue::from_str(o).ok()),
            ))
            .allow_methods([http::Method::GET, http::Method::HEAD, http::Method::POST])
            .allow_headers([http::header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600));
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
                let front = Front {
                    inner: service.clone(),
                    buffer: buffer.clone(),
                    buffer_kib: kib(limits.buffer_bytes),
                    idle: limits.idle,
                };
                let stack = tower::ServiceBuilder::new()
                    .layer_fn(|inner| ForeignPreflight {
                        inner,
                        origins: origins.clone(),
                    })
                    .layer(cors.clone())
                    .service(front);
                let conn = http.serve_connection(
                    TokioIo::new(socket),
                    hyper_util::service::TowerToHyperService::new(stack),
                );
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

/// Refuses a CORS preflight from an origin that may not use the store with `403`, as S3
/// does for a request its bucket's CORS rules do not allow. Everything else goes on to
/// tower-http's CORS layer, which answers allowed preflights and adds the CORS headers.
#[derive(Clone)]
struct ForeignPreflight<S> {
    inner: S,
    origins: std::sync::Arc<[String]>,
}

impl<S, B> tower::Service<http::Request<B>> for ForeignPreflight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<s3s::Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<s3s::Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let allowed = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.origins.iter().any(|allowed| allowed == o));
        if req.method() == http::Method::OPTIONS && !allowed {
            let refused = s3_error(
                http::StatusCode::FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: this CORS request is not allowed",
            );
            return Box::pin(async move { Ok(refused) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// The embedded store's front: form uploads are budgeted, downloads are served the way S3
/// serves presigned GETs (the signed `response-content-type` and
/// `response-content-disposition` replace the stored headers, which the store below
/// ignores), and every response says `nosniff` and sandboxes anything a browser might render.
#[derive(Clone)]
struct Front {
    inner: s3s::service::S3Service,
    buffer: std::sync::Arc<tokio::sync::Semaphore>,
    buffer_kib: usize,
    idle: std::time::Duration,
}

impl tower::Service<http::Request<hyper::body::Incoming>> for Front {
    type Response = http::Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
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
