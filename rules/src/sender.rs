//! Matches to `sweep.matches`: one librdkafka producer for the process.
//! Each record carries the channel its delivery report goes to, so whichever
//! worker polls the producer, the report reaches the worker that sent it.
//!
//! Not rdkafka's `FutureProducer`: it polls from a thread of its own in
//! 100 ms steps, and the last millisecond of each step is a busy loop (the
//! time left is rounded down to whole milliseconds, so the final poll does
//! not block): about 1 % of a core for an idle process.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

/// How one record fared: its batch's number, its place in the batch, and
/// the broker's answer.
#[derive(Debug)]
pub struct Outcome {
    pub batch: u64,
    pub index: usize,
    pub result: KafkaResult<()>,
}

type Opaque = Box<(u64, usize, mpsc::Sender<Outcome>)>;

/// Hands each delivery report to the worker that sent the record.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        let (batch, index, to) = *opaque;
        // The worker may be gone (shutdown); nothing to do then.
        let _ = to.send(Outcome {
            batch,
            index,
            result: result.as_ref().map(drop).map_err(|(e, _)| e.clone()),
        });
    }
}

pub struct Sender {
    producer: BaseProducer<Deliveries>,
    topic: &'static str,
}

impl Sender {
    pub fn new(config: &ClientConfig, topic: &'static str) -> KafkaResult<Self> {
        Ok(Self {
            producer: config.create_with_context(Deliveries)?,
            topic,
        })
    }

    /// Queues one record; its [`Outcome`] reaches `to` once the broker has
    /// answered and someone polled. An error here is librdkafka refusing to
    /// queue it (a full queue: try again later; too large: never).
    pub fn send(
        &self,
        key: &str,
        payload: &str,
        (batch, index): (u64, usize),
        to: &mpsc::Sender<Outcome>,
    ) -> KafkaResult<()> {
        let record = BaseRecord::with_opaque_to(self.topic, Box::new((batch, index, to.clone())))
            .key(key)
            .payload(payload);
        self.producer.send(record).map_err(|(e, _)| e)
    }

    /// Serves the delivery reports waiting (a few events, each a set of
    /// reports), without blocking.
    pub fn poll(&self) {
        for _ in 0..4 {
            self.producer.poll(Duration::ZERO);
        }
    }
}

/// Whether a failure to queue a record will pass (librdkafka's queue is
/// full) rather than repeat forever.
pub fn is_queue_full(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
    )
}
