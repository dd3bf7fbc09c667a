//! Starting, stopping and reloading the service: systemd, or commands.

use backout_plugin_sdk::PluginError;
use backout_plugin_sdk::host::ExecRequest;

use crate::params::{Manager, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Stop,
    Reload,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Reload => "reload",
        }
    }
}

/// The command line for `op`: `systemctl VERB SERVICE`, or the configured one.
pub fn command(p: &Params, op: Op) -> Result<Vec<String>, PluginError> {
    match &p.manager {
        Manager::Named(name) if name == "systemd" => Ok(vec![
            "systemctl".into(),
            op.verb().into(),
            p.service()?.into(),
        ]),
        Manager::Named(other) => Err(PluginError::new(
            "bad-params",
            format!("manager `{other}`: use \"systemd\" or {{ start = [...], stop = [...] }}"),
        )),
        Manager::Commands(c) => {
            let argv = match op {
                Op::Start => &c.start,
                Op::Stop => &c.stop,
                Op::Reload => &c.reload,
            };
            if argv.is_empty() {
                return Err(PluginError::new(
                    "bad-params",
                    format!("manager has no `{}` command", op.verb()),
                ));
            }
            Ok(argv.clone())
        }
    }
}

/// Runs `op`; returns the command line that ran.
pub fn run(p: &Params, op: Op) -> Result<String, PluginError> {
    let argv = command(p, op)?;
    let line = argv.join(" ");
    let timeout = u32::try_from(p.command_timeout()?.as_millis()).unwrap_or(u32::MAX);
    let out = ExecRequest::new(argv[0].as_str(), argv[1..].iter().cloned())
        .timeout_ms(timeout)
        .run()?;
    if !out.success() {
        return Err(PluginError::new(
            "service-failed",
            format!(
                "`{line}` exited with {}: {}",
                out.exit_code
                    .map_or("a signal".to_string(), |c| c.to_string()),
                out.stderr_text().trim()
            ),
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_and_command_managers_give_their_command_lines() {
        let p: Params = serde_json::from_str(r#"{ "service": "samia-tarot-app" }"#).unwrap();
        assert_eq!(
            command(&p, Op::Stop).unwrap(),
            ["systemctl", "stop", "samia-tarot-app"]
        );
        let p: Params = serde_json::from_str(
            r#"{ "manager": { "start": ["/bin/sh", "start.sh"], "stop": ["/bin/sh", "stop.sh"] } }"#,
        )
        .unwrap();
        assert_eq!(command(&p, Op::Start).unwrap(), ["/bin/sh", "start.sh"]);
        assert!(command(&p, Op::Reload).is_err(), "no reload command given");
        let p: Params = serde_json::from_str(r#"{ "manager": "upstart" }"#).unwrap();
        assert!(command(&p, Op::Start).is_err());
    }
}
