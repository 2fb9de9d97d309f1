//! `schema.graphql` is the exported SDL; this fails when they drift apart.

use std::path::PathBuf;

#[test]
fn schema_graphql_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let sdl = api::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is out of date with the code. Refresh it with:\n\n    UPDATE_SCHEMA=1 cargo test -p tests --test api schema\n\n(or: cargo run -p api -- schema > schema.graphql)"
    );
}

/// The domain crate must not know GraphQL, HTTP or Redis (an architecture invariant).
#[test]
fn domain_does_not_depend_on_transport_crates() {
    let manifest = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../domain/Cargo.toml"))
        .expect("domain/Cargo.toml");
    for forbidden in ["async-graphql", "axum", "redis", "reqwest", "tower", "hyper"] {
        assert!(
            !manifest.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "domain depends on {forbidden}"
        );
    }
}
