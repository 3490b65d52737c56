//! What depending on the library compiles. `ringwall serve` and its clap
//! live in the `ringwall-cli` package; this pins that a dependent of
//! `ringwall` (`cargo add ringwall`) compiles no command-line parser, under
//! any feature set.

use std::process::Command;

/// The packages `cargo tree` lists for `ringwall` with these feature flags:
/// normal and build dependencies, the ones a dependent compiles.
fn library_dependencies(feature_flags: &[&str]) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "ringwall", "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(feature_flags)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree {feature_flags:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn library_compiles_no_clap_under_any_feature_set() {
    for feature_flags in [&[][..], &["--no-default-features"], &["--all-features"]] {
        let packages = library_dependencies(feature_flags);
        // A listing without the library itself would pass vacuously.
        assert!(
            packages.iter().any(|p| p == "ringwall"),
            "cargo tree {feature_flags:?} did not list ringwall: {packages:?}"
        );
        assert!(
            !packages.iter().any(|p| p.starts_with("clap")),
            "cargo tree {feature_flags:?} lists clap: {packages:?}"
        );
    }
}
