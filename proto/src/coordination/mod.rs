//! The coordination store: where hunts, schedules, packs, identity pins and
//! the agents' liveness live. etcd (the default) and ZooKeeper sit behind
//! one [`Store`]; nothing else in sweep knows which is in use.
//!
//! - [`etcd`]: keys as etcd keys, liveness as a lease, watches from a
//!   revision; [`zookeeper`]: keys as znodes, liveness as an ephemeral node
//!   bound to the session, watches as one persistent recursive watch.
//!
//! What the store offers is what sweep needs, and nothing backend-specific:
//! read a key or a whole prefix, write (for good, only if absent, or until
//! an expiry), delete, follow a prefix without missing a change
//! ([`Follower`]), and hold a key while the process lives ([`Liveness`]).
//!
//! Keys are the [`Keyspace`]'s paths (`/sweep/hunts/<id>`): etcd takes them
//! as they are; in ZooKeeper every `/` is a level of the tree.

pub mod etcd;
pub mod zookeeper;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::keys::Keyspace;
use crate::settings::EtcdSettings;
use crate::ProtoError;
pub use zookeeper::ZooKeeperSettings;

/// Which store a binary coordinates through (`[coordination] backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// etcd v3, configured under `[etcd]`.
    #[default]
    Etcd,
    /// ZooKeeper 3.6 or later, configured under `[zookeeper]`.
    #[serde(alias = "zk")]
    ZooKeeper,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::ZooKeeper => "zookeeper",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "etcd" => Ok(Self::Etcd),
            "zookeeper" | "zk" => Ok(Self::ZooKeeper),
            other => Err(format!(
                "`{other}`: the coordination backend is etcd or zookeeper"
            )),
        }
    }
}

/// The `[coordination]` section: which backend; each backend's own section
/// (`[etcd]`, `[zookeeper]`) says where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinationSettings {
    /// `"etcd"` (the default) or `"zookeeper"`.
    pub backend: Backend,
}

/// The chosen backend with its settings: what [`Store::connect`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    Etcd(EtcdSettings),
    ZooKeeper(ZooKeeperSettings),
}

impl Coordination {
    /// The settings of `backend`, out of both sections.
    pub fn choose(backend: Backend, etcd: &EtcdSettings, zookeeper: &ZooKeeperSettings) -> Self {
        match backend {
            Backend::Etcd => Self::Etcd(etcd.clone()),
            Backend::ZooKeeper => Self::ZooKeeper(zookeeper.clone()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Etcd(_) => Backend::Etcd,
            Self::ZooKeeper(_) => Backend::ZooKeeper,
        }
    }

    pub fn keyspace(&self) -> Keyspace {
        match self {
            Self::Etcd(s) => s.keyspace(),
            Self::ZooKeeper(s) => s.keyspace(),
        }
    }

    /// Whether an agent's liveness belongs to its connection (a ZooKeeper
    /// session: every registration on it lives and dies with it) rather
    /// than to the registration itself (an etcd lease). Agents that must
    /// die alone then need a connection each.
    pub fn liveness_per_connection(&self) -> bool {
        matches!(self, Self::ZooKeeper(_))
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> String {
        match self {
            Self::Etcd(s) => s.endpoints.join(", "),
            Self::ZooKeeper(s) => s.endpoints.join(", "),
        }
    }

    /// Checks the settings without connecting: a typo fails at start-up
    /// with its name instead of as an endless "unreachable".
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Self::Etcd(s) => s.validate(),
            Self::ZooKeeper(s) => s.validate(),
        }
    }
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// Whether it lives only as long as its writer (an etcd lease, a
    /// ZooKeeper ephemeral node): a heartbeat that is not is no live agent.
    pub held: bool,
}

/// A change under a followed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Forget everything under the prefix: a full listing follows (at the
    /// start, and whenever the store cannot say what changed meanwhile).
    Reset,
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

/// A connection to the coordination store. Clones share it.
#[derive(Clone)]
pub enum Store {
    // etcd's client is kilobytes; ZooKeeper's a pointer.
    Etcd(Box<etcd::EtcdStore>),
    ZooKeeper(zookeeper::ZkStore),
}

impl Store {
    /// Connects (ZooKeeper: opens a session, with `session_timeout` if
    /// given, else the settings' own).
    pub async fn connect(
        coordination: &Coordination,
        session_timeout: Option<Duration>,
    ) -> Result<Self, ProtoError> {
        Ok(match coordination {
            Coordination::Etcd(s) => Self::Etcd(Box::new(etcd::EtcdStore::connect(s).await?)),
            Coordination::ZooKeeper(s) => {
                Self::ZooKeeper(zookeeper::ZkStore::connect(s, session_timeout).await?)
            }
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Etcd(_) => Backend::Etcd,
            Self::ZooKeeper(_) => Backend::ZooKeeper,
        }
    }

    /// The value at `key`, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ProtoError> {
        match self {
            Self::Etcd(s) => s.get(key).await,
            Self::ZooKeeper(s) => s.get(key).await,
        }
    }

    /// Every key under `prefix` (a directory: it ends with `/`), in key
    /// order, as of one moment.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, ProtoError> {
        match self {
            Self::Etcd(s) => s.list(prefix).await,
            Self::ZooKeeper(s) => s.list(prefix).await,
        }
    }

    /// Writes `value` at `key`, for good; whether it replaced a value.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        match self {
            Self::Etcd(s) => s.put(key, value).await,
            Self::ZooKeeper(s) => s.put(key, value).await,
        }
    }

    /// Writes `value` at `key` until `ttl` has passed. etcd removes it then
    /// (a lease); ZooKeeper keeps it until someone deletes it, so what is
    /// written this way must carry its own expiry, which readers enforce
    /// (a hunt's `expires_at`) and the controller cleans up after
    /// ([`Store::remove_expired`]).
    pub async fn put_expiring(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), ProtoError> {
        match self {
            Self::Etcd(s) => s.put_expiring(key, value, ttl).await,
            Self::ZooKeeper(s) => s.put(key, value).await.map(drop),
        }
    }

    /// Deletes what was written under `prefix` with
    /// [`put_expiring`](Self::put_expiring) and whose time is up, as
    /// `expired` judges from its value; how many. etcd's leases do this by
    /// themselves (nothing is read); ZooKeeper needs it done.
    pub async fn remove_expired(
        &self,
        prefix: &str,
        expired: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, ProtoError> {
        let Self::ZooKeeper(s) = self else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in s.list(prefix).await? {
            if expired(&entry.value) && s.delete(&entry.key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes `value` at `key` only if nothing is there; whether it did.
    pub async fn create(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        match self {
            Self::Etcd(s) => s.create(key, value).await,
            Self::ZooKeeper(s) => s.create(key, value).await,
        }
    }

    /// Deletes `key`; whether it was there.
    pub async fn delete(&self, key: &str) -> Result<bool, ProtoError> {
        match self {
            Self::Etcd(s) => s.delete(key).await,
            Self::ZooKeeper(s) => s.delete(key).await,
        }
    }

    /// Follows `prefix`: a [`Change::Reset`] and every key first, then each
    /// change as it happens.
    pub fn follow(&self, prefix: &str) -> Follower {
        match self {
            Self::Etcd(s) => Follower::Etcd(Box::new(s.follow(prefix))),
            Self::ZooKeeper(s) => Follower::ZooKeeper(Box::new(s.follow(prefix))),
        }
    }

    /// Writes `value` at `key` for as long as this process keeps the
    /// returned [`Liveness`] renewed: it vanishes within about `ttl` of the
    /// process dying, and at once on [`Liveness::revoke`].
    pub async fn register(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Liveness, ProtoError> {
        Ok(match self {
            Self::Etcd(s) => Liveness::Etcd(Box::new(s.register(key, value, ttl).await?)),
            Self::ZooKeeper(s) => Liveness::ZooKeeper(s.register(key, value).await?),
        })
    }
}

/// What a follower has to say before it reads on: changes (a listing's, or
/// an event's several), then, once a watch is (re)established, that it is.
#[derive(Default)]
struct Outbox {
    pending: std::collections::VecDeque<Change>,
    announce: bool,
}

impl Outbox {
    /// The next thing to say: `Some(Some(change))`, `Some(None)` for "the
    /// watch is established", None when there is nothing.
    fn pop(&mut self) -> Option<Option<Change>> {
        if let Some(change) = self.pending.pop_front() {
            return Some(Some(change));
        }
        std::mem::take(&mut self.announce).then_some(None)
    }

    /// A full listing: forget everything, then each entry.
    fn listing(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.pending.push_back(Change::Reset);
        self.pending.extend(
            entries
                .into_iter()
                .map(|Entry { key, value, .. }| Change::Put { key, value }),
        );
    }

    fn push(&mut self, change: Change) {
        self.pending.push_back(change);
    }

    /// Say, after what is pending, that the watch is established.
    fn established(&mut self) {
        self.announce = true;
    }
}

/// A followed prefix. Call [`Follower::next`] again after an error: it
/// resumes where it was (etcd: from the last revision seen) or, when the
/// store cannot tell what changed meanwhile (a compacted revision, a
/// ZooKeeper reconnection), starts over with [`Change::Reset`] and a full
/// listing, so no change is ever missed.
pub enum Follower {
    Etcd(Box<etcd::EtcdFollower>),
    ZooKeeper(Box<zookeeper::ZkFollower>),
}

impl Follower {
    /// The next change, or None once each time the watch is (re)established
    /// (after the listing that comes with it, if any): from then on nothing
    /// is missed.
    pub async fn next(&mut self) -> Result<Option<Change>, ProtoError> {
        match self {
            Self::Etcd(f) => f.next().await,
            Self::ZooKeeper(f) => f.next().await,
        }
    }
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still held.
    Held,
    /// Gone for good (an expired lease or session): register again.
    Lost,
}

/// A key held while this process lives.
pub enum Liveness {
    Etcd(Box<etcd::EtcdLease>),
    ZooKeeper(zookeeper::ZkEphemeral),
}

impl Liveness {
    /// Renews the hold. An error means the store did not answer: the hold
    /// may still be there; try again, and register anew only once it has
    /// surely lapsed.
    pub async fn renew(&mut self) -> Result<Renewal, ProtoError> {
        match self {
            Self::Etcd(l) => l.renew().await,
            Self::ZooKeeper(l) => l.renew().await,
        }
    }

    /// Rewrites the held value.
    pub async fn update(&self, value: &[u8]) -> Result<(), ProtoError> {
        match self {
            Self::Etcd(l) => l.update(value).await,
            Self::ZooKeeper(l) => l.update(value).await,
        }
    }

    /// Lets go at once: the key is deleted.
    pub async fn revoke(self) -> Result<(), ProtoError> {
        match self {
            Self::Etcd(l) => (*l).revoke().await,
            Self::ZooKeeper(l) => l.revoke().await,
        }
    }

    /// An identifier for logs (a lease id, a session id).
    pub fn id(&self) -> String {
        match self {
            Self::Etcd(l) => l.id(),
            Self::ZooKeeper(l) => l.id(),
        }
    }
}
