//! E-mail (seed: "Team Email: emergency@…"): the plan's `email` channels are
//! sent by the coordinator itself over SMTP, with STARTTLS or TLS from the
//! first byte and a login, through the relay its `[smtp]` configuration
//! names. ARCHITECTURE.md ("How people are told") says why here and not on an
//! agent.
//!
//! Each recipient gets its own SMTP transaction, so each one's answer (the
//! relay's reply, or its refusal) is what the journal keeps. The password is
//! read from its file for the send and handed to lettre; no message, log line
//! or error built here contains it (lettre's errors carry the server's reply
//! code and text, never the credentials).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, header};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};
use crate::journal::Recipient;

/// Why no recipient could be tried (configuration or message, not the relay).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot read smtp.password_file {path}: {source}")]
    Password {
        path: String,
        source: std::io::Error,
    },
    #[error("smtp.ca {path}: {message}")]
    Ca { path: String, message: String },
    #[error("smtp.from `{0}` is not an address: {1}")]
    From(String, String),
    #[error("TLS parameters for {0}: {1}")]
    Tls(String, String),
}

/// The addresses of an `email` channel's target: commas or spaces between.
pub fn recipients_of(target: &str) -> Vec<String> {
    target
        .split([',', ' ', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sends `subject` and `body` to each address of `to`, one transaction per
/// address, and returns what each one's relay answered. `run_id` goes into an
/// `X-Backout-Run` header so a reader can find the run.
pub async fn send(
    smtp: &SmtpConfig,
    to: &[String],
    subject: &str,
    body: &str,
    run_id: &str,
) -> Result<Vec<Recipient>, MailError> {
    let transport = transport(smtp)?;
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            MailError::From(smtp.from.clone(), e.to_string())
        })?;
    let mut results = Vec::with_capacity(to.len());
    for address in to {
        let mailbox: Mailbox = match address.parse() {
            Ok(m) => m,
            Err(e) => {
                results.push(Recipient {
                    address: address.clone(),
                    delivered: false,
                    reply: format!("not an address: {e}"),
                });
                continue;
            }
        };
        let message = Message::builder()
            .from(from.clone())
            .to(mailbox)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .header(BackoutRun(run_id.to_string()))
            .body(body.to_string());
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                results.push(Recipient {
                    address: address.clone(),
                    delivered: false,
                    reply: format!("the message cannot be built: {e}"),
                });
                continue;
            }
        };
        let result = match transport.send(message).await {
            Ok(response) => Recipient {
                address: address.clone(),
                delivered: response.is_positive(),
                reply: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )
                .trim()
                .to_string(),
            },
            Err(e) => Recipient {
                address: address.clone(),
                delivered: false,
                reply: e.to_string(),
            },
        };
        if result.delivered {
            tracing::info!(to = %result.address, reply = %result.reply, "e-mail delivered to the relay");
        } else {
            tracing::warn!(to = %result.address, reply = %result.reply, "e-mail not delivered");
        }
        results.push(result);
    }
    Ok(results)
}

/// The transport for one message: a new connection per recipient (no pool:
/// a message or two per moment does not need one).
fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let password =
        std::fs::read_to_string(&smtp.password_file).map_err(|source| MailError::Password {
            path: smtp.password_file.display().to_string(),
            source,
        })?;
    let mut tls = TlsParameters::builder(smtp.server.clone());
    if let Some(ca) = &smtp.ca {
        let ca_error = |message: String| MailError::Ca {
            path: ca.display().to_string(),
            message,
        };
        let pem = std::fs::read(ca).map_err(|e| ca_error(e.to_string()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls
        .build_rustls()
        .map_err(|e| MailError::Tls(smtp.server.clone(), e.to_string()))?;
    let tls = match smtp.tls {
        SmtpTls::Starttls => Tls::Required(tls),
        SmtpTls::Tls => Tls::Wrapper(tls),
    };
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.server.clone())
            .port(smtp.port())
            .tls(tls)
            .credentials(Credentials::new(
                smtp.username.clone(),
                password.trim_end_matches(['\r', '\n']).to_string(),
            ))
            .timeout(Some(smtp.timeout.max(Duration::from_secs(1))))
            .build(),
    )
}

/// `X-Backout-Run: <run id>`.
#[derive(Clone)]
struct BackoutRun(String);

impl header::Header for BackoutRun {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("X-Backout-Run")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(BackoutRun(s.to_string()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_target_lists_its_addresses() {
        assert_eq!(
            recipients_of("emergency@samia-tarot.com, cto@samia-tarot.com;ops@x.org"),
            [
                "emergency@samia-tarot.com",
                "cto@samia-tarot.com",
                "ops@x.org"
            ]
        );
        assert!(recipients_of(" , ").is_empty());
    }
}
