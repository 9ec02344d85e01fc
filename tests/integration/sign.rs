//! Signed messages against the real tools: `git verify-commit` (gpg.format=ssh) checks what
//! gitmq signed, gitmq's verifying consumer checks what `git commit -S` signed, and both
//! refuse tampered payloads, swapped authors and unknown keys. Keys are made by `ssh-keygen`
//! (openssh-client, which git itself needs to verify SSH signatures).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use gitmq::{
    consume::verify::Verify,
    produce::Signing,
    sign::{check_commit, gpgsig, AllowedSigners, Signature, Signer},
    ConsumerName, Identity, ObjectId, ProducerConfig, Repository, TopicName,
};

use crate::util::{git, git_output, TempRepo};

/// An ed25519 key made by `ssh-keygen` in `dir`: (private key file, public key line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_owned())
}

/// Write an allowed-signers file of `(principal, public key line)` into `dir`.
fn allowed_signers(dir: &Path, entries: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("allowed_signers");
    let mut text = String::new();
    for (principal, key) in entries {
        text.push_str(principal);
        text.push(' ');
        text.push_str(key);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write allowed signers");
    path
}

/// `git verify-commit` of `id` in `git_dir` with `allowed`: (success, stderr).
fn git_verify(git_dir: &Path, allowed: &Path, id: &ObjectId) -> (bool, String) {
    let out = git_output(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "verify-commit",
            &id.to_string(),
        ],
        None,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn body(repo: &Repository, id: &ObjectId) -> Vec<u8> {
    let mut body = Vec::new();
    repo.odb().read_commit(id, &mut body).unwrap();
    body
}

fn identity(email: &str) -> Identity {
    Identity::new(email.split('@').next().unwrap(), email).unwrap()
}

/// A producer configuration signing per `signing` as `email`.
fn signing_as(signing: Signing, email: &str) -> ProducerConfig {
    ProducerConfig::default()
        .with_identity(identity(email))
        .with_signing(signing)
}

#[test]
fn git_verify_commit_says_good_for_every_message_gitmq_signed_in_each_and_tip_modes() {
    let repo = TempRepo::new();
    let (key_path, public) = keygen(repo.dir.path(), "shop");
    let allowed = allowed_signers(repo.dir.path(), &[("shop@example.com", &public)]);
    let key = Arc::new(Signer::open(&key_path).expect("an ssh-keygen key loads"));
    let open = repo.open();
    let each = TopicName::new("each").unwrap();
    let ids = signing_as(Signing::each(key.clone()), "shop@example.com")
        .open(&open, &each)
        .publish_batch(["{\"order\":1}", "{\"order\":2}", "{\"order\":3}"])
        .unwrap();
    for id in &ids {
        let (good, stderr) = git_verify(&repo.path, &allowed, id);
        assert!(
            good && stderr.contains("Good \"git\" signature for shop@example.com"),
            "{stderr}"
        );
    }

    // The signature is ssh-keygen's own, byte for byte (ed25519 is deterministic).
    let signed = body(&open, &ids[0]);
    let mut unsigned = Vec::new();
    assert!(gpgsig::strip(&signed, &mut unsigned));
    let payload = repo.dir.path().join("payload");
    std::fs::write(&payload, &unsigned).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "git", "-f"])
        .arg(&key_path)
        .arg(&payload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::fs::read(payload.with_extension("sig")).unwrap();
    let (mut ours, mut rest) = (Vec::new(), Vec::new());
    gpgsig::split(&signed, &mut ours, &mut rest);
    assert_eq!(ours, theirs, "gitmq's armored signature is ssh-keygen's");

    let tip = TopicName::new("tip").unwrap();
    let mut producer = signing_as(Signing::tip(key), "shop@example.com").open(&open, &tip);
    for n in 0..5 {
        producer.append(format!("m{n}").as_bytes()).unwrap();
    }
    let ids = producer.flush().unwrap().ids;
    drop(producer);
    let (good, stderr) = git_verify(&repo.path, &allowed, ids.last().unwrap());
    assert!(good, "the batch's tip is signed: {stderr}");
    for id in &ids[..4] {
        assert!(
            !gpgsig::is_signed(&body(&open, id)),
            "only the tip is signed"
        );
    }
    assert_eq!(open.head(&tip).unwrap(), ids.last().copied());
    let mut billing = open
        .consumer(&ConsumerName::new("billing").unwrap(), &tip)
        .unwrap()
        .with_verify(Verify::new(AllowedSigners::open(&allowed).unwrap()));
    assert_eq!(
        billing.poll(10).unwrap().len(),
        5,
        "the tip covers its batch"
    );
    assert!(billing.take_refused().is_empty());
    repo.assert_fsck_clean();
}

#[test]
fn a_verifying_consumer_accepts_what_git_commit_s_signed_and_refuses_what_is_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public) = keygen(dir.path(), "dev");
    let allowed = allowed_signers(dir.path(), &[("git@example.com", &public)]);
    let work = dir.path().join("work");
    git(
        &["init", "-q", "-b", "orders", work.to_str().unwrap()],
        None,
    );
    let commit = |message: &str, sign: bool| {
        let mut args = vec!["-c", "gpg.format=ssh", "-c", "commit.gpgsign=false"];
        let signing_key = format!("user.signingkey={}", key_path.display());
        args.extend([
            "-c",
            &signing_key,
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ]);
        if sign {
            args.push("-S");
        }
        git(&args, Some(&work));
    };
    commit("unsigned below a signature", false);
    commit("signed 1", true);
    commit("signed 2", true);
    let repo = Repository::open(&work).unwrap();
    let topic = TopicName::new("orders").unwrap();
    let signers = AllowedSigners::open(&allowed).unwrap();
    let mut consumer = repo
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap()
        .with_verify(Verify::new(signers.clone()).stop_on_refused());
    let payloads: Vec<Vec<u8>> = consumer
        .poll(10)
        .unwrap()
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        payloads,
        [
            &b"unsigned below a signature\n"[..],
            b"signed 1\n",
            b"signed 2\n"
        ],
        "git's signatures verify; the unsigned commit is covered by the signed one above it"
    );
    consumer.commit().unwrap();

    commit("unsigned on top", false);
    let err = consumer
        .poll(10)
        .expect_err("nothing covers it: the consumer stops");
    assert!(err.to_string().contains("unsigned"), "{err}");
    assert!(consumer.poll(10).is_err(), "and stops there again");
}

/// Point topic `name` of `repo` at a commit written by `git hash-object` from `body`.
fn forge(repo: &TempRepo, name: &str, body: &[u8]) -> ObjectId {
    let file = repo.dir.path().join(format!("{name}.commit"));
    std::fs::write(&file, body).unwrap();
    let id = repo.git(&["hash-object", "-t", "commit", "-w", file.to_str().unwrap()]);
    let id = ObjectId::from_hex(String::from_utf8(id).unwrap().trim().as_bytes()).unwrap();
    repo.git(&["update-ref", &format!("refs/heads/{name}"), &id.to_string()]);
    id
}

#[test]
fn tampered_payloads_swapped_authors_and_unknown_keys_are_refused_by_the_consumer_and_by_git() {
    let repo = TempRepo::new();
    let (alice_path, alice_pub) = keygen(repo.dir.path(), "alice");
    let (_, bob_pub) = keygen(repo.dir.path(), "bob");
    let (mallory_path, _) = keygen(repo.dir.path(), "mallory");
    let allowed = allowed_signers(
        repo.dir.path(),
        &[("alice@x", &alice_pub), ("bob@x", &bob_pub)],
    );
    let open = repo.open();
    let publish = |topic: &str, author: &str, key: &Path, payload: &str| {
        signing_as(Signing::each(Arc::new(Signer::open(key).unwrap())), author)
            .open(&open, &TopicName::new(topic).unwrap())
            .publish(payload.as_bytes())
            .unwrap()
    };

    // Tampered: a signed message whose payload was changed afterwards.
    let good = publish("good", "alice@x", &alice_path, "pay 10 EUR");
    let tampered_body = String::from_utf8(body(&open, &good))
        .unwrap()
        .replace("pay 10 EUR", "pay 99 EUR");
    let tampered = forge(&repo, "tampered", tampered_body.as_bytes());
    // Swapped: alice's key on a message that says bob wrote it.
    let swapped = publish("swapped", "bob@x", &alice_path, "from bob?");
    // Unknown: a key the file does not name.
    let unknown = publish("unknown", "alice@x", &mallory_path, "from alice?");

    assert!(git_verify(&repo.path, &allowed, &good).0);
    let (ok, stderr) = git_verify(&repo.path, &allowed, &tampered);
    assert!(!ok, "git refuses the tampered payload: {stderr}");
    let (ok, stderr) = git_verify(&repo.path, &allowed, &unknown);
    assert!(!ok && stderr.contains("No principal matched"), "{stderr}");
    // git checks only that *some* principal allows the key; it names it: alice, not bob.
    let shown = repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
        "log",
        "-1",
        "--format=%G? %GS %ae",
        &swapped.to_string(),
    ]);
    assert_eq!(
        String::from_utf8(shown).unwrap().trim(),
        "G alice@x bob@x",
        "git: a good signature, but the signer is not the author"
    );

    let signers = AllowedSigners::open(&allowed).unwrap();
    for (topic, expect) in [
        ("good", None),
        ("tampered", Some("bad signature")),
        ("swapped", Some("is not allowed to sign as bob@x")),
        ("unknown", Some("unknown key")),
    ] {
        let topic = TopicName::new(topic).unwrap();
        let mut consumer = open
            .consumer(&ConsumerName::new("audit").unwrap(), &topic)
            .unwrap()
            .with_verify(Verify::new(signers.clone()));
        let delivered = consumer.poll(10).unwrap();
        consumer.commit().unwrap();
        let refused = consumer.take_refused();
        match expect {
            None => assert_eq!((delivered.len(), refused.len()), (1, 0)),
            Some(reason) => {
                assert!(delivered.is_empty(), "{topic}: nothing handed out");
                assert!(refused[0].1.contains(reason), "{topic}: {}", refused[0].1);
                let dead = gitmq::dlq::list(&open, &topic).unwrap();
                assert_eq!(dead.len(), 1, "{topic}: dead-lettered");
                assert!(dead[0].error.as_deref().unwrap().contains(reason));
                assert_eq!(dead[0].attempts, Some(0), "refused before any handler ran");
            }
        }
        assert_eq!(
            consumer.lag().unwrap(),
            0,
            "{topic}: the position moved past it"
        );
    }
    repo.assert_fsck_clean();
}

#[test]
fn copies_are_re_signed_by_the_key_holder_and_marked_otherwise_and_a_lost_race_re_signs() {
    let repo = TempRepo::new();
    let (key_path, public) = keygen(repo.dir.path(), "shop");
    let allowed = allowed_signers(repo.dir.path(), &[("shop@example.com", &public)]);
    let key = Arc::new(Signer::open(&key_path).unwrap());
    let open = repo.open();
    let (src, dst) = (
        TopicName::new("src").unwrap(),
        TopicName::new("dst").unwrap(),
    );
    let originals = signing_as(Signing::each(key.clone()), "shop@example.com")
        .open(&open, &src)
        .publish_batch(["a", "b"])
        .unwrap();

    // Split without the key: copies lose the signature and name their original.
    let unkeyed = TopicName::new("unkeyed").unwrap();
    let split = gitmq::topology::split(&open, &src, None, &unkeyed, |_| true, true).unwrap();
    for (old, new) in &split.copies {
        let copy = body(&open, new);
        assert_eq!(check_commit(&copy), Signature::Unsigned);
        assert_eq!(
            gpgsig::unsigned_copy_of(&copy),
            Some(old.to_string().as_bytes())
        );
    }
    // Join with the key onto a topic that has a message: copies are signed again, and git
    // agrees.
    open.producer(&dst).publish(b"already there").unwrap();
    let keyed = open.clone().with_copy_signer(key.clone());
    gitmq::topology::join(&keyed, std::slice::from_ref(&src), &dst, true).unwrap();
    let dst_ids = gitmq::git::walk::ids_after(
        &mut open.odb(),
        open.head(&dst).unwrap().unwrap(),
        None,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(dst_ids.len(), 3);
    for id in &dst_ids[1..] {
        assert!(!originals.contains(id), "new parents, new ids");
        let (good, stderr) = git_verify(&repo.path, &allowed, id);
        assert!(good, "{stderr}");
    }
    assert_eq!(
        gitmq::topology::join(&keyed, std::slice::from_ref(&src), &dst, true)
            .unwrap()
            .total(),
        0,
        "joined again: nothing copied twice (content ids ignore signatures)"
    );

    // A producer that loses the race to another writer rebuilds its batch and re-signs it.
    let mut late = signing_as(Signing::each(key), "shop@example.com").open(&open, &src);
    late.append(b"late 1").unwrap();
    late.append(b"late 2").unwrap();
    open.producer(&src).publish(b"someone else").unwrap();
    let flushed = late.flush().unwrap();
    assert!(flushed.rebuilt, "the batch was rebuilt on the new head");
    for id in &flushed.ids {
        let (good, stderr) = git_verify(&repo.path, &allowed, id);
        assert!(good, "rebuilt and re-signed: {stderr}");
    }
    repo.assert_fsck_clean();
}

#[test]
fn the_cli_signs_verifies_and_logs_verdicts() {
    let repo = TempRepo::new();
    let (key_path, public) = keygen(repo.dir.path(), "cli");
    let allowed = allowed_signers(repo.dir.path(), &[("cli@x", &public)]);
    let key = key_path.to_str().unwrap();
    let allowed = allowed.to_str().unwrap();
    let out = repo.gitmq(
        &[
            "publish",
            "t",
            "--sign",
            key,
            "--email",
            "cli@x",
            "--sign-mode",
            "tip",
        ],
        b"one\ntwo\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = repo.gitmq(&["publish", "t", "--email", "cli@x", "forged"], b"");
    assert!(out.status.success());

    let out = repo.gitmq(&["log", "t", "--verify", allowed], b"");
    let log = String::from_utf8(out.stdout).unwrap();
    let states: Vec<&str> = log.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(states, ["accepted", "accepted", "refused"], "{log}");

    let out = repo.gitmq(
        &[
            "consume",
            "t",
            "c1",
            "--verify",
            allowed,
            "--refused",
            "stop",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "stops at the forged message");
    assert_eq!(out.stdout, b"one\ntwo\n");
    let out = repo.gitmq(&["consume", "t", "c2", "--verify", allowed], b"");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"one\ntwo\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
    let out = repo.gitmq(&["consume", "t", "c2", "--verify", allowed], b"");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "the position moved past it"
    );
}
