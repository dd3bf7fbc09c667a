//! What a plugin says it needs (`needs`, in the `plugin-with-needs` world),
//! checked against its grants when it is loaded: an agent whose
//! configuration does not grant a plugin a required need disables it and
//! says what is missing, instead of failing its steps one call at a time. An
//! optional need (WIT 0.1.1) that is not granted is logged, and the plugin
//! loads; it asks `host.granted` at run time whether to use it.

use std::path::Path;

use wasmtime::Store;
use wasmtime::component::{Instance, Val};

use super::caps::{Access, Capabilities};
use super::state::HostState;

/// One declared need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// `program`, `url`, `read`, `write` or `secret`.
    pub kind: String,
    /// Exactly what; empty: any grant of this kind.
    pub value: String,
    pub why: String,
    /// The plugin works without it (false for plugins built before WIT 0.1.1).
    pub optional: bool,
    /// Whether the agent that loaded the plugin grants it; `None` when no
    /// agent checked (a plugin file described on its own).
    pub granted: Option<bool>,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.value.is_empty() {
            format!("some {} grant", self.kind)
        } else {
            format!("{} `{}`", self.kind, self.value)
        };
        if self.why.is_empty() {
            f.write_str(&what)
        } else {
            write!(f, "{what} ({})", self.why)
        }
    }
}

/// Calls the instance's `needs` export if it has one (plugins built for the
/// plain `plugin` world declare nothing).
pub(crate) fn read(
    store: &mut Store<HostState>,
    instance: &Instance,
) -> wasmtime::Result<Vec<Need>> {
    let Some(func) = instance.get_func(&mut *store, "needs") else {
        return Ok(Vec::new());
    };
    let mut results = [Val::Bool(false)];
    func.call(&mut *store, &[], &mut results)?;
    let Val::List(items) = &results[0] else {
        wasmtime::bail!("`needs` must return a list of `need` records");
    };
    items.iter().map(need).collect()
}

fn need(value: &Val) -> wasmtime::Result<Need> {
    let Val::Record(fields) = value else {
        wasmtime::bail!("`needs` must return `need` records");
    };
    // A plugin built before WIT 0.1.1 has no `optional` field: required.
    let optional = fields
        .iter()
        .any(|(n, v)| n == "optional" && matches!(v, Val::Bool(true)));
    let field = |name: &str| -> String {
        fields
            .iter()
            .find_map(|(n, v)| match v {
                Val::String(s) if n == name => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    Ok(Need {
        kind: field("kind"),
        value: field("value"),
        why: field("why"),
        optional,
        granted: None,
    })
}

/// The needs the grants do not cover. A secret is met only when it is both
/// granted and configured on this agent (`configured` says which are).
pub(crate) fn unmet<'a>(
    caps: &Capabilities,
    configured: &dyn Fn(&str) -> bool,
    needs: &'a [Need],
) -> Vec<&'a Need> {
    needs.iter().filter(|n| !met(caps, configured, n)).collect()
}

fn met(caps: &Capabilities, configured: &dyn Fn(&str) -> bool, need: &Need) -> bool {
    granted(caps, configured, &need.kind, &need.value)
}

/// Whether `caps` grant a need of `kind` and `value` (empty: some grant of
/// that kind); a secret only when it is also `configured`. What `host.granted`
/// answers a plugin at run time.
pub(crate) fn granted(
    caps: &Capabilities,
    configured: &dyn Fn(&str) -> bool,
    kind: &str,
    value: &str,
) -> bool {
    let any = value.is_empty();
    match kind {
        "program" if any => caps.grants_any_program(),
        "program" => caps.program_granted(value),
        "url" if any => caps.grants_any_url(),
        "url" => caps.check_url("", value).is_ok(),
        "secret" if any => caps.secrets().iter().any(|s| configured(s)),
        "secret" => caps.secret_granted(value) && configured(value),
        kind @ ("read" | "write") => {
            let access = if kind == "read" {
                Access::Read
            } else {
                Access::Write
            };
            if any {
                caps.grants_any_path(access)
            } else {
                caps.path_granted(Path::new(value), access)
            }
        }
        // A kind this agent does not know cannot be granted.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::config::Grants;

    fn need(kind: &str, value: &str) -> Need {
        Need {
            kind: kind.into(),
            value: value.into(),
            why: "because".into(),
            optional: false,
            granted: None,
        }
    }

    #[test]
    fn every_kind_of_need_is_checked_against_its_grants() {
        let caps = Capabilities::new(&Grants {
            programs: vec!["git".into()],
            urls: vec!["https://api.stripe.com/v1/".into()],
            read: vec!["/var/log".into()],
            write: vec!["/var/backups".into()],
            secrets: vec!["STRIPE_SECRET_KEY".into(), "SQUARE_TOKEN".into()],
            ..Grants::default()
        })
        .unwrap();
        // SQUARE_TOKEN is granted but this agent has no value for it.
        let configured = |name: &str| name == "STRIPE_SECRET_KEY";
        let needs = vec![
            need("program", "git"),
            need("program", ""),
            need("url", "https://api.stripe.com/v1/webhook_endpoints"),
            need("read", "/var/log/app"),
            need("write", "/var/backups"),
            need("secret", "STRIPE_SECRET_KEY"),
            need("program", "pg_dump"),
            need("url", "https://api.cloudflare.com/"),
            need("write", "/etc"),
            need("secret", "OTHER"),
            need("secret", "SQUARE_TOKEN"),
            need("teleport", ""),
        ];
        let missing: Vec<String> = unmet(&caps, &configured, &needs)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            missing,
            [
                "program `pg_dump` (because)",
                "url `https://api.cloudflare.com/` (because)",
                "write `/etc` (because)",
                "secret `OTHER` (because)",
                "secret `SQUARE_TOKEN` (because)",
                "some teleport grant (because)",
            ]
        );
        let nothing = Capabilities::new(&Grants::default()).unwrap();
        assert_eq!(unmet(&nothing, &configured, &[need("read", "")]).len(), 1);
    }

    #[test]
    fn a_need_is_optional_only_when_it_says_so() {
        let record = |optional: Option<bool>| {
            let mut fields = vec![
                ("kind".to_string(), Val::String("url".into())),
                ("value".to_string(), Val::String(String::new())),
                ("why".to_string(), Val::String("a proxy".into())),
            ];
            if let Some(optional) = optional {
                fields.push(("optional".to_string(), Val::Bool(optional)));
            }
            Val::Record(fields)
        };
        // A plugin built before WIT 0.1.1 has no `optional` field.
        assert!(!super::need(&record(None)).unwrap().optional);
        assert!(!super::need(&record(Some(false))).unwrap().optional);
        let optional = super::need(&record(Some(true))).unwrap();
        assert!(optional.optional);
        assert_eq!(optional.to_string(), "some url grant (a proxy)");
    }
}
