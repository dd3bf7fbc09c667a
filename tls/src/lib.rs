//! Fleet PKI and mutual TLS for Backout.
//!
//! * [`approval`]: operators' signed approval statements, and the check an
//!   agent makes of them before a gated action.
//! * [`identity`]: who is on the other end of a connection, read from the URI
//!   SAN of their certificate (`spiffe://<domain>/agent/<id>`, `/operator/<name>`,
//!   `/coordinator`).
//! * [`pki`]: the fleet CA, certificates and the command-signing key, made
//!   with rcgen by `backout pki init|issue`.
//! * [`tls`]: rustls configurations (TLS 1.3 only, client certificates
//!   required on both sides) and the glue that runs tonic over them.
//! * [`reload`]: the server's configuration rebuilt when its files change,
//!   so certificates, CA bundle and CRL rotate without a restart.
//! * [`stamp`]: whether a file changed, without reading it.
//! * [`quiet`]: rate-limited log lines for what unauthenticated peers cause.

pub mod approval;
pub mod crl;
pub mod identity;
pub mod pki;
pub mod quiet;
pub mod reload;
pub mod stamp;
pub mod tls;

pub use identity::{Identity, IdentityError};
pub use tls::{PeerInfo, TlsError, TlsFiles};
