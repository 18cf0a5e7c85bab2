//! Kafka topic names and their creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::settings::KafkaSettings;
use crate::ProtoError;

/// Scheduled (and event) result rows and their runs' seals; key = host id.
pub const RESULTS: &str = "sweep.results";
/// Hunt rows and status records, each hunt's in the one partition written
/// in the hunt; key = host id.
pub const HUNTS: &str = "sweep.hunts";
/// Rule matches; key = rule id.
pub const MATCHES: &str = "sweep.matches";

/// Creates the topics that do not exist yet, with the configured partitions
/// and replication. Creation is idempotent: a topic that already exists is
/// not an error, so every component may call this at start-up and the first
/// one wins.
/// Whether any of the bootstrap `brokers` (`host:port,…`, maybe with a
/// `scheme://`) accepts a TCP connection within two seconds; true when none
/// can be parsed, so the client's own error is the one shown.
async fn any_listening(brokers: &str) -> bool {
    let addrs: Vec<&str> = brokers
        .split(',')
        .map(|b| b.trim())
        .map(|b| b.rsplit_once("://").map_or(b, |(_, a)| a))
        .filter(|a| !a.is_empty())
        .collect();
    if addrs.is_empty() {
        return true;
    }
    for a in addrs {
        let connect = tokio::net::TcpStream::connect(a);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            return true;
        }
    }
    false
}

pub async fn ensure(kafka: &KafkaSettings, topics: &[&str]) -> Result<(), ProtoError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    // Nothing listening fails at once, with the address; a broker that
    // listens gets a longer first metadata round trip (a broker just
    // started, or busy, can take seconds) before the admin call's minute.
    if !any_listening(&kafka.brokers).await {
        return Err(ProtoError::Unreachable {
            what: "Kafka",
            addr: kafka.brokers.clone(),
            reason: "nothing accepts connections there".into(),
        });
    }
    let probe = admin.inner().fetch_metadata(None, Duration::from_secs(20));
    if let Err(e) = probe {
        return Err(ProtoError::Unreachable {
            what: "Kafka",
            addr: kafka.brokers.clone(),
            reason: e.to_string(),
        });
    }
    let partitions = kafka.topic_partitions.max(1);
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let mut replication = kafka.topic_replication;
    loop {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
            .collect();
        let mut retry_with_one = false;
        for result in admin.create_topics(new.iter(), &opts).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                // A broker older than Kafka 2.4 has no "its default" (-1).
                Err((
                    _,
                    RDKafkaErrorCode::InvalidReplicationFactor | RDKafkaErrorCode::InvalidRequest,
                )) if replication == -1 => {
                    retry_with_one = true;
                }
                Err((topic, code)) => {
                    return Err(ProtoError::Setting {
                        name: "kafka topic",
                        reason: format!("cannot create {topic}: {code}"),
                    })
                }
            }
        }
        if !retry_with_one {
            return Ok(());
        }
        tracing::warn!("the broker takes no default replication factor; creating topics with 1 (set kafka.topic_replication)");
        replication = 1;
    }
}

/// Whether a produce error is one that retrying cannot fix (the record is
/// too large, or invalid, or the client is not authorised): such a record
/// must be set aside, not retried in front of everything behind it.
pub fn is_permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidTopic
                | C::InvalidRecord
                | C::InvalidRequiredAcks
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::UnsupportedForMessageFormat
        )
    )
}
