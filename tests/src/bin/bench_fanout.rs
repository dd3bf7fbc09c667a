//! `bench-fanout`: one no-op phase fanned out to N agent sessions, from
//! `backout rollback start` to the run's aggregated result, with the
//! coordinator's CPU and memory.
//!
//! ```sh
//! cargo build --release --bins && scripts/build-plugins.sh
//! target/release/bench-fanout [--runs 20] 10 100 1000
//! ```
//!
//! The binaries (`backout`, `backout-agent`) are the ones beside this one, so
//! all three come from the same profile; the testbed plugin is
//! `<target>/plugins/testbed.wasm`.
//!
//! For each N: a PKI in a temp dir (the CA and the coordinator by `backout pki
//! init`, N agent certificates issued in-process), a plan with N hosts in
//! group `fleet` and one phase whose one step is `testbed` `echo` on `fleet`
//! with no approvals, a coordinator (`backout serve`), and one agent process
//! per 2,500 sessions running them (`backout-agent --sessions-from DIR`).
//! Once all N are connected: the coordinator's idle CPU over 5 s and its
//! resident memory, then `--runs R` runs one after the other (default 20;
//! `backout rollback start`), each timed by the coordinator (its
//! `run.created` to `run.ended` journal times, which `backout runs` reports
//! as started/finished) and by the wall clock from the CLI call to the
//! coordinator's "run ended" log line: p50, p99 (nearest rank) and max.
//! Then the reconnect storm: the coordinator is SIGKILLed and started again
//! on the same address; the time until `backout agents` lists all N again,
//! and from its log the most sessions accepted within 100 ms. Every process
//! is killed and the temp dir removed at the end, also on error
//! (`BENCH_KEEP=1` keeps the temp dir and its logs).
//!
//! Each run's coordinator spans come from its journal (its own clock):
//! dispatch, from the run's start to its last command journaled (just
//! before it is written to the stream), and aggregation, from the last
//! result journaled to the run's end; with `--steps S` the first turn's
//! dispatch and the last turn's aggregation. The coordinator's CPU per
//! host-step is its CPU over the runs divided by N × S. `--pin` runs the
//! coordinator on core 0 and the load-testing agents on core 1 (`taskset`),
//! so the coordinator's figures are its own core's.
//!
//! Memory over a coordinator's life: the coordinator's RSS once the first
//! run has left its memory (`backout runs` lists it brief) and once the last
//! has, and its peak (`VmHWM`). `--rss-runs K` makes K runs in all (those
//! past `--runs` untimed) before the last RSS is read.
//!
//! `--journal sqlite,postgres` measures each N on each journal: SQLite in
//! the coordinator's state dir (the default), or a PostgreSQL 15 started
//! in a temp dir as the e2e tests start it (`backout_e2e::postgres`, with
//! fsync on, unlike the tests'), one row each. The spans and entry counts
//! are read from either with the same SQL (`psql` for PostgreSQL).
//!
//! `--idle SECS [--probe-every SECS]` measures something else: how much the
//! journal grows by itself. N sessions, the seed plan's health probe
//! (`service_up`, every 30 s by default, on every host) and its trigger,
//! no run; the entries and bytes the journal gains over SECS seconds, after
//! one probe round, extrapolated to a day.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backout_e2e::postgres::Postgres;
use backout_tls::Identity;
use backout_tls::pki::{self, LeafOptions};
use clap::Parser;
use serde_json::Value;

/// Linux clock ticks per second (`getconf CLK_TCK`, 100 on every common kernel).
const CLOCK_TICKS: f64 = 100.0;
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// The most sessions one load-testing agent process runs (each holds six
/// open files; this machine allows 20,000 per process).
const SESSIONS_PER_PROCESS: usize = 2_500;

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the binaries and the plugin are.
struct Tools {
    backout: PathBuf,
    agent: PathBuf,
    testbed: PathBuf,
    /// `--pin`: the coordinator on core 0, the load-testing agents on core 1.
    pin: bool,
}

impl Tools {
    /// A command for `program`, pinned to `core` under `--pin` (taskset
    /// execs it: the pid is the program's).
    fn command(&self, program: &Path, core: u32) -> Command {
        if self.pin {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

impl Tools {
    fn find() -> anyhow::Result<Tools> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let dir = exe
            .parent()
            .context("this program's path has no directory")?;
        let tools = Tools {
            backout: dir.join("backout"),
            agent: dir.join("backout-agent"),
            testbed: dir.join("../plugins/testbed.wasm"),
            pin: false,
        };
        for path in [&tools.backout, &tools.agent] {
            if !path.is_file() {
                bail!(
                    "{} is missing: build every binary of this profile first (`cargo build --release --bins`)",
                    path.display()
                );
            }
        }
        if !tools.testbed.is_file() {
            bail!(
                "{} is missing: run scripts/build-plugins.sh first",
                tools.testbed.display()
            );
        }
        Ok(tools)
    }
}

/// What one N measured.
struct Figures {
    sessions: usize,
    journal: JournalKind,
    steps: usize,
    connect: Duration,
    idle_cpu_percent: f64,
    idle_rss_mib: f64,
    /// Start → result of each run, by the coordinator's journal times.
    run_ms: Vec<i64>,
    /// Start → result of each run, CLI call to the "run ended" log line.
    wall_ms: Vec<i64>,
    /// The coordinator's own spans of each run, from its journal: dispatch
    /// (run start → its last command journaled, just before it is written to
    /// its stream) and aggregation (last result journaled → run ended).
    dispatch_ms: Vec<i64>,
    aggregate_ms: Vec<i64>,
    /// Coordinator and agent-process CPU per run (the mean over the runs).
    run_cpu_s: f64,
    agent_cpu_s: f64,
    /// The coordinator's RSS once the first run, and once the last of
    /// `total_runs`, had left its memory.
    rss_first_mib: f64,
    rss_last_mib: f64,
    total_runs: usize,
    peak_rss_mib: f64,
    storm: Storm,
}

/// The kinds of journal entries no run makes, as an SQL list.
const BOOKKEEPING: &str = "'lease.taken', 'journal.checkpoint'";

/// The reconnect storm: the coordinator SIGKILLed and started again on the
/// same address with every session connected.
struct Storm {
    /// From the new coordinator listening to `agents` listing all N.
    all_back: Duration,
    /// The most sessions accepted within any 100 ms (from its log).
    peak_per_100ms: usize,
    /// First to last session accepted.
    spread: Duration,
}

/// The value at percentile `p` (nearest rank) of `values`.
fn percentile(values: &[i64], p: f64) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// One no-op phase fanned out to N agent sessions: the run's latency, the
/// coordinator's CPU, memory and spans, the reconnect storm; or, with
/// `--idle`, how much the journal grows by itself.
#[derive(Debug, Parser)]
#[command(name = "bench-fanout")]
struct Args {
    /// How many sessions (agents) to measure, each in its own fleet
    /// (`1,000` and `10_000` read as numbers).
    #[arg(value_parser = sessions, default_values_t = [10, 100, 1000])]
    sessions: Vec<usize>,
    /// Timed runs per N, one after the other.
    #[arg(long, default_value_t = 20, value_parser = positive)]
    runs: usize,
    /// Steps in the run's one phase (each `testbed` `echo` on every host).
    #[arg(long, default_value_t = 1, value_parser = positive)]
    steps: usize,
    /// Runs in all before the coordinator's last RSS is read (those past
    /// `--runs` are not timed): RSS after K runs beside RSS after one.
    #[arg(long, value_name = "K", value_parser = positive)]
    rss_runs: Option<usize>,
    /// The coordinator on core 0 and the load-testing agents on core 1
    /// (`taskset`).
    #[arg(long)]
    pin: bool,
    /// The journal(s) to measure on, comma-separated: `sqlite` (the
    /// coordinator's state dir), `postgres` (a PostgreSQL 15 in a temp dir).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite")]
    journal: Vec<JournalKind>,
    /// Instead of runs: the journal's growth while idle over SECS seconds,
    /// with the seed plan's health probe.
    #[arg(long, value_name = "SECS", value_parser = positive)]
    idle: Option<usize>,
    /// With `--idle`: the health probe's interval in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = positive)]
    probe_every: usize,
}

/// Where the coordinator's journal lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum JournalKind {
    Sqlite,
    Postgres,
}

impl JournalKind {
    fn word(self) -> &'static str {
        match self {
            JournalKind::Sqlite => "SQLite",
            JournalKind::Postgres => "PostgreSQL",
        }
    }
}

/// A positive number.
fn positive(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a positive number"))
}

/// A number of sessions: `1000`, `1,000` or `1_000`.
fn sessions(text: &str) -> Result<usize, String> {
    positive(&text.replace([',', '_'], ""))
        .map_err(|_| format!("`{text}` is not a number of sessions"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tools = Tools::find()?;
    tools.pin = args.pin;
    let mut journals = args.journal.clone();
    journals.dedup();
    if let Some(idle_secs) = args.idle {
        let window = Duration::from_secs(idle_secs as u64);
        let every = Duration::from_secs(args.probe_every as u64);
        let mut rows = Vec::new();
        for &n in &args.sessions {
            for &kind in &journals {
                eprintln!(
                    "bench-fanout: {n} sessions idle for {idle_secs} s ({})...",
                    kind.word()
                );
                rows.push(
                    idle(&tools, n, window, every, kind)
                        .with_context(|| format!("with {n} sessions ({})", kind.word()))?,
                );
            }
        }
        print!("{}", idle_table(&rows));
        return Ok(());
    }
    let total = args.rss_runs.unwrap_or(args.runs).max(args.runs);
    let mut rows = Vec::new();
    for &n in &args.sessions {
        for &kind in &journals {
            eprintln!("bench-fanout: {n} sessions ({})...", kind.word());
            let figures = bench(&tools, n, args.runs, total, args.steps, kind)
                .with_context(|| format!("with {n} sessions ({})", kind.word()))?;
            eprintln!(
                "bench-fanout: {n} sessions ({}): {} runs, p50 {} ms, p99 {} ms; RSS {:.1} MiB after one run, {:.1} MiB after {total}; all back after a restart in {:.1} s",
                kind.word(),
                args.runs,
                percentile(&figures.run_ms, 50.0),
                percentile(&figures.run_ms, 99.0),
                figures.rss_first_mib,
                figures.rss_last_mib,
                figures.storm.all_back.as_secs_f64()
            );
            rows.push(figures);
        }
    }
    print!("{}", table(&rows));
    Ok(())
}

fn table(rows: &[Figures]) -> String {
    let mut out = String::from(
        "| sessions | journal | all connected in | runs | start → result p50 | p99 | max | CLI wall p50 \
         | dispatch p50 | p99 | aggregation p50 | p99 | coordinator CPU per host-step \
         | coordinator CPU per run | agent process CPU per run | coordinator idle CPU \
         | coordinator RSS, idle | RSS after run 1 | RSS after run K (K) | coordinator peak RSS \
         | restart: all back in | restart: most accepted in 100 ms | restart: first to last |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for f in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} s | {} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {:.3} ms | {:.2} s | {:.2} s | {:.1}% | {:.1} MiB | {:.1} MiB | {:.1} MiB ({}) | {:.1} MiB | {:.1} s | {} | {:.1} s |",
            f.sessions,
            f.journal.word(),
            f.connect.as_secs_f64(),
            f.run_ms.len(),
            percentile(&f.run_ms, 50.0),
            percentile(&f.run_ms, 99.0),
            percentile(&f.run_ms, 100.0),
            percentile(&f.wall_ms, 50.0),
            percentile(&f.dispatch_ms, 50.0),
            percentile(&f.dispatch_ms, 99.0),
            percentile(&f.aggregate_ms, 50.0),
            percentile(&f.aggregate_ms, 99.0),
            f.run_cpu_s * 1000.0 / (f.sessions * f.steps) as f64,
            f.run_cpu_s,
            f.agent_cpu_s,
            f.idle_cpu_percent,
            f.idle_rss_mib,
            f.rss_first_mib,
            f.rss_last_mib,
            f.total_runs,
            f.peak_rss_mib,
            f.storm.all_back.as_secs_f64(),
            f.storm.peak_per_100ms,
            f.storm.spread.as_secs_f64(),
        );
    }
    out
}

/// `runs` timed runs, then untimed ones up to `total` for the RSS.
fn bench(
    tools: &Tools,
    n: usize,
    runs: usize,
    total: usize,
    steps: usize,
    kind: JournalKind,
) -> anyhow::Result<Figures> {
    let temp = temp_dir()?;
    let dir = temp.path();
    let pki_dir = dir.join("pki");
    let ids: Vec<String> = (1..=n).map(|i| format!("agent-{i:04}")).collect();
    make_pki(tools, &pki_dir, &ids)?;
    std::fs::write(dir.join("plan.toml"), plan(&ids, steps))?;
    let journal = JournalDb::start(kind, dir)?;
    let config = coordinator_config(&pki_dir, &ids, &journal.config());
    std::fs::write(dir.join("coordinator.toml"), &config)?;

    let coordinator_log = dir.join("coordinator.log");
    let (mut coordinator, addr) = start_coordinator(tools, dir, &coordinator_log)?;
    std::fs::write(
        dir.join("agent.toml"),
        agent_config(&addr, &pki_dir, &ids[0], &tools.testbed),
    )?;
    let pid = coordinator.0.id();
    let started = Instant::now();
    let agents = spawn_agents(tools, dir, &pki_dir, &ids)?;
    let agents_cpu =
        || -> anyhow::Result<f64> { agents.iter().map(|a| cpu_seconds(a.0.id())).sum() };
    let cli = Cli {
        backout: &tools.backout,
        addr: &addr,
        pki: &pki_dir,
    };
    wait_connected(&cli, n, started)?;
    let connect = started.elapsed();

    // Idle: N sessions heartbeating, nothing else.
    std::thread::sleep(Duration::from_secs(1));
    let idle_before = cpu_seconds(pid)?;
    std::thread::sleep(IDLE_WINDOW);
    let idle_cpu_percent = (cpu_seconds(pid)? - idle_before) / IDLE_WINDOW.as_secs_f64() * 100.0;
    let idle_rss_mib = status_kib(pid, "VmRSS")? / 1024.0;

    // The runs, one after the other.
    let mut log = LogTail::open(&coordinator_log)?;
    log.skip_to_end()?;
    let cpu_before = cpu_seconds(pid)?;
    let agent_before = agents_cpu()?;
    let (mut run_ms, mut wall_ms) = (Vec::new(), Vec::new());
    let (mut dispatch_ms, mut aggregate_ms) = (Vec::new(), Vec::new());
    let mut rss_first_mib = 0.0;
    let mut last = String::new();
    for made in 1..=runs {
        let (run_id, coordinator_ms, wall) = one_run(&cli, &mut log, n, &coordinator_log)?;
        run_ms.push(coordinator_ms);
        wall_ms.push(i64::try_from(wall.as_millis()).unwrap_or(i64::MAX));
        let (dispatch, aggregate) = journal.spans(&run_id)?;
        dispatch_ms.push(dispatch);
        aggregate_ms.push(aggregate);
        if made == 1 {
            rss_first_mib = rss_once_gone(&cli, &run_id, pid)?;
        }
        last = run_id;
    }
    let run_cpu_s = (cpu_seconds(pid)? - cpu_before) / runs as f64;
    let agent_cpu_s = (agents_cpu()? - agent_before) / runs as f64;
    // Untimed runs up to `total`, for the RSS after many.
    for made in runs + 1..=total {
        if made % 10 == 0 {
            eprintln!("bench-fanout: run {made} of {total}...");
        }
        last = one_run(&cli, &mut log, n, &coordinator_log)?.0;
    }
    let rss_last_mib = if total == 1 {
        rss_first_mib
    } else {
        rss_once_gone(&cli, &last, pid)?
    };
    // Every result accounted for: per run `run.created`, `run.started`,
    // `run.ended`, and per step and host `run.dispatched`, `command.sent`,
    // the plugin's one log line and `run.finished`; the chain intact.
    // Besides them only bookkeeping entries (a leader's lease, checkpoints).
    let audit = audit(tools, dir)?;
    let expected = total * (3 + 4 * n * steps);
    let (counted, bookkeeping) = journal.count()?;
    if counted != expected as u64 {
        bail!("the journal's table holds {counted} entries of the runs, {expected} expected");
    }
    let entries = audit["entries"].as_u64().unwrap_or(0);
    if audit["intact"] != true || entries != counted + bookkeeping {
        bail!(
            "audit verify read {entries} entries, the table holds {}, or the chain is broken: {audit}",
            counted + bookkeeping
        );
    }
    eprintln!(
        "bench-fanout: the {} journal holds all {entries} entries of the {total} runs and verifies",
        kind.word()
    );
    let peak_rss_mib = status_kib(pid, "VmHWM")? / 1024.0;

    // The reconnect storm: SIGKILL, then the same coordinator on the same address.
    drop(coordinator);
    std::fs::write(
        dir.join("coordinator.toml"),
        config.replace("127.0.0.1:0", &addr),
    )?;
    let restart_log = dir.join("coordinator-restarted.log");
    let (restarted, again) = start_coordinator(tools, dir, &restart_log)?;
    let listening = Instant::now();
    if again != addr {
        bail!("the coordinator came back on {again}, not {addr}");
    }
    coordinator = restarted;
    let storm_deadline = Duration::from_secs(120);
    while connected(&cli).unwrap_or(0) < n {
        if listening.elapsed() > storm_deadline {
            bail!("not every session came back within {storm_deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_back = listening.elapsed();
    let accepted = accepted_times(&std::fs::read_to_string(&restart_log)?);
    let storm = Storm {
        all_back,
        peak_per_100ms: most_within(&accepted, 0.1),
        spread: Duration::from_secs_f64(
            accepted.last().copied().unwrap_or(0.0) - accepted.first().copied().unwrap_or(0.0),
        ),
    };
    drop(agents);
    drop(coordinator);
    drop(journal);
    Ok(Figures {
        sessions: n,
        journal: kind,
        steps,
        connect,
        idle_cpu_percent,
        idle_rss_mib,
        run_ms,
        wall_ms,
        dispatch_ms,
        aggregate_ms,
        run_cpu_s,
        agent_cpu_s,
        rss_first_mib,
        rss_last_mib,
        total_runs: total,
        peak_rss_mib,
        storm,
    })
}

/// What `--idle` measured for one N.
struct Growth {
    sessions: usize,
    journal: JournalKind,
    window: Duration,
    probe_every: Duration,
    entries: u64,
    /// The rows' stored bytes (run id, kind, body, both hashes, seq and time).
    bytes: u64,
    /// journal.db and its WAL on disk (PostgreSQL: the entries table with
    /// its index), before and after.
    disk_before: u64,
    disk_after: u64,
}

impl Growth {
    fn per_day(&self, x: u64) -> f64 {
        x as f64 * 86_400.0 / self.window.as_secs_f64()
    }
}

fn idle_table(rows: &[Growth]) -> String {
    let mut out = String::from(
        "| sessions | journal | probe every | window | entries | entries per day | stored bytes | MB per day | on disk, before → after |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for g in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} s | {} s | {} | {:.0} | {} | {:.2} | {} → {} bytes |",
            g.sessions,
            g.journal.word(),
            g.probe_every.as_secs(),
            g.window.as_secs(),
            g.entries,
            g.per_day(g.entries),
            g.bytes,
            g.per_day(g.bytes) / 1e6,
            g.disk_before,
            g.disk_after,
        );
    }
    out
}

/// `--idle`: N sessions connected, the seed plan's health probe (`service_up`,
/// any-up over every host, aimed at a local HTTP server that answers 200)
/// and its trigger, no run. The journal's growth over `window`, after one
/// probe round has settled, extrapolated to a day.
fn idle(
    tools: &Tools,
    n: usize,
    window: Duration,
    every: Duration,
    kind: JournalKind,
) -> anyhow::Result<Growth> {
    let temp = temp_dir()?;
    let dir = temp.path();
    let pki_dir = dir.join("pki");
    let ids: Vec<String> = (1..=n).map(|i| format!("agent-{i:04}")).collect();
    make_pki(tools, &pki_dir, &ids)?;
    let health_url = serve_ok()?;
    let mut plan = plan(&ids, 1);
    let _ = write!(
        plan,
        "[signals.service_up]\nprobe = {{ check = \"application\", aggregate = \"any-up\" }}\n\
         interval = \"{}s\"\n\
         [[trigger]]\nname = \"Complete Service Down\"\nclass = \"immediate\"\n\
         when = \"service_up == 0\"\nfor = \"30m\"\ndeciders = [\"release-manager\"]\n",
        every.as_secs()
    );
    std::fs::write(dir.join("plan.toml"), plan)?;
    let journal = JournalDb::start(kind, dir)?;
    let mut config = coordinator_config(&pki_dir, &ids, &journal.config());
    let _ = write!(
        config,
        "[[assess.check]]\nname = \"application\"\nurl = \"{health_url}\"\n"
    );
    std::fs::write(dir.join("coordinator.toml"), config)?;
    let (coordinator, addr) = start_coordinator(tools, dir, &dir.join("coordinator.log"))?;
    let health = tools
        .testbed
        .parent()
        .context("the plugins' directory")?
        .join("health.wasm");
    let mut agent = agent_config(&addr, &pki_dir, &ids[0], &tools.testbed);
    let granted = health_url.trim_end_matches("health");
    let _ = write!(
        agent,
        "[[plugin]]\nname = \"health\"\npath = \"{}\"\n[plugin.grants]\nurls = [\"{granted}\"]\n",
        health.display()
    );
    std::fs::write(dir.join("agent.toml"), agent)?;
    let agents = spawn_agents(tools, dir, &pki_dir, &ids)?;
    let cli = Cli {
        backout: &tools.backout,
        addr: &addr,
        pki: &pki_dir,
    };
    wait_connected(&cli, n, Instant::now())?;
    // One probe round with every session there, then the window.
    std::thread::sleep(every + Duration::from_secs(2));
    let (entries_before, bytes_before) = journal.stored()?;
    let disk_before = journal.on_disk()?;
    std::thread::sleep(window);
    let (entries_after, bytes_after) = journal.stored()?;
    let disk_after = journal.on_disk()?;
    drop(agents);
    drop(coordinator);
    drop(journal);
    Ok(Growth {
        sessions: n,
        journal: kind,
        window,
        probe_every: every,
        entries: entries_after.saturating_sub(entries_before),
        bytes: bytes_after.saturating_sub(bytes_before),
        disk_before,
        disk_after,
    })
}

/// A local HTTP server answering 200 to every request, for the health probe;
/// returns its URL. Its thread lives as long as the program.
fn serve_ok() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/health", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::Write as _;
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    Ok(url)
}

/// The bench's temp dir, kept when `BENCH_KEEP` is set.
fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    let mut temp = tempfile::tempdir()?;
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("bench-fanout: keeping {}", temp.path().display());
        temp.disable_cleanup(true);
    }
    Ok(temp)
}

/// Starts the load-testing agent processes for `ids`. A session holds six
/// files in the load-testing agent: past SESSIONS_PER_PROCESS, the sessions
/// are shared out among processes.
fn spawn_agents(
    tools: &Tools,
    dir: &Path,
    pki_dir: &Path,
    ids: &[String],
) -> anyhow::Result<Vec<Killed>> {
    let mut agents = Vec::new();
    for (i, part) in ids.chunks(SESSIONS_PER_PROCESS).enumerate() {
        let from = if part.len() == ids.len() {
            pki_dir.join("agents")
        } else {
            let part_dir = dir.join(format!("agents-{i}"));
            std::fs::create_dir_all(&part_dir)?;
            for id in part {
                for ext in ["pem", "key"] {
                    let name = format!("{id}.{ext}");
                    std::fs::hard_link(pki_dir.join("agents").join(&name), part_dir.join(&name))?;
                }
            }
            part_dir
        };
        agents.push(Killed(
            tools
                .command(&tools.agent, 1)
                .arg("--config")
                .arg(dir.join("agent.toml"))
                .arg("--sessions-from")
                .arg(from)
                .env_remove("RUST_LOG")
                .env("BACKOUT_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("agent-{i}.log")))?)
                .spawn()
                .context("cannot start backout-agent")?,
        ));
    }
    Ok(agents)
}

/// Waits until `backout agents` lists all `n` sessions connected.
fn wait_connected(cli: &Cli, n: usize, started: Instant) -> anyhow::Result<()> {
    let deadline = Duration::from_secs(60) + Duration::from_millis(100 * n as u64);
    loop {
        // While thousands of sessions shake hands the CLI may time out: ask again.
        if connected(cli).unwrap_or(0) == n {
            return Ok(());
        }
        if started.elapsed() > deadline {
            bail!(
                "only {} of {n} sessions connected after {deadline:?}",
                connected(cli).unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The coordinator's journal, read beside the running coordinator with the
/// same SQL on either store (SQLite readers take no lock the writer waits
/// on; PostgreSQL through `psql`).
enum JournalDb {
    /// `state/journal.db` in the bench's dir.
    Sqlite(PathBuf),
    /// A PostgreSQL 15 of its own, and the file holding its password.
    Postgres(Box<Postgres>, PathBuf),
}

impl JournalDb {
    fn start(kind: JournalKind, dir: &Path) -> anyhow::Result<JournalDb> {
        match kind {
            JournalKind::Sqlite => Ok(JournalDb::Sqlite(dir.join("state").join("journal.db"))),
            JournalKind::Postgres => {
                // The harness panics with initdb's or pg_ctl's own words.
                let pg = std::panic::catch_unwind(Postgres::start_durable)
                    .map_err(|_| anyhow::anyhow!("cannot start PostgreSQL 15 (see above)"))?;
                let password_file = dir.join("pg.pass");
                std::fs::write(&password_file, format!("{}\n", pg.password))?;
                std::fs::set_permissions(
                    &password_file,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                Ok(JournalDb::Postgres(Box::new(pg), password_file))
            }
        }
    }

    /// The coordinator's top-level configuration keys for this journal.
    fn config(&self) -> String {
        match self {
            JournalDb::Sqlite(_) => String::new(),
            // One coordinator: it takes the free lease at once, and after
            // the SIGKILL of the reconnect storm its successor waits for
            // the 2 s lease to expire.
            JournalDb::Postgres(pg, password_file) => format!(
                "journal = {{ postgres = \"host=127.0.0.1 port={} user={} dbname={}\", password_file = \"{}\" }}\n\
                 advertise = \"127.0.0.1:1\"\nlease_ttl = \"2s\"\n",
                pg.port,
                pg.user,
                pg.dbname,
                password_file.display()
            ),
        }
    }

    /// The one row `sql` returns, as integers (NULL: `None`).
    fn row(&self, sql: &str) -> anyhow::Result<Vec<Option<i64>>> {
        match self {
            JournalDb::Sqlite(path) => {
                let db = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .with_context(|| format!("{}", path.display()))?;
                let mut statement = db.prepare(sql)?;
                let columns = statement.column_count();
                Ok(statement.query_row([], |r| {
                    (0..columns)
                        .map(|i| r.get::<_, Option<i64>>(i))
                        .collect::<Result<Vec<_>, _>>()
                })?)
            }
            JournalDb::Postgres(pg, _) => {
                let out = pg.try_sql(sql);
                if !out.status.success() {
                    bail!("psql `{sql}`: {}", String::from_utf8_lossy(&out.stderr));
                }
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .split('|')
                    .map(|v| match v.trim() {
                        "" => Ok(None),
                        v => Ok(Some(
                            v.parse::<i64>()
                                .with_context(|| format!("psql `{sql}` returned `{v}`"))?,
                        )),
                    })
                    .collect()
            }
        }
    }

    fn one(&self, sql: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.row(sql)?.first().copied().flatten())
    }

    /// How many entries the journal's table holds: the runs' own, and the
    /// bookkeeping ones no run makes (a new leader's `lease.taken`, the signed
    /// `journal.checkpoint`s).
    fn count(&self) -> anyhow::Result<(u64, u64)> {
        let row = self.row(&format!(
            "SELECT count(*) FILTER (WHERE kind NOT IN ({BOOKKEEPING})), \
             count(*) FILTER (WHERE kind IN ({BOOKKEEPING})) FROM entries"
        ))?;
        let at = |i: usize| u64::try_from(row.get(i).copied().flatten().unwrap_or(0)).unwrap_or(0);
        Ok((at(0), at(1)))
    }

    /// The journal's entries and their stored bytes (run id, kind, body,
    /// both hashes, seq and time).
    fn stored(&self) -> anyhow::Result<(u64, u64)> {
        let row = self.row(
            "SELECT count(*), coalesce(sum(length(run_id) + length(kind) + length(body) \
             + length(prev_hash) + length(hash) + 16), 0) FROM entries",
        )?;
        let at = |i: usize| u64::try_from(row.get(i).copied().flatten().unwrap_or(0)).unwrap_or(0);
        Ok((at(0), at(1)))
    }

    /// The journal on disk: journal.db and its WAL; PostgreSQL's entries
    /// table with its indexes.
    fn on_disk(&self) -> anyhow::Result<u64> {
        match self {
            JournalDb::Sqlite(path) => {
                let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
                Ok(size(path.clone()) + size(path.with_extension("db-wal")))
            }
            JournalDb::Postgres(..) => {
                let bytes = self.one("SELECT pg_total_relation_size('entries')")?;
                Ok(u64::try_from(bytes.unwrap_or(0)).unwrap_or(0))
            }
        }
    }

    /// A run's dispatch span (its first entry → its last `command.sent`)
    /// and aggregation span (its last `run.finished` → `run.ended`), in
    /// ms, from the coordinator's own clock in its journal. With several
    /// steps a run has as many turns; these are the first turn's dispatch
    /// and the last turn's aggregation.
    fn spans(&self, run_id: &str) -> anyhow::Result<(i64, i64)> {
        // Run ids are the coordinator's own (`run-<ms>-<hex>`); quoted all
        // the same.
        let run = format!("'{}'", run_id.replace('\'', "''"));
        let at = |what: &str, kind: Option<&str>| -> anyhow::Result<i64> {
            let of_kind = kind.map_or(String::new(), |k| format!(" AND kind = '{k}'"));
            self.one(&format!(
                "SELECT {what}(at_ms) FROM entries WHERE run_id = {run}{of_kind}"
            ))?
            .with_context(|| format!("run {run_id}: no {what} entry of kind {kind:?}"))
        };
        let start = at("min", None)?;
        let first_finished = at("min", Some("run.finished"))?;
        let last_sent = self.one(&format!(
            "SELECT max(at_ms) FROM entries WHERE run_id = {run} AND kind = 'command.sent' \
             AND at_ms <= {first_finished}"
        ))?;
        let last_finished = at("max", Some("run.finished"))?;
        let ended = at("max", Some("run.ended"))?;
        Ok((last_sent.unwrap_or(start) - start, ended - last_finished))
    }
}

/// The coordinator's RSS in MiB once run `run_id` has left its memory
/// (`backout runs` lists it brief), or after 30 s if it has not (said).
fn rss_once_gone(cli: &Cli, run_id: &str, pid: u32) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    loop {
        let listed = cli.json(&["runs", "--output", "json"])?;
        let brief = listed["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["run"] == run_id))
            .is_some_and(|r| r["brief"] == true);
        if brief {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            eprintln!("bench-fanout: run {run_id} is still in memory after 30 s");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(status_kib(pid, "VmRSS")? / 1024.0)
}

/// `backout audit verify` of the coordinator's journal, as JSON.
fn audit(tools: &Tools, dir: &Path) -> anyhow::Result<Value> {
    let out = Command::new(&tools.backout)
        .args(["audit", "verify", "--output", "json", "--config"])
        .arg(dir.join("coordinator.toml"))
        .stdin(Stdio::null())
        .output()?;
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("audit verify: {}", String::from_utf8_lossy(&out.stderr)))
}

/// One run: started by the CLI, over when the coordinator logs its end.
/// Returns its start → result by the coordinator's journal times, and by
/// the wall clock.
fn one_run(
    cli: &Cli,
    log: &mut LogTail,
    n: usize,
    coordinator_log: &Path,
) -> anyhow::Result<(String, i64, Duration)> {
    let t0 = Instant::now();
    let started = cli.json(&["rollback", "start", "--reason", "bench", "--output", "json"])?;
    let run_id = started["run"]
        .as_str()
        .context("`rollback start` printed no run id")?
        .to_string();
    let run_deadline = Duration::from_secs(600);
    while !log.saw("run ended")? {
        if t0.elapsed() > run_deadline {
            bail!("run {run_id} did not end in {run_deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t0.elapsed();
    let runs = cli.json(&["runs", "--output", "json"])?;
    let run = runs["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["run"] == run_id.as_str()))
        .with_context(|| format!("`backout runs` does not list {run_id}"))?;
    // An ended run that already left the coordinator's memory is listed
    // without its hosts: "succeeded" says every host's steps did (and the
    // journal check counts each host's result).
    let succeeded = match run["phases"][0]["hosts_succeeded"].as_array() {
        Some(hosts) => hosts.len(),
        None if run["brief"] == true => n,
        None => 0,
    };
    if run["status"] != "succeeded" || succeeded != n {
        bail!(
            "run {run_id} ended {} with {succeeded} of {n} hosts succeeded; see {}",
            run["status"],
            coordinator_log.display()
        );
    }
    let (Some(start_ms), Some(end_ms)) = (
        run["started_at_ms"].as_i64(),
        run["finished_at_ms"].as_i64(),
    ) else {
        bail!("run {run_id} has no start or finish time");
    };
    Ok((run_id, end_ms - start_ms, wall))
}

/// The times (seconds of the day, sorted) of the "agent connected" lines
/// of a coordinator's log (`2026-11-29T00:55:01.123456Z  INFO …`).
fn accepted_times(log: &str) -> Vec<f64> {
    let mut times: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("agent connected"))
        .filter_map(|l| {
            let clock = l.get(11..26)?;
            let mut parts = clock.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let sec: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + sec)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The most of `sorted` times that fall within any `window` seconds.
fn most_within(sorted: &[f64], window: f64) -> usize {
    let mut most = 0;
    let mut from = 0;
    for (to, t) in sorted.iter().enumerate() {
        while t - sorted[from] > window {
            from += 1;
        }
        most = most.max(to + 1 - from);
    }
    most
}

/// The CA, coordinator and command key by `backout pki init`; agents and the
/// operator issued in-process (the same library `backout pki issue` calls).
fn make_pki(tools: &Tools, dir: &Path, ids: &[String]) -> anyhow::Result<()> {
    let out = Command::new(&tools.backout)
        .args(["pki", "init", "--trust-domain", "bench.test", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("pki init: {}", String::from_utf8_lossy(&out.stderr));
    }
    let options = LeafOptions::default();
    for id in ids {
        pki::issue(dir, &Identity::Agent(id.clone()), &options)?;
    }
    pki::issue(dir, &Identity::Operator("bench".into()), &options)?;
    Ok(())
}

fn plan(ids: &[String], steps: usize) -> String {
    let mut plan = String::from("[plan]\nname = \"fan-out bench\"\n");
    for id in ids {
        let _ = writeln!(plan, "[[host]]\nid = \"{id}\"\ngroups = [\"fleet\"]");
    }
    plan.push_str(
        r#"[roles]
release-manager = "Release Manager"
[[phase]]
id = "noop"
name = "No-op"
"#,
    );
    for step in 1..=steps {
        let _ = writeln!(
            plan,
            "[[phase.step]]\nid = \"echo-{step}\"\nplugin = \"testbed\"\naction = \"echo\"\non = \"fleet\""
        );
    }
    plan
}

/// `journal` holds the journal's top-level keys ([`JournalDb::config`]).
fn coordinator_config(pki: &Path, ids: &[String], journal: &str) -> String {
    let p = pki.display();
    let mut config = format!(
        r#"listen = "127.0.0.1:0"
command_key = "{p}/command-signing.key"
plan = "plan.toml"
{journal}[tls]
ca = "{p}/ca.pem"
cert = "{p}/coordinator.pem"
key = "{p}/coordinator.key"
[operators]
bench = ["release-manager"]
"#
    );
    for id in ids {
        let _ = writeln!(config, "[[agent]]\nid = \"{id}\"");
    }
    config
}

/// `[tls] cert` and `key` name the first agent; `--sessions-from` ignores them.
fn agent_config(coordinator: &str, pki: &Path, first: &str, testbed: &Path) -> String {
    let p = pki.display();
    format!(
        r#"coordinator = "{coordinator}"
command_key = "{p}/command-signing.pub"
state_dir = "agent-state"
[tls]
ca = "{p}/ca.pem"
cert = "{p}/agents/{first}.pem"
key = "{p}/agents/{first}.key"
[reconnect]
initial = "100ms"
max = "2s"
[[plugin]]
name = "testbed"
path = "{testbed}"
"#,
        testbed = testbed.display()
    )
}

/// Starts `backout serve` and returns it with the address it listens on.
fn start_coordinator(tools: &Tools, dir: &Path, log: &Path) -> anyhow::Result<(Killed, String)> {
    let mut child = Killed(
        tools
            .command(&tools.backout, 0)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("coordinator.toml"))
            .env_remove("RUST_LOG")
            .env("BACKOUT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot start backout serve")?,
    );
    let stdout = child.0.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stdout to its end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("backout: listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).with_context(|| {
        format!(
            "the coordinator did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })?;
    Ok((child, addr))
}

/// `backout` as operator `bench`.
struct Cli<'a> {
    backout: &'a Path,
    addr: &'a str,
    pki: &'a Path,
}

impl Cli<'_> {
    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = Command::new(self.backout)
            .args(args)
            .env("BACKOUT_COORDINATOR", self.addr)
            .env("BACKOUT_PKI", self.pki)
            .env("BACKOUT_OPERATOR", "bench")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "backout {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("backout {}: not JSON", args.join(" ")))
    }
}

fn connected(cli: &Cli) -> anyhow::Result<usize> {
    let agents = cli.json(&["agents", "--output", "json"])?;
    Ok(agents["agents"].as_array().map_or(0, |agents| {
        agents.iter().filter(|a| a["connected"] == true).count()
    }))
}

/// User plus system CPU time of a process, in seconds (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (in parentheses, which may hold spaces):
    // state is field 3, utime 14 and stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / CLOCK_TICKS)
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("empty status line")?
        .parse()?)
}

/// Reads what a log file gains, from where it was last read.
struct LogTail {
    file: std::fs::File,
    pending: String,
}

impl LogTail {
    fn open(path: &Path) -> anyhow::Result<LogTail> {
        Ok(LogTail {
            file: std::fs::File::open(path)?,
            pending: String::new(),
        })
    }

    fn skip_to_end(&mut self) -> anyhow::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Whether the text appended since the last call holds `needle`.
    fn saw(&mut self, needle: &str) -> anyhow::Result<bool> {
        let mut new = String::new();
        self.file.read_to_string(&mut new)?;
        self.pending.push_str(&new);
        if let Some(at) = self.pending.find(needle) {
            // What follows the match is for the next call.
            self.pending.drain(..at + needle.len());
            return Ok(true);
        }
        // Keep a possibly cut line's end for the next read.
        let keep = self.pending.len().saturating_sub(needle.len());
        let keep = (keep..=self.pending.len())
            .find(|i| self.pending.is_char_boundary(*i))
            .unwrap_or(self.pending.len());
        self.pending.drain(..keep);
        Ok(false)
    }
}
