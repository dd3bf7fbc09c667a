//! `backout pki init|issue|renew|revoke`.

use std::path::PathBuf;

use anyhow::Context;
use backout_proto::command::CommandSigner;
use backout_tls::Identity;
use backout_tls::pki::{self, LeafOptions};

/// File names of the command-signing key pair inside a PKI directory.
pub const COMMAND_KEY: &str = "command-signing.key";
pub const COMMAND_PUB: &str = "command-signing.pub";
/// File names of the journal checkpoint key pair inside a PKI directory.
pub const CHECKPOINT_KEY: &str = crate::journal::checkpoint::KEY_FILE;
pub const CHECKPOINT_PUB: &str = crate::journal::checkpoint::PUB_FILE;

#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Create the fleet CA, the coordinator's TLS certificate, its separate
    /// ed25519 command-signing key pair, and the ed25519 key pair that signs
    /// the journal's checkpoints (operators keep checkpoint-signing.pub).
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
    ///
    /// Example: backout pki issue operator alice --role dba --role technical-lead --days 30 --dir /etc/backout/pki
    Issue {
        /// agent or operator.
        #[arg(value_enum)]
        kind: IssueKind,
        /// The agent id or operator name.
        name: String,
        /// The PKI directory (made by `pki init`): its CA signs the
        /// certificate, written under agents/ or operators/.
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS names or IP addresses.
        #[arg(long)]
        san: Vec<String>,
        /// Validity of the certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Start the validity this many days ago (tests: with --days smaller,
        /// the certificate is already expired).
        #[arg(long, default_value_t = 0, hide = true)]
        backdate_days: u32,
        /// Start the validity this many days from now (tests: a certificate
        /// not valid yet).
        #[arg(long, default_value_t = 0, hide = true)]
        postdate_days: u32,
        /// A role the CA attests in an operator's certificate (repeat for
        /// several): a URI SAN spiffe://DOMAIN/operator/NAME/role/ROLE.
        /// With `operator_certs` in its configuration, the coordinator
        /// refuses to start when its [operators] roles differ.
        #[arg(long)]
        role: Vec<String>,
    },
    /// Renew a certificate in place: a new key and certificate replace the
    /// old ones. A running coordinator picks up its renewed certificate at
    /// the next handshake; an agent at its next (re)connection. The old
    /// certificate stays valid until it expires: revoke it if it must stop.
    ///
    /// Example: backout pki renew coordinator --dir /etc/backout/pki --san coordinator.internal
    Renew {
        /// agent, operator or coordinator.
        #[arg(value_enum)]
        kind: RenewKind,
        /// The agent id or operator name (not for the coordinator).
        #[arg(required_if_eq_any = [("kind", "agent"), ("kind", "operator")])]
        name: Option<String>,
        /// The PKI directory (made by `pki init`).
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS names or IP addresses (the coordinator always gets
        /// localhost and 127.0.0.1).
        #[arg(long)]
        san: Vec<String>,
        /// Validity of the new certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// The roles of a renewed operator certificate (repeat for several);
        /// without --role, the current certificate's roles are kept. A role
        /// change is a renewal with the new roles.
        #[arg(long)]
        role: Vec<String>,
    },
    /// Revoke an agent's or operator's certificate: add it to the CA-signed
    /// revocation list DIR/crl.pem and sign the list again with a new
    /// next-update time. Without KIND and NAME, only re-signs the list (run it
    /// before the next update passes: a coordinator refuses every client
    /// certificate while its list is out of date). The coordinator reads the
    /// list named by `crl = ...` in its configuration, again whenever it changes.
    ///
    /// Example: backout pki revoke operator mallory --dir /etc/backout/pki
    ///
    /// Example: backout pki revoke --cert /etc/backout/pki/agents/app-1.pem.old --dir /etc/backout/pki
    Revoke {
        /// agent or operator.
        #[arg(value_enum, requires = "name", conflicts_with = "cert")]
        kind: Option<IssueKind>,
        /// The agent id or operator name.
        name: Option<String>,
        /// Revoke this certificate file instead (e.g. the `.pem.old` a
        /// renewal kept).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// The PKI directory (made by `pki init`): its CA signs the list.
        #[arg(long)]
        dir: PathBuf,
        /// Days until the list's next update.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Date the list this many days back (tests: makes an out-of-date list).
        #[arg(long, default_value_t = 0, hide = true)]
        backdate_days: u32,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IssueKind {
    Agent,
    Operator,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RenewKind {
    Agent,
    Operator,
    Coordinator,
}

/// `backout pki`'s arguments: one subcommand.
pub type Args = PkiCommand;

pub fn run(args: Args) -> anyhow::Result<super::Exit> {
    super::finish_work_if_stdout_closes();
    execute(args)?;
    Ok(super::Exit::Ok)
}

pub(super) fn execute(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            trust_domain,
            san,
            days,
        } => {
            let key_path = dir.join(COMMAND_KEY);
            let pub_path = dir.join(COMMAND_PUB);
            let checkpoint_key = dir.join(CHECKPOINT_KEY);
            let checkpoint_pub = dir.join(CHECKPOINT_PUB);
            for path in [&key_path, &pub_path, &checkpoint_key, &checkpoint_pub] {
                if path.exists() {
                    return Err(pki::PkiError::Exists { path: path.clone() }.into());
                }
            }
            let options = LeafOptions {
                sans: san,
                days,
                backdate_days: 0,
                postdate_days: 0,
                roles: Vec::new(),
            };
            let written = pki::init(&dir, &trust_domain, &options)?;
            let signer = CommandSigner::generate();
            pki::write_new_file(&key_path, signer.to_pkcs8_pem()?.as_bytes(), 0o600)?;
            pki::write_new_file(&pub_path, signer.public_key_pem()?.as_bytes(), 0o644)?;
            // The journal's checkpoints are signed with a key of their own:
            // a checkpoint signature can never pass for a command's.
            let checkpoints = CommandSigner::generate();
            pki::write_new_file(
                &checkpoint_key,
                checkpoints.to_pkcs8_pem()?.as_bytes(),
                0o600,
            )?;
            pki::write_new_file(
                &checkpoint_pub,
                checkpoints.public_key_pem()?.as_bytes(),
                0o644,
            )?;
            say_written(written.files.iter().chain([
                &key_path,
                &pub_path,
                &checkpoint_key,
                &checkpoint_pub,
            ]));
            outln!(
                "trust domain {trust_domain}; command key id {} (agents pin {})",
                signer.key_id(),
                pub_path.display()
            );
            outln!(
                "journal checkpoint key id {} (operators keep {} to check the journal: backout audit verify --key)",
                checkpoints.key_id(),
                checkpoint_pub.display()
            );
            Ok(())
        }
        PkiCommand::Issue {
            kind,
            name,
            dir,
            san,
            days,
            backdate_days,
            postdate_days,
            role,
        } => {
            let identity = match kind {
                IssueKind::Agent => Identity::Agent(name),
                IssueKind::Operator => Identity::Operator(name),
            };
            let options = LeafOptions {
                sans: san,
                days,
                backdate_days,
                postdate_days,
                roles: role,
            };
            let written = pki::issue(&dir, &identity, &options)
                .with_context(|| format!("issuing a certificate for {identity}"))?;
            say_written(&written.files);
            Ok(())
        }
        PkiCommand::Renew {
            kind,
            name,
            dir,
            san,
            days,
            role,
        } => {
            let name = name.unwrap_or_default();
            let identity = match kind {
                RenewKind::Agent => Identity::Agent(name),
                RenewKind::Operator => Identity::Operator(name),
                RenewKind::Coordinator => Identity::Coordinator,
            };
            let options = LeafOptions {
                sans: san,
                days,
                backdate_days: 0,
                postdate_days: 0,
                roles: role,
            };
            let written = pki::renew(&dir, &identity, &options)
                .with_context(|| format!("renewing the certificate of {identity}"))?;
            say_written(&written.files);
            Ok(())
        }
        PkiCommand::Revoke {
            kind,
            name,
            cert,
            dir,
            days,
            backdate_days,
        } => {
            let identity = match (kind, name) {
                (Some(IssueKind::Agent), Some(name)) => Some(Identity::Agent(name)),
                (Some(IssueKind::Operator), Some(name)) => Some(Identity::Operator(name)),
                _ => None,
            };
            if let Some(Identity::Agent(n) | Identity::Operator(n)) = &identity {
                backout_tls::identity::validate_name(n)?;
            }
            let cert = cert.or_else(|| identity.as_ref().map(|i| pki::leaf_paths(&dir, i).0));
            let options = backout_tls::crl::CrlOptions {
                days,
                backdate_days,
            };
            let serials = backout_tls::crl::revoke(&dir, cert.as_deref(), &options)
                .context("writing the revocation list")?;
            if let Some(cert) = &cert {
                outln!("revoked {}", cert.display());
            }
            outln!(
                "wrote {} ({} revoked, next update in {days} days)",
                dir.join(backout_tls::crl::CRL).display(),
                serials.len()
            );
            Ok(())
        }
    }
}

/// One "wrote PATH" line per file written.
fn say_written<'a>(files: impl IntoIterator<Item = &'a std::path::PathBuf>) {
    for file in files {
        outln!("wrote {}", file.display());
    }
}
