//! `gitmq demo`: the main job on an embedded default, narrated. Creates a local repository
//! (temporary unless `--keep`), publishes, fans out to two consumers, restarts one, and shows
//! that plain `git log` reads the queue (when a `git` binary is on PATH; gitmq never needs it).

use std::{path::Path, process::Command};

use gitmq::{ConsumerName, Durability, Identity, Repository, TopicName};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub fn run(keep: Option<&Path>) -> Result<()> {
    let temp;
    let path = if let Some(path) = keep {
        path.to_owned()
    } else {
        temp = std::env::temp_dir().join(format!("gitmq-demo-{}", std::process::id()));
        temp
    };
    let result = narrate(&path);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&path);
    }
    result
}

fn narrate(path: &Path) -> Result<()> {
    let repo = Repository::init(path)?;
    println!("1. Created a bare queue repository at {}", path.display());

    let orders = TopicName::new("orders")?;
    let mut producer = gitmq::ProducerConfig::default()
        .with_identity(Identity::new("shop-frontend", "shop@example.com")?)
        .with_durability(Durability::Batch)
        .open(&repo, &orders);
    let payloads: Vec<String> = (1..=5)
        .map(|i| format!(r#"{{"order":{i},"item":"book","qty":{i}}}"#))
        .collect();
    let ids = producer.publish_batch(&payloads)?;
    println!(
        "2. Published {} messages to topic `orders` (branch refs/heads/orders):",
        ids.len()
    );
    for (id, payload) in ids.iter().zip(&payloads) {
        println!("     {id}  {payload}");
    }

    let billing = ConsumerName::new("billing")?;
    let shipping = ConsumerName::new("shipping")?;
    let mut consumer = repo.consumer(&billing, &orders)?;
    let first = consumer.poll(3)?;
    consumer.commit()?;
    println!(
        "3. Consumer `billing` read {} messages and committed its position:",
        first.len()
    );
    for m in &first {
        println!("     {}  {}", m.id, String::from_utf8_lossy(&m.payload));
    }
    drop(consumer);

    let mut restarted = repo.consumer(&billing, &orders)?;
    let rest = restarted.poll(100)?;
    restarted.commit()?;
    println!(
        "4. `billing` restarted and resumed after its position: {} more",
        rest.len()
    );
    for m in &rest {
        println!("     {}  {}", m.id, String::from_utf8_lossy(&m.payload));
    }

    let mut fan_out = repo.consumer(&shipping, &orders)?;
    let all = fan_out.poll(100)?;
    fan_out.commit()?;
    println!(
        "5. Consumer `shipping` has its own position (fan-out) and read all {} messages",
        all.len()
    );

    println!("6. Positions are refs under refs/gitmq/consumers/ (not cloned by default):");
    for (consumer, topic, position) in repo.positions()? {
        println!("     {consumer} on {topic} at {position}");
    }

    println!("7. What plain git sees:");
    let git = Command::new("git")
        .arg("--git-dir")
        .arg(repo.git_dir())
        .args([
            "log",
            "--reverse",
            "--decorate-refs=refs/gitmq/",
            "--decorate-refs=refs/heads/",
            "--format=     %h %an %ad%d%n       %s",
            "--date=iso",
            "orders",
        ])
        .output();
    match git {
        Ok(output) if output.status.success() => {
            print!(
                "     $ git log --reverse orders\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        _ => println!(
            "     (no `git` on PATH; try `git --git-dir {} log orders`)",
            path.display()
        ),
    }
    Ok(())
}
