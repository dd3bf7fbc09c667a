//! Who may call which gRPC method: one table for every method of every
//! service, consulted by the services before they do anything else.
//!
//! **Architecture invariant:** every rpc of `proto/proto/backout.proto` has
//! exactly one row in [`TABLE`]; a method without a row is refused to
//! everyone. The end-to-end security matrix (`tests/e2e/security.rs`) parses
//! the proto and fails when a method has no row, then calls each method with
//! every kind of wrong certificate.

use backout_tls::{Identity, PeerInfo};
use tonic::Status;

/// Who may call a method. Authentication (a client certificate of the fleet
/// CA, valid, not revoked) has already happened in the TLS handshake; this is
/// the identity check on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An agent certificate (`spiffe://<domain>/agent/<id>`) whose id the
    /// configuration lists. Only agents hold sessions.
    Agent,
    /// An operator certificate whose name is in the configuration's
    /// `[operators]`; what they may do beyond that (approve, start) is
    /// decided by their roles, per run.
    Operator,
}

/// Method full name (`/package.Service/Method`) → who may call it.
pub const TABLE: &[(&str, Caller)] = &[
    ("/backout.v1.Session/Attach", Caller::Agent),
    ("/backout.v1.Control/ListAgents", Caller::Operator),
    ("/backout.v1.Control/Assess", Caller::Operator),
    ("/backout.v1.Control/WhoAmI", Caller::Operator),
    ("/backout.v1.Control/Status", Caller::Operator),
    ("/backout.v1.Control/Matrix", Caller::Operator),
    ("/backout.v1.Control/SetSignal", Caller::Operator),
    ("/backout.v1.Control/RecordEvent", Caller::Operator),
    ("/backout.v1.Control/RecordDecision", Caller::Operator),
    ("/backout.v1.Control/StartRun", Caller::Operator),
    ("/backout.v1.Control/Approve", Caller::Operator),
    ("/backout.v1.Control/ApprovalNonce", Caller::Operator),
    ("/backout.v1.Control/ListRuns", Caller::Operator),
    ("/backout.v1.Control/AbortRun", Caller::Operator),
    ("/backout.v1.Control/Watch", Caller::Operator),
    ("/backout.v1.Control/Report", Caller::Operator),
];

/// The row for `method`, if there is one.
pub fn rule(method: &str) -> Option<Caller> {
    TABLE
        .iter()
        .find_map(|(name, caller)| (*name == method).then_some(*caller))
}

/// Checks the caller of `method` against the table and the configuration:
/// `agents` and `operators` say whether an agent id / operator name is known.
/// Returns the caller's identity. Codes: `Unauthenticated` when the
/// connection carries no usable identity, `PermissionDenied` when the
/// identity is not the table's, or not in the configuration.
pub fn authorize(
    method: &str,
    peer: Option<&PeerInfo>,
    known_agent: impl Fn(&str) -> bool,
    known_operator: impl Fn(&str) -> bool,
) -> Result<Identity, Status> {
    let peer = peer.ok_or_else(|| Status::unauthenticated("no TLS peer information"))?;
    let identity = match &peer.identity {
        Ok(identity) => identity,
        Err(e) => return Err(Status::unauthenticated(e.clone())),
    };
    let Some(caller) = rule(method) else {
        tracing::warn!(peer = %peer.addr, %method, "method without an access rule refused");
        return Err(Status::permission_denied(format!(
            "{method} has no access rule"
        )));
    };
    match (caller, identity) {
        (Caller::Agent, Identity::Agent(id)) => {
            if known_agent(id) {
                Ok(identity.clone())
            } else {
                tracing::warn!(peer = %peer.addr, agent = %id, "unknown agent refused");
                Err(Status::permission_denied(format!(
                    "agent `{id}` is not in the coordinator's configuration"
                )))
            }
        }
        (Caller::Operator, Identity::Operator(name)) => {
            if known_operator(name) {
                Ok(identity.clone())
            } else {
                tracing::warn!(peer = %peer.addr, operator = %name, "unknown operator refused");
                Err(Status::permission_denied(format!(
                    "operator `{name}` is not in the coordinator's configuration"
                )))
            }
        }
        (Caller::Agent, other) => Err(Status::permission_denied(format!(
            "{other} may not open an agent session ({method} is for agents)"
        ))),
        (Caller::Operator, other) => Err(Status::permission_denied(format!(
            "{other} may not use the Control service ({method} is for operators)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn peer(identity: Result<Identity, String>) -> PeerInfo {
        PeerInfo {
            addr: "127.0.0.1:1".parse().unwrap(),
            identity,
        }
    }

    #[test]
    fn each_method_once_and_roles_apart() {
        let mut names: Vec<_> = TABLE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len(), "a method is listed twice");
        let yes = |_: &str| true;
        let agent = peer(Ok(Identity::Agent("a".into())));
        let operator = peer(Ok(Identity::Operator("o".into())));
        let attach = "/backout.v1.Session/Attach";
        let list = "/backout.v1.Control/ListAgents";
        assert!(authorize(attach, Some(&agent), yes, yes).is_ok());
        assert!(authorize(list, Some(&operator), yes, yes).is_ok());
        for (method, p) in [(attach, &operator), (list, &agent)] {
            let e = authorize(method, Some(p), yes, yes).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
        }
        let e = authorize("/backout.v1.Control/Nope", Some(&operator), yes, yes).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = authorize(list, Some(&peer(Err("none".into()))), yes, yes).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = authorize(list, Some(&operator), yes, |_| false).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    }
}
