//! The `app` plugin: phase 2 of the seed plan, application rollback, as
//! actions a plan calls one by one or as one `rollback`:
//!
//! * `stop`: stop the service and verify it stopped (health must fail);
//! * `reload-proxy`: reload the proxy (nginx), clearing cached content;
//! * `find-stable`: the version to go back to (the newest STABLE-marked
//!   commit of the last ten, a tag pattern, or an explicit version);
//! * `checkout`, `restore-config`, `build`: one part each of a redeploy;
//! * `start`: start, settle, wait for health (with retries), check the
//!   critical paths and count new errors in the log;
//! * `verify`: the checks of `start` without starting;
//! * `rollback`: stop, checkout, restore config, build, start, verify.
//!
//! Service managers: systemd (`systemctl`) or explicit commands. Everything
//! goes through granted programs, URLs and paths. Every action's data says
//! what it changed, so the report can say which version each host went from
//! and to. In dry-run the plugin says what it would do; only read-only git
//! commands granted for dry-run run.

use backout_plugin_sdk::host::{self, HostError};
use backout_plugin_sdk::{
    Need, Outcome, Plugin, PluginError, PluginInfo, Schema, Step, export_plugin,
};
use serde_json::{Value, json};

mod git;
mod params;
mod service;
mod verify;

use git::{Version, short};
use params::Params;
use service::Op;

struct App;

impl Plugin for App {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "app",
            env!("CARGO_PKG_VERSION"),
            "Application rollback: stop, reload the proxy, find the previous stable version, check out, restore config, rebuild, start, verify.",
        )
        .action("stop", "Stops the service and verifies its health fails.", true)
        .action("reload-proxy", "Reloads the proxy service (e.g. nginx).", true)
        .action("find-stable", "Names the current version and the one to go back to.", false)
        .action("checkout", "Checks out the version to go back to.", true)
        .action("restore-config", "Copies the config backup over the config, if there is one.", true)
        .action("build", "Runs the build commands in the repository.", true)
        .action("start", "Starts the service and verifies health, critical paths and the error log.", true)
        .action("verify", "Verifies health, critical paths and the error log.", false)
        .action("rollback", "stop, checkout, restore-config, build, start and verify, in order.", true)
    }

    fn needs() -> Vec<Need> {
        vec![
            Need::program(
                "",
                "git, and systemctl or the manager's start/stop commands",
            ),
            Need::url("", "the service's health URL and critical paths"),
        ]
    }

    fn schema() -> Schema {
        [
            "stop",
            "reload-proxy",
            "find-stable",
            "checkout",
            "restore-config",
            "build",
            "start",
            "verify",
            "rollback",
        ]
        .into_iter()
        .fold(Schema::new(), |s, action| s.action::<Params>(action))
    }

    fn run(step: Step) -> Result<Outcome, PluginError> {
        let p: Params = step.params()?;
        if step.dry_run {
            return dry_run(&step.action, &p);
        }
        match step.action.as_str() {
            "stop" => stop(&p).map(|d| Outcome::new(format!("stopped {}", name(&p)), d)),
            "reload-proxy" => {
                let line = service::run(&p, Op::Reload)?;
                Ok(Outcome::new(
                    format!("reloaded: {line}"),
                    json!({ "reloaded": line }),
                ))
            }
            "find-stable" => {
                let head = git::current(&p)?;
                let to = git::target(&p, &head)?;
                Ok(Outcome::new(
                    format!(
                        "at {}, previous stable {} ({})",
                        short(&head.commit),
                        short(&to.commit),
                        to.subject
                    ),
                    json!({ "current": head, "target": to }),
                ))
            }
            "checkout" => {
                let (from, to) = checkout(&p)?;
                Ok(Outcome::new(
                    format!("{} -> {}", short(&from.commit), short(&to.commit)),
                    json!({ "from": from, "to": to }),
                ))
            }
            "restore-config" => {
                let restored = restore_config(&p)?;
                Ok(Outcome::new(
                    if restored {
                        "config restored from its backup"
                    } else {
                        "no config backup: config left as it is"
                    },
                    json!({ "config_restored": restored }),
                ))
            }
            "build" => {
                let built = build(&p)?;
                Ok(Outcome::new(
                    format!("{} build commands ran", built.len()),
                    json!({ "built": built }),
                ))
            }
            "start" => {
                let line = service::run(&p, Op::Start)?;
                let checks = after_start(&p)?;
                Ok(Outcome::new(
                    format!("started {}: healthy", name(&p)),
                    json!({ "started": line, "checks": checks }),
                ))
            }
            "verify" => {
                let checks = checks(&p)?;
                Ok(Outcome::new("healthy", json!({ "checks": checks })))
            }
            "rollback" => rollback(&p),
            _ => Err(step.unknown_action()),
        }
    }
}

export_plugin!(App);

fn name(p: &Params) -> &str {
    p.service.as_deref().unwrap_or("the service")
}

fn stop(p: &Params) -> Result<Value, PluginError> {
    let line = service::run(p, Op::Stop)?;
    let attempts = match &p.health_url {
        Some(url) => Some(verify::until_down(p, url)?),
        None => None,
    };
    Ok(json!({ "stopped": line, "verified_down_after": attempts }))
}

fn checkout(p: &Params) -> Result<(Version, Version), PluginError> {
    let from = git::current(p)?;
    let to = git::target(p, &from)?;
    git::checkout(p, &to)?;
    Ok((from, to))
}

/// Copies `config_backup` over `config`. `Ok(false)` when there is no backup.
fn restore_config(p: &Params) -> Result<bool, PluginError> {
    let (Some(backup), Some(config)) = (&p.config_backup, &p.config) else {
        return Ok(false);
    };
    let (backup, config) = (p.in_repo(backup)?, p.in_repo(config)?);
    let bytes = match host::read_file(&backup, 16 * 1024 * 1024, false) {
        Ok(bytes) => bytes,
        // No backup file: the seed restores it "if present".
        Err(HostError::Failed(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    host::write_file(&config, &bytes, false)?;
    host::log_info(&format!("restored {config} from {backup}"));
    Ok(true)
}

fn build(p: &Params) -> Result<Vec<String>, PluginError> {
    let repo = p.repo()?.to_string();
    let timeout = u32::try_from(p.command_timeout()?.as_millis()).unwrap_or(u32::MAX);
    let mut ran = Vec::new();
    for (i, line) in p.build.iter().enumerate() {
        let words = params::words("build", line)?;
        host::progress(
            u32::try_from(i).unwrap_or(u32::MAX),
            u32::try_from(p.build.len()).unwrap_or(u32::MAX),
            line,
        );
        let out = host::ExecRequest::new(words[0].as_str(), words[1..].iter().cloned())
            .cwd(repo.as_str())
            .timeout_ms(timeout)
            .run()?;
        if !out.success() {
            return Err(PluginError::new(
                "build-failed",
                format!("`{line}` failed: {}", out.stderr_text().trim()),
            ));
        }
        ran.push(line.clone());
    }
    Ok(ran)
}

/// Health (with retries), critical paths, the error log.
fn checks(p: &Params) -> Result<Value, PluginError> {
    let attempts = match &p.health_url {
        Some(url) => Some(verify::until_healthy(p, url)?),
        None => None,
    };
    let (critical, all_up) = verify::critical_paths(p);
    let log_errors = match &p.log {
        Some(tail) => Some(verify::log_errors(tail)?),
        None => None,
    };
    let data = json!({ "healthy_after": attempts, "critical": critical, "log_errors": log_errors });
    if !all_up {
        return Err(PluginError::new(
            "critical-path-down",
            format!("a critical path is down: {data}"),
        ));
    }
    if let Some(errors) = log_errors.filter(|e| *e > 0) {
        host::log_warn(&format!("{errors} error lines in the log tail after start"));
    }
    host::emit_json("checks", &data);
    Ok(data)
}

fn after_start(p: &Params) -> Result<Value, PluginError> {
    let settle = u32::try_from(p.settle()?.as_millis()).unwrap_or(u32::MAX);
    if settle > 0 {
        host::sleep(settle)?;
    }
    checks(p)
}

fn rollback(p: &Params) -> Result<Outcome, PluginError> {
    host::progress(0, 5, "stopping");
    let stopped = stop(p)?;
    host::progress(1, 5, "checking out");
    let (from, to) = checkout(p)?;
    host::emit_json("versions", &json!({ "from": from, "to": to }));
    host::progress(2, 5, "restoring config");
    let restored = restore_config(p)?;
    host::progress(3, 5, "building");
    let built = build(p)?;
    host::progress(4, 5, "starting");
    let started = service::run(p, Op::Start)?;
    let checks = after_start(p)?;
    host::progress(5, 5, "healthy");
    Ok(Outcome::new(
        format!(
            "{} rolled back {} -> {} ({}): healthy",
            name(p),
            short(&from.commit),
            short(&to.commit),
            to.subject
        ),
        json!({
            "from": from, "to": to, "stopped": stopped, "config_restored": restored,
            "built": built, "started": started, "checks": checks,
        }),
    ))
}

/// What each action would do, learning what it can without changing
/// anything (git is asked only if the agent grants it in dry-run).
fn dry_run(action: &str, p: &Params) -> Result<Outcome, PluginError> {
    let versions = || -> String {
        match git::current(p).and_then(|head| git::target(p, &head).map(|to| (head, to))) {
            Ok((head, to)) => format!(
                "{} -> {} ({})",
                short(&head.commit),
                short(&to.commit),
                to.subject
            ),
            Err(e) => format!("the previous stable version ({})", e.message),
        }
    };
    let run = |op| service::command(p, op).map(|argv| argv.join(" "));
    let text = match action {
        "stop" => format!("would run `{}` and wait for health to fail", run(Op::Stop)?),
        "reload-proxy" => format!("would run `{}`", run(Op::Reload)?),
        "find-stable" => format!("would look up {}", versions()),
        "checkout" => format!("would check out {}", versions()),
        "restore-config" => match (&p.config_backup, &p.config) {
            (Some(b), Some(c)) => format!("would copy {} over {}", p.in_repo(b)?, p.in_repo(c)?),
            _ => "would do nothing: no config backup is configured".into(),
        },
        "build" => format!("would run {}", p.build.join("; ")),
        "start" => format!("would run `{}`, then verify health", run(Op::Start)?),
        "verify" => "would verify health, critical paths and the error log".into(),
        "rollback" => format!(
            "would stop ({}), check out {}, restore config, build ({}), start ({}) and verify",
            run(Op::Stop)?,
            versions(),
            p.build.join("; "),
            run(Op::Start)?
        ),
        other => {
            return Err(PluginError::new(
                "unknown-action",
                format!("this plugin has no action `{other}`"),
            ));
        }
    };
    Ok(Outcome::new(text, json!({ "dry_run": true })))
}
