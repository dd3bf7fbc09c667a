//! Loading, inventory and resolution of plugins.

use serde_json::json;

use super::{Opts, config, data, failure, host, host_with, step, wasm};
use crate::plugin::{
    Grants, PluginConfig, PluginHost, PluginHostError, ResolveError, SecretStore, StepLimits,
    sha256_hex,
};

#[test]
fn the_host_is_shareable_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PluginHost>();
    send_sync::<crate::plugin::LoadedPlugin>();
}

#[test]
fn inventory_reports_what_was_loaded() {
    let host = host_with(
        vec![
            config("health", Grants::default(), None),
            config("testbed", Grants::default(), None),
        ],
        SecretStore::empty(),
    );
    let inventory = host.inventory();
    let names: Vec<&str> = inventory.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["health", "testbed"]);
    let health = &inventory[0];
    let bytes = std::fs::read(wasm("health")).expect("read");
    assert_eq!(health.sha256, sha256_hex(&bytes));
    assert_eq!(health.actions, ["baseline", "check"]);
    assert!(!health.action_info[0].changes_state);
    assert!(!health.version.is_empty());
    assert!(inventory[1].actions.iter().any(|a| a == "spin"));
}

#[test]
fn resolve_checks_name_and_hash() {
    let host = host("health", Grants::default());
    let sha = host.inventory()[0].sha256.clone();
    let plugin = host
        .resolve("health", &sha.to_uppercase())
        .expect("resolves");
    assert_eq!(plugin.sha256, sha);

    match host.resolve("health", &"0".repeat(64)) {
        Err(ResolveError::HashMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, "0".repeat(64));
            assert_eq!(actual, sha);
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(matches!(
        host.resolve("db", &sha),
        Err(ResolveError::UnknownPlugin(name)) if name == "db"
    ));
}

#[test]
fn resolving_without_reading_answers_once_the_file_is_hashed_and_still() {
    // target/plugins/testbed.wasm was written long before this test runs.
    let host = host("testbed", Grants::default());
    let sha = host.inventory()[0].sha256.clone();
    // Nothing was hashed since loading: the file must be read first.
    assert!(matches!(
        host.resolve_without_reading("testbed", &sha),
        Err(ResolveError::NeedsReading(name)) if name == "testbed"
    ));
    host.resolve("testbed", &sha).expect("resolves");
    let plugin = host
        .resolve_without_reading("testbed", &sha)
        .expect("known by its settled stamp");
    assert_eq!(plugin.sha256, sha);
    assert!(matches!(
        host.resolve_without_reading("testbed", &"0".repeat(64)),
        Err(ResolveError::HashMismatch { .. })
    ));
    assert!(matches!(
        host.resolve_without_reading("db", &sha),
        Err(ResolveError::UnknownPlugin(_))
    ));

    // A file written just now is read again each time until it is still.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(wasm("testbed"), &path).expect("copy");
    let cfg = PluginConfig {
        name: "fresh".into(),
        path,
        grants: Grants::default(),
        limits: None,
    };
    let host =
        PluginHost::new(&[cfg], SecretStore::empty(), StepLimits::default()).expect("starts");
    host.resolve("fresh", &sha).expect("resolves");
    assert!(matches!(
        host.resolve_without_reading("fresh", &sha),
        Err(ResolveError::NeedsReading(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_file_is_compiled_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(wasm("health"), &path).expect("copy");
    let cfg = PluginConfig {
        name: "swap".into(),
        path: path.clone(),
        grants: Grants::default(),
        limits: None,
    };
    let host =
        PluginHost::new(&[cfg], SecretStore::empty(), StepLimits::default()).expect("starts");
    assert_eq!(host.inventory()[0].actions, ["baseline", "check"]);

    // The operator installs another version; a command pinning the new
    // hash gets it, one pinning the old hash is refused.
    let old = host.inventory()[0].sha256.clone();
    std::fs::copy(wasm("testbed"), &path).expect("copy");
    let new = sha256_hex(&std::fs::read(&path).expect("read"));
    assert!(matches!(
        host.resolve("swap", &old),
        Err(ResolveError::HashMismatch { .. })
    ));
    let plugin = host.resolve("swap", &new).expect("recompiles");
    assert!(plugin.info.actions.iter().any(|a| a == "echo"));
    assert_eq!(host.inventory()[0].sha256, new);
    let (outcome, _) = step(&host, "swap", "echo", json!({ "x": 1 }), Opts::default()).await;
    assert_eq!(data(&outcome), json!({ "x": 1 }));
}

#[test]
fn bad_configuration_is_refused_before_compiling() {
    let bad_grants = config(
        "health",
        Grants {
            urls: vec!["ftp://example.com/".into()],
            ..Default::default()
        },
        None,
    );
    let error = PluginHost::new(&[bad_grants], SecretStore::empty(), StepLimits::default())
        .expect_err("refused");
    assert!(matches!(error, PluginHostError::Grants { .. }), "{error}");
    assert!(error.to_string().contains("grants.urls"), "{error}");

    let mut missing = config("health", Grants::default(), None);
    missing.path = "/nonexistent/health.wasm".into();
    let error = PluginHost::new(&[missing], SecretStore::empty(), StepLimits::default())
        .expect_err("refused");
    assert!(matches!(error, PluginHostError::Read { .. }), "{error}");

    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").expect("write");
    let mut not_wasm = config("health", Grants::default(), None);
    not_wasm.path = junk;
    let error = PluginHost::new(&[not_wasm], SecretStore::empty(), StepLimits::default())
        .expect_err("refused");
    assert!(matches!(error, PluginHostError::Compile { .. }), "{error}");

    let twice = vec![
        config("health", Grants::default(), None),
        config("health", Grants::default(), None),
    ];
    assert!(matches!(
        PluginHost::new(&twice, SecretStore::empty(), StepLimits::default()),
        Err(PluginHostError::Duplicate(_))
    ));
}

#[test]
fn the_host_starts_inside_a_runtime() {
    // The agent builds its host from async `main`; describing plugins must
    // not trip over sync WASI inside a Tokio context.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let host = host("testbed", Grants::default());
        assert_eq!(host.inventory().len(), 1);
    });
}

#[test]
fn the_schema_the_plugin_declares_is_reported() {
    let host = host("health", Grants::default());
    let health = &host.inventory()[0];
    let schema: serde_json::Value =
        serde_json::from_str(&health.schema_json).expect("the schema is JSON");
    let check = &schema["actions"]["check"];
    assert_eq!(
        check["properties"]["require_healthy"]["type"],
        json!("boolean")
    );
    assert_eq!(
        check["properties"]["require_healthy"]["default"],
        json!(false)
    );
    assert_eq!(check["additionalProperties"], json!(false));
    assert!(schema["actions"]["baseline"]["required"] == json!(["url"]));
}

#[test]
fn a_plugin_file_describes_itself_without_an_agent() {
    let info =
        crate::plugin::describe_file("maintenance", &wasm("maintenance")).expect("describes");
    assert_eq!(info.actions, ["on", "off", "status"]);
    assert!(
        info.schema_json.contains("\"flag\""),
        "{}",
        info.schema_json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_describe_does_not_list_is_refused_before_the_plugin_runs() {
    let host = host("testbed", Grants::default());
    let (outcome, events) = step(
        &host,
        "testbed",
        "no-such-action",
        json!({}),
        Opts::default(),
    )
    .await;
    let (code, message) = failure(&outcome);
    assert_eq!(code, "unknown-action");
    assert!(message.contains("the plugin was not called"), "{message}");
    assert!(message.contains("it offers: spin"), "{message}");
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn reconfigure_adds_removes_and_reloads_changed_entries_and_disables_broken_ones() {
    use crate::plugin::{Reloaded, StepLimitsConfig};
    let host = host("health", Grants::default());
    let mut changed = host.subscribe();
    let testbed = config("testbed", Grants::default(), None);
    let broken = PluginConfig {
        name: "broken".into(),
        path: "/nonexistent/broken.wasm".into(),
        grants: Grants::default(),
        limits: None,
    };
    let out = host.reconfigure(&[
        config("health", Grants::default(), None),
        testbed.clone(),
        broken,
    ]);
    let sha = sha256_hex(&std::fs::read(wasm("testbed")).expect("read"));
    assert!(out.contains(&(
        "testbed".into(),
        Reloaded::Loaded {
            sha256: sha.clone()
        }
    )));
    assert!(
        out.contains(&("health".into(), Reloaded::Unchanged)),
        "{out:?}"
    );
    assert!(changed.has_changed().expect("open"));
    changed.borrow_and_update();
    let names: Vec<_> = host.inventory().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["health", "testbed"]);
    let disabled = host.disabled();
    assert_eq!(disabled.len(), 1);
    assert!(
        disabled[0].2.contains("/nonexistent/broken.wasm"),
        "{disabled:?}"
    );
    assert!(matches!(
        host.resolve("broken", &sha),
        Err(ResolveError::Disabled { .. })
    ));
    host.resolve("testbed", &sha)
        .expect("the added plugin serves");

    // Changed grants load the plugin again under its new entry; more
    // memory than the agent started with needs a restart.
    let granted = Grants {
        urls: vec!["http://127.0.0.1:1/".into()],
        ..Grants::default()
    };
    let hungry = StepLimitsConfig {
        memory: Some(crate::plugin::ByteSize(1024 * 1024 * 1024)),
        ..StepLimitsConfig::default()
    };
    let out = host.reconfigure(&[
        config("health", Grants::default(), Some(hungry)),
        config("testbed", granted, None),
    ]);
    assert!(out.contains(&(
        "testbed".into(),
        Reloaded::Loaded {
            sha256: sha.clone()
        }
    )));
    assert!(
        matches!(&out[0], (name, Reloaded::Disabled { error }) if name == "health" && error.contains("restart")),
        "{out:?}"
    );

    // Removed entries are unloaded.
    let out = host.reconfigure(&[testbed]);
    assert!(out.contains(&("testbed".into(), Reloaded::Loaded { sha256: sha })));
    assert!(!out.iter().any(|(name, _)| name == "health"), "{out:?}");
    assert!(host.disabled().is_empty(), "{:?}", host.disabled());
    assert!(matches!(
        host.resolve("health", &"0".repeat(64)),
        Err(ResolveError::UnknownPlugin(_))
    ));
}
