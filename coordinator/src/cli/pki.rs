//! `backout pki init|issue`.

use std::path::PathBuf;

use anyhow::Context;
use backout_proto::command::CommandSigner;
use backout_tls::Identity;
use backout_tls::pki::{self, LeafOptions};

/// File names of the command-signing key pair inside a PKI directory.
pub const COMMAND_KEY: &str = "command-signing.key";
pub const COMMAND_PUB: &str = "command-signing.pub";

#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Create the fleet CA, the coordinator's TLS certificate and its separate
    /// ed25519 command-signing key pair.
    ///
    /// Example: backout pki init --dir /etc/backout/pki --trust-domain prod.samia-tarot.com --san coordinator.internal
    Init {
        /// Directory to write into (created if missing); existing files are never overwritten.
        #[arg(long)]
        dir: PathBuf,
        /// The fleet's trust domain, used in every identity (spiffe://DOMAIN/...).
        #[arg(long)]
        trust_domain: String,
        /// Extra DNS names or IP addresses for the coordinator certificate
        /// (localhost and 127.0.0.1 are always included).
        #[arg(long)]
        san: Vec<String>,
        /// Validity of the coordinator certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issue a certificate for an agent or an operator.
    ///
    /// Example: backout pki issue agent app-1 --dir /etc/backout/pki
    Issue {
        #[arg(value_enum)]
        kind: IssueKind,
        /// The agent id or operator name.
        name: String,
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS names or IP addresses.
        #[arg(long)]
        san: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IssueKind {
    Agent,
    Operator,
}

pub fn run(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            trust_domain,
            san,
            days,
        } => {
            let key_path = dir.join(COMMAND_KEY);
            let pub_path = dir.join(COMMAND_PUB);
            for path in [&key_path, &pub_path] {
                if path.exists() {
                    return Err(pki::PkiError::Exists { path: path.clone() }.into());
                }
            }
            let written = pki::init(&dir, &trust_domain, &LeafOptions { sans: san, days })?;
            let signer = CommandSigner::generate();
            pki::write_new_file(&key_path, signer.to_pkcs8_pem()?.as_bytes(), 0o600)?;
            pki::write_new_file(&pub_path, signer.public_key_pem()?.as_bytes(), 0o644)?;
            for file in written.files.iter().chain([&key_path, &pub_path]) {
                println!("wrote {}", file.display());
            }
            println!(
                "trust domain {trust_domain}; command key id {} (agents pin {})",
                signer.key_id(),
                pub_path.display()
            );
            Ok(())
        }
        PkiCommand::Issue {
            kind,
            name,
            dir,
            san,
            days,
        } => {
            let identity = match kind {
                IssueKind::Agent => Identity::Agent(name),
                IssueKind::Operator => Identity::Operator(name),
            };
            let written = pki::issue(&dir, &identity, &LeafOptions { sans: san, days })
                .with_context(|| format!("issuing a certificate for {identity}"))?;
            for file in &written.files {
                println!("wrote {}", file.display());
            }
            Ok(())
        }
    }
}
