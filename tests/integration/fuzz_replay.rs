//! Replays every saved fuzz input on stable: each file under `fuzz/artifacts/<target>/`
//! (crashes once found, kept as regressions) and `fuzz/corpus/<target>/` (seeds and what
//! the fuzzer kept) goes through the very check the libFuzzer target runs, which this file
//! includes from `fuzz/src/lib.rs`, so no nightly toolchain and no libFuzzer are needed.
//!
//! An artifact whose name starts with `open-` is a crash reported but not fixed yet (see
//! `fuzz/README.md`): the default run skips it and the ignored test replays it. Fixing the
//! bug means dropping the prefix, so the input guards the fix from then on.

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
};

#[path = "../../fuzz/src/lib.rs"]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The prefix of an artifact whose bug is reported but not fixed yet.
const OPEN_PREFIX: &str = "open-";

/// Which saved inputs a test replays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Select {
    /// Everything but `open-` artifacts.
    Fixed,
    /// Only `open-` artifacts.
    Open,
}

fn is_open(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(OPEN_PREFIX))
}

/// The files directly in `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("list a fuzz input directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Run `check` on the selected inputs of `target` in `kind` (`artifacts` or `corpus`); how
/// many ran, and the ones that panicked.
fn replay(kind: &str, target: &str, check: checks::Check, select: Select) -> (usize, Vec<String>) {
    let files: Vec<PathBuf> = inputs(&fuzz_dir().join(kind).join(target))
        .into_iter()
        .filter(|file| is_open(file) == (select == Select::Open))
        .collect();
    let mut failed = Vec::new();
    for file in &files {
        let data = match fs::read(file) {
            Ok(data) => data,
            // A fuzzer running meanwhile replaces corpus files with smaller ones.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => panic!("read the fuzz input {}: {err}", file.display()),
        };
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    (files.len(), failed)
}

fn replay_all(select: Select) {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        for kind in ["artifacts", "corpus"] {
            let (count, failures) = replay(kind, target, check, select);
            replayed += count;
            failed.extend(failures);
        }
    }
    eprintln!("replayed {replayed} fuzz inputs");
    assert!(failed.is_empty(), "fuzz inputs that panic: {failed:#?}");
}

#[test]
fn every_saved_crash_and_corpus_input_runs_clean_through_its_fuzz_check() {
    replay_all(Select::Fixed);
}

#[test]
#[ignore = "crashes reported in fuzz/README.md and not fixed yet"]
fn open_fuzz_crashes_run_clean_once_fixed() {
    replay_all(Select::Open);
}

#[test]
fn every_target_has_a_libfuzzer_binary_and_the_replay_knows_it() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in checks::TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.is_file(), "{} exists", source.display());
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml declares the binary {target}"
        );
    }
    let binaries = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .count();
    assert_eq!(
        binaries,
        checks::TARGETS.len(),
        "every fuzz binary is replayed here"
    );
}
