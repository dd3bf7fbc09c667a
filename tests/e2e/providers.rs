//! The webhook, cdn and notify plugins run by a real agent in rollback runs,
//! against Prism serving the providers' own API documents
//! (`tests/provider-apis/`) and a loopback Slack receiver. Every request a
//! plugin sends must be one the document accepts; requests the documents
//! reject are shown to be rejected; secrets never leave the agent. What the
//! four files share is `backout_e2e::providers`.

mod cdn;
mod contracts;
mod flags;
mod notify;
mod statuspage;
mod webhook;
