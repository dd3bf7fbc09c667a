//! The fleet's private CA and the certificates it issues (rcgen).
//!
//! Layout of a PKI directory (made by `backout pki init`, grown by `backout pki issue`):
//!
//! ```text
//! ca.pem ca.key                       fleet CA; its URI SAN spiffe://<domain> names the trust domain
//! coordinator.pem coordinator.key     the coordinator's TLS identity
//! agents/<id>.pem agents/<id>.key     one per agent
//! operators/<name>.pem .key           one per operator
//! ```
//!
//! Private keys are written with mode 0600 and no file is ever overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::identity::{self, Identity, IdentityError};

/// Errors from PKI operations. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: already exists; Backout never overwrites key material (move it away first)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("`{0}` is not a valid trust domain (letters, digits, '-' and '.')")]
    BadDomain(String),
    #[error("`{0}` is not a DNS name or IP address")]
    BadSan(String),
    #[error("only operator certificates carry roles ({0} was given --role)")]
    RolesNotOperator(String),
}

/// What kind of certificate to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Agent,
    Operator,
    Coordinator,
}

/// Options for a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafOptions {
    /// Extra DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Validity in days.
    pub days: u32,
    /// Start the validity this many days in the past (0: now). With `days`
    /// smaller than this, the certificate is already expired: only for tests
    /// of the refusal of expired certificates.
    pub backdate_days: u32,
    /// Start the validity this many days in the future (0: now): only for
    /// tests of the refusal of not-yet-valid certificates.
    pub postdate_days: u32,
    /// Roles the CA attests (operators only): one URI SAN
    /// `spiffe://<domain>/operator/<name>/role/<role>` each.
    pub roles: Vec<String>,
}

impl Default for LeafOptions {
    fn default() -> Self {
        LeafOptions {
            sans: Vec::new(),
            days: 365,
            backdate_days: 0,
            postdate_days: 0,
            roles: Vec::new(),
        }
    }
}

/// Files written by one operation.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

/// Where the certificate and key of an identity live inside a PKI directory.
pub fn leaf_paths(dir: &Path, identity: &Identity) -> (PathBuf, PathBuf) {
    match identity {
        Identity::Coordinator => (dir.join("coordinator.pem"), dir.join("coordinator.key")),
        Identity::Agent(id) => (
            dir.join("agents").join(format!("{id}.pem")),
            dir.join("agents").join(format!("{id}.key")),
        ),
        Identity::Operator(name) => (
            dir.join("operators").join(format!("{name}.pem")),
            dir.join("operators").join(format!("{name}.key")),
        ),
    }
}

fn validate_domain(domain: &str) -> Result<(), PkiError> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadDomain(domain.to_string()))
    }
}

/// Creates the fleet CA and the coordinator's TLS certificate in `dir`.
/// The coordinator certificate always carries `localhost` and `127.0.0.1`.
pub fn init(dir: &Path, domain: &str, coordinator: &LeafOptions) -> Result<Written, PkiError> {
    validate_domain(domain)?;
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let (coord_cert_path, coord_key_path) = leaf_paths(dir, &Identity::Coordinator);
    // Refuse before writing anything, so a half-initialised directory never happens.
    for path in [
        &ca_cert_path,
        &ca_key_path,
        &coord_cert_path,
        &coord_key_path,
    ] {
        if path.exists() {
            return Err(PkiError::Exists { path: path.clone() });
        }
    }

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("Backout fleet CA ({domain})"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.subject_alt_names = vec![SanType::URI(format!("spiffe://{domain}").try_into()?)];
    let now = OffsetDateTime::now_utc();
    ca_params.not_before = now - Duration::from_secs(60);
    ca_params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let mut written = Written::default();
    write_new_file(&ca_cert_path, ca_cert.pem().as_bytes(), 0o644)?;
    written.files.push(ca_cert_path);
    write_new_file(&ca_key_path, ca_key.serialize_pem().as_bytes(), 0o600)?;
    written.files.push(ca_key_path);

    let issuer = Issuer::new(ca_params, ca_key);
    let mut options = coordinator.clone();
    for default in ["localhost", "127.0.0.1"] {
        if !options.sans.iter().any(|s| s == default) {
            options.sans.push(default.to_string());
        }
    }
    written
        .files
        .extend(write_leaf(dir, &issuer, domain, &Identity::Coordinator, &options)?.files);
    Ok(written)
}

/// Issues a certificate for `identity`, signed by the CA in `dir`.
pub fn issue(dir: &Path, identity: &Identity, options: &LeafOptions) -> Result<Written, PkiError> {
    let (issuer, domain) = load_issuer(dir)?;
    write_leaf(dir, &issuer, &domain, identity, options)
}

/// Renews the certificate of `identity` in place: a new key and certificate
/// replace the old ones (the only time Backout replaces key material, and
/// only for a name that already has a certificate). Both are written beside
/// and renamed over the old files, key first (the old certificate is kept as
/// `<name>.pem.old`): a reader sees either file whole,
/// and a coordinator that reads the new certificate before the new key keeps
/// its previous configuration until both are there. The coordinator's
/// certificate always carries `localhost` and `127.0.0.1`. The old
/// certificate stays valid until it expires or is revoked.
pub fn renew(dir: &Path, identity: &Identity, options: &LeafOptions) -> Result<Written, PkiError> {
    let (cert_path, key_path) = leaf_paths(dir, identity);
    if !cert_path.exists() {
        return Err(PkiError::Io {
            path: cert_path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "nothing to renew (issue it first)",
            ),
        });
    }
    let (issuer, domain) = load_issuer(dir)?;
    let mut options = options.clone();
    if let Identity::Operator(name) = identity
        && options.roles.is_empty()
    {
        // Without new roles, the renewed certificate keeps the current ones.
        let pem = read_to_string(&cert_path)?;
        if let Some(der) = first_pem_der(&pem) {
            options.roles = identity::roles_of_cert(&der, &domain, name)?;
        }
    }
    if *identity == Identity::Coordinator {
        for default in ["localhost", "127.0.0.1"] {
            if !options.sans.iter().any(|s| s == default) {
                options.sans.push(default.to_string());
            }
        }
    }
    // Keep the old certificate (public) beside, as `<name>.pem.old`, so it
    // can be revoked after the renewal (`backout pki revoke --cert`).
    let old = cert_path.with_extension("pem.old");
    std::fs::copy(&cert_path, &old).map_err(|source| PkiError::Io {
        path: old.clone(),
        source,
    })?;
    let staging = dir.join(format!(".renew-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = write_leaf(&staging, &issuer, &domain, identity, &options).and_then(|_| {
        let (new_cert, new_key) = leaf_paths(&staging, identity);
        for (from, to) in [(&new_key, &key_path), (&new_cert, &cert_path)] {
            std::fs::rename(from, to).map_err(|source| PkiError::Io {
                path: to.clone(),
                source,
            })?;
        }
        Ok(Written {
            files: vec![cert_path.clone(), key_path.clone()],
        })
    });
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// The CA of `dir` as an rcgen issuer, and the trust domain it names.
pub(crate) fn load_issuer(dir: &Path) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let ca_pem = read_to_string(&ca_cert_path)?;
    let ca_key_pem = read_to_string(&ca_key_path)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| PkiError::Parse {
        path: ca_key_path.clone(),
        message: format!("not a PEM private key: {e}"),
    })?;
    let ca_der = first_pem_der(&ca_pem).ok_or_else(|| PkiError::Parse {
        path: ca_cert_path.clone(),
        message: "no CERTIFICATE block".into(),
    })?;
    let domain = ca_domain(&ca_der).map_err(|message| PkiError::Parse {
        path: ca_cert_path.clone(),
        message,
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| PkiError::Parse {
        path: ca_cert_path.clone(),
        message: e.to_string(),
    })?;
    Ok((issuer, domain))
}

/// The trust domain a CA certificate names in its `spiffe://<domain>` URI SAN.
pub fn ca_domain(ca_der: &[u8]) -> Result<String, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(ca_der).map_err(|e| e.to_string())?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .ok_or("the CA certificate has no URI SAN naming the trust domain")?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::URI(uri) => uri
                .strip_prefix("spiffe://")
                .filter(|d| !d.contains('/'))
                .map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| "the CA certificate has no spiffe://<domain> URI SAN".to_string())
}

fn write_leaf(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    domain: &str,
    identity: &Identity,
    options: &LeafOptions,
) -> Result<Written, PkiError> {
    if let Identity::Agent(name) | Identity::Operator(name) = identity {
        identity::validate_name(name)?;
    }
    let (cert_path, key_path) = leaf_paths(dir, identity);
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(PkiError::Exists { path: path.clone() });
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, identity.to_string());
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match identity {
        Identity::Coordinator => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Identity::Agent(_) | Identity::Operator(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let mut sans = vec![SanType::URI(identity.uri(domain).try_into()?)];
    match identity {
        Identity::Operator(name) => {
            for role in &options.roles {
                identity::validate_name(role)?;
                sans.push(SanType::URI(
                    identity::role_uri(domain, name, role).try_into()?,
                ));
            }
        }
        _ if !options.roles.is_empty() => {
            return Err(PkiError::RolesNotOperator(identity.to_string()));
        }
        _ => {}
    }
    for san in &options.sans {
        sans.push(match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                san.clone()
                    .try_into()
                    .map_err(|_| PkiError::BadSan(san.clone()))?,
            ),
        });
    }
    params.subject_alt_names = sans;
    let now = OffsetDateTime::now_utc();
    let start = now - Duration::from_secs(u64::from(options.backdate_days) * 24 * 3600)
        + Duration::from_secs(u64::from(options.postdate_days) * 24 * 3600);
    params.not_before = start - Duration::from_secs(60);
    params.not_after = start + Duration::from_secs(u64::from(options.days.max(1)) * 24 * 3600);
    let cert = params.signed_by(&key, issuer)?;

    if let Some(parent) = cert_path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| PkiError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_new_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(Written {
        files: vec![cert_path, key_path],
    })
}

/// Writes a file that must not exist yet, with `mode` from the start (so a
/// private key is never readable by others, not even for an instant).
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PkiError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                PkiError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| PkiError::Io {
            path: path.to_path_buf(),
            source,
        })
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The first certificate (DER) of a PEM text.
pub fn first_pem_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|c| c.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_then_issue_writes_keys_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "test.local", &LeafOptions::default()).unwrap();
        let agent = Identity::Agent("app-1".into());
        issue(dir.path(), &agent, &LeafOptions::default()).unwrap();
        let (cert, key) = leaf_paths(dir.path(), &agent);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let der = first_pem_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(Identity::from_cert_der(&der, "test.local").unwrap(), agent);

        let again = issue(dir.path(), &agent, &LeafOptions::default()).unwrap_err();
        assert!(matches!(again, PkiError::Exists { .. }), "{again}");
        let again = init(dir.path(), "test.local", &LeafOptions::default()).unwrap_err();
        assert!(matches!(again, PkiError::Exists { .. }), "{again}");
    }

    #[test]
    fn the_trust_domain_is_read_back_from_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "fleet.example", &LeafOptions::default()).unwrap();
        let pem = std::fs::read_to_string(dir.path().join(CA_CERT)).unwrap();
        assert_eq!(
            ca_domain(&first_pem_der(&pem).unwrap()).unwrap(),
            "fleet.example"
        );
    }

    #[test]
    fn renewing_replaces_key_and_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "renew.local", &LeafOptions::default()).unwrap();
        let agent = Identity::Agent("a".into());
        assert!(renew(dir.path(), &agent, &LeafOptions::default()).is_err());
        issue(dir.path(), &agent, &LeafOptions::default()).unwrap();
        let (cert, key) = leaf_paths(dir.path(), &agent);
        let before = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
        renew(dir.path(), &agent, &LeafOptions::default()).unwrap();
        assert_eq!(
            std::fs::read(cert.with_extension("pem.old")).unwrap(),
            before.0
        );
        assert_ne!(std::fs::read(&cert).unwrap(), before.0);
        assert_ne!(std::fs::read(&key).unwrap(), before.1);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let der = first_pem_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(Identity::from_cert_der(&der, "renew.local").unwrap(), agent);
        renew(dir.path(), &Identity::Coordinator, &LeafOptions::default()).unwrap();
    }

    #[test]
    fn operator_roles_are_attested_in_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "roles.local", &LeafOptions::default()).unwrap();
        let alice = Identity::Operator("alice".into());
        let options = LeafOptions {
            roles: vec!["technical-lead".into(), "dba".into()],
            ..LeafOptions::default()
        };
        issue(dir.path(), &alice, &options).unwrap();
        let (cert, _) = leaf_paths(dir.path(), &alice);
        let der = first_pem_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        // The identity is still the first URI; the roles follow.
        assert_eq!(Identity::from_cert_der(&der, "roles.local").unwrap(), alice);
        assert_eq!(
            identity::roles_of_cert(&der, "roles.local", "alice").unwrap(),
            ["dba", "technical-lead"]
        );
        // Another name's or domain's role URIs are not alice's roles.
        assert!(
            identity::roles_of_cert(&der, "roles.local", "bob")
                .unwrap()
                .is_empty()
        );
        assert!(
            identity::roles_of_cert(&der, "other.local", "alice")
                .unwrap()
                .is_empty()
        );
        // Renewal without roles keeps the current ones...
        renew(dir.path(), &alice, &LeafOptions::default()).unwrap();
        let der = first_pem_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(
            identity::roles_of_cert(&der, "roles.local", "alice").unwrap(),
            ["dba", "technical-lead"]
        );
        // ...and with roles carries those (a role change is a renewal).
        let fewer = LeafOptions {
            roles: vec!["dba".into()],
            ..LeafOptions::default()
        };
        renew(dir.path(), &alice, &fewer).unwrap();
        let der = first_pem_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(
            identity::roles_of_cert(&der, "roles.local", "alice").unwrap(),
            ["dba"]
        );
        let agent = issue(dir.path(), &Identity::Agent("a".into()), &options);
        assert!(
            matches!(agent, Err(PkiError::RolesNotOperator(_))),
            "{agent:?}"
        );
        let bad = LeafOptions {
            roles: vec!["no/slash".into()],
            ..LeafOptions::default()
        };
        assert!(issue(dir.path(), &Identity::Operator("b".into()), &bad).is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(init(dir.path(), "bad/domain", &LeafOptions::default()).is_err());
        init(dir.path(), "d", &LeafOptions::default()).unwrap();
        let err = issue(
            dir.path(),
            &Identity::Agent("../x".into()),
            &LeafOptions::default(),
        );
        assert!(err.is_err());
    }
}
