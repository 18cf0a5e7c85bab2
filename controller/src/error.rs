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
    /// A schedule or pack name that cannot be an etcd key segment.
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: String,
    },
    /// `rm` of something that is not there.
    #[error("no {what} named `{name}`")]
    NotFound { what: &'static str, name: String },
    /// A pack file that could not be read or understood; `line` when the
    /// problem has a place in the file.
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    PackFile {
        path: String,
        line: Option<usize>,
        reason: String,
    },
}
