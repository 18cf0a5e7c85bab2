//! etcd behind the [`Store`](super::Store): keys as they are, liveness as a
//! lease kept alive by this process, a prefix followed by one watch from the
//! revision of its listing.
//!
//! A whole prefix is read in pages. A fleet's heartbeats or pins are
//! megabytes (10,000 heartbeats are 4.4 MB), more than one gRPC message may
//! carry (4 MiB by default); pages of a bounded count, all read at the
//! revision of the first, give the same consistent listing at any size.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use tracing::warn;

use super::{Change, Entry, Outbox, Renewal};
use crate::settings::EtcdSettings;
use crate::ProtoError;

/// An etcd client (clones share its connection).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl EtcdStore {
    pub async fn connect(settings: &EtcdSettings) -> Result<Self, ProtoError> {
        Ok(Self {
            client: settings.connect().await?,
        })
    }

    /// The client itself, for what only etcd has (its users and roles).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ProtoError> {
        let resp = self.client.clone().get(key, None).await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, ProtoError> {
        let (_, kvs) = get_prefix(&mut self.client.clone(), prefix).await?;
        Ok(kvs.iter().map(entry).collect())
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        let opts = PutOptions::new().with_prev_key();
        let resp = self.client.clone().put(key, value, Some(opts)).await?;
        Ok(resp.prev_key().is_some())
    }

    pub async fn put_expiring(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), ProtoError> {
        let mut client = self.client.clone();
        let lease = client
            .lease_grant(ttl.as_secs().max(1) as i64, None)
            .await?
            .id();
        client
            .put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await?;
        Ok(())
    }

    pub async fn create(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        Ok(self.client.clone().txn(txn).await?.succeeded())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ProtoError> {
        Ok(self.client.clone().delete(key, None).await?.deleted() > 0)
    }

    pub fn follow(&self, prefix: &str) -> EtcdFollower {
        EtcdFollower {
            client: self.client.clone(),
            prefix: prefix.to_string(),
            last_rev: None,
            stream: None,
            out: Outbox::default(),
        }
    }

    pub async fn register(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<EtcdLease, ProtoError> {
        let mut client = self.client.clone();
        let ttl = ttl.as_secs().max(2) as i64;
        let lease = client.lease_grant(ttl, None).await?.id();
        let held = EtcdLease {
            client: client.clone(),
            key: key.to_string(),
            lease,
            keeper: None,
        };
        held.update(value).await?;
        Ok(held)
    }
}

fn entry(kv: &KeyValue) -> Entry {
    Entry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        held: kv.lease() != 0,
    }
}

/// A prefix followed from a revision.
pub struct EtcdFollower {
    client: Client,
    prefix: String,
    /// The last revision delivered; None: list afresh.
    last_rev: Option<i64>,
    stream: Option<WatchStream>,
    out: Outbox,
}

impl EtcdFollower {
    pub async fn next(&mut self) -> Result<Option<Change>, ProtoError> {
        loop {
            if let Some(said) = self.out.pop() {
                return Ok(said);
            }
            if self.stream.is_none() {
                let start = match self.last_rev {
                    Some(rev) => rev + 1,
                    None => {
                        let (rev, kvs) = get_prefix(&mut self.client, &self.prefix).await?;
                        self.out.listing(kvs.iter().map(entry));
                        self.last_rev = Some(rev);
                        rev + 1
                    }
                };
                let opts = WatchOptions::new().with_prefix().with_start_revision(start);
                self.stream = Some(self.client.watch(self.prefix.as_str(), Some(opts)).await?);
                self.out.established();
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let message = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.stream = None;
                    return Err(ProtoError::Etcd(etcd_client::Error::WatchError(
                        "watch stream ended".into(),
                    )));
                }
                Err(e) => {
                    self.stream = None;
                    return Err(e.into());
                }
            };
            if message.canceled() || message.compact_revision() > 0 {
                // The revisions after ours are gone: read everything again.
                warn!(
                    prefix = %self.prefix,
                    compact_revision = message.compact_revision(),
                    "watch canceled or compacted; re-reading"
                );
                self.last_rev = None;
                self.stream = None;
                continue;
            }
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                let Entry { key, value, .. } = entry(kv);
                self.out.push(match event.event_type() {
                    EventType::Put => Change::Put { key, value },
                    EventType::Delete => Change::Delete { key },
                });
            }
            if let Some(h) = message.header() {
                self.last_rev = Some(h.revision());
            }
        }
    }
}

/// A key bound to a lease this process keeps alive.
pub struct EtcdLease {
    client: Client,
    key: String,
    lease: i64,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

impl EtcdLease {
    pub fn id(&self) -> String {
        format!("lease {}", self.lease)
    }

    pub async fn renew(&mut self) -> Result<Renewal, ProtoError> {
        if self.keeper.is_none() {
            // The stream broke last time: a new one, for the same lease.
            self.keeper = Some(self.client.lease_keep_alive(self.lease).await?);
        }
        let Some((keeper, responses)) = self.keeper.as_mut() else {
            unreachable!("set above")
        };
        let answer = match keeper.keep_alive().await {
            Ok(()) => responses.message().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(Some(r)) if r.ttl() > 0 => Ok(Renewal::Held),
            Ok(Some(_)) => Ok(Renewal::Lost),
            Ok(None) => {
                self.keeper = None;
                Err(ProtoError::Etcd(etcd_client::Error::LeaseKeepAliveError(
                    "keep-alive stream ended".into(),
                )))
            }
            Err(e) => {
                self.keeper = None;
                Err(e.into())
            }
        }
    }

    pub async fn update(&self, value: &[u8]) -> Result<(), ProtoError> {
        self.client
            .clone()
            .put(
                self.key.as_str(),
                value,
                Some(PutOptions::new().with_lease(self.lease)),
            )
            .await?;
        Ok(())
    }

    pub async fn revoke(mut self) -> Result<(), ProtoError> {
        self.client.lease_revoke(self.lease).await?;
        Ok(())
    }
}

/// Keys per page.
const PAGE: i64 = 500;

/// Every key-value under `prefix`, in key order, as of one revision, and
/// that revision (to watch from the next one).
pub async fn get_prefix(
    client: &mut Client,
    prefix: &str,
) -> Result<(i64, Vec<KeyValue>), etcd_client::Error> {
    let end = prefix_end(prefix.as_bytes());
    let mut start = prefix.as_bytes().to_vec();
    let mut revision = 0;
    let mut out = Vec::new();
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let resp = client.get(start.clone(), Some(opts)).await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.kvs();
        let Some(last) = kvs.last() else { break };
        // The next page starts just after the last key read.
        start = last.key().to_vec();
        start.push(0);
        out.extend_from_slice(kvs);
        if !more {
            break;
        }
    }
    Ok((revision, out))
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(super::prefix_end(b"/sweep/agents/"), b"/sweep/agents0");
        assert_eq!(super::prefix_end(b"a\xff"), b"b");
        assert_eq!(super::prefix_end(b"\xff"), b"\0");
    }
}
