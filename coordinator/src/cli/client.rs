//! How operator commands reach the coordinator: mutual TLS under the
//! operator's own certificate.

use std::path::PathBuf;
use std::time::Duration;

use backout_proto::wire;
use backout_proto::wire::control_client::ControlClient;
use backout_tls::{Identity, TlsFiles};
use tonic::transport::Channel;

use super::BadInput;

/// The largest reply the CLI and the dashboard accept from the coordinator
/// (gRPC's default is 4 MiB): the listing of a 10,000-agent fleet is about
/// 3 MiB without plugin schemas.
const MAX_REPLY_BYTES: usize = 64 << 20;

/// Where the coordinator is and who we are. Each flag has an environment
/// variable, so a shell session sets them once.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The coordinator's address, host:port; with several coordinators, all
    /// of them, comma-separated (the one that leads answers).
    #[arg(long, env = "BACKOUT_COORDINATOR", global = true)]
    pub coordinator: Option<String>,
    /// A PKI directory (from `backout pki`): the CA and
    /// operators/<OPERATOR>.pem/.key are taken from it.
    #[arg(long, env = "BACKOUT_PKI", global = true)]
    pub pki: Option<PathBuf>,
    /// Your operator name (with --pki).
    #[arg(long, env = "BACKOUT_OPERATOR", global = true)]
    pub operator: Option<String>,
    /// The fleet CA certificate (instead of --pki).
    #[arg(long, env = "BACKOUT_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Your certificate (instead of --pki/--operator).
    #[arg(long, env = "BACKOUT_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Your private key (instead of --pki/--operator).
    #[arg(long, env = "BACKOUT_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// The name the coordinator's certificate carries (default: the host part of --coordinator).
    #[arg(long, env = "BACKOUT_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
}

impl ConnectArgs {
    pub(crate) fn files(&self) -> Result<TlsFiles, BadInput> {
        let from_pki = |pki: &PathBuf, operator: &str| TlsFiles {
            ca: pki.join(backout_tls::pki::CA_CERT),
            cert: pki.join("operators").join(format!("{operator}.pem")),
            key: pki.join("operators").join(format!("{operator}.key")),
        };
        match (&self.ca, &self.cert, &self.key, &self.pki, &self.operator) {
            (Some(ca), Some(cert), Some(key), _, _) => Ok(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            (_, _, _, Some(pki), Some(operator)) => {
                let mut files = from_pki(pki, operator);
                if let Some(ca) = &self.ca {
                    files.ca = ca.clone();
                }
                Ok(files)
            }
            _ => Err(BadInput(
                "no operator identity: give --pki DIR --operator NAME (or BACKOUT_PKI and \
                 BACKOUT_OPERATOR), or --ca, --cert and --key"
                    .into(),
            )),
        }
    }

    /// Connects to the Control service.
    pub async fn control(&self) -> anyhow::Result<ControlClient<Channel>> {
        let addr = self.coordinator.clone().ok_or_else(|| {
            BadInput(
                "no coordinator address: give --coordinator HOST:PORT or set BACKOUT_COORDINATOR"
                    .into(),
            )
        })?;
        let files = self.files()?;
        let material = files.load()?;
        if !matches!(material.identity, Identity::Operator(_)) {
            return Err(BadInput(format!(
                "{}: this certificate belongs to {}, not to an operator",
                files.cert.display(),
                material.identity
            ))
            .into());
        }
        // Each address in turn; a standby answers "not the leader; the
        // leader is ADDR", and that address is dialled next.
        let mut addrs: std::collections::VecDeque<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let mut followed = 0;
        let mut last = None;
        while let Some(addr) = addrs.pop_front() {
            let addr = addr.as_str();
            let server_name = match &self.server_name {
                Some(name) => name.clone(),
                None => backout_tls::tls::host_part(addr),
            };
            match backout_tls::tls::connect_coordinator(
                addr,
                &server_name,
                &material,
                Duration::from_secs(5),
            )
            .await
            {
                Ok(channel) => {
                    let mut control =
                        ControlClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES);
                    match control.who_am_i(wire::WhoAmIRequest {}).await {
                        Err(s) if s.code() == tonic::Code::Unavailable => {
                            let leader = s
                                .metadata()
                                .get(crate::server::LEADER_KEY)
                                .and_then(|v| v.to_str().ok())
                                .filter(|l| !l.is_empty() && *l != addr);
                            if let Some(leader) = leader.filter(|_| followed < 3) {
                                followed += 1;
                                addrs.push_front(leader.to_string());
                            }
                            last = Some(anyhow::anyhow!("{addr}: {}", s.message()));
                        }
                        // Anything else (answered, or refused for who we are)
                        // is the leader's answer: the command's own call says it.
                        _ => return Ok(control),
                    }
                }
                Err(e) => last = Some(anyhow::Error::from(e)),
            }
        }
        Err(last
            .unwrap_or_else(|| BadInput("--coordinator names no address".into()).into())
            .context("cannot reach the coordinator"))
    }
}

/// Turns a gRPC status into an error people can act on.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
            anyhow::anyhow!("refused by the coordinator: {message}")
        }
        tonic::Code::InvalidArgument => BadInput(message).into(),
        code => anyhow::anyhow!("coordinator error ({code:?}): {message}"),
    }
}
