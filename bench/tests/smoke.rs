//! A CI-sized run of the whole benchmark (a few seconds, in-process Keybridge, real PostgreSQL and
//! node-oidc-provider), so the bench never rots. It checks that every scenario ran, not how fast.

#[test]
fn the_benchmark_runs_every_scenario() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keybridge-bench"))
        .arg("--smoke")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench smoke failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "| discovery | memory |",
        "| authorization_code | postgres | ES256 |",
        "| refresh_token | memory | RS256 |",
        "| login (authorize, form, code, token) | postgres | RS256 |",
        "| authorization_code |",
        "## Targets",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from the report:\n{stdout}");
    }
    // Every scenario reports zero errors.
    for line in stdout.lines().filter(|l| {
        l.starts_with("| ") && l.matches('|').count() == 10 && !l.contains("---") && !l.contains("scenario")
    }) {
        let errors = line.split('|').nth(8).unwrap().trim();
        assert_eq!(errors, "0", "errors in: {line}");
    }
}
