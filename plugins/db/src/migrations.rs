//! Migrations as pure code: file names, order, which down files a rollback
//! applies, and how the applied list differs from the folder.
//!
//! A migration is a pair of files `NNN_name.up.sql` / `NNN_name.down.sql`;
//! its id is `NNN_name` (the file name without the suffix), and that id is
//! what the migrations table records. Migrations are ordered by the number
//! `NNN`, then by id. Nothing here touches a file or a database.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Which half of a migration a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// A migration file name, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// `NNN_name`.
    pub id: String,
    pub direction: Direction,
}

/// Reads `NNN_name.up.sql` or `NNN_name.down.sql`. Any other name (a
/// README, an editor's backup file) is not a migration: `None`.
pub fn parse_file_name(file: &str) -> Option<MigrationFile> {
    let (id, direction) = if let Some(id) = file.strip_suffix(".up.sql") {
        (id, Direction::Up)
    } else if let Some(id) = file.strip_suffix(".down.sql") {
        (id, Direction::Down)
    } else {
        return None;
    };
    valid_id(id).then(|| MigrationFile {
        id: id.to_string(),
        direction,
    })
}

/// A migration id: digits, `_`, then a name of ASCII letters, digits, `_`
/// and `-`. Ids go into SQL literals and file names, so nothing else is
/// allowed.
pub fn valid_id(id: &str) -> bool {
    let Some((number, name)) = id.split_once('_') else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The number of a migration id (`025_x` → 25); `None` for an id that is
/// not a migration id (or whose number does not fit).
pub fn number_of(id: &str) -> Option<u64> {
    if !valid_id(id) {
        return None;
    }
    id.split_once('_').and_then(|(n, _)| n.parse().ok())
}

/// Orders two migration ids: by number, then by id.
pub fn compare(a: &str, b: &str) -> Ordering {
    number_of(a).cmp(&number_of(b)).then_with(|| a.cmp(b))
}

/// The migrations of a folder listing: ids with an up file, and ids with a
/// down file, each sorted oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    pub ups: Vec<String>,
    pub downs: Vec<String>,
    /// `.sql` files that are not named like a migration.
    pub ignored: Vec<String>,
}

/// Sorts a folder listing into migrations.
pub fn read_folder<S: AsRef<str>>(names: &[S]) -> Folder {
    let mut folder = Folder::default();
    for name in names {
        let name = name.as_ref();
        match parse_file_name(name) {
            Some(MigrationFile {
                id,
                direction: Direction::Up,
            }) => folder.ups.push(id),
            Some(MigrationFile {
                id,
                direction: Direction::Down,
            }) => folder.downs.push(id),
            None if name.ends_with(".sql") => folder.ignored.push(name.to_string()),
            None => {}
        }
    }
    folder.ups.sort_by(|a, b| compare(a, b));
    folder.downs.sort_by(|a, b| compare(a, b));
    folder
}

/// Why a rollback cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The target is neither an id nor a number of a known migration.
    UnknownTarget(String),
    /// A number names more than one migration.
    AmbiguousTarget(String, Vec<String>),
    /// The migrations table holds something that is not a migration id, so
    /// it cannot be ordered against the target.
    Unorderable(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::UnknownTarget(t) => write!(
                f,
                "target `{t}` is not an applied migration nor a migration file's id or number"
            ),
            PlanError::AmbiguousTarget(t, ids) => {
                write!(
                    f,
                    "target `{t}` names several migrations: {}",
                    ids.join(", ")
                )
            }
            PlanError::Unorderable(id) => write!(
                f,
                "the migrations table holds `{id}`, which is not a migration id (NNN_name)"
            ),
        }
    }
}

/// Resolves the target to a migration id: an id as written, or the number
/// of exactly one migration among `known` (applied ids and file ids).
pub fn resolve_target(target: &str, known: &[String]) -> Result<String, PlanError> {
    if known.iter().any(|id| id == target) {
        return Ok(target.to_string());
    }
    if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        let number: Option<u64> = target.parse().ok();
        let matching: BTreeSet<&String> = known
            .iter()
            .filter(|id| number.is_some() && number_of(id) == number)
            .collect();
        let mut matching = matching.into_iter();
        return match (matching.next(), matching.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(a), Some(b)) => {
                let mut all = vec![a.clone(), b.clone()];
                all.extend(matching.cloned());
                Err(PlanError::AmbiguousTarget(target.to_string(), all))
            }
            (None, _) => Err(PlanError::UnknownTarget(target.to_string())),
        };
    }
    Err(PlanError::UnknownTarget(target.to_string()))
}

/// What rolling back to a target means for the applied migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownPlan {
    /// The resolved target id; it stays applied.
    pub target: String,
    /// Applied migrations after the target, newest first: the order their
    /// down files run in.
    pub revert: Vec<String>,
}

/// The applied migrations newer than `target`, newest first.
pub fn plan_down(target: &str, applied: &[String]) -> Result<DownPlan, PlanError> {
    if let Some(bad) = applied.iter().find(|id| !valid_id(id)) {
        return Err(PlanError::Unorderable(bad.clone()));
    }
    let mut revert: Vec<String> = applied
        .iter()
        .filter(|id| compare(id, target) == Ordering::Greater)
        .cloned()
        .collect();
    revert.sort_by(|a, b| compare(b, a));
    revert.dedup();
    Ok(DownPlan {
        target: target.to_string(),
        revert,
    })
}

/// The migrations in `revert` that have no down file: they cannot be
/// rolled back, so nothing is.
pub fn irreversible(revert: &[String], has_down: impl Fn(&str) -> bool) -> Vec<String> {
    revert.iter().filter(|id| !has_down(id)).cloned().collect()
}

/// Applied versus expected migrations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    pub expected: Vec<String>,
    pub applied: Vec<String>,
    /// Expected but not applied.
    pub missing: Vec<String>,
    /// Applied but not expected (no file, or past `up_to`).
    pub unexpected: Vec<String>,
}

impl Audit {
    pub fn matches(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// Compares the applied list with the expected one (both sorted in
/// migration order in the result).
pub fn audit(expected: &[String], applied: &[String]) -> Audit {
    let mut expected = expected.to_vec();
    let mut applied = applied.to_vec();
    expected.sort_by(|a, b| compare(a, b));
    expected.dedup();
    applied.sort_by(|a, b| compare(a, b));
    applied.dedup();
    let missing = expected
        .iter()
        .filter(|id| !applied.contains(id))
        .cloned()
        .collect();
    let unexpected = applied
        .iter()
        .filter(|id| !expected.contains(id))
        .cloned()
        .collect();
    Audit {
        expected,
        applied,
        missing,
        unexpected,
    }
}

/// The expected migrations when the database should stand at `up_to`: the
/// up files up to and including it.
pub fn expected_up_to(ups: &[String], up_to: Option<&str>) -> Vec<String> {
    ups.iter()
        .filter(|id| up_to.is_none_or(|t| compare(id, t) != Ordering::Greater))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_names_are_parsed_strictly() {
        assert_eq!(
            parse_file_name("025_m28_secrets_providers_schema.down.sql"),
            Some(MigrationFile {
                id: "025_m28_secrets_providers_schema".into(),
                direction: Direction::Down
            })
        );
        assert_eq!(
            parse_file_name("7_add-index.up.sql").map(|m| m.direction),
            Some(Direction::Up)
        );
        for bad in [
            "README.md",
            "025.up.sql",
            "_x.up.sql",
            "abc_x.up.sql",
            "025_.up.sql",
            "025_x.sql",
            "025_x y.up.sql",
            "025_x'; drop table t;--.down.sql",
            "025_x.down.sql.bak",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn migrations_order_by_number_then_id() {
        let mut list = ids(&["10_b", "9_z", "010_a", "100_a", "002_x"]);
        list.sort_by(|a, b| compare(a, b));
        assert_eq!(list, ids(&["002_x", "9_z", "010_a", "10_b", "100_a"]));
        assert_eq!(number_of("025_x"), Some(25));
        assert_eq!(number_of("x_025"), None);
    }

    #[test]
    fn a_folder_is_sorted_into_ups_and_downs() {
        let folder = read_folder(&[
            "002_b.up.sql",
            "001_a.up.sql",
            "001_a.down.sql",
            "notes.sql",
            "README.md",
        ]);
        assert_eq!(folder.ups, ids(&["001_a", "002_b"]));
        assert_eq!(folder.downs, ids(&["001_a"]));
        assert_eq!(folder.ignored, ids(&["notes.sql"]));
    }

    #[test]
    fn targets_resolve_by_id_or_unique_number() {
        let known = ids(&["001_a", "002_b", "003_c", "003_d"]);
        assert_eq!(resolve_target("002_b", &known), Ok("002_b".into()));
        assert_eq!(resolve_target("2", &known), Ok("002_b".into()));
        assert_eq!(resolve_target("002", &known), Ok("002_b".into()));
        assert_eq!(
            resolve_target("003", &known),
            Err(PlanError::AmbiguousTarget(
                "003".into(),
                ids(&["003_c", "003_d"])
            ))
        );
        assert_eq!(
            resolve_target("004", &known),
            Err(PlanError::UnknownTarget("004".into()))
        );
        assert_eq!(
            resolve_target("002_x", &known),
            Err(PlanError::UnknownTarget("002_x".into()))
        );
    }

    #[test]
    fn down_files_apply_newest_first_above_the_target() {
        let applied = ids(&["001_a", "003_c", "002_b", "010_j", "004_d"]);
        let plan = plan_down("002_b", &applied).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.revert, ids(&["010_j", "004_d", "003_c"]));
        let none = plan_down("010_j", &applied).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.revert.is_empty());
        // A target that is not applied (already rolled back below it) still
        // reverts only what is above it.
        let plan = plan_down("005_e", &applied).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.revert, ids(&["010_j"]));
        assert_eq!(
            plan_down("001_a", &ids(&["001_a", "v2"])),
            Err(PlanError::Unorderable("v2".into()))
        );
    }

    #[test]
    fn a_migration_without_a_down_file_is_irreversible() {
        let revert = ids(&["004_d", "003_c", "002_b"]);
        let downs = ids(&["004_d", "002_b"]);
        assert_eq!(
            irreversible(&revert, |id| downs.iter().any(|d| d == id)),
            ids(&["003_c"])
        );
    }

    #[test]
    fn audit_names_both_differences() {
        let a = audit(
            &ids(&["001_a", "002_b", "003_c"]),
            &ids(&["001_a", "003_c", "009_x"]),
        );
        assert_eq!(a.missing, ids(&["002_b"]));
        assert_eq!(a.unexpected, ids(&["009_x"]));
        assert!(!a.matches());
        assert!(audit(&ids(&["001_a"]), &ids(&["001_a"])).matches());
        let ups = ids(&["001_a", "002_b", "003_c"]);
        assert_eq!(
            expected_up_to(&ups, Some("002_b")),
            ids(&["001_a", "002_b"])
        );
        assert_eq!(expected_up_to(&ups, None), ups);
    }
}
