//! Tidy (rust-analyzer style): the coordinator's modules import only from
//! modules of the layers below their own (and of their own layer only as
//! `SAME_LAYER` lists), as ARCHITECTURE.md's "Import direction" says. A
//! `use crate::x` (or `crate::x::…` path) from a lower module to a higher one
//! fails this test, naming the file and line.

use std::path::{Path, PathBuf};

/// Top-level modules of `coordinator/src`, lowest layer first (as
/// ARCHITECTURE.md's "Import direction" has them). A module may name modules
/// of any layer before its own, and of its own only as `SAME_LAYER` lists.
const LAYERS: &[&[&str]] = &[
    // pure helpers and the configuration file
    &["text", "config"],
    // storage: the journal, its typed records and its store
    &["journal"],
    // what a run's journal entries say (pure); the fleet: domain types, the
    // registry of agent sessions and the dispatcher (which journals what it sends)
    &["replay", "fleet"],
    // the post-rollback report (pure, over the journal); the assessment
    // (a health step per agent through the dispatcher)
    &["report", "assess"],
    // the board and the sampler (probes are assessments)
    &["signals"],
    // rollback runs: driven, journaled, dispatched, announced
    &["runs"],
    // the metrics: fed by the journal's writes, reading the parts at scrape
    &["metrics"],
    // the composition root: builds the parts and wires them
    &["root"],
    // the gRPC services (the transport edge)
    &["server"],
    // operator commands (`serve` starts the server)
    &["cli"],
    // `backout dashboard`: a client of the Control API, uses the CLI's
    // dialling and JSON shapes
    &["dashboard"],
];

/// Imports between two modules of one layer (importer, imported). None
/// today: each layer's modules stand apart.
const SAME_LAYER: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src` belongs to (`None` for lib.rs and
/// main.rs, which sit above everything, and for this test).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "tidy")).then(|| name.to_string())
}

/// Every `crate::name` on a line that is not a comment.
fn crate_refs(line: &str) -> Vec<String> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut refs = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before_ok = at == 0
            || !rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if before_ok && !name.is_empty() {
            refs.push(name);
        }
    }
    refs
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "{}: module `{module}` is in no layer of tidy.rs's LAYERS (add it where ARCHITECTURE.md says it belongs)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for target in crate_refs(line) {
                match layer_of(&target) {
                    Some(layer) if layer < own => {}
                    Some(layer)
                        if layer == own
                            && (target == module
                                || SAME_LAYER.contains(&(module.as_str(), target.as_str()))) => {}
                    Some(layer) if layer == own => problems.push(format!(
                        "{}:{}: `{module}` imports from `{target}`, of its own layer (list it in SAME_LAYER if it belongs)",
                        file.display(),
                        n + 1
                    )),
                    Some(_) => problems.push(format!(
                        "{}:{}: `{module}` imports from `{target}`, a higher layer",
                        file.display(),
                        n + 1
                    )),
                    None => {}
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "import direction broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn crate_refs_finds_paths_and_skips_comments() {
    assert_eq!(crate_refs("use crate::journal::Entry;"), ["journal"]);
    assert_eq!(
        crate_refs("    let x = crate::report::figures(a, crate::text::ms(b));"),
        ["report", "text"]
    );
    assert!(crate_refs("// crate::server::State").is_empty());
    assert!(crate_refs("use backout_crate::x;").is_empty());
}
