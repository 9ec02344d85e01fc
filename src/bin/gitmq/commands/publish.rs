//! `gitmq publish`: messages from arguments or stdin through the batched pack path.
//!
//! stdin is read by a thread that hands blocks to the main loop, so the loop can wait for input
//! with a deadline: a batch is flushed when full, when its first message has lingered, or at
//! the end of input. An id is printed only once its message is acknowledged, so the ids a
//! killed `gitmq publish` printed are all on the topic.

use std::{
    io::{self, Read, Write},
    os::unix::ffi::OsStrExt,
    sync::mpsc,
    time::{Duration, Instant},
};

use gitmq::{
    produce::{Compression, MessageIds, Producer, ProducerConfig},
    Envelope, Identity, ObjectId, Repository, TopicName,
};

use super::Result;
use crate::cli::PublishArgs;

/// Size of the blocks the stdin thread reads.
const BLOCK: usize = 1 << 16;

pub fn run(repo: &Repository, args: &PublishArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let default = Identity::from_env();
    let identity = Identity::new(
        args.author.as_deref().unwrap_or(default.name()),
        args.email.as_deref().unwrap_or(default.email()),
    )?;
    let config = ProducerConfig {
        identity,
        durability: args.durability.into(),
        compression: match args.compression {
            0 => Compression::Stored,
            level => Compression::Deflate(level),
        },
        max_batch_messages: usize::try_from(args.batch)?,
        linger: Duration::from_millis(args.linger_ms),
        message_ids: if args.generate_ids {
            MessageIds::Generate
        } else {
            MessageIds::Given
        },
        ..ProducerConfig::default()
    };
    let envelope = envelope(args)?;
    let config = crate::sign::signing(config, repo, args)?;
    let mut producer = Producer::with_config(repo.clone(), topic, config);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut print = |ids: &[ObjectId]| -> Result<()> {
        for id in ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
        Ok(())
    };
    if envelope.id().is_some() {
        let [message] = &args.messages[..] else {
            return Err("--id takes exactly one message argument".into());
        };
        return print(&[producer.publish_with(message.as_bytes(), &envelope)?]);
    }
    let append = |producer: &mut Producer, payload: &[u8]| {
        if envelope.is_empty() {
            producer.append(payload)
        } else {
            producer.append_with(payload, &envelope)
        }
    };
    if !args.messages.is_empty() {
        for message in &args.messages {
            if let Some(flushed) = append(&mut producer, message.as_bytes())?.flushed {
                print(&flushed.ids)?;
            }
        }
        return print(&producer.flush()?.ids);
    }

    let separator = if args.null { b'\0' } else { b'\n' };
    let blocks = spawn_stdin_reader();
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let block = match producer.linger_deadline() {
            Some(deadline) => {
                match blocks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(block) => Some(block),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        print(&producer.flush()?.ids)?;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            }
            None => blocks.recv().ok(),
        };
        let Some(block) = block else { break };
        let block = block?;
        let mut rest = &block[..];
        while let Some(end) = memchr::memchr(separator, rest) {
            let record = &rest[..end];
            rest = &rest[end + 1..];
            let appended = if partial.is_empty() {
                append(&mut producer, record)?
            } else {
                partial.extend_from_slice(record);
                let appended = append(&mut producer, &partial)?;
                partial.clear();
                appended
            };
            if let Some(flushed) = appended.flushed {
                print(&flushed.ids)?;
            }
        }
        partial.extend_from_slice(rest);
    }
    if !partial.is_empty() {
        append(&mut producer, &partial)?;
    }
    print(&producer.flush()?.ids)
}

/// The stable id and headers given with `--id` and `--header KEY=VALUE`.
fn envelope(args: &PublishArgs) -> Result<Envelope> {
    let mut envelope = match &args.id {
        Some(id) => Envelope::new().with_id(id.as_str())?,
        None => Envelope::new(),
    };
    for header in &args.headers {
        let Some((key, value)) = header.split_once('=') else {
            return Err(format!("--header {header:?}: expected KEY=VALUE").into());
        };
        envelope.push_header(key, value)?;
    }
    Ok(envelope)
}

fn spawn_stdin_reader() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut block = vec![0u8; BLOCK];
            match stdin.read(&mut block) {
                Ok(0) => break,
                Ok(n) => {
                    block.truncate(n);
                    if tx.send(Ok(block)).is_err() {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let _ = tx.send(Err(err));
                    break;
                }
            }
        }
    });
    rx
}
