use thiserror::Error;

/// Everything that can go wrong inside the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Proto(#[from] sweep_proto::ProtoError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The query ran past one of its limits.
    #[error("query interrupted: {0}")]
    Limit(String),
    /// A table scan stopped because its query was interrupted.
    #[error("interrupted")]
    Interrupted,
    #[error("table {table}: {reason}")]
    Table { table: &'static str, reason: String },
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    /// The coordination store dropped the agent's registration (an etcd
    /// lease or a ZooKeeper session not renewed for a TTL).
    #[error("registration ({0}) lost")]
    LeaseExpired(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("spool {path}: {source}")]
    Spool {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Shutdown was asked for before start-up finished.
    #[error("shut down during start-up")]
    Shutdown,
    /// A blocking query task panicked or was cancelled.
    #[error("query task: {0}")]
    Task(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl AgentError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
