//! The walk of `examples/follow_links.rs` (root → submit → Location → monitor → result → file),
//! compiled into this binary and run against a live service, so the example cannot rot.

use crate::helpers::TestApp;

#[path = "../../examples/follow_links.rs"]
#[allow(dead_code)]
mod follow_links;

async fn the_follow_links_example_walks_to_the_file(backend: &'static str) {
    let app = TestApp::spawn(backend, 2).await;
    let w = follow_links::walk(&reqwest::Client::new(), &format!("{}/", app.base))
        .await
        .unwrap();
    assert!(w.job.starts_with(&app.base), "{}", w.job);
    assert_eq!(w.status, "SUCCESS");
    assert_eq!(w.result["summary"]["importedRecords"], 1, "{}", w.result);
    assert_eq!(w.result["summary"]["failedRecords"], 1, "{}", w.result);
    let report: serde_json::Value = serde_json::from_slice(&w.bytes).unwrap();
    assert_eq!(report[0]["tool_id"], "F2", "{report}");
    assert!(w.file.contains("/downloads/"), "{}", w.file);
    app.stop().await;
}
crate::per_backend!(the_follow_links_example_walks_to_the_file);

/// Every file the README names under `examples/`, every file its commands read (`-d @FILE`,
/// `-F field=@FILE`, `longrun submit import FILE`, `longrun submit compare A B`) and every
/// `cargo run --example NAME` exists in the project, unless a command of the README writes it
/// first (`> FILE`, `-o FILE`), so the walk-through runs as written from the project's folder.
#[test]
fn every_file_the_readme_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let path_char = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    let word_after = |at: usize| -> String {
        readme[at..]
            .chars()
            .take_while(|c| path_char(*c))
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
    };
    let mut named = Vec::new();
    for (at, _) in readme.match_indices("examples/") {
        let before = readme[..at].chars().next_back().unwrap_or(' ');
        if !path_char(before) {
            named.push(word_after(at));
        }
    }
    for (at, m) in readme.match_indices('@') {
        let before = &readme[at.saturating_sub(3)..at];
        if before.ends_with("-d ") || before.ends_with('=') {
            named.push(word_after(at + m.len()));
        }
    }
    let mut written = Vec::new();
    for prefix in ["> ", "-o "] {
        for (at, m) in readme.match_indices(prefix) {
            written.push(word_after(at + m.len()));
        }
    }
    for line in readme.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(4) {
            let files: &[&str] = match w {
                ["longrun", "submit", "import", f] => &[f],
                ["submit", "compare", a, b] => &[a, b],
                _ => &[],
            };
            for f in files {
                if !f.starts_with("http") && *f != "-" {
                    named.push(f.to_string());
                }
            }
        }
        if let Some(at) = line.find("cargo run --example ") {
            let name: String = line[at + "cargo run --example ".len()..]
                .chars()
                .take_while(|c| path_char(*c))
                .collect();
            named.push(format!("examples/{name}.rs"));
        }
    }
    assert!(
        named.iter().any(|n| n == "examples/payload.json"),
        "{named:?}"
    );
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !n.is_empty() && !n.ends_with('/'))
        .filter(|n| !root.join(n.as_str()).exists() && !written.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "the README names files that are not there: {missing:?}"
    );
}
