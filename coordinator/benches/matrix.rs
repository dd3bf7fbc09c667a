//! Matrix evaluation cost: 1,000 signals and 1,000 held-for triggers, the
//! evaluation that runs every tick plus the matrix an operator reads.
//!
//! Run: `cargo bench -p backout --bench matrix` (figures in BENCHMARKS.md).

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use backout::signals::board::Board;
use backout_plan::expr::Value;
use backout_plan::model::Plan;

const SIGNALS: usize = 1_000;
const ROUNDS: usize = 300;

fn plan() -> Plan {
    let mut text = String::from("[plan]\nname = \"bench\"\n[roles]\nrm = \"Release Manager\"\n");
    for i in 0..SIGNALS {
        let _ = write!(
            text,
            "[signals.s{i}]\nprometheus = {{ url = \"http://127.0.0.1:9\", query = \"q\" }}\ninterval = \"1s\"\n\
             [[trigger]]\nname = \"t{i}\"\nclass = \"considered\"\nwhen = \"s{i} > 5% and s{i} < 90%\"\nfor = \"15m\"\ndeciders = [\"rm\"]\n"
        );
    }
    match Plan::parse(Path::new("bench.toml"), &text) {
        Ok(plan) => plan,
        Err(e) => panic!("bench plan: {e}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let board = Board::new(plan(), Duration::from_secs(1));
    let names: Vec<String> = (0..SIGNALS).map(|i| format!("s{i}")).collect();
    // Fill the histories first (15 minutes of one-second ticks), untimed.
    let mut now = 0i64;
    for _ in 0..900 {
        now += 1_000;
        for (i, name) in names.iter().enumerate() {
            board.record(name, now, Some(Value::Number(0.01 * (i % 10) as f64)), None);
        }
        board.evaluate(now);
    }
    let mut evaluate = Vec::with_capacity(ROUNDS);
    let mut read = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        now += 1_000;
        for (i, name) in names.iter().enumerate() {
            board.record(name, now, Some(Value::Number(0.01 * (i % 10) as f64)), None);
        }
        let start = Instant::now();
        board.evaluate(now);
        evaluate.push(start.elapsed());
        let start = Instant::now();
        let view = board.matrix(now);
        read.push(start.elapsed());
        assert_eq!(view.rows.len(), SIGNALS);
    }
    evaluate.sort();
    read.sort();
    println!(
        "matrix: {SIGNALS} signals, {SIGNALS} triggers (held-for 15m, 900 samples each), {ROUNDS} rounds"
    );
    println!(
        "  evaluate (every tick): p50 {:?}  p99 {:?}",
        percentile(&evaluate, 0.5),
        percentile(&evaluate, 0.99)
    );
    println!(
        "  matrix (operator read): p50 {:?}  p99 {:?}",
        percentile(&read, 0.5),
        percentile(&read, 0.99)
    );
}
