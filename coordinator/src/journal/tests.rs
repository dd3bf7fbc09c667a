//! The journal in front of its store: batches, queued entries, reading
//! back (`conformance.rs`, which the PostgreSQL store passes too).

use super::conformance::signal;
use super::*;

pub(super) fn journal(n: i64) -> (tempfile::TempDir, std::path::PathBuf, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let j = Journal::open(&path).unwrap();
    for i in 1..=n {
        j.append(i * 10, "run-1", &signal(i)).unwrap();
    }
    (dir, path, j)
}

fn sqlite() -> (tempfile::TempDir, impl Fn() -> Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    (dir, move || Journal::open(&path).unwrap())
}

#[test]
fn an_untouched_journal_verifies_and_survives_reopening() {
    let (_dir, open) = sqlite();
    conformance::entries_verify_and_survive_reopening(&open);
}

#[test]
fn a_batch_is_written_in_order_and_chained_like_single_entries() {
    let (_dir, open) = sqlite();
    conformance::a_batch_is_written_in_order_and_chained(&open);
    assert_eq!(
        open().entries(Some("")).unwrap().len(),
        0,
        "nothing outside runs"
    );
}

#[test]
fn queued_entries_go_first_with_the_next_write_and_are_told_their_seq() {
    let (_dir, open) = sqlite();
    conformance::queued_entries_go_first_and_are_told_their_seq(&open);
}

#[test]
fn every_check_passes_in_turn_on_one_journal() {
    let (_dir, open) = sqlite();
    conformance::check_all(&open);
}
