//! `sweep results HUNT_ID`: what a hunt has got so far — every answer on
//! `sweep.results` up to now, and which live targeted agents have not
//! answered yet (an agent that comes online while the hunt is live runs it
//! then, so this changes until the hunt expires).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use sweep_proto::signing::Signer;
use sweep_proto::time::unix_now;
use sweep_proto::{topics, Hunt};

use super::hunt::Sinks;
use crate::cli::ResultsArgs;
use crate::config::Settings;
use crate::hunting::Answers;
use crate::identities::Identities;
use crate::kafka::TopicReader;
use crate::progress::Limits;
use crate::{fleet, operator, ControllerError};

pub async fn run(settings: &Settings, args: ResultsArgs) -> Result<u8, ControllerError> {
    let started = Instant::now();
    // A path that cannot be written fails before the topic is read.
    let sinks = Sinks::open(
        args.format.format(),
        args.output.as_deref(),
        args.outcomes.as_deref(),
    )?;
    let keys = settings.keyspace();
    let store = settings.store().await?;
    // A live hunt says whom it targets; an expired one is gone from the store and
    // only its answers are left.
    let stored = store.get(&keys.hunt(&args.hunt_id)).await?;
    let signer = settings
        .signing_key
        .as_deref()
        .map(Signer::load)
        .transpose()?;
    let mut identities = Identities::load(&store, &keys, signer.as_ref()).await?;
    let live = fleet::live_agents(&store, &keys).await?;
    identities
        .observe(&store, &keys, signer.as_ref(), &live)
        .await?;
    let mut partition = None;
    let expected: BTreeSet<String> = match stored {
        Some(value) => {
            let hunt = Hunt::from_json(operator::body(&value)?.as_bytes())?;
            partition = hunt.partition;
            let mut expected: BTreeSet<String> = live
                .into_iter()
                .filter(|a| hunt.targets.matches(&a.host_id, &a.labels))
                .map(|a| a.host_id)
                .collect();
            expected.extend(args.expect.hosts(&identities, &hunt.targets, unix_now())?);
            expected
        }
        None => {
            eprintln!(
                "hunt {} is not live (expired or unknown); showing the answers on record",
                args.hunt_id
            );
            BTreeSet::new()
        }
    };
    // A live hunt names the partition of sweep.hunts its answers are in;
    // otherwise every partition is read.
    let reader = TopicReader::new(&settings.kafka, topics::HUNTS)?;
    let mut ends = reader.end_offsets()?;
    if let Some(p) = partition {
        ends.retain(|q, _| *q == p);
    }
    reader.assign(&ends.keys().map(|p| (*p, Offset::Beginning)).collect())?;
    let mut remaining: BTreeMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    let mut answers = Answers::new(&args.hunt_id, identities);
    while !remaining.is_empty() {
        let Some(rec) = reader.next(Duration::from_secs(5)).await? else {
            return Err(ControllerError::Usage(
                "the broker stopped sending before the end of sweep.hunts".into(),
            ));
        };
        if remaining
            .get(&rec.partition)
            .is_some_and(|end| rec.offset + 1 >= *end)
        {
            remaining.remove(&rec.partition);
        }
        answers.absorb(&rec.payload);
    }
    let finished = answers.finish(&expected, None, started.elapsed());
    super::hunt::report(finished, sinks, Limits::default())
}
