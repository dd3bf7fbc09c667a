//! The `Control` service: what operators' CLIs call.
//!
//! Every call first establishes who is calling from the client certificate:
//! only operator identities listed in the configuration get in.

use std::sync::Arc;
use std::time::Duration;

use backout_proto::{now_ms, wire};
use backout_tls::{Identity, PeerInfo};
use tonic::{Request, Response, Status};

use super::State;
use crate::assess;

pub struct ControlService {
    pub state: Arc<State>,
}

/// An authenticated operator and the roles the configuration gives them.
struct Operator {
    name: String,
    roles: Vec<String>,
}

impl ControlService {
    fn operator<T>(&self, request: &Request<T>) -> Result<Operator, Status> {
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| Status::unauthenticated("no TLS peer information"))?;
        match &peer.identity {
            Ok(Identity::Operator(name)) => match self.state.config.operators.get(name) {
                Some(roles) => Ok(Operator {
                    name: name.clone(),
                    roles: roles.clone(),
                }),
                None => {
                    tracing::warn!(peer = %peer.addr, operator = %name, "unknown operator refused");
                    Err(Status::permission_denied(format!(
                        "operator `{name}` is not in the coordinator's configuration"
                    )))
                }
            },
            Ok(other) => Err(Status::permission_denied(format!(
                "{other} may not use the Control service"
            ))),
            Err(e) => Err(Status::unauthenticated(e.clone())),
        }
    }
}

#[tonic::async_trait]
impl wire::control_server::Control for ControlService {
    async fn list_agents(
        &self,
        request: Request<wire::ListAgentsRequest>,
    ) -> Result<Response<wire::ListAgentsReply>, Status> {
        self.operator(&request)?;
        let agents = self
            .state
            .registry
            .list()
            .into_iter()
            .map(|a| wire::AgentStatus {
                agent_id: a.id,
                version: a.version,
                connected: a.connected,
                connected_since_ms: a.connected_since_ms,
                last_seen_ms: a.last_seen_ms,
                plugins: a
                    .plugins
                    .into_iter()
                    .map(|p| wire::PluginDescriptor {
                        name: p.name,
                        version: p.version,
                        sha256: p.sha256,
                        actions: p.actions,
                    })
                    .collect(),
                hostname: a.hostname,
                peer_addr: a.peer_addr.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(wire::ListAgentsReply {
            agents,
            now_ms: now_ms(),
        }))
    }

    async fn assess(
        &self,
        request: Request<wire::AssessRequest>,
    ) -> Result<Response<wire::AssessReply>, Status> {
        let operator = self.operator(&request)?;
        let timeout = match request.get_ref().timeout_ms {
            0 => self.state.config.assess.timeout,
            ms => Duration::from_millis(ms.into()),
        };
        tracing::info!(operator = %operator.name, "assess requested");
        let started = now_ms();
        let hosts = assess::run(&self.state, timeout).await;
        Ok(Response::new(wire::AssessReply {
            hosts: hosts
                .into_iter()
                .map(|h| wire::HostAssessment {
                    agent_id: h.agent_id,
                    state: h.outcome.state().to_string(),
                    detail: h.outcome.detail(),
                    data_json: match h.outcome {
                        crate::fleet::StepOutcome::Succeeded { data_json, .. } => data_json,
                        _ => String::new(),
                    },
                    duration_ms: h.duration_ms,
                })
                .collect(),
            started_at_ms: started,
            finished_at_ms: now_ms(),
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<wire::WhoAmIRequest>,
    ) -> Result<Response<wire::WhoAmIReply>, Status> {
        let operator = self.operator(&request)?;
        Ok(Response::new(wire::WhoAmIReply {
            identity: format!("operator/{}", operator.name),
            roles: operator.roles,
        }))
    }
}
