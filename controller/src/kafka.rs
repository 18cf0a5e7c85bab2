//! Reading a topic without joining a consumer group: the controller assigns
//! partitions itself from offsets it chose (e.g. the end of the topic taken
//! before a hunt is written), which avoids a group join's seconds of delay.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sweep_proto::KafkaSettings;

use crate::ControllerError;

const META_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TopicReader {
    consumer: StreamConsumer,
    topic: String,
}

/// A record's position and payload, copied out of the consumer's buffers.
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

impl TopicReader {
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Result<Self, ControllerError> {
        let mut cfg = kafka.client_config();
        // A group id is required by librdkafka's consumer, but with assign()
        // and no commits the group is never joined.
        cfg.set("group.id", "sweep-controller")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in &kafka.properties {
            cfg.set(k, v);
        }
        let consumer: StreamConsumer = cfg.create()?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The topic's partitions and, for each, the offset of the next record.
    pub fn end_offsets(&self) -> Result<BTreeMap<i32, i64>, ControllerError> {
        Ok(self
            .bounds()?
            .into_iter()
            .map(|(p, (_, high))| (p, high))
            .collect())
    }

    /// The topic's partitions and, for each, the offset of its oldest record
    /// still kept and of the next record: a partition whose old records were
    /// all deleted has nothing to read even though its end is past 0.
    pub fn bounds(&self) -> Result<BTreeMap<i32, (i64, i64)>, ControllerError> {
        let meta = self
            .consumer
            .fetch_metadata(Some(&self.topic), META_TIMEOUT)?;
        let mut out = BTreeMap::new();
        for t in meta.topics() {
            if let Some(err) = t.error() {
                return Err(ControllerError::Usage(format!(
                    "topic {}: {:?}",
                    self.topic,
                    rdkafka::types::RDKafkaErrorCode::from(err)
                )));
            }
            for p in t.partitions() {
                let (low, high) =
                    self.consumer
                        .fetch_watermarks(&self.topic, p.id(), META_TIMEOUT)?;
                out.insert(p.id(), (low, high));
            }
        }
        if out.is_empty() {
            return Err(ControllerError::Usage(format!(
                "topic {} has no partitions",
                self.topic
            )));
        }
        Ok(out)
    }

    /// Starts reading every partition from the given offsets.
    pub fn assign(&self, offsets: &BTreeMap<i32, Offset>) -> Result<(), ControllerError> {
        let mut tpl = TopicPartitionList::new();
        for (p, off) in offsets {
            tpl.add_partition_offset(&self.topic, *p, *off)?;
        }
        self.consumer.assign(&tpl)?;
        Ok(())
    }

    /// The next record, or None when nothing came within `wait`.
    pub async fn next(&self, wait: Duration) -> Result<Option<Received>, ControllerError> {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => Ok(None),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(msg)) => {
                // Copy out at once: a borrowed message must not outlive the consumer.
                let rec = Received {
                    partition: msg.partition(),
                    offset: msg.offset(),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                };
                drop(msg);
                Ok(Some(rec))
            }
        }
    }
}
