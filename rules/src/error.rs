use thiserror::Error;

#[derive(Debug, Error)]
pub enum RulesError {
    #[error("rule file {path}: {reason}")]
    RuleFile { path: String, reason: String },
    #[error("rule {id}: {reason}")]
    Rule { id: String, reason: String },
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Proto(#[from] sweep_proto::ProtoError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("state {path}: {reason}")]
    State { path: String, reason: String },
    #[error("admin listener on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}
