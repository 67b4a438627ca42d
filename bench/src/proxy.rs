//! A loopback HTTP proxy in front of moto: adds a fixed delay to every request (to behave like
//! a real AWS region, ~100 ms away) and logs each request's arrival time and AWS action, taken
//! from the `X-Amz-Target` header, the `Action` query or form parameter, or the S3 method + path;
//! the service comes from the SigV4 credential scope.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// When moto's whole response had arrived (None if moto never answered).
    pub done: Option<Instant>,
    /// `service:Action`, e.g. `ecs:CreateService`.
    pub action: String,
}

pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    delay_ms: AtomicU64,
    log: Mutex<Vec<Call>>,
    /// Signalled when moto answered a CreateService with 200 (the container stand-in starts then).
    pub service_created: Notify,
}

impl Proxy {
    /// Listens on an ephemeral loopback port; forwards to `upstream` (moto).
    pub async fn start(upstream: SocketAddr) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr().unwrap(),
            upstream,
            delay_ms: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            service_created: Notify::new(),
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(p.clone().serve(stream));
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// The calls logged since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// One client connection, forwarded over one upstream connection (kept alive like the client's).
    async fn serve(self: Arc<Self>, stream: TcpStream) {
        let upstream: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>> = Default::default();
        let service = hyper::service::service_fn(move |req| {
            let (proxy, upstream) = (self.clone(), upstream.clone());
            async move { proxy.handle(req, &upstream).await }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        upstream: &tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let at = Instant::now();
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let action = classify(&parts, &body);
        let index = {
            let mut log = self.log.lock().unwrap();
            log.push(Call { at, done: None, action: action.clone() });
            log.len() - 1
        };
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let forward = Request::from_parts(parts, Full::new(body));
        let response = match self.send(upstream, forward).await {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("bench proxy: upstream failed: {e}");
                return Ok(Response::builder().status(502).body(Full::new(Bytes::from(msg))).unwrap());
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        if let Some(call) = self.log.lock().unwrap().get_mut(index) {
            // A `take` in between (a new run) moved the log away; the index then points nowhere
            // or at a later call, which has its own `at` after this one's: keep the first answer.
            if call.at == at {
                call.done = Some(Instant::now());
            }
        }
        if action == "ecs:CreateService" && parts.status.is_success() {
            self.service_created.notify_one();
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }

    async fn send(
        &self,
        upstream: &tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
        req: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut conn = upstream.lock().await;
        let usable = match conn.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let stream = TcpStream::connect(self.upstream).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            *conn = Some(sender);
        }
        Ok(conn.as_mut().unwrap().send_request(req).await?)
    }
}

/// `service:Action` of an AWS request.
fn classify(parts: &hyper::http::request::Parts, body: &[u8]) -> String {
    let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    // Credential=AKID/20261126/us-east-1/ecs/aws4_request
    let service = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split([',', ' ']).next())
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("?")
        .to_string();
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return format!("{service}:{}", target.rsplit('.').next().unwrap_or(target));
    }
    let query = parts.uri.query().unwrap_or("");
    let form = std::str::from_utf8(body).unwrap_or("");
    for params in [query, form] {
        if let Some(action) = params.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return format!("{service}:{action}");
        }
    }
    if service == "s3" {
        return format!("s3:{}", s3_operation(parts.method.as_str(), parts.uri.path(), query, &parts.headers));
    }
    format!("{service}:{} {}", parts.method, parts.uri.path())
}

fn s3_operation(method: &str, path: &str, query: &str, headers: &hyper::HeaderMap) -> &'static str {
    let object = path.trim_start_matches('/').split_once('/').is_some_and(|(_, key)| !key.is_empty());
    match (method, object) {
        ("PUT", true) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        ("PUT", true) => "PutObject",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) => "DeleteObject",
        ("PUT", false) => "CreateBucket",
        ("HEAD", false) => "HeadBucket",
        ("DELETE", false) => "DeleteBucket",
        ("GET", false) if path == "/" => "ListBuckets",
        ("GET", false) if query.contains("list-type=2") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        _ => "Other",
    }
}

/// Calls per action, sorted by action.
pub fn counts(calls: &[Call]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in calls {
        *m.entry(c.action.clone()).or_insert(0) += 1;
    }
    m
}
