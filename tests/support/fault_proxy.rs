//! A fault-injecting HTTP/1.1 proxy between wharf and moto (tests/e2e/faults.rs).
//!
//! wharf's `AWS_ENDPOINT_URL` points here. Each request is either forwarded to moto untouched or
//! hit by one fault, chosen with a seeded generator at a configured rate:
//!
//! * `500` / `503`: a service-shaped error body (JSON `__type` for awsJson services, the query
//!   protocols' XML for EC2 and IAM, S3's XML);
//! * `throttle`: the service's own throttling code (`ThrottlingException`, `Throttling`,
//!   `RequestLimitExceeded`, `SlowDown`), always *before* forwarding: AWS throttles at the door;
//! * `reset`: the connection is reset (RST) instead of answered;
//! * `hang`: no answer at all (until [`FaultConfig::hang`]): wharf's SDK attempt timeout must end it;
//! * `slow`: the answer arrives, late.
//!
//! `500`, `503`, `reset` and `hang` happen *before* forwarding (nothing applied) or *after* (moto
//! applied the request, its answer is lost: the case that tests idempotency), half and half.
//! [`FaultConfig::rules`] force a fault on every request of one operation (fail-fast tests).
//!
//! One request per connection (`Connection: close` both ways) keeps the forwarder small.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status500,
    Status503,
    Throttle,
    Reset,
    Hang,
    Slow,
    AccessDenied,
    Validation,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Status500 => "500",
            Fault::Status503 => "503",
            Fault::Throttle => "throttle",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
            Fault::Slow => "slow",
            Fault::AccessDenied => "access-denied",
            Fault::Validation => "validation",
        }
    }

    /// Whether the fault may strike after moto applied the request.
    fn can_come_after(self) -> bool {
        matches!(self, Fault::Status500 | Fault::Status503 | Fault::Reset | Fault::Hang)
    }
}

/// The transient faults the random injection draws from, equally likely.
pub const TRANSIENT: &[Fault] =
    &[Fault::Status500, Fault::Status503, Fault::Throttle, Fault::Reset, Fault::Hang, Fault::Slow];

#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Share of requests hit by a fault (0.0-1.0).
    pub rate: f64,
    pub seed: u64,
    /// `(operation, fault)`: requests of that operation (e.g. `CreateRole`) get the fault...
    pub rules: Vec<(String, Fault)>,
    /// ...the first this many of them (`None`: all)...
    pub rule_times: Option<u64>,
    /// ...after moto applied them (`500`/`503`/`reset`/`hang` only).
    pub rule_after: bool,
    /// How long a `hang` holds the connection without answering.
    pub hang: Duration,
    /// Delay of a `slow` answer.
    pub slow: Duration,
}

impl FaultConfig {
    pub fn random(rate: f64, seed: u64) -> Self {
        FaultConfig {
            rate,
            seed,
            rules: vec![],
            rule_times: None,
            rule_after: false,
            hang: Duration::from_secs(20),
            slow: Duration::from_millis(1500),
        }
    }
}

/// What the proxy saw and did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub requests: u64,
    /// `"<fault> before"` / `"<fault> after"` -> count.
    pub faults: BTreeMap<String, u64>,
    /// Requests per operation (`CreateRole`, `ec2:CreateVpc` is `CreateVpc`, S3 is `s3 GET`).
    pub operations: BTreeMap<String, u64>,
}

impl Stats {
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

pub struct FaultProxy {
    pub url: String,
    stats: Arc<Mutex<Stats>>,
}

impl FaultProxy {
    /// Starts the proxy on a loopback port, on its own thread and runtime (tests block on child
    /// processes; the proxy must keep answering meanwhile).
    pub fn start(upstream: &str, config: FaultConfig) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = stats.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async { serve(TcpListener::from_std(listener).unwrap(), upstream, config, shared).await });
        });
        FaultProxy { url, stats }
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap().clone()
    }
}

async fn serve(listener: TcpListener, upstream: String, config: FaultConfig, stats: Arc<Mutex<Stats>>) {
    let mut rng = SplitMix(config.seed);
    let config = Arc::new(config);
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        // Decided here, in accept order, so one seed gives one sequence of decisions.
        let roll = (rng.unit(), rng.next(), rng.unit());
        let (config, upstream, stats) = (config.clone(), upstream.clone(), stats.clone());
        tokio::spawn(async move {
            let _ = handle(client, &upstream, &config, &stats, roll).await;
        });
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    config: &FaultConfig,
    stats: &Mutex<Stats>,
    (hit, which, after): (f64, u64, f64),
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else { return Ok(()) };
    let op = request.operation();
    let seen = {
        let mut s = stats.lock().unwrap();
        let seen = s.operations.entry(op.clone()).or_default();
        *seen += 1;
        *seen
    };
    let rule = config.rules.iter().find(|(o, _)| *o == op).filter(|_| config.rule_times.is_none_or(|n| seen <= n));
    let fault = match rule {
        Some((_, fault)) => Some(*fault),
        None if hit < config.rate => Some(TRANSIENT[(which % TRANSIENT.len() as u64) as usize]),
        None => None,
    };
    let after =
        fault.is_some_and(|f| f.can_come_after()) && if rule.is_some() { config.rule_after } else { after < 0.5 };
    {
        let mut s = stats.lock().unwrap();
        s.requests += 1;
        if let Some(f) = fault {
            let when = if after { "after" } else { "before" };
            *s.faults.entry(format!("{} {when}", f.name())).or_default() += 1;
        }
    }
    let forwarded = match fault {
        Some(f) if !after && f != Fault::Slow => None,
        _ => Some(forward(upstream, &request).await?),
    };
    match fault {
        None => client.write_all(&forwarded.unwrap()).await?,
        Some(Fault::Slow) => {
            tokio::time::sleep(config.slow).await;
            client.write_all(&forwarded.unwrap()).await?;
        }
        Some(Fault::Reset) => {
            // SO_LINGER 0: close sends RST, as a dropped load balancer connection does. (The
            // deprecation is about a blocking drop, which a zero linger does not do.)
            #[allow(deprecated)]
            client.set_linger(Some(Duration::ZERO))?;
            drop(client);
            return Ok(());
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(config.hang).await;
            return Ok(());
        }
        Some(f) => client.write_all(&error_response(&request.service(), f)).await?,
    }
    client.shutdown().await
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The signing service from the SigV4 credential scope (`.../us-east-1/ec2/aws4_request`).
    fn service(&self) -> String {
        let auth = self.header("authorization").unwrap_or_default();
        auth.split('/').rev().nth(1).unwrap_or("unknown").to_string()
    }

    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return action.to_string();
        }
        format!("{} {}", self.service(), self.head.split(' ').next().unwrap_or_default())
    }
}

async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request = Request { head, body: buf[head_end..].to_vec() };
    let chunked = request.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: usize = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    loop {
        let complete = if chunked { request.body.ends_with(b"0\r\n\r\n") } else { request.body.len() >= length };
        if complete {
            return Ok(Some(request));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
}

/// Sends the request to moto on a fresh connection and returns moto's whole answer.
async fn forward(upstream: &str, request: &Request) -> std::io::Result<Vec<u8>> {
    let mut head: Vec<&str> = request
        .head
        .trim_end()
        .lines()
        .filter(|l| {
            !l.to_ascii_lowercase().starts_with("connection:") && !l.to_ascii_lowercase().starts_with("keep-alive:")
        })
        .collect();
    head.push("Connection: close");
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&request.body);
    let mut moto = TcpStream::connect(upstream).await?;
    moto.write_all(&out).await?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).await?;
    Ok(response)
}

/// The error `fault` looks like in `service`'s protocol.
fn error_response(service: &str, fault: Fault) -> Vec<u8> {
    let (status, reason) = match fault {
        Fault::Status503 => (503, "Service Unavailable"),
        Fault::Status500 => (500, "Internal Server Error"),
        Fault::AccessDenied => (403, "Forbidden"),
        Fault::Throttle if matches!(service, "ec2" | "s3") => (503, "Service Unavailable"),
        _ => (400, "Bad Request"),
    };
    let query = matches!(service, "iam" | "sts");
    let code = match (fault, service) {
        (Fault::Status503, _) => "ServiceUnavailable",
        (Fault::Status500, "ec2" | "s3") => "InternalError",
        (Fault::Status500, _) if query => "ServiceFailure",
        (Fault::Status500, _) => "InternalFailure",
        (Fault::Throttle, "ec2") => "RequestLimitExceeded",
        (Fault::Throttle, "s3") => "SlowDown",
        (Fault::Throttle, _) if query => "Throttling",
        (Fault::Throttle, _) => "ThrottlingException",
        (Fault::AccessDenied, "ec2") => "UnauthorizedOperation",
        (Fault::AccessDenied, "s3") => "AccessDenied",
        (Fault::AccessDenied, _) if query => "AccessDenied",
        (Fault::AccessDenied, _) => "AccessDeniedException",
        (Fault::Validation, "ec2") => "InvalidParameterValue",
        (Fault::Validation, _) if query => "ValidationError",
        (Fault::Validation, _) => "ValidationException",
        _ => "InternalFailure",
    };
    let message = format!("injected by the fault proxy ({})", fault.name());
    let (content_type, body) = match service {
        "ec2" => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            ),
        ),
        "s3" => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
            ),
        ),
        _ if query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        ),
        _ => ("application/x-amz-json-1.1", format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}")),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\nx-amzn-ErrorType: {code}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small seeded generator (SplitMix64): reproducible without a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A seed from `var` if set, else from the clock; printed by the caller for reproduction.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}
