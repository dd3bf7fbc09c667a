//! `backout init DIR --host web-1 --host db-1`: a starter set that starts
//! as written. The PKI (CA, coordinator certificate, command-signing key,
//! one certificate per host and for the operators alice and bob), the
//! coordinator's configuration, an agent configuration per host and a plan
//! with one trigger, one phase and one approval. Every file is a starting
//! point to edit; each says how it is used.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::pki::{IssueKind, PkiCommand};
use super::{BadInput, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write into: created if missing, refused unless empty.
    dir: PathBuf,
    /// A host of the fleet (repeat the flag): each gets an agent
    /// certificate and its agent configuration, agents/HOST.toml.
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// The fleet's trust domain, in every identity (spiffe://DOMAIN/...).
    #[arg(long, default_value = "fleet.example")]
    trust_domain: String,
    /// Where the coordinator listens, host:port; the agents dial it there
    /// (127.0.0.1 when it listens on every address).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: String,
    /// The directory of the plugin components the agents load (health.wasm);
    /// default: DIR/plugins.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// The health URL the plan's check calls on every host.
    #[arg(long, default_value = "http://127.0.0.1:8080/health")]
    health_url: String,
}

/// The operators the starter set issues certificates for, and their roles:
/// alice starts runs, bob approves them.
const OPERATORS: [(&str, &str); 2] = [("alice", "release-manager"), ("bob", "technical-lead")];

pub fn run(args: Args) -> anyhow::Result<Exit> {
    check(&args)?;
    super::finish_work_if_stdout_closes();
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pki = dir.join("pki");
    super::pki::execute(PkiCommand::Init {
        dir: pki.clone(),
        trust_domain: args.trust_domain.clone(),
        san: Vec::new(),
        days: 365,
    })?;
    let issue = |kind: IssueKind, name: &str, role: Vec<String>| {
        super::pki::execute(PkiCommand::Issue {
            kind,
            name: name.to_string(),
            dir: pki.clone(),
            san: Vec::new(),
            days: 365,
            backdate_days: 0,
            postdate_days: 0,
            role,
        })
    };
    for host in &args.hosts {
        issue(IssueKind::Agent, host, Vec::new())?;
    }
    // Each operator's certificate attests the role coordinator.toml gives.
    for (operator, role) in OPERATORS {
        issue(IssueKind::Operator, operator, vec![role.to_string()])?;
    }
    write(
        &dir.join("coordinator.toml"),
        &coordinator_toml(&args.listen),
    )?;
    let plugins = match &args.plugins {
        Some(p) => std::path::absolute(p).with_context(|| format!("{}", p.display()))?,
        None => PathBuf::from("../plugins"),
    };
    std::fs::create_dir_all(dir.join("agents"))?;
    for host in &args.hosts {
        let text = agent_toml(host, &args.listen, &plugins, &args.health_url);
        write(&dir.join("agents").join(format!("{host}.toml")), &text)?;
    }
    write(
        &dir.join("plan.toml"),
        &plan_toml(&args.hosts, &args.health_url),
    )?;
    let health = match &args.plugins {
        Some(p) => p.join("health.wasm"),
        None => dir.join("plugins").join("health.wasm"),
    };
    outln!();
    outln!("Next:");
    if !health.exists() {
        outln!(
            "  put the health plugin at {} (scripts/build-plugins.sh makes target/plugins/health.wasm)",
            health.display()
        );
    }
    let d = dir.display();
    outln!("  backout serve --config {d}/coordinator.toml");
    for host in &args.hosts {
        outln!("  backout-agent --config {d}/agents/{host}.toml        # on {host}");
    }
    outln!(
        "  export BACKOUT_COORDINATOR={} BACKOUT_PKI={d}/pki BACKOUT_OPERATOR=alice",
        dial_address(&args.listen)
    );
    outln!("  backout rollback start --reason \"first rehearsal\" --dry-run");
    Ok(Exit::Ok)
}

/// Refuses what would not work before writing anything: an existing
/// non-empty directory, a bad host name, a URL that is not http(s).
fn check(args: &Args) -> Result<(), BadInput> {
    if let Ok(mut entries) = std::fs::read_dir(&args.dir)
        && entries.next().is_some()
    {
        return Err(BadInput(format!(
            "{}: the directory is not empty; `backout init` writes a new starter set and overwrites nothing",
            args.dir.display()
        )));
    }
    if args.dir.is_file() {
        return Err(BadInput(format!("{}: is a file", args.dir.display())));
    }
    for host in &args.hosts {
        backout_tls::identity::validate_name(host)
            .map_err(|e| BadInput(format!("--host `{host}`: {e}")))?;
    }
    if url_prefix(&args.health_url).is_none() {
        return Err(BadInput(format!(
            "--health-url `{}`: expected an http:// or https:// URL",
            args.health_url
        )));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    outln!("wrote {}", path.display());
    Ok(())
}

/// The address agents and operators dial for a listen address.
fn dial_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_string(),
    }
}

/// `scheme://authority/` of a URL: what the health plugin is granted.
fn url_prefix(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .map(|r| ("http://", r))
        .or_else(|| url.strip_prefix("https://").map(|r| ("https://", r)))?;
    let authority = rest.1.split('/').next().filter(|a| !a.is_empty())?;
    Some(format!("{}{authority}/", rest.0))
}

fn coordinator_toml(listen: &str) -> String {
    let mut out = format!(
        "# The coordinator (written by `backout init`). Start it with\n\
         #   backout serve --config coordinator.toml\n\
         # Every key is described in docs/config.md.\n\
         listen = \"{listen}\"\n\
         command_key = \"pki/command-signing.key\"   # signs every command; agents pin its public half\n\
         checkpoint_key = \"pki/checkpoint-signing.key\"   # signs the journal's checkpoints; operators keep its public half\n\
         state_dir = \"state\"                        # the journal\n\
         plan = \"plan.toml\"                         # its [[host]]s are the agents that may connect\n\
         \n\
         [tls]\n\
         ca = \"pki/ca.pem\"\n\
         cert = \"pki/coordinator.pem\"\n\
         key = \"pki/coordinator.key\"\n\
         \n\
         # Operators (their certificates are in pki/operators/) and their roles.\n\
         [operators]\n"
    );
    for (operator, role) in OPERATORS {
        let _ = writeln!(out, "{operator} = [\"{role}\"]");
    }
    out
}

fn agent_toml(host: &str, listen: &str, plugins: &Path, health_url: &str) -> String {
    let prefix = url_prefix(health_url).unwrap_or_default();
    format!(
        "# The agent on {host} (written by `backout init`). Start it there with\n\
         #   backout-agent --config {host}.toml\n\
         coordinator = \"{coordinator}\"\n\
         command_key = \"../pki/command-signing.pub\"   # only commands signed by this key run\n\
         state_dir = \"../state/agents/{host}\"        # nonces and the step ledger\n\
         \n\
         [tls]\n\
         ca = \"../pki/ca.pem\"\n\
         cert = \"../pki/agents/{host}.pem\"\n\
         key = \"../pki/agents/{host}.key\"\n\
         \n\
         # A plugin runs with no authority but its grants.\n\
         [[plugin]]\n\
         name = \"health\"\n\
         path = \"{plugin}\"\n\
         [plugin.grants]\n\
         urls = [\"{prefix}\"]\n",
        coordinator = dial_address(listen),
        plugin = plugins.join("health.wasm").display(),
    )
}

fn plan_toml(hosts: &[String], health_url: &str) -> String {
    let mut out = String::from(
        "# The rollback plan (written by `backout init`): one trigger, one phase,\n\
         # one approval. Check it with `backout plan check plan.toml`.\n\
         [plan]\n\
         name = \"starter\"\n\n",
    );
    for host in hosts {
        let _ = writeln!(out, "[[host]]\nid = \"{host}\"\ngroups = [\"fleet\"]\n");
    }
    let _ = write!(
        out,
        "[roles]\n\
         release-manager = \"Release Manager\"\n\
         technical-lead = \"Technical Lead\"\n\
         \n\
         # A run starts once a technical lead (not its starter) approves it.\n\
         [approvals]\n\
         run = [\"technical-lead\"]\n\
         \n\
         # Set by a person: backout signal set rollback_requested=true\n\
         [signals.rollback_requested]\n\
         manual = true\n\
         \n\
         [[trigger]]\n\
         name = \"Rollback Requested\"\n\
         class = \"immediate\"\n\
         when = \"rollback_requested\"\n\
         unknown = \"ok\"          # nobody has said so yet: nothing to act on\n\
         deciders = [\"release-manager\"]\n\
         \n\
         # Replace the check with your rollback's steps.\n\
         [[phase]]\n\
         id = \"verify\"\n\
         name = \"Verify the service\"\n\
         time_limit = \"5m\"      # also how long an agent that is not connected is waited for\n\
         \n\
         [[phase.step]]\n\
         id = \"check\"\n\
         plugin = \"health\"\n\
         action = \"check\"\n\
         on = \"fleet\"\n\
         on_failure = \"retry\"\n\
         retries = 2\n\
         # require_healthy: a service that is down fails the step (and is retried).\n\
         params = {{ require_healthy = true, checks = [{{ name = \"service\", url = \"{health_url}\" }}] }}\n"
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_starter_files_load_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["web-1".to_string(), "db-1".to_string()];
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, plan_toml(&hosts, "http://127.0.0.1:8080/health")).unwrap();
        let plan = backout_plan::model::Plan::load(&plan).unwrap();
        assert_eq!(plan.triggers.len(), 1);
        assert_eq!(plan.phases.len(), 1);
        assert_eq!(plan.approvals.run, ["technical-lead"]);
        let config = dir.path().join("coordinator.toml");
        std::fs::write(&config, coordinator_toml("127.0.0.1:7443")).unwrap();
        let config = crate::config::CoordinatorConfig::load(&config).unwrap();
        assert!(config.is_known_agent("web-1") && config.is_known_agent("db-1"));
        // It sends its reader to the documentation a newcomer has, which
        // exists, not to a source file.
        let text = coordinator_toml("127.0.0.1:7443");
        assert!(text.contains("described in docs/config.md"), "{text}");
        assert!(!text.contains(".rs"), "{text}");
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
        assert!(docs.is_file());
    }

    #[test]
    fn only_http_urls_are_granted_by_their_origin() {
        assert_eq!(
            url_prefix("http://127.0.0.1:8080/health").as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert_eq!(url_prefix("ftp://x/"), None);
        assert_eq!(url_prefix("http:///x"), None);
        assert_eq!(dial_address("0.0.0.0:7443"), "127.0.0.1:7443");
    }
}
