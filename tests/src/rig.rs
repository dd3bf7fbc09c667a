//! A real agent process connected to a [`FakeCoordinator`], for tests that
//! send it what a real coordinator never would.

use std::time::Duration;

use backout_proto::wire;
use serde_json::json;

use crate::fake::{FakeCoordinator, FakeSession, command};
use crate::{Pki, Proc, agent_config, plugin, sha256_file, start_agent};

const WAIT: Duration = Duration::from_secs(20);

/// Agent `app-1` (config `agent.toml`, log `agent.log`, state `state/`) and
/// its session with the fake coordinator.
pub struct Rig {
    pub pki: Pki,
    pub fake: FakeCoordinator,
    pub agent: Proc,
    pub session: FakeSession,
    pub testbed_sha: String,
}

impl Rig {
    /// A rig whose agent grants the testbed plugin `grants` (TOML lines).
    pub async fn start(grants: &str) -> Rig {
        let pki = Pki::new("refusals.test");
        pki.issue("agent", "app-1");
        let mut fake = FakeCoordinator::start(&pki).await;
        let state = pki.path().join("state");
        let config = agent_config(&pki, "app-1", &fake.addr, &state, grants);
        let path = pki.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let agent = start_agent(&path, &pki.path().join("agent.log"));
        let session = fake.next_session(WAIT).await;
        assert_eq!(session.hello.agent_id, "app-1");
        Rig {
            pki,
            fake,
            agent,
            session,
            testbed_sha: sha256_file(&plugin("testbed")),
        }
    }

    /// SIGKILLs the agent, starts it again with its log in `log` (a file
    /// name in the PKI's directory), and waits for its new session.
    pub async fn restart_agent(&mut self, log: &str) {
        self.agent.kill().await;
        let path = self.pki.path().join("agent.toml");
        self.agent = start_agent(&path, &self.pki.path().join(log));
        self.session = self.fake.next_session(WAIT).await;
    }

    /// A testbed `echo` command for app-1 with `{ marker }` as its params.
    pub fn echo(&self, marker: &str) -> wire::CommandBody {
        command(
            "app-1",
            "testbed",
            &self.testbed_sha,
            "echo",
            json!({ "marker": marker }),
        )
    }

    /// Sends `signed` and waits for its result.
    pub async fn outcome(&mut self, signed: wire::SignedCommand) -> wire::step_result::Result {
        let id = {
            use prost::Message;
            wire::CommandBody::decode(signed.body.as_slice())
                .map(|b| b.command_id)
                .unwrap_or_default()
        };
        self.session.send(signed).await;
        let (result, _) = self.session.result(&id, WAIT).await;
        result.result.unwrap()
    }

    /// Sends `signed` and asserts that it is refused by `check`; returns
    /// the refusal's detail.
    pub async fn expect_refused(&mut self, signed: wire::SignedCommand, check: &str) -> String {
        match self.outcome(signed).await {
            wire::step_result::Result::Refused(r) => {
                assert_eq!(r.check, check, "refused for another reason: {}", r.detail);
                r.detail
            }
            other => panic!("expected a refusal ({check}), got {other:?}"),
        }
    }

    /// The agent still runs a good command after a refusal.
    pub async fn still_serves(&mut self) {
        let body = self.echo("after");
        let signed = self.pki.signer().sign(&body);
        match self.outcome(signed).await {
            wire::step_result::Result::Succeeded(s) => {
                assert!(s.data_json.contains("after"), "{s:?}")
            }
            other => panic!("the agent did not serve a good command after a refusal: {other:?}"),
        }
        assert!(
            self.agent.child.try_wait().unwrap().is_none(),
            "the agent exited"
        );
    }
}
