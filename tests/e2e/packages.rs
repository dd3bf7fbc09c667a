//! The Debian packages (issue 16): built from the debug binaries by
//! `scripts/build-debs.sh`, installed with `dpkg -i` on this machine, their
//! units checked by `systemd-analyze verify` and scored by `systemd-analyze
//! security` (the figures in packaging/README.md must be the measured ones),
//! then README's "Install on a fleet" followed line by line, with the
//! binaries started the way the units start them: systemd is not PID 1
//! here. Also: the completions and man pages in the packages are current.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backout_e2e::{bin, run};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Every file under `dir`, by path relative to it, with its contents.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn completions_and_man_pages_are_current() {
    let fresh = tempfile::tempdir().unwrap();
    let generated = repo_root().join("packaging/generated");
    for (name, args) in [
        ("backout", vec!["generate-assets"]),
        ("backout-agent", vec!["--generate-assets"]),
    ] {
        let dir = fresh.path().join(name);
        let mut args = args.clone();
        args.push(dir.to_str().unwrap());
        let out = run(&bin(name), &args, &[]);
        assert!(out.status.success(), "{name}: {out:?}");
        let made = files_under(&dir);
        for file in [
            format!("completions/{name}.bash"),
            format!("completions/_{name}"),
            format!("completions/{name}.fish"),
            format!("man/{name}.1"),
        ] {
            assert!(made.contains_key(Path::new(&file)), "{name}: no {file}");
        }
        let kept = files_under(&generated.join(name));
        let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&kept),
            names(&made),
            "packaging/generated/{name} is out of date: regenerate it (packaging/README.md)"
        );
        for (path, contents) in &made {
            assert!(
                kept[path] == *contents,
                "packaging/generated/{name}/{} is out of date: regenerate it (packaging/README.md)",
                path.display()
            );
        }
    }
    // A subcommand has its own page, and the hidden one none.
    let man = files_under(&generated.join("backout/man"));
    assert!(man.contains_key(Path::new("backout-serve.1")));
    assert!(!man.keys().any(|p| p.to_string_lossy().contains("generate")));
}

/// Runs `program` with `args`; panics with its output unless it exits 0.
fn must(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/install-parts.sh installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

/// Removes the packages and everything they and their services made, so
/// the test starts from a machine that never had them.
fn purge() {
    let _ = Command::new("dpkg")
        .args(["--purge", "backout", "backout-agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    for dir in ["/etc/backout", "/var/lib/backout", "/var/lib/backout-agent"] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The `sh` code blocks of README's "Install on a fleet" section, as lines.
fn readme_install_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Install on a fleet")
        .expect("README has an `## Install on a fleet` section");
    let section = &readme[start + 1..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if in_block && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            lines.push(line.to_string());
        }
    }
    assert!(
        !lines.is_empty(),
        "no ```sh block in README's install section"
    );
    lines
}

/// Runs README lines with bash from the repository's root, as root.
fn run_readme(lines: &[String]) -> String {
    // A root shell's umask: the packages' postinst adds users, and a
    // stricter umask there once left /etc/passwd unreadable to the
    // `postgres` user the database tests run initdb as.
    let script = format!("set -euo pipefail\numask 022\n{}\n", lines.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(repo_root())
        .env_remove("RUST_LOG")
        .env_remove("BACKOUT_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "README lines failed:\n{script}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What an installed unit's `[Service]` says, key by key (a key given
/// twice keeps every value).
fn unit_settings(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=')
            && !line.starts_with('#')
        {
            settings
                .entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
    }
    settings
}

/// The user's uid and gid, from `id`.
fn ids_of(user: &str) -> (u32, u32) {
    let uid = must("id", &["-u", user]).trim().parse().unwrap();
    let gid = must("id", &["-g", user]).trim().parse().unwrap();
    (uid, gid)
}

/// A service started as its unit says: its `ExecStart`, as its `User` and
/// `Group`, with its `StateDirectory` made and owned as systemd makes it,
/// systemd's environment (`NOTIFY_SOCKET` bound by the test,
/// `WATCHDOG_USEC` from `WatchdogSec`), and its `LimitNOFILE`.
struct Service {
    name: String,
    child: std::process::Child,
    notify: UnixDatagram,
    heard: Vec<String>,
    log: PathBuf,
}

impl Service {
    fn start(unit: &str, dir: &Path) -> Service {
        let settings = unit_settings(&Path::new("/usr/lib/systemd/system").join(unit));
        let one = |key: &str| settings[key].last().unwrap().clone();
        let user = one("User");
        let (uid, gid) = ids_of(&user);
        let state = Path::new("/var/lib").join(one("StateDirectory"));
        std::fs::create_dir_all(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
        let mode = u32::from_str_radix(&one("StateDirectoryMode"), 8).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();

        let socket = dir.join(format!("{unit}.notify"));
        let notify = UnixDatagram::bind(&socket).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let watchdog = one("WatchdogSec");
        assert_eq!(watchdog, "30s", "{unit}");
        let exec = one("ExecStart");
        let argv: Vec<&str> = exec.split_whitespace().collect();
        let log = dir.join(format!("{unit}.log"));
        // `prlimit` sets the unit's LimitNOFILE, then runs the ExecStart;
        // where this machine's hard limit is lower (a container without
        // CAP_SYS_RESOURCE: 20,000 here), that limit.
        let wanted: u64 = one("LimitNOFILE").parse().unwrap();
        let nofile = wanted.min(hard_open_files_limit());
        let child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .args(&argv)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
            .env("USER", &user)
            .env("LOGNAME", &user)
            .env("HOME", &state)
            .env("STATE_DIRECTORY", &state)
            .env("NOTIFY_SOCKET", &socket)
            // WatchdogSec=30s would ping every 15 s; the test asks for 2 s
            // so the pings come while it waits.
            .env("WATCHDOG_USEC", "2000000")
            .current_dir("/")
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{unit}.err"))).unwrap())
            .spawn()
            .unwrap();
        Service {
            name: unit.to_string(),
            child,
            notify,
            heard: Vec::new(),
            log: dir.join(format!("{unit}.err")),
        }
    }

    /// Reads notices until one is `what`; panics after `within`.
    fn wait_for_notice(&mut self, what: &str, within: Duration) {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !self.heard.iter().any(|n| n == what) {
            if let Ok(Some(status)) = self.child.try_wait() {
                // What it sent before exiting may still be in the socket.
                let _ = self.notify.set_nonblocking(true);
                while let Ok(n) = self.notify.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    self.heard.extend(text.lines().map(str::to_string));
                }
                let _ = self.notify.set_nonblocking(false);
                if self.heard.iter().any(|n| n == what) {
                    break;
                }
                panic!(
                    "{} exited ({status}) before {what}: {}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < within,
                "{}: no {what} within {within:?}; heard {:?}; log: {}",
                self.name,
                self.heard,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            if let Ok(n) = self.notify.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                self.heard.extend(text.lines().map(str::to_string));
            }
        }
    }

    /// SIGTERM, as `systemctl stop` sends; waits for the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        must("kill", &["-TERM", &self.child.id().to_string()]);
        self.wait_for_notice("STOPPING=1", Duration::from_secs(20));
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} did not exit",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's hard limit on open files, from `/proc/self/limits`.
fn hard_open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard = line["Max open files".len()..]
        .split_whitespace()
        .nth(1)
        .unwrap();
    hard.parse().unwrap_or(u64::MAX)
}

/// `Overall exposure level for X.service: 1.2 OK` → `1.2 OK`.
fn exposure(unit_path: &str) -> String {
    let text = must(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager", unit_path],
    );
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    let score = line.rsplit_once(": ").unwrap().1;
    // Drop the emoji that follows the word.
    score
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn packages_install_and_run_as_their_units_say() {
    let is_root = must("id", &["-u"]).trim() == "0";
    assert!(is_root, "dpkg -i needs root (CI runs as root)");
    bin("backout");
    bin("backout-agent");
    backout_e2e::plugin("health");
    purge();
    let lines = readme_install_lines();
    let start = lines
        .iter()
        .position(|l| l.starts_with("systemctl"))
        .expect("README starts the services with systemctl");
    let end = lines
        .iter()
        .rposition(|l| l.starts_with("systemctl"))
        .unwrap();

    // Build, install, PKI, configuration: README's lines up to `systemctl`.
    run_readme(&lines[..start]);
    let conffiles = must(
        "dpkg-query",
        &["-W", "-f=${Conffiles}\n", "backout", "backout-agent"],
    );
    for file in ["/etc/backout/coordinator.toml", "/etc/backout/agent.toml"] {
        assert!(
            conffiles.contains(file),
            "{file} is not a conffile: {conffiles}"
        );
    }
    for file in [
        "/usr/bin/backout",
        "/usr/bin/backout-agent",
        "/usr/lib/backout/plugins/health.wasm",
        "/usr/share/bash-completion/completions/backout",
        "/usr/share/bash-completion/completions/backout-agent",
        "/usr/share/zsh/vendor-completions/_backout",
        "/usr/share/zsh/vendor-completions/_backout-agent",
        "/usr/share/fish/vendor_completions.d/backout.fish",
        "/usr/share/fish/vendor_completions.d/backout-agent.fish",
    ] {
        assert!(Path::new(file).exists(), "{file} is not installed");
    }
    for page in [
        "backout",
        "backout-serve",
        "backout-agents",
        "backout-agent",
    ] {
        let found = ["", ".gz"]
            .iter()
            .any(|ext| Path::new(&format!("/usr/share/man/man1/{page}.1{ext}")).exists());
        assert!(found, "man page {page}(1) is not installed");
    }
    for user in ["backout", "backout-agent"] {
        ids_of(user);
    }

    // The units: valid (the man pages they point at included), and as
    // exposed as packaging/README.md says.
    let units = [
        "/usr/lib/systemd/system/backout.service",
        "/usr/lib/systemd/system/backout-agent.service",
    ];
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let docs = std::fs::read_to_string(repo_root().join("packaging/README.md")).unwrap();
    for unit in units {
        let name = Path::new(unit).file_name().unwrap().to_str().unwrap();
        let row = format!("| `{name}` | {} |", exposure(unit));
        assert!(
            docs.contains(&row),
            "packaging/README.md's exposure table lacks `{row}` (measured now)"
        );
    }

    // `systemctl enable --now`: started as the units start them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut coordinator = Service::start("backout.service", dir.path());
    coordinator.wait_for_notice("READY=1", Duration::from_secs(60));
    let mut agent = Service::start("backout-agent.service", dir.path());
    agent.wait_for_notice("READY=1", Duration::from_secs(120));
    coordinator.wait_for_notice("WATCHDOG=1", Duration::from_secs(10));
    agent.wait_for_notice("WATCHDOG=1", Duration::from_secs(10));
    // The journal is the service user's, and only theirs.
    let journal = std::fs::metadata("/var/lib/backout/journal.db").unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&journal),
        ids_of("backout").0
    );

    // The first `backout agents`: README's lines after `systemctl`, once the
    // agent has dialled in.
    let check = &lines[end + 1..];
    let start = Instant::now();
    let listed = loop {
        let out = run_readme(check);
        if out.contains("app-1") && out.contains("connected") && !out.contains("gone") {
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "app-1 never listed as connected: {out}\nagent: {}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed.contains("app-1"), "{listed}");

    // `systemctl stop`: STOPPING=1, then a clean exit.
    assert!(agent.stop().success());
    assert!(coordinator.stop().success());
    purge();
}
