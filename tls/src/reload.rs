//! Certificate rotation without a restart, on the server side.
//!
//! [`ReloadingServerConfig`] holds the coordinator's current rustls
//! configuration and the files it was built from (CA bundle, certificate,
//! key, optional CRL). Before each new handshake, [`incoming`](crate::tls::incoming)
//! asks it for [`current`](ReloadingServerConfig::current): it compares the
//! files' stamps (inode, size, modification and change times) with those it last loaded (a few
//! `stat` calls) and, when one changed, builds a new configuration. Existing
//! connections keep the configuration they were accepted with, so sessions
//! and running phases are not dropped; only new handshakes see the renewed
//! certificate, CA bundle or CRL.
//!
//! A change that does not load (a certificate renewed but its key not yet, a
//! half-written file, a certificate that is not the coordinator's) is logged
//! and the previous configuration stays in use; it is tried again at the next
//! handshake, so a renewal written as two files settles by itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;

use crate::identity::Identity;
use crate::stamp::FileStamp;
use crate::tls::{TlsError, TlsFiles, TlsMaterial, server_config};

/// What the files looked like when last loaded (a file replaced by a
/// rename, or rewritten at the same size, still shows).
type Stamp = Vec<Option<FileStamp>>;

/// The server's TLS configuration, rebuilt when its files change on disk.
pub struct ReloadingServerConfig {
    files: TlsFiles,
    crl: Option<PathBuf>,
    current: Mutex<(Stamp, Arc<ServerConfig>)>,
    /// The files' stamp when they last failed to load: not tried again on
    /// every handshake (a reconnect storm), only once they change again.
    failed: Mutex<Option<Stamp>>,
}

impl ReloadingServerConfig {
    /// Loads the files once; fails if they do not make a coordinator's
    /// configuration. Returns the material too (for the trust domain).
    pub fn load(files: TlsFiles, crl: Option<PathBuf>) -> Result<(Self, TlsMaterial), TlsError> {
        let stamp = stamp(&files, crl.as_ref());
        let material = load_material(&files, crl.as_ref())?;
        let config = server_config(&material)?;
        Ok((
            ReloadingServerConfig {
                files,
                crl,
                current: Mutex::new((stamp, config)),
                failed: Mutex::new(None),
            },
            material,
        ))
    }

    /// The configuration for the next handshake: reloaded first if a file changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = stamp(&self.files, self.crl.as_ref());
        let mut guard = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut failed = match self.failed.lock() {
            Ok(failed) => failed,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.0 != now && failed.as_ref() != Some(&now) {
            match load_material(&self.files, self.crl.as_ref()).and_then(|m| server_config(&m)) {
                Ok(config) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed: new handshakes use them");
                    *guard = (now, config);
                    *failed = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous ones until they change again");
                    *failed = Some(now);
                }
            }
        }
        guard.1.clone()
    }
}

fn load_material(files: &TlsFiles, crl: Option<&PathBuf>) -> Result<TlsMaterial, TlsError> {
    let mut material = files.load()?;
    if material.identity != Identity::Coordinator {
        return Err(TlsError::File {
            path: files.cert.clone(),
            message: format!(
                "this certificate belongs to {}, not to the coordinator",
                material.identity
            ),
        });
    }
    if let Some(crl) = crl {
        material = material.with_crl(crl)?;
    }
    Ok(material)
}

fn stamp(files: &TlsFiles, crl: Option<&PathBuf>) -> Stamp {
    [&files.ca, &files.cert, &files.key]
        .into_iter()
        .chain(crl)
        .map(|path| FileStamp::of(path))
        .collect()
}
