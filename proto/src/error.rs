use thiserror::Error;

/// Errors from the shared layer: the guard, record decoding, connections.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// The query guard refused a SQL text; the message says why.
    #[error("query refused: {0}")]
    Refused(String),
    /// SQLite could not prepare a SQL text the guard's rules allow (a syntax
    /// error, an unknown column, a table's missing required constraint).
    #[error("{0}")]
    Sql(String),
    /// A command's signature did not check out; it must not run.
    #[error("rejected: {0}")]
    Untrusted(String),
    /// A record or command could not be decoded.
    #[error("bad {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("ZooKeeper: {0}")]
    ZooKeeper(#[from] zookeeper_client::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot reach {what} at {addr}: {reason}")]
    Unreachable {
        what: &'static str,
        addr: String,
        reason: String,
    },
    #[error("invalid setting {name}: {reason}")]
    Setting { name: &'static str, reason: String },
}
