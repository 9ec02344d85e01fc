//! Fuzz check of the parsers of local text files and strings a user or another tool writes:
//! the repository's git config (remotes, retention), git's `shallow` list, git's credential
//! store file, and the time strings of `--since` / `--before`.

use gitmq::{
    git::{
        config::remote as config,
        shallow::Shallow,
        wire::{
            credentials::{with_credentials, Sources},
            RemoteUrl,
        },
    },
    position::parse_time,
    prune::retention,
};

/// `local_files`: the input as `<git-dir>/config`, `<git-dir>/shallow` and a credential store
/// file, read by gitmq's readers; its first line as a time for `parse_time`. Readers return
/// an error or a value, never panic. Where they accept, cheap properties hold: a remote URL
/// parses as a remote (or is the reader's error), the shallow list is strictly sorted, a
/// credential found for a URL is one the store holds.
pub fn local_files(data: &[u8]) {
    let dir = super::scratch_dir();
    let git_dir = dir.path();
    for name in ["config", "shallow"] {
        std::fs::write(git_dir.join(name), data).expect("write the fuzz input");
    }
    let store = git_dir.join("credentials");
    std::fs::write(&store, data).expect("write the fuzz input");

    if let Ok(Some(url)) = config::remote_url(git_dir, "origin") {
        let _ = RemoteUrl::parse(&url);
    }
    let _ = retention::read(git_dir);
    if let Ok(shallow) = Shallow::read(git_dir) {
        assert!(
            shallow.ids().windows(2).all(|w| w[0] < w[1]),
            "the shallow list is sorted and without duplicates"
        );
    }
    let sources = Sources {
        store_files: vec![store],
        ..Sources::default()
    };
    let text = String::from_utf8_lossy(data);
    for url in [
        "https://git.example.com/q.git",
        "http://127.0.0.1:8080/x.git",
    ] {
        let found = with_credentials(RemoteUrl::parse(url).expect("a valid URL"), &sources);
        if let Some((user, _)) = found.credentials() {
            assert!(
                text.contains(user) || text.contains('%'),
                "a credential comes from the store: {user:?}"
            );
        }
    }
    let first_line = text.lines().next().unwrap_or_default();
    let _ = parse_time(first_line, 1_795_800_000);
}
