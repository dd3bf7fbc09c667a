//! Issue 14, items 2 and 3: approvals an agent verifies itself.
//!
//! A compromised coordinator (here: the test, holding the real command
//! signing key, speaking to a real agent as a fake coordinator) cannot make
//! `db.migrate-down` run on a host whose `approval_policy` gates it without
//! three real, distinct, current, unrevoked operators' signed approvals:
//! each attempt is refused with `approvals` and its reason, and the real
//! PostgreSQL database is unchanged (read with psql). And the seed's
//! database phase, approved with `backout approve` by three operators
//! holding dba, technical-lead and product-owner, runs through the real
//! coordinator, and the agent's log names the approvers it verified.

use std::path::Path;
use std::time::Duration;

use backout::runs::approvals::to_wire;
use backout_e2e::fake::{FakeCoordinator, FakeSession, command};
use backout_e2e::fleet::{Fleet, finished};
use backout_e2e::postgres::{MIGRATIONS, Postgres};
use backout_e2e::{Pki, Proc, agent_config, plugin, sha256_file, start_agent, wait_for};
use backout_proto::{now_ms, wire};
use backout_tls::approval::{Decision, STATEMENT_VERSION, Statement};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const ROLES: &str = r#"["dba", "technical-lead", "product-owner"]"#;
const RUN: &str = "run-approvals";
const DIGEST: &str = "sha256:5eed";

/// The db plugin's grants and the policy, for an agent config.
fn db_agent_config(backups: &Path, migrations: &Path, secret: &Path) -> String {
    format!(
        "{}\n[[approval_policy]]\naction = \"db.migrate-down\"\nroles = {ROLES}\n",
        backout_e2e::db_plugin_config(backups, migrations, secret)
    )
}

/// A statement by `operator` as `role` for the test's run, signed with the
/// key in `pki` (`operators/<name>.key`), in its wire form.
fn signed(
    pki: &Pki,
    operator: &str,
    role: &str,
    edit: impl Fn(&mut Statement),
) -> wire::SignedApproval {
    let mut statement = Statement {
        version: STATEMENT_VERSION,
        operator: operator.into(),
        run_id: RUN.into(),
        plan_digest: DIGEST.into(),
        scope: "phase:database".into(),
        role: role.into(),
        decision: Decision::Approve,
        at_ms: now_ms(),
        nonce: format!("n-{operator}-{role}"),
    };
    edit(&mut statement);
    let read = |ext: &str| {
        std::fs::read_to_string(pki.path().join(format!("operators/{operator}.{ext}"))).unwrap()
    };
    let s = backout_tls::approval::sign(&statement, &read("key"), &read("pem")).unwrap();
    to_wire(&s).unwrap()
}

struct Host {
    pki: Pki,
    pg: Postgres,
    agent: Proc,
    session: FakeSession,
    db_sha: String,
    db: Value,
    backups: std::path::PathBuf,
    migrations: std::path::PathBuf,
}

impl Host {
    /// A real agent `db-1` with the db plugin and the policy, attached to a
    /// fake coordinator, and a real PostgreSQL with every migration applied.
    async fn start() -> Host {
        let pki = Pki::new("approvals.test");
        pki.issue("agent", "db-1");
        for (name, roles) in [
            ("dave", &["dba"][..]),
            ("bob", &["technical-lead", "dba"][..]),
            ("alice", &["product-owner"][..]),
            ("mallory", &["dba"][..]),
            ("eve", &["dba"][..]),
        ] {
            let mut args = vec!["issue", "operator", name];
            for r in roles {
                args.extend(["--role", r]);
            }
            pki.pki(&args);
        }
        // A first list (eve revoked), as `backout pki revoke` writes it.
        pki.pki(&["revoke", "operator", "eve"]);
        let pg = Postgres::start();
        let backups = pki.path().join("backups");
        let migrations = pki.path().join("migrations");
        std::fs::create_dir_all(&backups).unwrap();
        pg.migrate_up(&migrations, MIGRATIONS);
        let secret = pki.path().join("db-password");
        backout_e2e::write_secret(&secret, &pg.password);

        let mut fake = FakeCoordinator::start(&pki).await;
        let state = pki.path().join("state");
        let config = agent_config(&pki, "db-1", &fake.addr, &state, "")
            + &db_agent_config(&backups, &migrations, &secret);
        let path = pki.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let agent = start_agent(&path, &pki.path().join("agent.log"));
        let session = fake.next_session(WAIT).await;
        let db = json!({
            "host": "127.0.0.1", "port": pg.port, "dbname": pg.dbname, "user": pg.user,
            "password": "${secret:DB_PASSWORD}",
        });
        let host = Host {
            db_sha: sha256_file(&plugin("db")),
            pki,
            pg,
            agent,
            session,
            db,
            backups,
            migrations,
        };
        host.send_crl(1).await;
        host
    }

    /// Sends the PKI's `crl.pem` as the coordinator would, and waits until
    /// the agent has taken `nth` lists.
    async fn send_crl(&self, nth: usize) {
        let pem = std::fs::read(self.pki.path().join("crl.pem")).unwrap();
        self.session
            .tx
            .send(wire::CoordinatorMessage {
                kind: Some(wire::coordinator_message::Kind::Crl(wire::RevocationList {
                    pem,
                })),
            })
            .await
            .unwrap();
        wait_for("the agent to take the revocation list", WAIT, || {
            (self
                .agent
                .log_text()
                .matches("revocation list received")
                .count()
                >= nth)
                .then_some(())
        })
        .await;
    }

    fn body(
        &self,
        action: &str,
        params: Value,
        approvals: Vec<wire::SignedApproval>,
    ) -> wire::CommandBody {
        let mut body = command("db-1", "db", &self.db_sha, action, params);
        body.run_id = RUN.into();
        body.step_id = format!("{RUN}/database/{action}/db-1#{}", body.command_id);
        body.plan_digest = DIGEST.into();
        body.started_by = "carol".into();
        body.approvals = approvals;
        body
    }

    fn migrate_down(&self, approvals: Vec<wire::SignedApproval>) -> wire::CommandBody {
        let params = json!({
            "db": self.db, "target": "003_payment_transactions",
            "backup_dir": self.backups.display().to_string(),
            "migrations": { "dir": self.migrations.display().to_string() },
        });
        self.body("migrate-down", params, approvals)
    }

    async fn outcome(&mut self, body: &wire::CommandBody) -> wire::step_result::Result {
        self.session.send(self.pki.signer().sign(body)).await;
        let (result, _) = self.session.result(&body.command_id, WAIT).await;
        result.result.unwrap()
    }

    /// Sends a correctly signed migrate-down with `approvals`; it must be
    /// refused by `approvals` naming `reason`, with the database unchanged.
    async fn refused(&mut self, approvals: Vec<wire::SignedApproval>, reason: &str) {
        let before = self.pg.applied();
        let body = self.migrate_down(approvals);
        match self.outcome(&body).await {
            wire::step_result::Result::Refused(r) => {
                assert_eq!(r.check, "approvals", "{}", r.detail);
                assert!(
                    r.detail.contains(reason),
                    "expected `{reason}` in: {}",
                    r.detail
                );
                assert!(r.detail.contains("db.migrate-down needs signed approvals by dba, technical-lead, product-owner"), "{}", r.detail);
            }
            other => panic!("expected an `approvals` refusal ({reason}), got {other:?}"),
        }
        assert_eq!(self.pg.applied(), before, "the database changed");
        assert!(self.pg.has_table("payment_transactions"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compromised_coordinator_cannot_run_a_gated_action_without_real_approvals() {
    let mut h = Host::start().await;
    let all: Vec<String> = MIGRATIONS.iter().map(|(id, _, _)| id.to_string()).collect();
    assert_eq!(h.pg.applied(), all);
    let p = &h.pki;
    let good = |who: &str, role: &str| signed(p, who, role, |_| {});

    // No approvals at all.
    let none = Vec::new();
    // One person twice: bob holds technical-lead and dba, and signs both.
    let twice = vec![
        signed(p, "bob", "dba", |_| {}),
        signed(p, "bob", "technical-lead", |_| {}),
        good("alice", "product-owner"),
    ];
    // A statement made for another run.
    let other_run = vec![
        signed(p, "dave", "dba", |s| s.run_id = "run-other".into()),
        good("bob", "technical-lead"),
        good("alice", "product-owner"),
    ];
    // Signed more than the lifetime (4 h) ago.
    let expired = vec![
        signed(p, "dave", "dba", |s| s.at_ms -= 5 * 3600 * 1000),
        good("bob", "technical-lead"),
        good("alice", "product-owner"),
    ];
    // Signed by a key outside the fleet CA (another CA, same names).
    let outsider = Pki::new("approvals.test");
    outsider.pki(&["issue", "operator", "dave", "--role", "dba"]);
    let foreign = vec![
        signed(&outsider, "dave", "dba", |_| {}),
        good("bob", "technical-lead"),
        good("alice", "product-owner"),
    ];
    // Mallory's statement, signed while valid; then mallory is revoked.
    let by_mallory = vec![
        signed(p, "mallory", "dba", |_| {}),
        good("bob", "technical-lead"),
        good("alice", "product-owner"),
    ];

    // Three real approvals, for the end.
    let three = vec![
        good("dave", "dba"),
        good("bob", "technical-lead"),
        good("alice", "product-owner"),
    ];

    h.refused(
        none,
        "missing approvals from distinct people for: dba, technical-lead, product-owner",
    )
    .await;
    h.refused(twice, "each role needs a different person").await;
    h.refused(other_run, "is for run run-other, not run-approvals")
        .await;
    h.refused(expired, "expired").await;
    h.refused(foreign, "not accepted by the fleet CA").await;
    h.pki.pki(&["revoke", "operator", "mallory"]);
    h.send_crl(2).await;
    h.refused(by_mallory, "its certificate is revoked").await;

    // The same host runs the action with three real approvals (after its
    // backup, which the db plugin requires of the same run), and says who
    // approved.
    let backup = h.body(
        "backup",
        json!({ "db": h.db, "dir": h.backups.display().to_string(), "prefix": "approvals_" }),
        Vec::new(),
    );
    assert!(
        matches!(
            h.outcome(&backup).await,
            wire::step_result::Result::Succeeded(_)
        ),
        "the backup did not succeed"
    );
    let body = h.migrate_down(three);
    match h.outcome(&body).await {
        wire::step_result::Result::Succeeded(_) => {}
        other => panic!("three real approvals: expected the step to run, got {other:?}"),
    }
    assert_eq!(h.pg.applied(), all[..3].to_vec());
    let log = h.agent.log_text();
    assert!(
        log.contains("signed approvals verified")
            && log.contains("dave (dba), bob (technical-lead), alice (product-owner)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_database_phase_runs_with_three_signed_approvals_the_agent_verifies() {
    let pki = Pki::new("approvals-fleet.test");
    let pg = Postgres::start();
    let backups = pki.path().join("backups");
    let migrations = pki.path().join("migrations");
    std::fs::create_dir_all(&backups).unwrap();
    pg.migrate_up(&migrations, MIGRATIONS);
    let secret = pki.path().join("db-password");
    backout_e2e::write_secret(&secret, &pg.password);
    let agent_extra = db_agent_config(&backups, &migrations, &secret);
    let db = format!(
        r#"{{ host = "127.0.0.1", port = {}, dbname = "{}", user = "{}", password = "${{secret:DB_PASSWORD}}" }}"#,
        pg.port, pg.dbname, pg.user
    );
    // The seed's database phase (examples/samia-tarot/plan.toml): its
    // approvals and its backup → migrate-down → audit steps, against this
    // database.
    let phase = format!(
        r#"[[phase]]
id = "database"
name = "Database Rollback"
approvals = ["dba", "technical-lead", "product-owner"]
[[phase.step]]
id = "backup"
plugin = "db"
action = "backup"
on = "db-1"
params = {{ db = {db}, dir = "{backups}", prefix = "emergency_rollback_" }}
[[phase.step]]
id = "migrate-down"
plugin = "db"
action = "migrate-down"
on = "db-1"
params = {{ db = {db}, target = "003_payment_transactions", backup_dir = "{backups}", migrations = {{ dir = "{migrations}" }} }}
[[phase.step]]
id = "audit"
plugin = "db"
action = "audit"
on = "db-1"
params = {{ db = {db}, migrations = {{ dir = "{migrations}" }}, up_to = "003_payment_transactions", require_match = true }}
"#,
        backups = backups.display(),
        migrations = migrations.display(),
    );
    // A CRL for the coordinator to hand to its agents.
    pki.pki(&["revoke", "--days", "7"]);
    let crl = pki.path().join("crl.pem");
    let fleet = Fleet::builder("approvals-fleet.test")
        .pki(pki)
        .name("approvals e2e")
        .hosts(["db-1"])
        .operators(&[
            ("oscar", &["on-call"]),
            ("carol", &["release-manager"]),
            ("dave", &["dba"]),
            ("bob", &["technical-lead"]),
            ("alice", &["product-owner"]),
        ])
        .approvals(["release-manager"])
        .config(&format!("crl = \"{}\"\n", crl.display()))
        .plan(&phase)
        .agent_config(move |_, config| config + &agent_extra)
        .start()
        .await;
    let log = fleet.agent_log("db-1", "");
    wait_for("db-1 to take the fleet's revocation list", WAIT, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("revocation list received"))
    })
    .await;
    // Oscar starts the run (and may not approve it); the others approve.
    let started = fleet.start_run(
        "oscar",
        &["--reason", "approvals e2e", "--phases", "database"],
    );
    let id = backout_e2e::fleet::run_id(&started);
    fleet.approve(&id, &["carol"]);
    for op in ["dave", "bob", "alice"] {
        fleet.json(
            op,
            &["approve", &id, "--phase", "database", "--output", "json"],
        );
    }
    let lines = fleet.watch_to_end(&id).await;
    let down = finished(&lines, "migrate-down");
    assert_eq!(down["outcome"], "succeeded", "{down}");
    assert_eq!(fleet.run_of(&id)["status"], "succeeded");
    assert_eq!(
        pg.applied(),
        MIGRATIONS[..3]
            .iter()
            .map(|(id, _, _)| id.to_string())
            .collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("signed approvals verified")
            && text.contains("dave (dba), bob (technical-lead), alice (product-owner)"),
        "the agent's log does not name the approvers: {text}"
    );
    // The statements are in the journal as they came, one per decision.
    assert_eq!(fleet.journal_count("approval.signed"), 4);
}
