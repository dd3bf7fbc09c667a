//! Stand-ins that speak the wire protocol, for tests that must send what a
//! real peer never would: a "coordinator" that sends tampered, expired or
//! replayed commands to a real agent, and an "agent" that sends malformed
//! messages to a real coordinator. Both use the fleet's real certificates.

use std::pin::Pin;
use std::time::Duration;

use backout_proto::command::{CommandSigner, new_nonce};
use backout_proto::{now_ms, wire};
use bytes::{Buf, BufMut};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status, Streaming};

use crate::Pki;

/// One agent connected to the [`FakeCoordinator`].
pub struct FakeSession {
    pub hello: wire::Hello,
    pub tx: mpsc::Sender<wire::CoordinatorMessage>,
    pub rx: mpsc::Receiver<wire::AgentMessage>,
}

impl FakeSession {
    pub async fn send(&self, signed: wire::SignedCommand) {
        self.tx
            .send(wire::CoordinatorMessage {
                kind: Some(wire::coordinator_message::Kind::Command(signed)),
            })
            .await
            .unwrap();
    }

    /// Waits for the result of `command_id`, skipping heartbeats and events.
    /// Events of the command are returned with it.
    pub async fn result(
        &mut self,
        command_id: &str,
        timeout: Duration,
    ) -> (wire::StepResult, Vec<wire::StepEvent>) {
        let mut events = Vec::new();
        tokio::time::timeout(timeout, async {
            loop {
                let message = self.rx.recv().await.expect("agent session ended");
                match message.kind {
                    Some(wire::agent_message::Kind::Result(r)) if r.command_id == command_id => {
                        return (r, events);
                    }
                    Some(wire::agent_message::Kind::Event(e)) if e.command_id == command_id => {
                        events.push(e);
                    }
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no result for {command_id} within {timeout:?}"))
    }
}

/// A coordinator stand-in: accepts agent sessions and hands them to the test.
pub struct FakeCoordinator {
    pub addr: String,
    sessions: mpsc::Receiver<FakeSession>,
}

struct FakeService {
    sessions: mpsc::Sender<FakeSession>,
}

type Out = Pin<Box<dyn Stream<Item = Result<wire::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl wire::session_server::Session for FakeService {
    type AttachStream = Out;

    async fn attach(
        &self,
        request: Request<Streaming<wire::AgentMessage>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(wire::AgentMessage {
                kind: Some(wire::agent_message::Kind::Hello(h)),
            }) => h,
            _ => return Err(Status::invalid_argument("expected Hello")),
        };
        let (tx, rx) = mpsc::channel(64);
        tx.send(wire::CoordinatorMessage {
            kind: Some(wire::coordinator_message::Kind::Welcome(wire::Welcome {
                coordinator_version: "fake".into(),
                heartbeat_interval_ms: 1_000,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let (in_tx, in_rx) = mpsc::channel(1024);
        // Heartbeats are answered, as a real coordinator does (an agent drops
        // a silent session); weakly, so that dropping the session's sender
        // still ends the stream.
        let ack = tx.downgrade();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if let (Some(wire::agent_message::Kind::Heartbeat(beat)), Some(ack)) =
                    (&message.kind, ack.upgrade())
                {
                    let _ = ack
                        .send(wire::CoordinatorMessage {
                            kind: Some(wire::coordinator_message::Kind::HeartbeatAck(*beat)),
                        })
                        .await;
                }
                if in_tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        let _ = self
            .sessions
            .send(FakeSession {
                hello,
                tx,
                rx: in_rx,
            })
            .await;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}

impl FakeCoordinator {
    /// Serves `Session` with the fleet's real coordinator certificate.
    pub async fn start(pki: &Pki) -> FakeCoordinator {
        let material = pki.tls_files("coordinator").load().unwrap();
        let config = backout_tls::tls::server_config(&material).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let incoming = backout_tls::tls::incoming(listener, config, material.domain.clone());
        let (tx, sessions) = mpsc::channel(16);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(wire::session_server::SessionServer::new(FakeService {
                    sessions: tx,
                }))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        FakeCoordinator { addr, sessions }
    }

    pub async fn next_session(&mut self, timeout: Duration) -> FakeSession {
        tokio::time::timeout(timeout, self.sessions.recv())
            .await
            .expect("no agent connected in time")
            .expect("fake coordinator stopped")
    }
}

/// A command body for `agent` with sensible defaults; tests change fields.
pub fn command(
    agent: &str,
    plugin: &str,
    sha256: &str,
    action: &str,
    params: serde_json::Value,
) -> wire::CommandBody {
    let now = now_ms();
    let id = hex::encode(new_nonce());
    wire::CommandBody {
        command_id: format!("cmd-{id}"),
        run_id: "run-test".into(),
        step_id: format!("step-{id}"),
        target_agent: agent.into(),
        plugin: plugin.into(),
        plugin_sha256: sha256.into(),
        action: action.into(),
        params_json: params.to_string(),
        dry_run: false,
        issued_at_ms: now,
        expires_at_ms: now + 60_000,
        nonce: new_nonce().to_vec(),
        deadline_ms: 0,
        epoch: 0,
        traceparent: String::new(),
        give_up_at_ms: 0,
        approvals: Vec::new(),
        plan_digest: String::new(),
        started_by: String::new(),
    }
}

/// Signs `body` with the fleet's command key.
pub fn sign(signer: &CommandSigner, body: &wire::CommandBody) -> wire::SignedCommand {
    signer.sign(body)
}

/// Sends raw bytes as gRPC messages: for malformed-frame tests.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

/// Opens `Session.Attach` on `channel` and sends `frames` as raw message bodies.
/// Returns the first answer or the error status.
pub async fn attach_raw(
    channel: tonic::transport::Channel,
    frames: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/backout.v1.Session/Attach");
    let stream = tokio_stream::iter(frames);
    let response = grpc.streaming(Request::new(stream), path, RawCodec).await?;
    let mut inbound = response.into_inner();
    let mut answers = Vec::new();
    while let Ok(Ok(Some(frame))) =
        tokio::time::timeout(Duration::from_secs(3), inbound.message()).await
    {
        answers.push(frame);
    }
    Ok(answers)
}
