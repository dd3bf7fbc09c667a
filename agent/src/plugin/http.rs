//! `http`: a request to a granted URL prefix, made by the host.
//!
//! The plugin never opens a socket. The host fills in granted secrets in the
//! URL, then checks the filled URL against the grants, refuses
//! state-changing methods in dry-run, fills in granted secrets in headers and
//! body, and sends the request with the agent's
//! client, which follows no redirects (a redirect could lead outside the
//! granted prefixes; the plugin gets the 3xx and decides) and uses no proxy
//! from the environment. The wait is bounded by the request's own timeout
//! and by the step's deadline, whichever comes first.
//!
//! A secret in the URL (a Slack incoming webhook's URL is itself the
//! credential) is never shown: every message about such a request names the
//! URL as the plugin wrote it, `${secret:NAME}` and all, and the reqwest
//! errors are stripped of their URL.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::bindings::{HttpRequest, HttpResponse};
use super::caps::Refusal;
use super::config::bytes_text;
use super::secrets::SecretStore;
use super::state::{HostCallError, StepContext, StopReason};

/// Timeout of a request that names none (the deadline still applies).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body handed to a plugin.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The agent's HTTP client for plugins.
pub(crate) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // No idle connections are kept: a connection must not outlive the
        // runtime that opened it, and health checks are rare enough.
        .pool_max_idle_per_host(0)
        .build()
}

enum FetchError {
    Request(reqwest::Error),
    TooLarge,
}

pub(crate) fn call(
    ctx: &mut StepContext,
    request: HttpRequest,
) -> Result<HttpResponse, HostCallError> {
    let method_name = request.method.trim().to_ascii_uppercase();
    let secret_url = SecretStore::mentions_secret(request.url.as_bytes());
    // Secrets are filled in first, so the grant check sees the URL that is
    // really called.
    let filled_url = ctx.substitute(&request.url)?;
    let url = match ctx.caps.check_url(&ctx.plugin, &filled_url) {
        Ok(url) => url,
        Err(refusal) if secret_url => {
            return Err(ctx.refuse(refusal.reworded(&request.url)));
        }
        Err(refusal) => return Err(ctx.refuse(refusal)),
    };
    // How messages name the URL: as written when it holds a secret.
    let shown = if secret_url {
        request.url.clone()
    } else {
        url.to_string()
    };
    if ctx.dry_run && method_name != "GET" && method_name != "HEAD" {
        return Err(ctx.deny(format!(
            "dry-run: HTTP {method_name} to {shown} refused (only GET and HEAD run in dry-run)"
        )));
    }
    let method = reqwest::Method::from_bytes(method_name.as_bytes()).map_err(|_| {
        ctx.refuse(Refusal::Invalid(format!(
            "`{method_name}` is not an HTTP method"
        )))
    })?;

    let mut headers = HeaderMap::new();
    for (name, raw) in &request.headers {
        let filled = ctx.substitute(raw)?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ctx.invalid(format!("`{name}` is not a header name")))?;
        // The message names the header only: the value may hold a secret.
        let mut value = HeaderValue::from_str(&filled)
            .map_err(|_| ctx.invalid(format!("the value of header `{name}` is not valid")))?;
        if SecretStore::mentions_secret(raw.as_bytes()) {
            value.set_sensitive(true);
        }
        headers.append(name, value);
    }
    let body = match &request.body {
        Some(body) => Some(ctx.substitute_bytes(body)?),
        None => None,
    };

    let own = request
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)));
    let remaining = ctx.deadline.remaining();
    let (limit, by_deadline) = if own < remaining {
        (own, false)
    } else {
        (remaining, true)
    };

    let client = ctx.http.clone();
    let target = url.clone();
    let fetched = ctx.runtime.block_on(async move {
        tokio::time::timeout(limit, async move {
            let mut builder = client.request(method, target).headers(headers);
            if let Some(body) = body {
                builder = builder.body(body);
            }
            let mut response = builder
                .send()
                .await
                .map_err(|e| FetchError::Request(e.without_url()))?;
            let status = response.status().as_u16();
            let headers: Vec<(String, Vec<u8>)> = response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| FetchError::Request(e.without_url()))?
            {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(FetchError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        })
        .await
    });

    match fetched {
        Ok(Ok((status, headers, body))) => Ok(HttpResponse {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n, ctx.secrets.redact(&String::from_utf8_lossy(&v))))
                .collect(),
            body: ctx.secrets.redact_bytes(&body),
        }),
        Ok(Err(FetchError::TooLarge)) => Err(ctx.failed(format!(
            "the response from {shown} is larger than {}",
            bytes_text(MAX_BODY as u64)
        ))),
        Ok(Err(FetchError::Request(e))) => Err(ctx.failed(describe(&e, &shown))),
        Err(_elapsed) if by_deadline => Err(ctx.stop(StopReason::Deadline)),
        Err(_elapsed) => Err(ctx.timed_out(format!(
            "no complete response from {shown} within {} ms",
            limit.as_millis()
        ))),
    }
}

/// A failure in words an operator can act on: "connection refused" rather
/// than a chain of library types.
fn describe(error: &reqwest::Error, url: &str) -> String {
    let mut source = error.source();
    let mut innermost = error.to_string();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!("connection refused ({url})");
                }
                std::io::ErrorKind::ConnectionReset => return format!("connection reset ({url})"),
                _ => {}
            }
        }
        innermost = cause.to_string();
        source = cause.source();
    }
    if error.is_connect() {
        format!("cannot connect to {url}: {innermost}")
    } else {
        format!("request to {url} failed: {innermost}")
    }
}
