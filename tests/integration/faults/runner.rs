//! The matrix runner: an [`Operation`] is run once to count its file-system operations, then
//! once per fault point (a power cut after each sync, under both [`Cut`] readings; ENOSPC at
//! each write; EIO at each sync), each time on a fresh copy of the same starting repository.
//! After each fault the repository is reopened on the real file system and checked: the
//! common checks of [`super::check`], the operation's own, then the operation is run again to
//! the end (nothing is wedged) and its end state checked.
//!
//! `GITMQ_FAULT_MATRIX=full` runs every point; by default the first, middle and last point of
//! each kind run (the fast subset `cargo test` runs).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use gitmq::Repository;

use super::{
    check,
    faulty_fs::{Counts, Cut, Fault, FaultyFs},
};

/// What happened to the operation, as its checks need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aftermath {
    /// No fault: the operation ran to the end.
    Clean,
    /// The power went after some syncs; the process is gone.
    PowerCut(Cut),
    /// A write or sync failed; the process lives on, the file system is as it is.
    Failed,
}

impl Aftermath {
    /// Whether everything not synced may be lost (leftovers of a dead process are fine).
    pub fn is_cut(self) -> bool {
        matches!(self, Aftermath::PowerCut(_))
    }
}

/// Why an operation failed.
pub type Failure = Box<dyn std::error::Error>;

/// One writer under test.
pub trait Operation: Clone {
    /// Run the operation on `repo` (opened on the faulty file system), recording what it
    /// acknowledged in `self`. On a failure, check that the writer refuses further work where
    /// it has state that a retry could misuse (`Error::Poisoned`), then return the failure.
    fn run(&mut self, repo: &Repository) -> Result<(), Failure>;
    /// After the fault, on the real file system: the operation's own invariants (everything
    /// it acknowledged is there, nothing it did not is visible as acknowledged).
    fn check(&self, repo: &Repository, aftermath: Aftermath);
    /// Finish the job on the real file system (run again, or what a user would do next) and
    /// check the complete end state.
    fn redo(&self, repo: &Repository);
}

/// Fault points covered for one operation, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Covered {
    pub counts: Counts,
    pub cut_entries: usize,
    pub cut_data: usize,
    pub enospc: usize,
    pub eio: usize,
}

impl Covered {
    pub fn total(&self) -> usize {
        self.cut_entries + self.cut_data + self.enospc + self.eio
    }
}

/// Whether every point runs (`GITMQ_FAULT_MATRIX=full`).
pub fn full() -> bool {
    std::env::var("GITMQ_FAULT_MATRIX").is_ok_and(|v| v == "full")
}

/// Points `first..=last` to run: all of them, or (fast subset) the first, middle and last.
fn points(first: usize, last: usize) -> Vec<usize> {
    if last < first {
        return Vec::new();
    }
    if full() {
        return (first..=last).collect();
    }
    let mut chosen = vec![first, first + (last - first) / 2, last];
    chosen.dedup();
    chosen
}

/// Run `op` under every fault point, starting each time from a copy of `template` (a
/// directory holding the repository at `q.git`); print and return what was covered.
pub fn run_matrix<O: Operation>(name: &str, template: &Path, op: &O) -> Covered {
    let started = Instant::now();
    let counts = {
        let (_dir, repo_path) = copy_of(template);
        let fs = FaultyFs::new(&repo_path, Fault::None);
        let mut op = op.clone();
        let repo = Repository::open_with_fs(&repo_path, fs.clone()).expect("open");
        if let Err(err) = op.run(&repo) {
            panic!("{name}: the operation fails without a fault: {err}");
        }
        drop(repo);
        after(name, "no fault", &op, &repo_path, Aftermath::Clean);
        fs.counts()
    };
    assert!(counts.syncs > 0, "{name}: the operation syncs nothing");
    let mut covered = Covered {
        counts,
        ..Covered::default()
    };
    for k in points(0, counts.syncs) {
        for cut in [Cut::Entries, Cut::Data] {
            let what = format!("power cut after sync {k}/{} ({cut:?})", counts.syncs);
            one_point(
                name,
                &what,
                template,
                op,
                Fault::PowerCut { after_syncs: k },
                |fs| {
                    fs.power_cut(cut);
                    Aftermath::PowerCut(cut)
                },
            );
            match cut {
                Cut::Entries => covered.cut_entries += 1,
                Cut::Data => covered.cut_data += 1,
            }
        }
    }
    for n in points(1, counts.writes) {
        let what = format!("ENOSPC at write {n}/{}", counts.writes);
        one_point(
            name,
            &what,
            template,
            op,
            Fault::Enospc { write: n },
            |_| Aftermath::Failed,
        );
        covered.enospc += 1;
    }
    for n in points(1, counts.syncs) {
        let what = format!("EIO at sync {n}/{}", counts.syncs);
        one_point(name, &what, template, op, Fault::Eio { sync: n }, |_| {
            Aftermath::Failed
        });
        covered.eio += 1;
    }
    println!(
        "fault matrix | {name:<28} | syncs {:>3} | writes {:>3} | cut (entries) {:>3} | cut (data) {:>3} | ENOSPC {:>3} | EIO {:>3} | points {:>4} | {:.1} s",
        covered.counts.syncs,
        covered.counts.writes,
        covered.cut_entries,
        covered.cut_data,
        covered.enospc,
        covered.eio,
        covered.total(),
        started.elapsed().as_secs_f64()
    );
    covered
}

/// Run `op` from a copy of `template` with `fault`, apply `aftermath` to the file system,
/// then check.
fn one_point<O: Operation>(
    name: &str,
    what: &str,
    template: &Path,
    op: &O,
    fault: Fault,
    aftermath: impl FnOnce(&FaultyFs) -> Aftermath,
) {
    let (_dir, repo_path) = copy_of(template);
    let fs = FaultyFs::new(&repo_path, fault);
    let mut op = op.clone();
    let repo = Repository::open_with_fs(&repo_path, Arc::clone(&fs) as _).expect("open");
    let result = op.run(&repo);
    drop(repo);
    // (Counts may vary a little between runs: a loose object's fan-out directory may exist.)
    let counts = fs.counts();
    let reached = match fault {
        Fault::PowerCut { after_syncs } => after_syncs < counts.syncs,
        Fault::Enospc { write } => write <= counts.writes,
        Fault::Eio { sync } => sync <= counts.syncs,
        Fault::None => false,
    };
    assert_eq!(
        reached,
        fs.fired(),
        "{name}, {what}: the fault happened unexpectedly or not at all"
    );
    // (A failed write may be best effort, as a held lock's pid is; a failed sync never.)
    // Only a sync that failed: a run may make one sync fewer than the counting run (a loose
    // object's fan-out directory may already exist), and then the last point is not reached.
    if matches!(fault, Fault::Eio { .. }) && fs.fired() {
        assert!(
            result.is_err(),
            "{name}, {what}: a failed sync was reported as success"
        );
    }
    let aftermath = aftermath(&fs);
    after(name, what, &op, &repo_path, aftermath);
}

/// The checks after a point: common, the operation's, then the redo and its checks.
fn after<O: Operation>(name: &str, what: &str, op: &O, repo_path: &Path, aftermath: Aftermath) {
    let context = format!("{name}, {what}");
    check::common(repo_path, aftermath, &context);
    let repo = Repository::open(repo_path).expect("reopen on the real file system");
    with_context(&context, || op.check(&repo, aftermath));
    if aftermath.is_cut() {
        // What an operator does after a crash (`gitmq unlock`): locks of the dead process go.
        check::remove_dead_locks(repo_path);
    }
    with_context(&context, || op.redo(&repo));
    check::common(
        repo_path,
        Aftermath::Clean,
        &format!("{context}, after the redo"),
    );
}

/// Run `f`, prefixing a panic's message with `context`.
fn with_context(context: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        panic!("{context}: {message}");
    }
}

/// A copy of `template` in a new temporary directory; the repository's path in it.
pub fn copy_of(template: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(template.join("."))
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying the template failed");
    let path = dir.path().join("q.git");
    (dir, path)
}
