//! One end-to-end fleet: a PKI made by `backout pki`, a plan, a coordinator
//! (`backout serve`) and an agent per host (`backout-agent`), all real
//! processes on free loopback ports, killed when the [`Fleet`] is dropped.
//!
//! ```ignore
//! let fleet = Fleet::builder("runs.test")
//!     .hosts(["app-1", "app-2"])
//!     .group("app", ["app-1", "app-2"])
//!     .approvals(["technical-lead"])
//!     .plan(PHASES)
//!     .start()
//!     .await;
//! let id = fleet.start_approved(&["--reason", "5xx at 12%"]);
//! let run = fleet.ended(&id).await;
//! ```
//!
//! The builder writes the plan's head (`[plan]`, `[[host]]`, `[roles]`,
//! `[approvals]`) from the hosts, operators and approvals it is given; a test
//! writes only what it is about (phases, steps, triggers, escalations). The
//! coordinator's configuration names the PKI's keys, `plan.toml` beside it,
//! its state in `state/` (the journal is `state/journal.db`) and the
//! operators; without a plan it lists the hosts as `[[agent]]`s. Each agent
//! gets [`crate::agent_config`] (health and testbed plugins), its state in
//! `state-<id>/`, its log in `<id>.log`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::postgres::Postgres;
use crate::proxy::Proxy;
use crate::{
    Coordinator, Pki, Proc, Serving, agent_config, cli, cli_child, json_of, start_agent_envs,
    wait_for,
};

/// How long the fleet waits for agents to connect and runs to end.
const WAIT: Duration = Duration::from_secs(60);

/// Edits an agent's configuration: `(host id, default configuration)` in,
/// the configuration to write out.
type AgentEdit = Arc<dyn Fn(&str, String) -> String + Send + Sync>;

/// Builds a [`Fleet`]; see the module documentation.
pub struct FleetBuilder {
    pki: Option<Pki>,
    domain: String,
    name: String,
    hosts: Vec<String>,
    groups: Vec<(String, Vec<String>)>,
    running: Option<Vec<String>>,
    plan: Option<String>,
    roles: Vec<String>,
    approvals: Vec<String>,
    operators: Vec<(String, Vec<String>)>,
    config: String,
    state_dir: String,
    testbed_grants: String,
    agent_edit: Option<AgentEdit>,
    envs: Vec<(String, String)>,
    skip_plan_check: bool,
    ha: Option<HaJournal>,
    proxies: Vec<(String, Proxy)>,
}

/// Two coordinators on one PostgreSQL journal (see [`FleetBuilder::ha`]).
#[derive(Clone)]
struct HaJournal {
    conninfo: String,
    password: String,
    lease_ttl: String,
}

/// The coordinator waiting for the lease ([`FleetBuilder::ha`]).
pub struct Standby {
    pub serving: Serving,
    /// Where it will listen once it leads.
    pub addr: String,
}

/// A started fleet. Every process is killed when it is dropped.
pub struct Fleet {
    pub pki: Pki,
    pub coordinator: Coordinator,
    /// The coordinator's `host:port`; a restarted coordinator keeps it.
    pub addr: String,
    /// The running agents, by host id.
    pub agents: std::collections::BTreeMap<String, Proc>,
    /// The operator that asks the coordinator what it knows (`agents`, `runs`,
    /// `watch`): `alice` when there is one.
    pub observer: String,
    plan_head: String,
    config_head: String,
    config_tail: String,
    state_dir: String,
    testbed_grants: String,
    agent_edit: Option<AgentEdit>,
    envs: Vec<(String, String)>,
    /// With [`FleetBuilder::ha`]: the second coordinator, standing by.
    pub standby: Option<Standby>,
    /// Hosts whose agent dials through a proxy ([`FleetBuilder::proxied`]).
    proxies: Vec<(String, Proxy)>,
}

impl Fleet {
    /// A fleet in a new PKI of trust domain `domain`, with the operators dave
    /// (release-manager), bob (technical-lead) and alice (release-manager)
    /// unless [`FleetBuilder::operators`] says otherwise.
    pub fn builder(domain: &str) -> FleetBuilder {
        FleetBuilder {
            pki: None,
            domain: domain.to_string(),
            name: "e2e".into(),
            hosts: Vec::new(),
            groups: Vec::new(),
            running: None,
            plan: None,
            roles: Vec::new(),
            approvals: Vec::new(),
            operators: [
                ("dave", "release-manager"),
                ("bob", "technical-lead"),
                ("alice", "release-manager"),
            ]
            .iter()
            .map(|(name, role)| (name.to_string(), vec![role.to_string()]))
            .collect(),
            config: String::new(),
            state_dir: "state".into(),
            testbed_grants: String::new(),
            agent_edit: None,
            envs: Vec::new(),
            skip_plan_check: false,
            ha: None,
            proxies: Vec::new(),
        }
    }
}

/// `(key, value)` pairs as the process starters take them.
fn pairs(envs: &[(String, String)]) -> Vec<(&str, &str)> {
    envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn strings<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A role's title in the plan's `[roles]`: `technical-lead` → `Technical Lead`.
fn title(role: &str) -> String {
    if role == "dba" {
        return "DBA".into();
    }
    role.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl FleetBuilder {
    /// Uses `pki` (prepared by the test: more certificates, a CRL) instead
    /// of a new one; the builder still issues what its hosts and operators lack.
    pub fn pki(mut self, pki: Pki) -> Self {
        self.pki = Some(pki);
        self
    }

    /// The plan's name (`[plan] name`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The fleet's hosts: each gets an agent certificate and, unless
    /// [`FleetBuilder::agents`] says otherwise, a running agent.
    pub fn hosts<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, hosts: I) -> Self {
        self.hosts = strings(hosts);
        self
    }

    /// Puts `hosts` in group `group` (in the plan, or in the coordinator's
    /// `[[agent]]` list when there is no plan).
    pub fn group<I: IntoIterator<Item = S>, S: AsRef<str>>(
        mut self,
        group: &str,
        hosts: I,
    ) -> Self {
        self.groups.push((group.to_string(), strings(hosts)));
        self
    }

    /// Starts agents for these hosts only.
    pub fn agents<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, hosts: I) -> Self {
        self.running = Some(strings(hosts));
        self
    }

    /// Starts no agent: the test starts its own, or needs none.
    pub fn no_agents(mut self) -> Self {
        self.running = Some(Vec::new());
        self
    }

    /// What the plan says after its head: phases, steps, signals, triggers,
    /// escalations, channels... Without it the coordinator runs without a plan.
    pub fn plan(mut self, fragment: &str) -> Self {
        self.plan = Some(fragment.to_string());
        self
    }

    /// Roles the plan declares besides the operators' and the approvals'.
    pub fn roles<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, roles: I) -> Self {
        self.roles = strings(roles);
        self
    }

    /// The roles that must approve a run (`[approvals] run`).
    pub fn approvals<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, roles: I) -> Self {
        self.approvals = strings(roles);
        self
    }

    /// The operators and their roles (replaces dave, bob and alice).
    pub fn operators(mut self, operators: &[(&str, &[&str])]) -> Self {
        self.operators = operators
            .iter()
            .map(|(name, roles)| (name.to_string(), strings(roles.iter())))
            .collect();
        self
    }

    /// More of the coordinator's configuration (TOML): its top-level keys go
    /// before `[tls]`, its tables after the builder's own.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        if !self.config.ends_with('\n') {
            self.config.push('\n');
        }
        self
    }

    /// The coordinator's state directory, relative to the PKI's (`state`).
    pub fn state_dir(mut self, dir: &str) -> Self {
        self.state_dir = dir.to_string();
        self
    }

    /// The testbed plugin's grants in every agent (TOML lines).
    pub fn testbed_grants(mut self, grants: &str) -> Self {
        self.testbed_grants = grants.to_string();
        self
    }

    /// Two coordinators, `a` and `b`, on one journal in `pg` (`journal = {
    /// postgres = … }`, `lease_ttl`, a heartbeat of 500 ms so that agents
    /// notice a silent coordinator within 1.5 s), each on its own free port
    /// with its own `advertise`, configuration (`coordinator-a.toml`) and
    /// log (`coordinator-a.log`). `a` starts first and leads; `b` stands
    /// by ([`Fleet::standby`]). Agents and the CLI are given both addresses.
    pub fn ha(mut self, pg: &Postgres, lease_ttl: &str) -> Self {
        self.ha = Some(HaJournal {
            conninfo: format!(
                "host=127.0.0.1 port={} dbname={} user={}",
                pg.port, pg.dbname, pg.user
            ),
            password: pg.password.clone(),
            lease_ttl: lease_ttl.to_string(),
        });
        self
    }

    /// Host `id`'s agent dials the coordinator through `proxy` (which is
    /// pointed at the coordinator), so a test can cut it off.
    pub fn proxied(mut self, id: &str, proxy: &Proxy) -> Self {
        self.proxies.push((id.to_string(), proxy.clone()));
        self
    }

    /// An environment variable for the first coordinator (the leader, with
    /// [`FleetBuilder::ha`]): a test hook such as `FREEZE_ENV`.
    pub fn coordinator_env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Changes each agent's configuration before it is written: more
    /// plugins, secrets, other grants.
    pub fn agent_config(
        mut self,
        edit: impl Fn(&str, String) -> String + Send + Sync + 'static,
    ) -> Self {
        self.agent_edit = Some(Arc::new(edit));
        self
    }

    /// Starts the coordinator without checking the plan's steps against the
    /// plugins (test builds only): for tests of what the plugins themselves
    /// refuse at run time, which `serve` would otherwise refuse to start on.
    pub fn skip_plan_check(mut self) -> Self {
        self.skip_plan_check = true;
        self
    }

    /// Issues the certificates, writes the plan and the configurations,
    /// starts the coordinator and the agents, and waits until every agent
    /// is connected.
    /// An environment variable for the coordinator and every agent (e.g.
    /// `BACKOUT_LOG_FORMAT=json`), at every start.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub async fn start(self) -> Fleet {
        let pki = self.pki.unwrap_or_else(|| Pki::new(&self.domain));
        for host in &self.hosts {
            if !pki.path().join(format!("agents/{host}.pem")).exists() {
                pki.issue("agent", host);
            }
        }
        for (operator, held) in &self.operators {
            if !pki
                .path()
                .join(format!("operators/{operator}.pem"))
                .exists()
            {
                // The roles the CA attests are the ones the configuration gives.
                let mut args = vec!["issue", "operator", operator.as_str()];
                for role in held {
                    args.extend(["--role", role.as_str()]);
                }
                pki.pki(&args);
            }
        }
        let groups_of = |host: &str| -> Vec<String> {
            self.groups
                .iter()
                .filter(|(_, hosts)| hosts.iter().any(|h| h == host))
                .map(|(group, _)| group.clone())
                .collect()
        };
        let host_list = |header: &str| -> String {
            self.hosts
                .iter()
                .map(|host| {
                    let groups = groups_of(host);
                    let groups = if groups.is_empty() {
                        String::new()
                    } else {
                        format!("groups = [{}]\n", quoted(&groups))
                    };
                    format!("[[{header}]]\nid = \"{host}\"\n{groups}")
                })
                .collect()
        };

        // The plan's head: what every plan of the fleet says the same way.
        let mut roles = BTreeSet::new();
        for (_, held) in &self.operators {
            roles.extend(held.iter().cloned());
        }
        roles.extend(self.approvals.iter().cloned());
        roles.extend(self.roles.iter().cloned());
        let mut plan_head = format!("[plan]\nname = \"{}\"\n{}", self.name, host_list("host"));
        plan_head.push_str("[roles]\n");
        for role in &roles {
            plan_head.push_str(&format!("{role} = \"{}\"\n", title(role)));
        }
        if !self.approvals.is_empty() {
            plan_head.push_str(&format!(
                "[approvals]\nrun = [{}]\n",
                quoted(&self.approvals)
            ));
        }

        // The coordinator's configuration: the test's top-level keys before
        // the first table, its tables at the end.
        let p = pki.path().display();
        let (top, tables) = match self.config.find("\n[") {
            _ if self.config.starts_with('[') => ("", self.config.as_str()),
            Some(at) => self.config.split_at(at + 1),
            None => (self.config.as_str(), ""),
        };
        let mut config_head = format!(
            "command_key = \"{p}/command-signing.key\"\ncheckpoint_key = \"{p}/checkpoint-signing.key\"\n"
        );
        if let Some(ha) = &self.ha {
            let password_file = pki.path().join("pg.pass");
            crate::write_secret(&password_file, format!("{}\n", ha.password));
            config_head.push_str(&format!(
                "journal = {{ postgres = \"{}\", password_file = \"{}\" }}\nlease_ttl = \"{}\"\nheartbeat_interval = \"500ms\"\n",
                ha.conninfo,
                password_file.display(),
                ha.lease_ttl
            ));
        }
        if self.plan.is_some() {
            config_head.push_str("plan = \"plan.toml\"\n");
        }
        let mut config_tail = format!(
            "{top}[tls]\nca = \"{p}/ca.pem\"\ncert = \"{p}/coordinator.pem\"\nkey = \"{p}/coordinator.key\"\n"
        );
        if self.plan.is_none() {
            config_tail.push_str(&host_list("agent"));
        }
        config_tail.push_str("[operators]\n");
        for (operator, held) in &self.operators {
            config_tail.push_str(&format!("{operator} = [{}]\n", quoted(held)));
        }
        config_tail.push_str(tables);

        let observer = self
            .operators
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| name == "alice")
            .or_else(|| self.operators.first().map(|(name, _)| name.clone()))
            .unwrap_or_default();
        let coordinator_config = format!(
            "{config_head}state_dir = \"{}\"\n{config_tail}",
            self.state_dir
        );
        if let Some(fragment) = &self.plan {
            std::fs::write(
                pki.path().join("plan.toml"),
                format!("{plan_head}{fragment}"),
            )
            .unwrap();
        }
        let mut envs = pairs(&self.envs);
        if self.skip_plan_check {
            envs.push((crate::SKIP_PLAN_CHECK_ENV, "1"));
        }
        let (coordinator, standby, addr) = match &self.ha {
            None => {
                let coordinator =
                    Coordinator::start_with(pki.path(), &coordinator_config, "127.0.0.1:0", &envs)
                        .await;
                let addr = coordinator.addr.clone();
                (coordinator, None, addr)
            }
            Some(_) => {
                let (a, b) = (free_addr(), free_addr());
                let with = |addr: &str| format!("advertise = \"{addr}\"\n{coordinator_config}");
                let mut leader = Serving::spawn(pki.path(), "coordinator-a", &with(&a), &a, &envs);
                let listening = leader.line("backout: listening on ", WAIT).await;
                assert_eq!(listening, a);
                let mut standby = Serving::spawn(pki.path(), "coordinator-b", &with(&b), &b, &[]);
                standby.line("backout: standby", WAIT).await;
                let addrs = format!("{a},{b}");
                let standby = Standby {
                    serving: standby,
                    addr: b,
                };
                (leader.into_coordinator(a), Some(standby), addrs)
            }
        };
        let mut fleet = Fleet {
            pki,
            coordinator,
            addr,
            agents: Default::default(),
            observer,
            plan_head,
            config_head,
            config_tail,
            state_dir: self.state_dir,
            testbed_grants: self.testbed_grants,
            agent_edit: self.agent_edit,
            envs: self.envs,
            standby,
            proxies: self.proxies,
        };
        let running = self.running.unwrap_or(self.hosts);
        for host in &running {
            fleet.start_agent(host, "");
        }
        if !running.is_empty() {
            fleet.wait_connected(running.len()).await;
        }
        fleet
    }
}

impl Fleet {
    /// The PKI's directory, where every file of the fleet is.
    pub fn path(&self) -> &Path {
        self.pki.path()
    }

    /// Runs `backout` as `operator` against this coordinator.
    pub fn cli(&self, operator: &str, args: &[&str]) -> std::process::Output {
        cli(&self.pki, &self.addr, operator, args)
    }

    /// The JSON a `backout` call as `operator` printed; panics unless it exited 0.
    pub fn json(&self, operator: &str, args: &[&str]) -> Value {
        json_of(&self.cli(operator, args))
    }

    /// Starts `backout` as `operator` in the background, its output piped.
    pub fn cli_child(&self, operator: &str, args: &[&str]) -> Child {
        cli_child(&self.pki, &self.addr, operator, args)
    }

    /// `backout rollback start ARGS --output json` as `operator`: what it printed.
    pub fn start_run(&self, operator: &str, args: &[&str]) -> Value {
        let mut all = vec!["rollback", "start"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", "json"]);
        self.json(operator, &all)
    }

    /// A run started by dave with `args` (`--reason ...`) and approved by
    /// bob: its id.
    pub fn start_approved(&self, args: &[&str]) -> String {
        let id = run_id(&self.start_run("dave", args));
        self.approve(&id, &["bob"]);
        id
    }

    /// Each operator approves run `id` (the first role each holds that is
    /// still needed); panics on a refusal.
    pub fn approve(&self, id: &str, operators: &[&str]) {
        for operator in operators {
            self.json(operator, &["approve", id, "--output", "json"]);
        }
    }

    /// `backout report ID --format FORMAT` (md, json, html) of the observer;
    /// panics unless it exits 0.
    pub fn report(&self, id: &str, format: &str) -> String {
        let out = self.cli(&self.observer, &["report", id, "--format", format]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `backout runs --output json`.
    pub fn runs(&self) -> Value {
        self.json(&self.observer, &["runs", "--output", "json"])
    }

    /// One run as `backout runs RUN` shows it, hosts and all (an ended
    /// run is listed brief by `backout runs`).
    pub fn run_of(&self, id: &str) -> Value {
        self.json(&self.observer, &["runs", id, "--output", "json"])
    }

    /// Waits until `done` holds of run `id` (asked every 50 ms); returns the run.
    pub async fn wait_run(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, WAIT, || {
            let run = self.run_of(id);
            done(&run).then_some(run)
        })
        .await
    }

    /// Waits until run `id` has ended, however it ended.
    pub async fn ended(&self, id: &str) -> Value {
        self.wait_run(id, "the run to end", |run| {
            run["finished_at_ms"].as_i64().is_some()
        })
        .await
    }

    /// A `backout watch ID --output json` of `operator`, started now.
    pub fn watcher(&self, operator: &str, id: &str) -> Watcher {
        Watcher::new(self.cli_child(operator, &["watch", id, "--output", "json"]))
    }

    /// Follows run `id` to its end: every line of `backout watch --output json`.
    pub async fn watch_to_end(&self, id: &str) -> Vec<Value> {
        self.watcher(&self.observer, id).to_end().await
    }

    /// `backout audit verify --output json` of this coordinator's journal;
    /// panics unless it exits 0.
    pub fn audit_verify(&self) -> Value {
        crate::audit_verify(&self.pki)
    }

    /// The coordinator's journal file.
    pub fn journal(&self) -> PathBuf {
        self.path().join(&self.state_dir).join("journal.db")
    }

    /// The kinds of the journal's entries, in order (read from its SQLite
    /// file while the coordinator runs).
    pub fn journal_kinds(&self) -> Vec<String> {
        let journal = rusqlite::Connection::open(self.journal()).unwrap();
        let mut rows = journal
            .prepare("SELECT kind FROM entries ORDER BY seq")
            .unwrap();
        rows.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// How many of the journal's entries are of `kind`.
    pub fn journal_count(&self, kind: &str) -> usize {
        self.journal_kinds().iter().filter(|k| *k == kind).count()
    }

    /// The ids of the agents the coordinator lists as connected.
    pub fn connected(&self) -> Vec<String> {
        crate::connected_agents(&self.pki, &self.addr, &self.observer)
    }

    /// Waits until `n` agents are connected.
    pub async fn wait_connected(&self, n: usize) {
        wait_for(&format!("{n} agents to connect"), WAIT, || {
            (self.connected().len() == n).then_some(())
        })
        .await;
    }

    /// The configuration file of host `id`'s agent.
    pub fn agent_config_path(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}.toml"))
    }

    /// The log of host `id`'s agent started with `log` (see [`Fleet::start_agent`]).
    pub fn agent_log(&self, id: &str, log: &str) -> PathBuf {
        if log.is_empty() {
            self.path().join(format!("{id}.log"))
        } else {
            self.path().join(format!("{id}-{log}.log"))
        }
    }

    /// Writes host `id`'s agent configuration and starts it (again); its log
    /// is `<id>.log`, or `<id>-<log>.log` when `log` is not empty. Does not
    /// wait for it to connect.
    pub fn start_agent(&mut self, id: &str, log: &str) {
        self.start_agent_with_env(id, log, &[]);
    }

    /// [`Fleet::start_agent`] with more environment variables for this
    /// start only (e.g. a test hook).
    pub fn start_agent_with_env(&mut self, id: &str, log: &str, extra: &[(&str, &str)]) {
        let path = self.agent_config_path(id);
        let state = self.path().join(format!("state-{id}"));
        let proxy = self.proxies.iter().find(|(host, _)| host == id);
        let coordinator = match proxy {
            Some((_, proxy)) => {
                // One coordinator: the proxy stands in for it.
                proxy.set_upstream(&self.addr);
                proxy.addr.clone()
            }
            None => self.addr.clone(),
        };
        let mut config = agent_config(&self.pki, id, &coordinator, &state, &self.testbed_grants);
        if let Some(edit) = &self.agent_edit {
            config = edit(id, config);
        }
        std::fs::write(&path, config).unwrap();
        let mut envs = pairs(&self.envs);
        envs.extend_from_slice(extra);
        let proc = start_agent_envs(&path, &[], &self.agent_log(id, log), &envs);
        self.agents.insert(id.to_string(), proc);
    }

    /// SIGKILLs host `id`'s agent and waits for it to exit.
    pub async fn kill_agent(&mut self, id: &str) {
        let agent = self.agents.get_mut(id).expect("no such agent");
        agent.kill().await;
    }

    /// Rewrites the plan: the fleet's head, then `fragment`. A coordinator
    /// reads it at start.
    pub fn write_plan(&self, fragment: &str) {
        std::fs::write(
            self.path().join("plan.toml"),
            format!("{}{fragment}", self.plan_head),
        )
        .unwrap();
    }

    /// The whole plan file as the coordinator reads it.
    pub fn plan_path(&self) -> PathBuf {
        self.path().join("plan.toml")
    }

    /// The coordinator's state directory for its next start.
    pub fn set_state_dir(&mut self, dir: &str) {
        self.state_dir = dir.to_string();
    }

    fn coordinator_config(&self) -> String {
        format!(
            "{}state_dir = \"{}\"\n{}",
            self.config_head, self.state_dir, self.config_tail
        )
    }

    /// SIGKILLs the coordinator and waits for it to exit.
    pub async fn kill_coordinator(&mut self) {
        self.coordinator.proc.kill().await;
    }

    /// Starts the coordinator (again) on the fleet's address, with more
    /// environment variables; the one before must be gone.
    pub async fn start_coordinator(&mut self, envs: &[(&str, &str)]) {
        let mut all = pairs(&self.envs);
        all.extend_from_slice(envs);
        self.coordinator =
            Coordinator::start_with(self.path(), &self.coordinator_config(), &self.addr, &all)
                .await;
        assert_eq!(self.coordinator.addr, self.addr);
    }

    /// Waits until the standby leads (it says it listens), then makes it
    /// the fleet's coordinator, and its address the only one the CLI dials
    /// (the old leader may be paused, not gone). Returns the old leader.
    pub async fn standby_leads(&mut self) -> Coordinator {
        let mut standby = self.standby.take().expect("no standby");
        let addr = standby.serving.line("backout: listening on ", WAIT).await;
        assert_eq!(addr, standby.addr);
        self.addr = addr.clone();
        std::mem::replace(
            &mut self.coordinator,
            standby.serving.into_coordinator(addr),
        )
    }

    /// With [`FleetBuilder::ha`]: starts `old` (a leader that is gone:
    /// killed, or stepped down) again, with its configuration and address,
    /// as the fleet's standby; its log is `<name>-<n>.log`. Waits until it
    /// says it stands by.
    pub async fn restart_as_standby(&mut self, old: Coordinator, n: usize) {
        drop(old);
        let name = ["coordinator-a", "coordinator-b"]
            .into_iter()
            .find(|name| {
                let config = std::fs::read_to_string(self.path().join(format!("{name}.toml")));
                config.is_ok_and(|c| !c.contains(&format!("listen = \"{}\"", self.addr)))
            })
            .expect("no configuration of the old leader");
        let config = self.path().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&config).unwrap();
        let addr = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_string();
        let log = self.path().join(format!("{name}-{n}.log"));
        let mut serving = Serving::start(&config, &log, &[]);
        serving.line("backout: standby", WAIT).await;
        self.standby = Some(Standby { serving, addr });
    }

    /// SIGKILLs the coordinator and starts it again on the same address.
    pub async fn restart_coordinator(&mut self) {
        self.kill_coordinator().await;
        self.start_coordinator(&[]).await;
    }
}

/// A free loopback `host:port` (bound, then released for a coordinator).
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The id of a run as `backout rollback start --output json` printed it.
pub fn run_id(started: &Value) -> String {
    started["run"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {started}"))
        .to_string()
}

/// A `backout watch --output json` in the background, read line by line.
pub struct Watcher {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Watcher {
    pub fn new(mut child: Child) -> Watcher {
        let stdout = child.stdout.take().expect("the watcher's stdout is piped");
        Watcher {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Waits for the first line, the snapshot: the coordinator sends it once
    /// the watcher is subscribed, so every later event reaches it live.
    pub async fn subscribed(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the watcher printed no snapshot")
            .unwrap()
            .expect("the watcher ended before its snapshot");
        let snapshot: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(snapshot["kind"], "snapshot", "{snapshot}");
        self.seen.push(snapshot.clone());
        snapshot
    }

    /// Every line, once the watcher exits (within 90 s) with 0 (the run
    /// succeeded) or 1 (it did not).
    pub async fn to_end(mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                rest.push(line);
            }
        })
        .await
        .expect("the watcher did not finish");
        let out = self.child.wait_with_output().await.unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)) && (!self.seen.is_empty() || !rest.is_empty()),
            "watch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.seen.extend(
            rest.iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))),
        );
        self.seen
    }
}

/// The `finished` line of step `step` in a watch.
pub fn finished<'a>(lines: &'a [Value], step: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["kind"] == "finished" && l["step"] == step)
        .unwrap_or_else(|| panic!("step {step} never finished: {lines:#?}"))
}

/// Whether step `step` was dispatched in a watch.
pub fn dispatched(lines: &[Value], step: &str) -> bool {
    lines
        .iter()
        .any(|l| l["kind"] == "dispatched" && l["step"] == step)
}
