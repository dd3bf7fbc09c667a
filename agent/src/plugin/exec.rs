//! `exec`: runs a granted program for a plugin.
//!
//! No shell is involved: the program is started directly with the given
//! arguments. Its environment is cleared and holds only what the plugin
//! passes plus the agent's own PATH (a plugin may not set PATH or `LD_*`
//! variables, which would let it choose what a granted name runs). Its
//! working directory, if given, must be under a granted path. Its stdout and
//! stderr are kept up to `MAX_CAPTURE` each (the rest is read and dropped so
//! the program never blocks on a full pipe), and it is killed when its own
//! timeout or the step's deadline comes. Children it leaves behind are not
//! tracked.
//!
//! In dry-run only commands listed in `grants.dry_run_programs` run.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::bindings::{ExecOutput, ExecRequest};
use super::caps::Access;
use super::config::bytes_text;
use super::state::{HostCallError, StepContext, StopReason};
use super::{LogLevel, StepEvent};

/// Bytes of stdout, and of stderr, handed back to the plugin.
const MAX_CAPTURE: usize = 1024 * 1024;
/// PATH for programs when the agent itself has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn run(
    ctx: &mut StepContext,
    request: ExecRequest,
) -> Result<ExecOutput, HostCallError> {
    let program = request.program.clone();
    if !ctx.caps.program_granted(&program) {
        return Err(ctx.deny(format!(
            "exec of {program} is not granted to plugin {}",
            ctx.plugin
        )));
    }
    if ctx.dry_run && !ctx.caps.dry_run_granted(&program, &request.args) {
        return Err(ctx.deny(format!(
            "dry-run: exec of {program} refused (not listed in grants.dry_run_programs)"
        )));
    }
    let cwd = match &request.cwd {
        Some(dir) => Some(
            ctx.caps
                .check_path(&ctx.plugin, dir, Access::Cwd)
                .map_err(|r| ctx.refuse(r))?,
        ),
        None => None,
    };
    if program.contains('\0') || request.args.iter().any(|a| a.contains('\0')) {
        return Err(ctx.invalid("program and arguments cannot contain NUL".into()));
    }
    let mut env = Vec::with_capacity(request.env.len());
    for (name, value) in &request.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            return Err(ctx.invalid(format!("`{name}` is not a valid environment variable")));
        }
        if name == "PATH" || name.starts_with("LD_") {
            return Err(ctx.deny(format!(
                "environment variable {name} is set by the host, not by plugins"
            )));
        }
        env.push((name.clone(), ctx.substitute(value)?));
    }
    let args = request
        .args
        .iter()
        .map(|a| ctx.substitute(a))
        .collect::<Result<Vec<_>, _>>()?;

    let own = request
        .timeout_ms
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let remaining = ctx.deadline.remaining();
    let (limit, by_deadline) = match own {
        Some(own) if own < remaining => (own, false),
        _ => (remaining, true),
    };

    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .env_clear()
        .envs(env)
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into()),
        )
        .stdin(if request.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &cwd {
        command.current_dir(dir);
    }
    let stdin = request.stdin;

    let ran = ctx.runtime.block_on(async move {
        let mut child = command.spawn()?;
        let stdin_pipe = child.stdin.take();
        let stdout_pipe = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let work = async {
            let feed = async {
                if let (Some(mut pipe), Some(bytes)) = (stdin_pipe, stdin) {
                    // A program that exits without reading its input is
                    // not an error of ours.
                    let _ = pipe.write_all(&bytes).await;
                }
            };
            let ((), out, err, status) = tokio::join!(
                feed,
                read_capped(stdout_pipe),
                read_capped(stderr_pipe),
                child.wait()
            );
            Ok::<_, std::io::Error>((status?, out, err))
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result.map(Some),
            Err(_elapsed) => {
                // Kill it and reap it, so no zombie is left behind.
                let _ = child.kill().await;
                Ok(None)
            }
        }
    });

    match ran {
        Ok(Some((status, (stdout, stdout_cut), (stderr, stderr_cut)))) => {
            for (cut, which) in [(stdout_cut, "stdout"), (stderr_cut, "stderr")] {
                if cut {
                    ctx.send(StepEvent::Log {
                        level: LogLevel::Warn,
                        message: format!(
                            "{which} of {program} was cut at {}",
                            bytes_text(MAX_CAPTURE as u64)
                        ),
                    });
                }
            }
            Ok(ExecOutput {
                exit_code: status.code(),
                stdout: ctx.secrets.redact_bytes(&stdout),
                stderr: ctx.secrets.redact_bytes(&stderr),
            })
        }
        Ok(None) if by_deadline => Err(ctx.stop(StopReason::Deadline)),
        Ok(None) => Err(ctx.timed_out(format!(
            "{program} did not finish within {} ms and was killed",
            limit.as_millis()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ctx.failed(format!("cannot run {program}: no such program")))
        }
        Err(e) => Err(ctx.failed(format!("cannot run {program}: {e}"))),
    }
}

/// Reads a pipe to its end, keeping the first `MAX_CAPTURE` bytes; returns
/// them and whether anything was dropped.
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURE - kept.len();
                if n > room {
                    cut = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, cut)
}
