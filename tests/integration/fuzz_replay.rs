//! Replays every saved fuzz input on stable: each file under `fuzz/artifacts/<target>/`
//! (crashes once found, kept as regressions) and `fuzz/corpus/<target>/` (seeds and what
//! the fuzzer kept) goes through the very check the libFuzzer target runs, which this file
//! includes from `fuzz/src/lib.rs`, so no nightly toolchain and no libFuzzer are needed.

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

/// Run `check` on every input of `target` in `kind` (`artifacts` or `corpus`); the inputs
/// that panicked.
fn replay(kind: &str, target: &str, check: checks::Check) -> (usize, Vec<String>) {
    let files = inputs(&fuzz_dir().join(kind).join(target));
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).expect("read a fuzz input");
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    (files.len(), failed)
}

#[test]
fn every_saved_crash_and_corpus_input_runs_clean_through_its_fuzz_check() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        for kind in ["artifacts", "corpus"] {
            let (count, failures) = replay(kind, target, check);
            replayed += count;
            failed.extend(failures);
        }
    }
    eprintln!("replayed {replayed} fuzz inputs");
    assert!(failed.is_empty(), "fuzz inputs that panic: {failed:#?}");
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
