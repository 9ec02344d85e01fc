//! Signing and verification on the command line: `--sign KEY`, `consume --verify`,
//! `log --verify`. Refused messages are reported on stderr, one line each.

use std::{
    io::{self, BufWriter, Write},
    path::Path,
    sync::Arc,
};

use gitmq::{
    consume::{handler::DeadLetters, verify::Verify},
    produce::{ProducerConfig, Signing},
    sign::{AllowedSigners, Signer, Verdict},
    Consumer, Repository, TopicName,
};

use crate::{
    cli::{Format, PublishArgs},
    commands::Result,
    output::write_message,
};

/// Read the signing key file.
pub fn load_key(path: &Path) -> Result<Arc<Signer>> {
    Ok(Arc::new(Signer::open(path)?))
}

/// `repo` (just opened), re-signing copies with `key` if there is one.
pub fn with_copy_signer(repo: Result<Repository>, key: Option<&Arc<Signer>>) -> Result<Repository> {
    let repo = repo?;
    Ok(match key {
        Some(key) => repo.with_copy_signer(key.clone()),
        None => repo,
    })
}

/// `config`, signing with `publish --sign KEY` or else `gitmq --sign KEY` (if either).
pub fn signing(
    config: ProducerConfig,
    repo: &Repository,
    args: &PublishArgs,
) -> Result<ProducerConfig> {
    let key = match &args.sign {
        Some(path) => Some(load_key(path)?),
        None => repo.copy_signer_arc().cloned(),
    };
    Ok(match key {
        Some(key) => config.with_signing(Signing {
            key,
            mode: args.sign_mode.parse()?,
        }),
        None => config,
    })
}

fn load_signers(path: &Path) -> Result<AllowedSigners> {
    let signers = AllowedSigners::open(path)?;
    if signers.cert_authorities() > 0 {
        eprintln!(
            "gitmq: {}: {} cert-authority line(s) ignored (certificates are not verified)",
            path.display(),
            signers.cert_authorities()
        );
    }
    Ok(signers)
}

/// `consumer`, verifying against the allowed-signers file `signers`; `refused` is `dlq` or
/// `stop`.
pub fn verifying(consumer: Consumer, signers: &Path, refused: &str) -> Result<Consumer> {
    let mut verify = Verify::new(load_signers(signers)?);
    if refused == "stop" {
        verify.refused = DeadLetters::Off;
    }
    Ok(consumer.with_verify(verify))
}

/// Print the messages `consumer` refused since the last call on stderr.
pub fn report_refused(consumer: &mut Consumer) {
    for (id, reason) in consumer.take_refused() {
        eprintln!("gitmq: refused {id}: {reason} (dead-lettered)");
    }
}

/// `gitmq log --verify`: every message with its verdict.
pub fn print_verified_log(
    repo: &Repository,
    topic: &TopicName,
    signers: &Path,
    format: Format,
) -> Result<()> {
    let signers = load_signers(signers)?;
    let verdicts = gitmq::consume::verify::verdicts(repo, topic, &signers)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for verdict in verdicts {
        let accepted = verdict.covered_by.is_some();
        let own = match &verdict.own {
            Verdict::Good { principal, key } => {
                format!("good signature by {} for {principal}", key.fingerprint())
            }
            other => other.to_string(),
        };
        let why = match verdict.covered_by {
            Some(by) if by == verdict.message.id => own.clone(),
            Some(by) => format!("covered by {by}; own: {own}"),
            None => own.clone(),
        };
        match format {
            Format::Text => {
                let state = if accepted { "accepted" } else { "refused" };
                writeln!(out, "{}\t{state}\t{why}", verdict.message.id)?;
            }
            Format::Json => {
                let mut line = Vec::new();
                write_message(&mut line, &verdict.message.as_message_ref(), Format::Json)?;
                let mut object: serde_json::Value = serde_json::from_slice(&line)?;
                object["verify"] = serde_json::json!({
                    "accepted": accepted,
                    "covered_by": verdict.covered_by.map(|id| id.to_string()),
                    "own": own,
                });
                serde_json::to_writer(&mut out, &object)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
