//! `backout dashboard`: the incident on one live page, served on loopback by
//! the operator's own CLI.
//!
//! The dashboard is a Control API client like every other command: it
//! talks to the coordinator under the operator's certificate, so the
//! coordinator exposes nothing new, and every approval it sends is the
//! operator's own. Browsers talk to it over plain HTTP on loopback.
//!
//! What keeps another web page (or a DNS name pointed at 127.0.0.1) from
//! acting through it:
//! - it binds a loopback address unless `--allow-remote` is given;
//! - every request's `Host` must be the bound address (or `localhost` with
//!   its port), which defeats DNS rebinding;
//! - every change is a POST carrying this process's random token (a hidden
//!   form field or the `X-CSRF-Token` header), and a POST whose `Origin` is
//!   another site is refused. GETs change nothing.
//!
//! Pages are rendered on the server ([`pages`]); a small script
//! (`assets/dashboard.js`) keeps them live. Each page answers JSON to
//! `Accept: application/json`. A run's live view is a server-sent event
//! stream fed by one `Watch` per run ([`feed`]).

mod feed;
mod pages;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use backout_proto::wire;
use backout_proto::wire::control_client::ControlClient;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::cli::client::ConnectArgs;
use crate::cli::{BadInput, Exit};
use feed::{Feeds, Link};

/// `backout dashboard`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    /// Where to serve the pages (host:port; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub listen: String,
    /// Allow a non-loopback --listen address (a specific one, not 0.0.0.0:
    /// requests' Host must name it). Anyone who reaches it acts with your
    /// certificate: put it behind your own authentication.
    #[arg(long)]
    pub allow_remote: bool,
    /// Open the dashboard in the default browser.
    #[arg(long)]
    pub open: bool,
}

/// How often the Now page's charts sample the decision matrix.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How many samples each chart keeps (ten minutes' worth).
const SAMPLES_KEPT: usize = 120;
/// How often the hosts' health checks run in the background.
const HEALTH_EVERY: Duration = Duration::from_secs(30);

/// The coordinator, as the dashboard reaches it: one Control client,
/// connected on first use and again after the connection failed.
#[derive(Debug)]
pub struct Upstream {
    connect: ConnectArgs,
    client: tokio::sync::Mutex<Option<ControlClient<Channel>>>,
}

impl Upstream {
    /// A client, connecting if there is none.
    pub async fn client(&self) -> anyhow::Result<ControlClient<Channel>> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = self.connect.control().await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the client after a failure that means the connection is gone,
    /// so the next call connects again.
    pub async fn forget(&self, status: &tonic::Status) {
        if matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
        ) {
            *self.client.lock().await = None;
        }
    }

    /// Drops the client whatever the failure (a broken stream).
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }

    /// Calls the coordinator once; a failed connection is forgotten.
    async fn call<T, F, Fut>(&self, rpc: F) -> Result<T, Failure>
    where
        F: FnOnce(ControlClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self
            .client()
            .await
            .map_err(|e| Failure::Unreachable(format!("{e:#}")))?;
        match rpc(client).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => {
                self.forget(&status).await;
                Err(Failure::from(status))
            }
        }
    }
}

/// Why a page could not be answered.
#[derive(Debug)]
enum Failure {
    /// The coordinator cannot be reached: the page says "reconnecting".
    Unreachable(String),
    /// The coordinator answered no (not found, refused, bad request).
    Refused(StatusCode, String),
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded => Failure::Unreachable(message),
            tonic::Code::NotFound => Failure::Refused(StatusCode::NOT_FOUND, message),
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Failure::Refused(
                StatusCode::FORBIDDEN,
                format!("refused by the coordinator: {message}"),
            ),
            tonic::Code::InvalidArgument => Failure::Refused(StatusCode::BAD_REQUEST, message),
            _ => Failure::Refused(StatusCode::CONFLICT, message),
        }
    }
}

/// Recent values of each trigger, sampled by this process.
#[derive(Debug, Default)]
struct Trends {
    samples: BTreeMap<String, VecDeque<(i64, f64)>>,
}

impl Trends {
    fn record(&mut self, matrix: &wire::MatrixReply) {
        for row in &matrix.rows {
            let Some(value) = pages::number(&row.value) else {
                continue;
            };
            let samples = self.samples.entry(row.trigger.clone()).or_default();
            samples.push_back((matrix.now_ms, value));
            while samples.len() > SAMPLES_KEPT {
                samples.pop_front();
            }
        }
    }
}

/// What every handler shares.
struct App {
    upstream: Arc<Upstream>,
    feeds: Feeds,
    /// This process's token for POSTs.
    csrf: String,
    /// The `Host` values requests may carry.
    hosts: Vec<String>,
    /// Who the coordinator says we are ("alice (release-manager)").
    identity: Mutex<String>,
    trends: Mutex<Trends>,
    /// The last health check of every host, as JSON.
    health: Mutex<Option<Value>>,
}

type Shared = Arc<App>;

impl App {
    fn identity(&self) -> String {
        self.identity.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A page in the frame, its forms carrying this process's token (so
    /// they work without the script too).
    fn page(&self, title: &str, active: &str, body: &str) -> String {
        let body = body.replace(
            r#"<input type="hidden" name="csrf">"#,
            &format!(r#"<input type="hidden" name="csrf" value="{}">"#, self.csrf),
        );
        pages::layout(title, active, &self.identity(), &self.csrf, &body)
    }
}

/// Runs the dashboard until Ctrl-C.
pub async fn run(connect: &ConnectArgs, args: DashboardArgs) -> anyhow::Result<Exit> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        BadInput(format!(
            "--listen {}: expected IP:PORT, e.g. 127.0.0.1:3100",
            args.listen
        ))
    })?;
    if !listen.ip().is_loopback() && !args.allow_remote {
        return Err(BadInput(format!(
            "--listen {listen}: not a loopback address. The dashboard acts with your \
             certificate; give --allow-remote to serve it beyond this machine anyway"
        ))
        .into());
    }
    // Requests must name the bound address as their Host: an unspecified
    // one (0.0.0.0) is no name anyone uses.
    if listen.ip().is_unspecified() {
        return Err(BadInput(format!(
            "--listen {listen}: give the address people will open (e.g. 10.0.0.5:3100); \
             requests are checked against it"
        ))
        .into());
    }
    let upstream = Arc::new(Upstream {
        connect: connect.clone(),
        client: tokio::sync::Mutex::new(None),
    });
    // Bad identity files are bad input now; an unreachable coordinator is
    // not: the pages say "reconnecting" until it answers.
    let mut identity = String::new();
    match upstream.client().await {
        Ok(mut client) => {
            if let Ok(me) = client.who_am_i(wire::WhoAmIRequest {}).await {
                let me = me.into_inner();
                identity = format!("{} ({})", me.identity, me.roles.join(", "));
            }
        }
        Err(e) if crate::cli::exit_code_for(&e) == Exit::BadInput => return Err(e),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "coordinator unreachable; will retry"),
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BadInput(format!("--listen {listen}: cannot listen: {e}")))?;
    let bound = listener.local_addr()?;
    let mut hosts = vec![bound.to_string()];
    if bound.ip().is_loopback() {
        for name in ["localhost", "127.0.0.1", "[::1]"] {
            hosts.push(format!("{name}:{}", bound.port()));
        }
    }
    let app = Arc::new(App {
        upstream,
        feeds: Feeds::default(),
        csrf: hex::encode(rand::random::<[u8; 32]>()),
        hosts,
        identity: Mutex::new(identity),
        trends: Mutex::new(Trends::default()),
        health: Mutex::new(None),
    });
    tokio::spawn(sample_matrix(app.clone()));
    tokio::spawn(check_health(app.clone()));
    let url = format!("http://{bound}/");
    // A closed stdout must not stop a server (println! would panic).
    let _ = std::io::Write::write_fmt(
        &mut std::io::stdout(),
        format_args!("backout: dashboard on {url}\n"),
    );
    if args.open
        && let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn()
    {
        tracing::warn!(error = %e, "cannot open a browser; open {url} yourself");
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(Exit::Ok)
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(now))
        .route("/fleet", get(fleet))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/report", get(report))
        .route("/runs/{id}/report.html", get(report_html))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/abort", post(abort))
        .route("/runs/{id}/undo", post(undo))
        .route("/dry-run", post(dry_run))
        .route("/assess", post(assess_now))
        .route("/static/dashboard.js", get(script))
        .route("/static/dashboard.css", get(style))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Refuses a foreign `Host` (DNS rebinding) and a POST from another origin.
/// The token is checked by each POST handler, which reads it from the
/// `X-CSRF-Token` header or the form.
async fn guard(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|h| h == host) {
        tracing::warn!(host, "request with a foreign Host header refused");
        return (StatusCode::FORBIDDEN, "foreign Host header\n").into_response();
    }
    if request.method() == Method::POST
        && let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(format!("http://{host}").as_str())
    {
        return (StatusCode::FORBIDDEN, "cross-origin POST\n").into_response();
    }
    next.run(request).await
}

/// Whether a POST carries this process's token, in its header or its form.
fn token_ok(app: &App, headers: &HeaderMap, form: Option<&str>) -> bool {
    let given = headers
        .get("x-csrf-token")
        .and_then(|h| h.to_str().ok())
        .or(form)
        .unwrap_or_default();
    // Same length, and every byte compared: no early exit to time.
    given.len() == app.csrf.len()
        && given
            .bytes()
            .zip(app.csrf.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token: reload the page\n",
    )
        .into_response()
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// A page or its JSON, by what the request accepts.
fn answer(
    app: &App,
    headers: &HeaderMap,
    title: &str,
    active: &str,
    doc: Value,
    html: impl FnOnce(&Value) -> String,
) -> Response {
    if wants_json(headers) {
        return axum::Json(doc).into_response();
    }
    let page = app.page(title, active, &html(&doc));
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(page),
    )
        .into_response()
}

/// A failure as a page (or JSON): "reconnecting" when the coordinator is
/// away, else what it said.
fn failed(app: &App, headers: &HeaderMap, title: &str, active: &str, failure: Failure) -> Response {
    let (status, doc, body) = match failure {
        Failure::Unreachable(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": why, "reconnecting": true }),
            pages::reconnecting(&why),
        ),
        Failure::Refused(status, why) => (status, json!({ "error": why }), pages::error_box(&why)),
    };
    if wants_json(headers) {
        return (status, axum::Json(doc)).into_response();
    }
    (status, axum::response::Html(app.page(title, active, &body))).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/dashboard.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/dashboard.css"),
    )
        .into_response()
}

/// Samples the matrix for the charts, while the dashboard runs.
async fn sample_matrix(app: Shared) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        if let Ok(matrix) = app
            .upstream
            .call(|mut c| async move { c.matrix(wire::MatrixRequest {}).await })
            .await
            && let Ok(mut trends) = app.trends.lock()
        {
            trends.record(&matrix);
        }
    }
}

/// Runs every host's health checks now and then, for the Now page.
async fn check_health(app: Shared) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        tick.tick().await;
        refresh_health(&app).await;
    }
}

async fn refresh_health(app: &App) -> Option<Failure> {
    let reply = app
        .upstream
        .call(|mut c| async move { c.assess(wire::AssessRequest { timeout_ms: 10_000 }).await })
        .await;
    match reply {
        Ok(reply) => {
            let doc = pages::health_json(&reply);
            if let Ok(mut health) = app.health.lock() {
                *health = Some(doc);
            }
            None
        }
        Err(failure) => Some(failure),
    }
}

async fn now(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let matrix = app
        .upstream
        .call(|mut c| async move { c.matrix(wire::MatrixRequest {}).await })
        .await;
    let matrix = match matrix {
        Ok(m) => m,
        Err(failure) => return failed(&app, &headers, "Now", "now", failure),
    };
    let health = app.health.lock().ok().and_then(|h| h.clone());
    let hosts = health
        .as_ref()
        .and_then(|h| h["hosts"].as_array().cloned())
        .unwrap_or_default();
    let trends = app
        .trends
        .lock()
        .map(|t| {
            t.samples
                .iter()
                .map(|(name, samples)| {
                    (
                        name.clone(),
                        json!(
                            samples
                                .iter()
                                .map(|(at, v)| json!([at, v]))
                                .collect::<Vec<_>>()
                        ),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
        })
        .unwrap_or_default();
    let mut doc = json!({
        "has_plan": matrix.has_plan,
        "now_ms": matrix.now_ms,
        "matrix": crate::cli::matrix::matrix_json(&matrix),
        "checklist": crate::cli::matrix::checklist(&hosts, matrix.has_plan.then_some(&matrix), None),
        "health": health,
        "trends": trends,
    });
    // The threshold of each trigger, for its chart's line.
    if let Some(rows) = doc["matrix"]["triggers"].as_array_mut() {
        for (row, wire_row) in rows.iter_mut().zip(&matrix.rows) {
            // `signal OP number` conditions have one; the number is in the
            // signal's own unit, as the value is (2000ms is 2).
            let threshold = backout_plan::expr::Expr::parse(&wire_row.condition)
                .ok()
                .and_then(|e| e.threshold())
                .map(|(_, _, n)| n);
            row["threshold"] = json!(threshold);
        }
    }
    answer(&app, &headers, "Now", "now", doc, pages::now)
}

async fn fleet(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match app
        .upstream
        .call(|mut c| async move { c.list_agents(wire::ListAgentsRequest::default()).await })
        .await
    {
        Ok(reply) => answer(
            &app,
            &headers,
            "Fleet",
            "fleet",
            pages::agents_json(&reply),
            pages::fleet,
        ),
        Err(failure) => failed(&app, &headers, "Fleet", "fleet", failure),
    }
}

async fn list_runs(app: &App) -> Result<Vec<Value>, Failure> {
    let reply = app
        .upstream
        .call(|mut c| async move { c.list_runs(wire::ListRunsRequest::default()).await })
        .await?;
    Ok(reply
        .runs
        .iter()
        .map(crate::cli::runs::summary_json)
        .collect())
}

async fn runs(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match list_runs(&app).await {
        Ok(runs) => answer(
            &app,
            &headers,
            "Runs",
            "runs",
            json!({ "runs": runs }),
            pages::runs,
        ),
        Err(failure) => failed(&app, &headers, "Runs", "runs", failure),
    }
}

/// A run id as the coordinator makes them: letters, digits, `-`, `_`, `.`.
fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn no_such_run(app: &App, headers: &HeaderMap, id: &str) -> Response {
    failed(
        app,
        headers,
        "Run",
        "runs",
        Failure::Refused(StatusCode::NOT_FOUND, format!("no run {id}")),
    )
}

async fn run_page(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_run_id(&id) {
        return no_such_run(&app, &headers, &id);
    }
    let feed = app.feeds.get(&app.upstream, &id);
    // Wait (briefly) for the feed's first summary, so the page has a grid.
    let mut changed = feed.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            {
                let s = feed.lock();
                if s.summary.is_some() || s.link == Link::Reconnecting {
                    return;
                }
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let doc = {
        let s = feed.lock();
        s.summary.as_ref().map(|summary| {
            json!({
                "run": summary,
                "events": s.events,
                "link": s.link.as_str(),
            })
        })
    };
    let doc = match doc {
        Some(mut doc) => {
            doc["incidents"] = incidents(&app, &id).await;
            Some(doc)
        }
        None => None,
    };
    match doc {
        Some(doc) => answer(
            &app,
            &headers,
            &format!("Run {id}"),
            "runs",
            doc,
            pages::run,
        ),
        None => {
            let error = feed.lock().error.clone().unwrap_or_default();
            if error.contains("no such run") || error.contains("unknown run") {
                return no_such_run(&app, &headers, &id);
            }
            failed(&app, &headers, "Run", "runs", Failure::Unreachable(error))
        }
    }
}

/// The status-page incidents the run opened (channel, id, public link),
/// from its report's communications; none when the report cannot be read.
async fn incidents(app: &App, id: &str) -> Value {
    let Ok(text) = report_text(app, id, "json").await else {
        return json!([]);
    };
    let report: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut out: Vec<Value> = Vec::new();
    for n in report["communications"].as_array().into_iter().flatten() {
        let incident = &n["incident"];
        if incident.is_object() && !out.iter().any(|o| o["id"] == incident["id"]) {
            out.push(
                json!({ "channel": n["channel"], "id": incident["id"], "link": incident["link"] }),
            );
        }
    }
    Value::Array(out)
}

#[derive(Debug, Deserialize)]
struct After {
    after: Option<usize>,
}

/// The run's live view: `link` events (live, reconnecting, ended),
/// `summary` events (the run as it stands), and `run` events numbered from
/// 1, resumed after `Last-Event-ID` (or `?after=N` on first connection).
async fn run_events(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(after): Query<After>,
    headers: HeaderMap,
) -> Response {
    if !valid_run_id(&id) {
        return no_such_run(&app, &headers, &id);
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<usize>().ok())
        .or(after.after)
        .unwrap_or(0);
    let feed = app.feeds.get(&app.upstream, &id);
    let rx = feed.subscribe();
    struct Cursor {
        feed: Arc<feed::Feed>,
        rx: tokio::sync::watch::Receiver<u64>,
        next: usize,
        summary_version: u64,
        link: Option<(Link, Option<String>)>,
    }
    let cursor = Cursor {
        feed,
        rx,
        next: resume,
        summary_version: 0,
        link: None,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            // Mark the change seen before reading, so none slips between.
            drop(c.rx.borrow_and_update());
            let mut batch = Vec::new();
            {
                let s = c.feed.lock();
                let link = (s.link, s.error.clone());
                if c.link.as_ref() != Some(&link) {
                    let doc = json!({ "link": link.0.as_str(), "error": link.1 });
                    batch.push(Event::default().event("link").data(doc.to_string()));
                    c.link = Some(link);
                }
                if s.summary_version != c.summary_version {
                    if let Some(summary) = &s.summary {
                        batch.push(Event::default().event("summary").data(summary.to_string()));
                    }
                    c.summary_version = s.summary_version;
                }
                while c.next < s.events.len() {
                    let event = &s.events[c.next];
                    c.next += 1;
                    batch.push(
                        Event::default()
                            .id(c.next.to_string())
                            .event("run")
                            .data(event.to_string()),
                    );
                }
            }
            if !batch.is_empty() {
                return Some((futures::stream::iter(batch), c));
            }
            if c.rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .flatten()
    .map(Ok::<_, Infallible>);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn report_text(app: &App, id: &str, format: &str) -> Result<String, Failure> {
    let request = wire::ReportRequest {
        run_id: id.to_string(),
        format: format.to_string(),
    };
    Ok(app
        .upstream
        .call(|mut c| async move { c.report(request).await })
        .await?
        .text)
}

async fn report(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !valid_run_id(&id) {
        return no_such_run(&app, &headers, &id);
    }
    match report_text(&app, &id, "json").await {
        Ok(text) => {
            let report: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let doc = json!({ "run": id, "journal": report["journal"], "report": report });
            answer(
                &app,
                &headers,
                &format!("Report {id}"),
                "runs",
                doc,
                pages::report,
            )
        }
        Err(failure) => failed(&app, &headers, "Report", "runs", failure),
    }
}

/// The report as `backout report --format html` writes it, for the Report
/// page's frame. It is shown sandboxed: no script, no same-origin access.
async fn report_html(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_run_id(&id) {
        return no_such_run(&app, &headers, &id);
    }
    match report_text(&app, &id, "html").await {
        Ok(text) => (
            [
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            axum::response::Html(text),
        )
            .into_response(),
        Err(failure) => failed(&app, &headers, "Report", "runs", failure),
    }
}

#[derive(Debug, Deserialize)]
struct ApproveForm {
    csrf: Option<String>,
    /// `run` or a gated phase.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    role: String,
    /// Present (any value) to refuse.
    refuse: Option<String>,
    #[serde(default)]
    why: String,
}

/// After an action: JSON for the page's script, a redirect for a plain form.
fn acted(headers: &HeaderMap, id: &str, result: Result<wire::RunSummary, Failure>) -> Response {
    match result {
        Ok(summary) => {
            if wants_json(headers) {
                axum::Json(json!({ "ok": true, "run": crate::cli::runs::summary_json(&summary) }))
                    .into_response()
            } else {
                Redirect::to(&format!("/runs/{}", summary.run_id)).into_response()
            }
        }
        Err(failure) => {
            let (status, why) = match failure {
                Failure::Unreachable(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the coordinator is unreachable: {why}"),
                ),
                Failure::Refused(status, why) => (status, why),
            };
            if wants_json(headers) {
                (status, axum::Json(json!({ "ok": false, "error": why }))).into_response()
            } else {
                (
                    status,
                    axum::response::Html(pages::standalone_error(&why, &format!("/runs/{id}"))),
                )
                    .into_response()
            }
        }
    }
}

/// What every action on a run checks first, the form's token, then a run
/// id that can be one: the refusal when one fails.
fn refusal_to_act_on_run(
    app: &App,
    headers: &HeaderMap,
    csrf: Option<&str>,
    id: &str,
) -> Option<Response> {
    if !token_ok(app, headers, csrf) {
        return Some(forbidden());
    }
    if !valid_run_id(id) {
        return Some(refused(headers, id, StatusCode::NOT_FOUND, "no such run"));
    }
    None
}

fn refused(headers: &HeaderMap, id: &str, status: StatusCode, why: &str) -> Response {
    acted(headers, id, Err(Failure::Refused(status, why.to_string())))
}

async fn approve(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ApproveForm>,
) -> Response {
    if let Some(refusal) = refusal_to_act_on_run(&app, &headers, form.csrf.as_deref(), &id) {
        return refusal;
    }
    let refuse = form.refuse.is_some();
    if refuse && form.why.trim().is_empty() {
        return refused(
            &headers,
            &id,
            StatusCode::BAD_REQUEST,
            "a refusal needs a reason",
        );
    }
    let request = wire::ApproveRequest {
        run_id: id.clone(),
        phase: if form.scope == "run" {
            String::new()
        } else {
            form.scope
        },
        role: form.role,
        refuse,
        why: form.why.trim().to_string(),
        // The dashboard holds no operator's key: its decision gates the
        // coordinator only, never an agent's approval policy.
        signed: None,
    };
    let result = app
        .upstream
        .call(|mut c| async move { c.approve(request).await })
        .await;
    if let Ok(summary) = &result {
        tracing::warn!(run = %summary.run_id, refuse, "approval sent from the dashboard");
    }
    acted(&headers, &id, result)
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    csrf: Option<String>,
}

async fn abort(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Some(refusal) = refusal_to_act_on_run(&app, &headers, form.csrf.as_deref(), &id) {
        return refusal;
    }
    let request = wire::AbortRunRequest { run_id: id.clone() };
    let result = app
        .upstream
        .call(|mut c| async move { c.abort_run(request).await })
        .await;
    acted(&headers, &id, result)
}

/// Undoes an ended remedy run (`backout remedy undo RUN`): starts the run
/// that puts back what its `flags` steps recorded, which waits for the
/// remedy's approvals like any run, and shows its page. The coordinator
/// refuses what it cannot undo and says why.
async fn undo(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Some(refusal) = refusal_to_act_on_run(&app, &headers, form.csrf.as_deref(), &id) {
        return refusal;
    }
    let request = wire::StartRunRequest {
        reason: format!("undo of remedy run {id}"),
        undo: id.clone(),
        ..Default::default()
    };
    let result = app
        .upstream
        .call(|mut c| async move { c.start_run(request).await })
        .await;
    if let Ok(summary) = &result {
        tracing::warn!(run = %summary.run_id, remedy_run = %id, "remedy undo started from the dashboard");
    }
    acted(&headers, &id, result)
}

#[derive(Debug, Deserialize)]
struct DryRunForm {
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    to: String,
}

/// Starts a dry run (no approvals needed) and shows its page: each plugin
/// says what it would do on each host.
async fn dry_run(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<DryRunForm>,
) -> Response {
    if !token_ok(&app, &headers, form.csrf.as_deref()) {
        return forbidden();
    }
    let reason = match form.reason.trim() {
        "" => "dry run from the dashboard".to_string(),
        reason => reason.to_string(),
    };
    let request = wire::StartRunRequest {
        reason,
        to_version: form.to.trim().to_string(),
        phases: Vec::new(),
        dry_run: true,
        ..Default::default()
    };
    let result = app
        .upstream
        .call(|mut c| async move { c.start_run(request).await })
        .await;
    acted(&headers, "", result)
}

async fn assess_now(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if !token_ok(&app, &headers, form.csrf.as_deref()) {
        return forbidden();
    }
    match refresh_health(&app).await {
        None if wants_json(&headers) => axum::Json(json!({ "ok": true })).into_response(),
        None => Redirect::to("/").into_response(),
        Some(failure) => failed(&app, &headers, "Now", "now", failure),
    }
}
