use rdkafka::error::KafkaError;
use sweep_proto::{Backend, ProtoError};
use thiserror::Error;

use crate::config::Settings;

/// What went wrong, in one line; [`hint`](ControllerError::hint) says what
/// to do about it where there is something to say.
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
    /// No endpoint of the coordination store (etcd or ZooKeeper) answered
    /// (see [`explained`](Self::explained)).
    #[error("cannot reach {store} at {endpoints}: {reason}")]
    StoreUnreachable {
        store: &'static str,
        endpoints: String,
        reason: String,
    },
    /// No Kafka broker answered.
    #[error("cannot reach the Kafka broker at {brokers}: {reason}")]
    KafkaUnreachable { brokers: String, reason: String },
    /// The guard refused a hunt's SQL or one of its discovery queries:
    /// nothing was sent (`sweep hunt` exits 2).
    #[error("{0}")]
    Refused(String),
    /// A hunt's targets match no live agent and no host is expected:
    /// there is nobody to wait for, and the hunt was not sent.
    #[error("{}", no_targets(targets, *live))]
    NoTargets {
        /// The targets, as `render::targets` shows them.
        targets: String,
        /// Live agents, targeted or not.
        live: usize,
    },
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// A schedule or pack name that cannot be a key segment.
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

fn no_targets(targets: &str, live: usize) -> String {
    match live {
        0 => format!("no agent is live, so none matches the targets ({targets}); the hunt was not sent"),
        1 => format!("no live agent matches the targets ({targets}); 1 agent is live; the hunt was not sent"),
        n => format!("no live agent matches the targets ({targets}); {n} agents are live; the hunt was not sent"),
    }
}

/// gRPC status codes etcd's client reports an unreachable server with
/// (tonic, whose enum they are, is no direct dependency).
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

impl ControllerError {
    /// The error with what it lacks to be acted on: an unreachable store or
    /// broker named with the addresses tried and the cause in one line
    /// (instead of a gRPC or librdkafka dump), which [`hint`](Self::hint)
    /// then says what to do about.
    pub fn explained(self, settings: &Settings) -> Self {
        let store = |reason: String| Self::StoreUnreachable {
            store: match settings.coordination.backend() {
                Backend::Etcd => "etcd",
                Backend::ZooKeeper => "ZooKeeper",
            },
            endpoints: settings.coordination.endpoints(),
            reason,
        };
        let kafka = |reason: String| Self::KafkaUnreachable {
            brokers: settings.kafka.brokers.clone(),
            reason,
        };
        match self {
            Self::Etcd(e) | Self::Proto(ProtoError::Etcd(e)) => match etcd_unreachable(&e) {
                Some(reason) => store(reason),
                None => Self::Etcd(e),
            },
            Self::Proto(ProtoError::ZooKeeper(
                e @ (zookeeper_client::Error::ConnectionLoss
                | zookeeper_client::Error::Timeout
                | zookeeper_client::Error::NoHosts),
            )) => store(e.to_string()),
            Self::Proto(ProtoError::Unreachable {
                what: "etcd" | "ZooKeeper",
                reason,
                ..
            }) => store(reason),
            Self::Proto(ProtoError::Unreachable {
                what: "Kafka",
                reason,
                ..
            }) => kafka(reason),
            Self::Kafka(e) | Self::Proto(ProtoError::Kafka(e)) if broker_unreachable(&e) => {
                kafka(e.to_string())
            }
            other => other,
        }
    }

    /// What to do about this error, when there is more to say than it does.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::StoreUnreachable { store: "etcd", .. } => Some(format!(
                "is etcd running there? `ops/quickstart` starts one at {} (the default); \
                 to use another, pass --etcd URL[,URL...], set SWEEP_ETCD, or set endpoints \
                 under [etcd] in the --config file",
                sweep_proto::settings::DEFAULT_ETCD
            )),
            Self::StoreUnreachable { .. } => Some(format!(
                "is ZooKeeper running there? `ops/quickstart --zookeeper` starts one at {}; \
                 to use another, pass --zookeeper HOST:PORT[,...], set SWEEP_ZOOKEEPER, or set \
                 endpoints under [zookeeper] in the --config file",
                sweep_proto::coordination::zookeeper::DEFAULT_ZOOKEEPER
            )),
            Self::KafkaUnreachable { .. } => Some(format!(
                "is the broker running there? `ops/quickstart` starts one at {} (the default); \
                 to use another, pass --kafka HOST:PORT, set SWEEP_KAFKA, or set brokers under \
                 [kafka] in the --config file",
                sweep_proto::settings::DEFAULT_KAFKA
            )),
            Self::NoTargets { .. } => Some(
                "`sweep agents` lists the live agents and their labels; to wait for hosts \
                 that are not live now, name them with --expect-file FILE or --expect-seen 24h"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Why etcd could not be reached, in one line, when that is what `e` says.
fn etcd_unreachable(e: &etcd_client::Error) -> Option<String> {
    match e {
        etcd_client::Error::GRpcStatus(s)
            if matches!(
                i32::from(s.code()),
                GRPC_UNAVAILABLE | GRPC_DEADLINE_EXCEEDED
            ) =>
        {
            Some(with_cause(s.message(), s))
        }
        etcd_client::Error::TransportError(t) => Some(with_cause("", t)),
        _ => None,
    }
}

/// Whether a Kafka error means no broker could be reached.
fn broker_unreachable(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(Code::BrokerTransportFailure | Code::AllBrokersDown | Code::Resolve)
    ) || matches!(e, KafkaError::MetadataFetch(Code::OperationTimedOut))
}

/// `message: innermost cause` (`tcp connect error: Connection refused (os
/// error 111)`): what the layers in between add is noise to an operator.
fn with_cause(message: &str, e: &dyn std::error::Error) -> String {
    let mut innermost = None;
    let mut next = e.source();
    while let Some(cause) = next {
        innermost = Some(cause);
        next = cause.source();
    }
    let cause = innermost.map(|c| c.to_string()).unwrap_or_default();
    match (message.is_empty(), cause.is_empty()) {
        (true, true) => e.to_string(),
        (true, false) => cause,
        (false, true) => message.to_string(),
        (false, false) if message.contains(&cause) => message.to_string(),
        (false, false) => format!("{message}: {cause}"),
    }
}
