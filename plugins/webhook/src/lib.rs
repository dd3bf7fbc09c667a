//! The `webhook` plugin: points payment providers' webhooks back at the
//! previous version (phase 4.1 of the seed plan).
//!
//! * Stripe: `POST /v1/webhook_endpoints/{id}`, form-encoded, with
//!   `Authorization: Bearer <secret key>` (Stripe's `bearerAuth` scheme; the
//!   host fills in `${secret:NAME}` inside a header but cannot base64 it, so
//!   the seed's `-u key:` basic auth is not used). Arrays are sent indexed,
//!   `enabled_events[0]=…`, as Stripe's own client libraries send them.
//! * Square: `PUT /v2/webhooks/subscriptions/{id}` with
//!   `{"subscription": {…}}` and a bearer token (the seed's
//!   `/v2/webhooks/{id}` with `{"webhook": …}` is an old, wrong shape).
//!
//! Every action first reads the resource (`GET`), records it in its data as
//! `before` and emits it as `previous`, so the change can itself be undone
//! with the matching `*-restore` action given that `previous`. Dry-run reads
//! and says what it would change; it never writes.

mod api;
mod square;
mod stripe;

use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};

struct Webhook;

impl Plugin for Webhook {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "webhook",
            env!("CARGO_PKG_VERSION"),
            "Updates Stripe webhook endpoints and Square webhook subscriptions, recording what they were.",
        )
        .action(
            "stripe-update",
            "Sets a Stripe webhook endpoint's url, enabled_events, disabled and description; records the previous values.",
            true,
        )
        .action(
            "stripe-restore",
            "Puts a Stripe webhook endpoint back as a stripe-update recorded it (params.previous).",
            true,
        )
        .action(
            "square-update",
            "Sets a Square webhook subscription's notification_url, event_types, enabled and name; records the previous values.",
            true,
        )
        .action(
            "square-restore",
            "Puts a Square webhook subscription back as a square-update recorded it (params.previous).",
            true,
        )
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::url("", "the provider's API (params.base_url)"),
            Need::secret("", "the provider's key or token"),
        ]
    }

    fn schema() -> Schema {
        Schema::new()
            .action::<stripe::UpdateParams>("stripe-update")
            .action::<stripe::RestoreParams>("stripe-restore")
            .action::<square::UpdateParams>("square-update")
            .action::<square::RestoreParams>("square-restore")
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        match step.action.as_str() {
            "stripe-update" => stripe::update(&step),
            "stripe-restore" => stripe::restore(&step),
            "square-update" => square::update(&step),
            "square-restore" => square::restore(&step),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(Webhook);
