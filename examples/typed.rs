//! Typed messages: a producer publishes `Order`s as JSON with stable ids and headers (a retry
//! of the same order is not appended twice), and a consumer reads them back as `Order`s.
//!
//! Usage: `cargo run --example typed`

use gitmq::{ConsumerName, Envelope, Repository, TopicName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantity: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path().join("queue.git"))?;
    let orders = TopicName::new("orders")?;

    let mut producer = repo.producer(&orders);
    for (id, item) in [(1, "tea"), (2, "cake"), (1, "tea")] {
        let order = Order {
            id,
            item: item.into(),
            quantity: 1,
        };
        // The order id is the stable id: the second "tea" is a retry and returns the first id.
        let envelope = Envelope::new()
            .with_id(format!("order-{id}"))?
            .with_header("content-type", "application/json")?;
        let commit = producer.publish_json_with(&order, &envelope)?;
        println!("published order {id} as {commit}");
    }

    let mut billing = repo.consumer(&ConsumerName::new("billing")?, &orders)?;
    for received in billing.json_messages::<Order>() {
        let received = received?;
        println!(
            "billing got {:?} (stable id {:?}, content-type {:?})",
            received.value,
            received.message.stable_id(),
            received.message.header("content-type"),
        );
    }
    billing.commit()?;
    Ok(())
}
