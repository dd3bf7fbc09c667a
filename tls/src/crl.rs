//! The fleet's certificate revocation list (`crl.pem`), signed by the CA
//! (rcgen), and written by `backout pki revoke`.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use crate::pki::{PkiError, first_pem_der, load_issuer, read_to_string, write_new_file};

pub const CRL: &str = "crl.pem";

/// Options for the certificate revocation list.
#[derive(Debug, Clone, Copy)]
pub struct CrlOptions {
    /// Days until the CRL's next update; past it, a coordinator using the CRL
    /// refuses every client certificate until a fresh CRL is written.
    pub days: u32,
    /// Date the CRL this many days back (0: now). With `days` smaller than
    /// this, the CRL is already out of date: only for tests.
    pub backdate_days: u32,
}

impl Default for CrlOptions {
    fn default() -> Self {
        CrlOptions {
            days: 7,
            backdate_days: 0,
        }
    }
}

/// What a revocation list says of itself: when it was made and when the
/// next one is due (Unix seconds), and how many certificates it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlDates {
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub revoked: usize,
}

/// Reads the dates of the first list in `pem` (its signature is checked
/// where it is used, against the CA, by [`crate::tls::TlsMaterial::with_crl_pem`]'s
/// verifier).
pub fn dates(pem: &[u8]) -> Result<CrlDates, String> {
    use x509_parser::prelude::{CertificateRevocationList, FromDer};
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem)
        .map(|d: rustls_pki_types::CertificateRevocationListDer<'static>| d.to_vec())
        .map_err(|e| format!("not a PEM CRL: {e}"))?;
    let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| e.to_string())?;
    Ok(CrlDates {
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        revoked: crl.iter_revoked_certificates().count(),
    })
}

/// Adds the certificate in `cert` (if given; see [`crate::pki::leaf_paths`]) to the CRL of `dir`
/// (`crl.pem`) and signs the list again with the CA, with a new next-update
/// time. Without an identity, only re-signs (to extend the next update).
/// Certificates already listed stay listed. Returns the serials on the list.
pub fn revoke(
    dir: &Path,
    cert: Option<&Path>,
    options: &CrlOptions,
) -> Result<Vec<String>, PkiError> {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

    let (issuer, _) = load_issuer(dir)?;
    let crl_path = dir.join(CRL);
    let mut revoked: Vec<RevokedCertParams> = Vec::new();
    if crl_path.exists() {
        let pem = read_to_string(&crl_path)?;
        let parse_err = |message: String| PkiError::Parse {
            path: crl_path.clone(),
            message,
        };
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|d: rustls_pki_types::CertificateRevocationListDer<'static>| d.to_vec())
            .map_err(|e| parse_err(format!("not a PEM CRL: {e}")))?;
        let (_, crl) =
            CertificateRevocationList::from_der(&der).map_err(|e| parse_err(e.to_string()))?;
        for entry in crl.iter_revoked_certificates() {
            let revocation_time =
                OffsetDateTime::from_unix_timestamp(entry.revocation_date.timestamp())
                    .map_err(|e| parse_err(e.to_string()))?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(entry.raw_serial()),
                revocation_time,
                reason_code: None,
                invalidity_date: None,
            });
        }
    }
    let now = OffsetDateTime::now_utc();
    if let Some(cert_path) = cert {
        let cert_path = cert_path.to_path_buf();
        let pem = read_to_string(&cert_path)?;
        let der = first_pem_der(&pem).ok_or_else(|| PkiError::Parse {
            path: cert_path.clone(),
            message: "no CERTIFICATE block".into(),
        })?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| PkiError::Parse {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
        let serial = SerialNumber::from_slice(cert.raw_serial());
        if !revoked.iter().any(|r| r.serial_number == serial) {
            revoked.push(RevokedCertParams {
                serial_number: serial,
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            });
        }
    }
    let this_update = now - Duration::from_secs(u64::from(options.backdate_days) * 24 * 3600);
    let next_update = this_update + Duration::from_secs(u64::from(options.days.max(1)) * 24 * 3600);
    let serials = revoked
        .iter()
        .map(|r| r.serial_number.to_string())
        .collect();
    let crl_number = u64::try_from(now.unix_timestamp()).unwrap_or_default();
    let params = CertificateRevocationListParams {
        this_update: this_update - Duration::from_secs(60),
        next_update,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    // A CRL is public and replaced as a whole: write it beside and rename, so
    // a coordinator never reads half a list.
    let tmp = dir.join(format!("{CRL}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    write_new_file(&tmp, crl.pem()?.as_bytes(), 0o644)?;
    std::fs::rename(&tmp, &crl_path).map_err(|source| PkiError::Io {
        path: crl_path.clone(),
        source,
    })?;
    Ok(serials)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Identity;
    use crate::pki::{LeafOptions, init, issue, leaf_paths};

    #[test]
    fn revoking_keeps_earlier_entries_and_refreshes_the_list() {
        use x509_parser::prelude::{CertificateRevocationList, FromDer};
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "crl.local", &LeafOptions::default()).unwrap();
        let (a, b) = (Identity::Agent("a".into()), Identity::Operator("b".into()));
        issue(dir.path(), &a, &LeafOptions::default()).unwrap();
        issue(dir.path(), &b, &LeafOptions::default()).unwrap();
        let (a, b) = (leaf_paths(dir.path(), &a).0, leaf_paths(dir.path(), &b).0);
        let (a, b) = (a.as_path(), b.as_path());
        assert_eq!(
            revoke(dir.path(), Some(a), &CrlOptions::default())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            revoke(dir.path(), Some(b), &CrlOptions::default())
                .unwrap()
                .len(),
            2
        );
        // Again, and a bare refresh: still two.
        assert_eq!(
            revoke(dir.path(), Some(b), &CrlOptions::default())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            revoke(dir.path(), None, &CrlOptions::default())
                .unwrap()
                .len(),
            2
        );
        let pem = std::fs::read(dir.path().join(CRL)).unwrap();
        let der: rustls_pki_types::CertificateRevocationListDer<'static> =
            rustls_pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 2);
        let next = crl.next_update().unwrap().timestamp();
        let in_a_week = OffsetDateTime::now_utc().unix_timestamp() + 7 * 24 * 3600;
        assert!((next - in_a_week).abs() < 120, "{next} vs {in_a_week}");
        // Revoking a file that is not there says which.
        let nobody = dir.path().join("agents/nobody.pem");
        let err = revoke(dir.path(), Some(&nobody), &CrlOptions::default());
        assert!(matches!(err, Err(PkiError::Io { .. })));
    }
}
