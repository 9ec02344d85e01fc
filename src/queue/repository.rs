//! Owns the queue's view of a [`Repository`]: its topics and consumer positions, and the
//! producers and consumers opened on it. The repository itself (finding, opening, its object
//! database and refs) is [`crate::git::repo`]'s.

use std::{path::PathBuf, time::Duration};

use gix_hash::ObjectId;

use crate::{
    git::{config, odb::pack::consolidate, refs},
    produce::{ConsolidatePolicy, ConsolidateReport},
    queue::names::{ConsumerName, TopicName, POSITION_PREFIX, TOPIC_PREFIX},
    replicate::AddRemoteError,
    Consumer, Producer, Repository,
};

/// Topics and positions
impl Repository {
    /// The newest message of `topic`, or `None` if it has none.
    pub fn head(&self, topic: &TopicName) -> Result<Option<ObjectId>, refs::Error> {
        self.refs().find(&topic.ref_name())
    }

    /// Every topic with its head, sorted by name.
    pub fn topics(&self) -> Result<Vec<(TopicName, ObjectId)>, refs::Error> {
        Ok(self
            .refs()
            .list(TOPIC_PREFIX)?
            .into_iter()
            .filter_map(|(name, id)| Some((TopicName::from_ref(&name)?, id)))
            .collect())
    }

    /// Every consumer position: consumer, topic and the last message it committed.
    pub fn positions(&self) -> Result<Vec<(ConsumerName, TopicName, ObjectId)>, refs::Error> {
        Ok(self
            .refs()
            .list(POSITION_PREFIX)?
            .into_iter()
            .filter_map(|(name, id)| {
                let (consumer, topic) = ConsumerName::parse_position_ref(&name)?;
                Some((consumer, topic, id))
            })
            .collect())
    }
}

/// Producers and consumers
impl Repository {
    /// A producer appending to `topic` with the default configuration (see
    /// [`ProducerConfig`](crate::ProducerConfig) for others).
    pub fn producer(&self, topic: &TopicName) -> Producer {
        Producer::new(self.clone(), topic.clone())
    }

    /// The consumer `name` reading `topic` from its committed position.
    pub fn consumer(
        &self,
        name: &ConsumerName,
        topic: &TopicName,
    ) -> Result<Consumer, crate::queue::consume::Error> {
        Consumer::open(self.clone(), name.clone(), topic.clone())
    }
}

/// Maintenance
impl Repository {
    /// Remove the ref locks (`<ref>.lock` under `refs/heads/` and `refs/gitmq/`) whose last
    /// change is at least `age` ago: locks left by writers killed while moving a ref. Only the
    /// operator can know that no live writer holds them (`gitmq unlock`). The removed paths.
    pub fn remove_stale_locks(&self, age: Duration) -> Result<Vec<PathBuf>, refs::Error> {
        refs::remove_stale_locks(self.refs(), age)
    }

    /// Merge small packs per `policy` now (producers also do it in the background), syncing
    /// the new packs before the old ones go.
    pub fn consolidate(
        &self,
        policy: ConsolidatePolicy,
    ) -> Result<ConsolidateReport, consolidate::Error> {
        consolidate::consolidate(self.fs(), self.git_dir(), policy, true)
    }

    /// Add the remote `name` with `url` to the repository's git config, as `git remote add`
    /// writes it.
    pub fn add_remote(&self, name: &str, url: &str) -> Result<(), AddRemoteError> {
        config::remote::add_remote(self.fs(), self.git_dir(), name, url)
    }
}
