use thiserror::Error;

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error(transparent)]
    Proto(#[from] sweep_proto::ProtoError),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}
