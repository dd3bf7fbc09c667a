//! Identities carried in certificates.
//!
//! Every certificate of the fleet names its holder in a URI SAN of the form
//! `spiffe://<trust-domain>/<kind>/<name>`. An operator certificate also
//! carries the roles the CA attests, one URI SAN each:
//! `spiffe://<trust-domain>/operator/<name>/role/<role>` (see
//! ARCHITECTURE.md, "Roles the CA attests"). The identity URI comes first.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Who holds a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Coordinator,
    Agent(String),
    Operator(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate does not parse: {0}")]
    BadCertificate(String),
    #[error("certificate has no spiffe:// URI SAN")]
    Missing,
    #[error("certificate names trust domain `{found}`, expected `{expected}`")]
    WrongDomain { expected: String, found: String },
    #[error(
        "`{0}` is not a Backout identity (spiffe://<domain>/agent|operator/<name> or /coordinator)"
    )]
    Malformed(String),
    #[error(
        "`{0}` is not a valid name: use letters, digits, '-', '_' and '.', at most 64 characters"
    )]
    BadName(String),
}

/// Checks a name used for an agent id or operator name.
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.to_string()))
    }
}

impl Identity {
    /// The SPIFFE URI for this identity in `domain`.
    pub fn uri(&self, domain: &str) -> String {
        match self {
            Identity::Coordinator => format!("spiffe://{domain}/coordinator"),
            Identity::Agent(id) => format!("spiffe://{domain}/agent/{id}"),
            Identity::Operator(name) => format!("spiffe://{domain}/operator/{name}"),
        }
    }

    /// Parses a SPIFFE URI, returning its trust domain and identity.
    pub fn parse_uri(uri: &str) -> Result<(String, Identity), IdentityError> {
        let malformed = || IdentityError::Malformed(uri.to_string());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let domain = parts
            .next()
            .filter(|d| !d.is_empty())
            .ok_or_else(malformed)?;
        let identity = match (parts.next(), parts.next(), parts.next()) {
            (Some("coordinator"), None, None) => Identity::Coordinator,
            (Some("agent"), Some(id), None) => {
                validate_name(id)?;
                Identity::Agent(id.to_string())
            }
            (Some("operator"), Some(name), None) => {
                validate_name(name)?;
                Identity::Operator(name.to_string())
            }
            _ => return Err(malformed()),
        };
        Ok((domain.to_string(), identity))
    }

    /// Reads the identity from a DER certificate, requiring `domain`.
    pub fn from_cert_der(der: &[u8], domain: &str) -> Result<Identity, IdentityError> {
        let (found_domain, identity) = spiffe_of_cert(der)?;
        if found_domain != domain {
            return Err(IdentityError::WrongDomain {
                expected: domain.to_string(),
                found: found_domain,
            });
        }
        Ok(identity)
    }
}

/// The URI SAN that attests `role` for operator `name` in `domain`.
pub fn role_uri(domain: &str, name: &str, role: &str) -> String {
    format!("spiffe://{domain}/operator/{name}/role/{role}")
}

/// The roles an operator certificate attests for operator `name` in
/// `domain` (its `.../operator/<name>/role/<role>` URI SANs), sorted and
/// without repeats. URIs for another name or domain are ignored.
pub fn roles_of_cert(der: &[u8], domain: &str, name: &str) -> Result<Vec<String>, IdentityError> {
    let prefix = role_uri(domain, name, "");
    let mut roles: Vec<String> = spiffe_uris(der)?
        .into_iter()
        .filter_map(|uri| uri.strip_prefix(&prefix).map(str::to_string))
        .filter(|role| validate_name(role).is_ok())
        .collect();
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Every `spiffe://` URI SAN of a DER certificate, in order.
fn spiffe_uris(der: &[u8]) -> Result<Vec<String>, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(uri.to_string()),
            _ => None,
        })
        .collect())
}

/// Reads the trust domain and identity from the first `spiffe://` URI SAN.
pub fn spiffe_of_cert(der: &[u8]) -> Result<(String, Identity), IdentityError> {
    let uri = first_spiffe_uri(der)?;
    Identity::parse_uri(&uri)
}

/// The first `spiffe://` URI SAN of a DER certificate.
pub fn first_spiffe_uri(der: &[u8]) -> Result<String, IdentityError> {
    spiffe_uris(der)?
        .into_iter()
        .next()
        .ok_or(IdentityError::Missing)
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Coordinator => f.write_str("coordinator"),
            Identity::Agent(id) => write!(f, "agent/{id}"),
            Identity::Operator(name) => write!(f, "operator/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uris_round_trip() {
        for id in [
            Identity::Coordinator,
            Identity::Agent("app-1".into()),
            Identity::Operator("alice".into()),
        ] {
            let (domain, back) = Identity::parse_uri(&id.uri("prod.example")).unwrap();
            assert_eq!(domain, "prod.example");
            assert_eq!(back, id);
        }
    }

    #[test]
    fn malformed_uris_are_refused() {
        for uri in [
            "https://x/agent/a",
            "spiffe:///agent/a",
            "spiffe://d/agent",
            "spiffe://d/agent/a/b",
            "spiffe://d/robot/a",
            "spiffe://d/agent/../x",
            "spiffe://d/operator/",
        ] {
            assert!(Identity::parse_uri(uri).is_err(), "{uri}");
        }
    }
}
