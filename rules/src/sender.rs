//! Matches to `sweep.matches`: one librdkafka producer for the process,
//! polled by the worker that waits for its deliveries.
//!
//! Not rdkafka's `FutureProducer`: it polls from a thread of its own in
//! 100 ms steps, and the last millisecond of each step is a busy loop (the
//! time left is rounded down to whole milliseconds, so the final poll does
//! not block): about 1 % of a core for an idle process.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

/// A delivery's number in its batch and where its result goes.
type Opaque = Box<(usize, mpsc::Sender<(usize, KafkaResult<()>)>)>;

/// Hands each delivery report to the batch that sent the record.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Opaque) {
        let (i, to) = *opaque;
        // The batch may have stopped waiting (shutdown); nothing to do then.
        let _ = to.send((i, result.as_ref().map(drop).map_err(|(e, _)| e.clone())));
    }
}

pub struct Sender {
    producer: BaseProducer<Deliveries>,
    topic: &'static str,
}

/// How long a worker waits between polls while its deliveries are out: from
/// the first to the last, doubling while nothing arrives (a broker's ack
/// takes from a millisecond to many; polling without a pause would spin).
const POLL_FIRST: Duration = Duration::from_micros(200);
const POLL_LAST: Duration = Duration::from_millis(20);

impl Sender {
    pub fn new(config: &ClientConfig, topic: &'static str) -> KafkaResult<Self> {
        Ok(Self {
            producer: config.create_with_context(Deliveries)?,
            topic,
        })
    }

    /// Sends each `(key, payload)` and waits until the broker has taken or
    /// refused each one (librdkafka retries within `message.timeout.ms`).
    /// The results are in the records' order; None when `stop` said to
    /// give up first.
    pub fn send_all(
        &self,
        records: &[(&str, &str)],
        stop: impl Fn() -> bool,
    ) -> Option<Vec<KafkaResult<()>>> {
        let (to, from) = mpsc::channel();
        let mut results: Vec<Option<KafkaResult<()>>> = vec![None; records.len()];
        for (i, (key, payload)) in records.iter().enumerate() {
            let mut record = BaseRecord::with_opaque_to(self.topic, Box::new((i, to.clone())))
                .key(*key)
                .payload(*payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // librdkafka's queue is full: let deliveries drain.
                        record = r;
                        self.producer.poll(Duration::ZERO);
                        if stop() {
                            return None;
                        }
                        std::thread::sleep(POLL_LAST);
                    }
                    Err((e, _)) => {
                        results[i] = Some(Err(e));
                        break;
                    }
                }
            }
        }
        drop(to);
        let mut pending = results.iter().filter(|r| r.is_none()).count();
        let mut pause = POLL_FIRST;
        while pending > 0 {
            // One event per call (each holds a set of reports); then
            // whatever reached the channel, from this or another worker's
            // polling.
            self.producer.poll(Duration::ZERO);
            let mut got = false;
            while let Ok((i, result)) = from.try_recv() {
                got = true;
                if results[i].replace(result).is_none() {
                    pending -= 1;
                }
            }
            if got {
                pause = POLL_FIRST;
            } else {
                if stop() {
                    return None;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(POLL_LAST);
            }
        }
        Some(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }
}
