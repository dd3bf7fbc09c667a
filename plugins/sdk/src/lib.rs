//! Guest SDK for Backout plugins.
//!
//! A Backout plugin is a WebAssembly component that implements the
//! `backout:plugin@0.1.1` world (see `wit/plugin.wit` in this crate). This crate wraps the
//! bindings that `wit-bindgen` generates for that world so that a plugin
//! author writes a struct, implements [`Plugin`] for it and calls
//! [`export_plugin!`] once:
//!
//! ```ignore
//! use backout_plugin_sdk::{Plugin, Schema, Step, Outcome, PluginError, PluginInfo, export_plugin};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! struct Hello;
//!
//! /// Parameters of `greet`.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Greet {
//!     /// Whom to greet.
//!     name: String,
//! }
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION"), "Says hello.")
//!             .action("greet", "Logs a greeting.", false)
//!     }
//!
//!     fn schema() -> Schema {
//!         Schema::new().action::<Greet>("greet")
//!     }
//!
//!     fn run(step: Step) -> Result<Outcome, PluginError> {
//!         let p: Greet = step.params()?;
//!         backout_plugin_sdk::host::log_info(&format!("hello, {}", p.name));
//!         Ok(Outcome::new("greeted", serde_json::json!({})))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! A plugin has no ambient authority. It cannot open files, sockets or read
//! the environment through WASI: the agent gives it an empty WASI context.
//! Everything it does to the outside world goes through the [`host`] module,
//! and the agent checks each call against what its configuration grants the
//! plugin.
//!
//! Build plugins with `cargo build --release --target wasm32-wasip2`; a
//! `cdylib` built for that target is a component, no extra tool is needed.

#![warn(missing_docs)]

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod api;
mod schema;
pub mod url;

/// Each action's parameters, derived from the types the plugin parses them
/// into (returned by [`Plugin::schema`]).
pub use schema::Schema;
/// Derive it on a params struct (beside `Deserialize`) to describe the
/// action's parameters; see [`Schema`].
pub use schemars::JsonSchema;

/// The bindings generated from `wit/plugin.wit`.
///
/// They are public only so that [`export_plugin!`] can reach them from the
/// plugin's crate; plugin authors use the re-exports below instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin-with-schema",
        // The WIT lives inside this crate, so a copy of it builds anywhere.
        path: "wit",
        // The export macro is used from the plugin's crate, not from this
        // one, so it must be public; its name is kept out of the way because
        // plugin authors call `export_plugin!` instead.
        pub_export_macro: true,
        export_macro_name: "__backout_export_plugin_world",
        default_bindings_module: "::backout_plugin_sdk::bindings",
    });
}

/// The WIT's records, as plugins use them: [`Step`] (what to do),
/// [`Outcome`] and [`PluginError`] (how it went), [`PluginInfo`] and
/// [`ActionInfo`] (what the plugin offers), [`Need`] (what it needs granted).
pub use bindings::backout::plugin::types::{
    ActionInfo, Need, Outcome, PluginError, PluginInfo, Step,
};

/// What a plugin implements: describe itself, and run one step.
///
/// Both functions are called on a fresh instance of the component, so a
/// plugin keeps no state between steps.
pub trait Plugin {
    /// Name, version, description and the actions the plugin offers.
    fn describe() -> PluginInfo;

    /// Performs one step. Return `Err` for a step that failed (its code is
    /// a short stable string such as `bad-params` or `unknown-action`).
    ///
    /// A step with `dry_run` set must report what it would do and change
    /// nothing; the host refuses state-changing calls in that mode anyway.
    fn run(step: Step) -> Result<Outcome, PluginError>;

    /// The capabilities the plugin needs: the agent disables it unless its
    /// grants cover each required one, and names what is missing. A need
    /// marked [`Need::optional`] is one the plugin works without: the agent
    /// logs it when it is not granted and loads the plugin anyway, and the
    /// plugin asks [`Need::granted`] at run time. Default: none declared
    /// (each call is still checked when it is made).
    fn needs() -> Vec<Need> {
        Vec::new()
    }

    /// Each action's parameters, derived from the types `run` parses them
    /// into (`Schema::new().action::<CheckParams>("check")`), so the schema
    /// cannot drift from the code. `backout plan check` checks every step
    /// against it, and the plan reference is generated from it. Default:
    /// nothing declared (plan check warns that it cannot check the params).
    fn schema() -> Schema {
        Schema::new()
    }
}

/// Exports a type implementing [`Plugin`] as the component's `describe` and
/// `run` functions. Call it once, at the root of the plugin's crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        const _: () = {
            // The generated bindings want a type implementing their `Guest`
            // trait; this adapter forwards to the author's `Plugin` impl.
            struct BackoutPluginExport;

            impl $crate::bindings::Guest for BackoutPluginExport {
                fn describe() -> $crate::PluginInfo {
                    <$plugin as $crate::Plugin>::describe()
                }

                fn run(
                    step: $crate::Step,
                ) -> ::core::result::Result<$crate::Outcome, $crate::PluginError> {
                    <$plugin as $crate::Plugin>::run(step)
                }

                fn needs() -> ::std::vec::Vec<$crate::Need> {
                    <$plugin as $crate::Plugin>::needs()
                }

                fn schema() -> ::std::string::String {
                    <$plugin as $crate::Plugin>::schema().to_json()
                }
            }

            $crate::bindings::__backout_export_plugin_world!(
                BackoutPluginExport with_types_in $crate::bindings
            );
        };
    };
}

impl Step {
    /// Parses the step's JSON parameters into `T`.
    ///
    /// Empty parameters are read as `{}`, so a type whose fields all have
    /// defaults accepts a step given no parameters. A parse failure is a
    /// `bad-params` error naming what serde found wrong.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        let text = if self.params.trim().is_empty() {
            "{}"
        } else {
            self.params.as_str()
        };
        serde_json::from_str(text).map_err(|e| {
            PluginError::new(
                "bad-params",
                format!("parameters of action `{}`: {e}", self.action),
            )
        })
    }

    /// The error to return for an action this plugin does not offer.
    pub fn unknown_action(&self) -> PluginError {
        PluginError::new(
            "unknown-action",
            format!("this plugin has no action `{}`", self.action),
        )
    }
}

impl Outcome {
    /// An outcome with a one-line summary and structured data.
    pub fn new(summary: impl Into<String>, data: serde_json::Value) -> Self {
        Outcome {
            summary: summary.into(),
            data: data.to_string(),
        }
    }
}

/// A need is required unless marked [`Need::optional`]:
///
/// ```no_run
/// use backout_plugin_sdk::Need;
///
/// fn needs() -> Vec<Need> {
///     vec![
///         // Without this the plugin cannot work: the agent disables it.
///         Need::url("", "the Slack incoming webhook"),
///         // The plugin works without it: the agent logs that it is not
///         // granted and loads the plugin anyway.
///         Need::url("http://proxy.internal:3128/", "the outgoing proxy").optional(),
///     ]
/// }
///
/// // In `run`: use the proxy only where this agent grants it.
/// let use_proxy = Need::url("http://proxy.internal:3128/", "").granted();
/// # let _ = (needs(), use_proxy);
/// ```
impl Need {
    fn of(kind: &str, value: impl Into<String>, why: impl Into<String>) -> Need {
        Need {
            kind: kind.into(),
            value: value.into(),
            why: why.into(),
            optional: false,
        }
    }

    /// Marks the need optional: the plugin works without it. The agent
    /// loads the plugin even where it is not granted (and logs that it is
    /// not); ask [`Need::granted`] at run time before using it.
    #[must_use]
    pub fn optional(mut self) -> Need {
        self.optional = true;
        self
    }

    /// Whether this agent grants the need to this plugin (a secret: granted
    /// and configured), checked as the agent checked the plugin's needs at
    /// load. Always false while the plugin describes itself.
    pub fn granted(&self) -> bool {
        host::granted(&self.kind, &self.value)
    }

    /// A program the plugin runs (as it passes it to `exec`); empty: some program.
    pub fn program(name: impl Into<String>, why: impl Into<String>) -> Need {
        Need::of("program", name, why)
    }

    /// A URL (or URL prefix) the plugin calls; empty: some URL.
    pub fn url(url: impl Into<String>, why: impl Into<String>) -> Need {
        Need::of("url", url, why)
    }

    /// An absolute path the plugin reads; empty: some path.
    pub fn read(path: impl Into<String>, why: impl Into<String>) -> Need {
        Need::of("read", path, why)
    }

    /// An absolute path the plugin writes; empty: some path.
    pub fn write(path: impl Into<String>, why: impl Into<String>) -> Need {
        Need::of("write", path, why)
    }

    /// A secret the plugin has the host fill in; empty: some secret.
    pub fn secret(name: impl Into<String>, why: impl Into<String>) -> Need {
        Need::of("secret", name, why)
    }
}

impl PluginError {
    /// An error with a short stable code and a message for people.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A host refusal becomes a plugin error whose code says which kind it was
/// (`host-denied`, `host-invalid`, `host-failed`, `host-timeout`) and whose
/// message is the host's own.
impl From<host::HostError> for PluginError {
    fn from(e: host::HostError) -> Self {
        PluginError::new(e.code(), e.message().to_string())
    }
}

impl PluginInfo {
    /// Information about a plugin with no actions yet; add them with
    /// [`PluginInfo::action`].
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            actions: Vec::new(),
        }
    }

    /// Adds an action. `changes_state` tells operators whether the action
    /// changes anything (it must honour dry-run either way).
    pub fn action(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        changes_state: bool,
    ) -> Self {
        self.actions.push(ActionInfo {
            name: name.into(),
            description: description.into(),
            changes_state,
        });
        self
    }
}

/// Calls into the host: the only way a plugin reaches the outside world.
pub mod host {
    use super::{DeserializeOwned, Serialize};

    pub use crate::bindings::backout::plugin::host::{
        ExecOutput, ExecRequest, HostError, HttpRequest, HttpResponse, Level,
    };

    /// The host functions exactly as the WIT world declares them.
    pub mod raw {
        pub use crate::bindings::backout::plugin::host::{
            emit, exec, granted, http, log, now, progress, read_file, sleep, write_file,
        };
    }

    pub use raw::{exec, granted, http, now, read_file, sleep, write_file};

    impl HostError {
        /// A stable code for the kind of refusal: `host-denied`,
        /// `host-invalid`, `host-failed` or `host-timeout`.
        pub fn code(&self) -> &'static str {
            match self {
                HostError::Denied(_) => "host-denied",
                HostError::Invalid(_) => "host-invalid",
                HostError::Failed(_) => "host-failed",
                HostError::Timeout(_) => "host-timeout",
            }
        }

        /// The host's explanation.
        pub fn message(&self) -> &str {
            match self {
                HostError::Denied(m)
                | HostError::Invalid(m)
                | HostError::Failed(m)
                | HostError::Timeout(m) => m,
            }
        }
    }

    /// A line for the step's log at debug level.
    pub fn log_debug(message: &str) {
        raw::log(Level::Debug, message);
    }

    /// A line for the step's log at info level.
    pub fn log_info(message: &str) {
        raw::log(Level::Info, message);
    }

    /// A line for the step's log at warn level.
    pub fn log_warn(message: &str) {
        raw::log(Level::Warn, message);
    }

    /// A line for the step's log at error level.
    pub fn log_error(message: &str) {
        raw::log(Level::Error, message);
    }

    /// Progress of the step: `done` of `total`, with a short message.
    pub fn progress(done: u32, total: u32, message: &str) {
        raw::progress(done, total, message);
    }

    /// A named output, already JSON text.
    pub fn emit(name: &str, value_json: &str) {
        raw::emit(name, value_json);
    }

    /// A named output, serialised to JSON. A value that cannot be serialised
    /// (a map with non-string keys, say) is reported as an error log line
    /// instead, so the step's log shows what went missing.
    pub fn emit_json<T: Serialize + ?Sized>(name: &str, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => raw::emit(name, &text),
            Err(e) => log_error(&format!("output `{name}` could not be serialised: {e}")),
        }
    }

    impl HttpRequest {
        /// A request with no headers, no body and the host's default timeout.
        /// `${secret:NAME}` in the URL is filled in by the host, which then
        /// checks the filled URL against the grants and never shows it.
        pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
            HttpRequest {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
            }
        }

        /// Adds a header. `${secret:NAME}` in the value is filled in by the
        /// host if the plugin is granted that secret.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        /// Sets the body.
        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.body = Some(body.into());
            self
        }

        /// Sets a JSON body and the matching content type.
        pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HostError> {
            let body = serde_json::to_vec(value)
                .map_err(|e| HostError::Invalid(format!("request body: {e}")))?;
            Ok(self.header("content-type", "application/json").body(body))
        }

        /// Sets the request's own timeout; the host never waits past the
        /// step's deadline whatever this says.
        pub fn timeout_ms(mut self, ms: u32) -> Self {
            self.timeout_ms = Some(ms);
            self
        }

        /// Sends the request through the host.
        pub fn send(&self) -> Result<HttpResponse, HostError> {
            raw::http(self)
        }
    }

    impl HttpResponse {
        /// The body as text (invalid UTF-8 replaced).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body parsed as JSON.
        pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
            serde_json::from_slice(&self.body)
        }

        /// The first header with this name (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// Whether the status is 2xx.
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }
    }

    /// A GET request with a timeout in milliseconds.
    pub fn get(url: &str, timeout_ms: u32) -> Result<HttpResponse, HostError> {
        HttpRequest::new("GET", url).timeout_ms(timeout_ms).send()
    }

    impl ExecRequest {
        /// A program with arguments, no environment (the host adds PATH), no
        /// working directory, no stdin and the host's default timeout.
        pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            ExecRequest {
                program: program.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: Vec::new(),
                cwd: None,
                timeout_ms: None,
                stdin: None,
            }
        }

        /// Adds an environment variable. `${secret:NAME}` in the value is
        /// filled in by the host if the plugin is granted that secret.
        pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.env.push((name.into(), value.into()));
            self
        }

        /// Sets the working directory (it must be under a granted path).
        pub fn cwd(mut self, dir: impl Into<String>) -> Self {
            self.cwd = Some(dir.into());
            self
        }

        /// Sets the program's own timeout.
        pub fn timeout_ms(mut self, ms: u32) -> Self {
            self.timeout_ms = Some(ms);
            self
        }

        /// Sets the bytes written to the program's stdin.
        pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
            self.stdin = Some(bytes.into());
            self
        }

        /// Runs the program through the host.
        pub fn run(&self) -> Result<ExecOutput, HostError> {
            raw::exec(self)
        }
    }

    impl ExecOutput {
        /// Whether the program exited with status 0.
        pub fn success(&self) -> bool {
            self.exit_code == Some(0)
        }

        /// Stdout as text (invalid UTF-8 replaced).
        pub fn stdout_text(&self) -> String {
            String::from_utf8_lossy(&self.stdout).into_owned()
        }

        /// Stderr as text (invalid UTF-8 replaced).
        pub fn stderr_text(&self) -> String {
            String::from_utf8_lossy(&self.stderr).into_owned()
        }
    }

    /// Reads a whole file (at most `max_bytes`) as text.
    pub fn read_to_string(path: &str, max_bytes: u64) -> Result<String, HostError> {
        let bytes = raw::read_file(path, max_bytes, false)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    /// The crate's version is the WIT package's: they change together.
    #[test]
    fn the_crate_version_is_the_wit_package_version() {
        let wit = include_str!("../wit/plugin.wit");
        let package = format!("package backout:plugin@{};", env!("CARGO_PKG_VERSION"));
        assert!(
            wit.lines().any(|l| l.trim() == package),
            "wit/plugin.wit must declare `{package}`"
        );
    }

    #[test]
    fn a_need_is_required_unless_marked_optional() {
        let need = super::Need::url("", "the webhook");
        assert!(!need.optional);
        assert!(need.optional().optional);
    }
}
