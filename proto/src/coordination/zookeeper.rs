//! ZooKeeper behind the [`Store`](super::Store) (seed 002's choice): every
//! key a znode (`/sweep/hunts/<id>`), liveness an ephemeral znode bound to
//! this process's session, a prefix followed by one persistent recursive
//! watch (ZooKeeper 3.6+).
//!
//! ZooKeeper has no revision to resume a watch from, and a persistent watch
//! can miss what changed while the connection was down (ZOOKEEPER-4698): so
//! after every reconnection a follower lists its prefix again and starts
//! over with a [`Change::Reset`]. An expired session loses its ephemeral
//! nodes and its watches; the store then opens a new session on next use,
//! and the holder of the liveness node registers again, as after a lapsed
//! etcd lease.
//!
//! Nothing expires by itself here: TTL nodes need a server setting
//! (`extendedTypesEnabled`) most installations lack, so what is written with
//! an expiry carries it in its value (a hunt's `expires_at`), readers enforce
//! it and the controller deletes what has expired.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::{Change, Entry, Outbox, Renewal};
use crate::keys::{Keyspace, DEFAULT_PREFIX};
use crate::settings::humantime_serde_compat;
use crate::ProtoError;

/// The quickstart's ZooKeeper (`ops/quickstart --zookeeper`).
pub const DEFAULT_ZOOKEEPER: &str = "127.0.0.1:12181";

/// Reads issued at once while listing a prefix (pipelined on the session's
/// one connection).
const READ_BATCH: usize = 256;

/// The `[zookeeper]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZooKeeperSettings {
    /// `host:port` of each server of the ensemble.
    pub endpoints: Vec<String>,
    /// A znode that all of sweep's paths are under, as ZooKeeper's chroot
    /// (e.g. "/prod"); created when missing. Empty: the root.
    pub chroot: String,
    /// Root of sweep's keys (under the chroot); several installations can
    /// share one ensemble.
    pub prefix: String,
    /// The session timeout asked for (the server bounds it, by default
    /// between 2 and 20 ticks). An agent asks for its `[heartbeat] ttl`
    /// instead: its liveness node vanishes that long after it dies.
    #[serde(with = "humantime_serde_compat")]
    pub session_timeout: Duration,
    /// How long to wait for a connection to one server, e.g. "5s".
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// Digest authentication (`addauth digest user:password`). With it,
    /// sweep's znodes are created readable and writable only by that user,
    /// so every sweep component of one installation logs in as the same one.
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the servers' certificates; turns TLS
    /// on (the servers' `secureClientPort`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, when the servers ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl Default for ZooKeeperSettings {
    fn default() -> Self {
        Self {
            endpoints: vec![DEFAULT_ZOOKEEPER.to_string()],
            chroot: String::new(),
            prefix: DEFAULT_PREFIX.to_string(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl ZooKeeperSettings {
    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(&self.prefix)
    }

    /// Checks that every endpoint is `host:port`, the chroot and prefix are
    /// absolute paths, and the TLS files go together.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |name: &'static str, reason: String| Err(ProtoError::Setting { name, reason });
        if self.endpoints.is_empty() {
            return bad("zookeeper.endpoints", "no endpoint given".into());
        }
        for e in &self.endpoints {
            let ok = e.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
            });
            if !ok {
                return bad(
                    "zookeeper.endpoints",
                    format!("`{e}` is not host:port (e.g. 127.0.0.1:2181)"),
                );
            }
        }
        if !self.chroot.is_empty() && (!self.chroot.starts_with('/') || self.chroot.ends_with('/'))
        {
            return bad(
                "zookeeper.chroot",
                format!("`{}`: a znode path, like /sweep-prod", self.chroot),
            );
        }
        if !self.prefix.starts_with('/')
            || !self.prefix.ends_with('/')
            || self.prefix.contains("//")
        {
            return bad(
                "zookeeper.prefix",
                format!(
                    "`{}`: a path that starts and ends with /, like /sweep/",
                    self.prefix
                ),
            );
        }
        if self.ca_file.is_none() && (self.cert_file.is_some() || self.key_file.is_some()) {
            return bad(
                "zookeeper.ca_file",
                "a client certificate needs ca_file too".into(),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return bad(
                "zookeeper.cert_file",
                "cert_file and key_file go together".into(),
            );
        }
        if self.username.is_some() != self.password.is_some() {
            return bad(
                "zookeeper.username",
                "username and password go together".into(),
            );
        }
        Ok(())
    }

    fn tls(&self) -> Result<Option<zk::TlsOptions>, ProtoError> {
        let Some(ca) = &self.ca_file else {
            return Ok(None);
        };
        let read = |name: &'static str, path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|e| ProtoError::Setting {
                name,
                reason: format!("{}: {e}", path.display()),
            })
        };
        let bad = |name: &'static str| {
            move |e: zk::Error| ProtoError::Setting {
                name,
                reason: e.to_string(),
            }
        };
        let mut tls = zk::TlsOptions::default()
            .with_pem_ca(&read("zookeeper.ca_file", ca)?)
            .map_err(bad("zookeeper.ca_file"))?;
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            tls = tls
                .with_pem_identity(
                    &read("zookeeper.cert_file", cert)?,
                    &read("zookeeper.key_file", key)?,
                )
                .map_err(bad("zookeeper.cert_file"))?;
        }
        Ok(Some(tls))
    }

    /// Opens a session, with the chroot in place (created when missing).
    async fn session(&self, timeout: Duration) -> Result<zk::Client, ProtoError> {
        self.validate()?;
        let unreachable = |e: zk::Error| ProtoError::Unreachable {
            what: "ZooKeeper",
            addr: self.endpoints.join(","),
            reason: e.to_string(),
        };
        // The client itself would try the servers over and over until the
        // session timeout: when none even accepts a connection, say so now.
        let mut refused = None;
        for e in &self.endpoints {
            match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(e))
                .await
            {
                Ok(Ok(_)) => {
                    refused = None;
                    break;
                }
                Ok(Err(err)) => refused = Some(err.to_string()),
                Err(_) => refused = Some(format!("no answer in {:?}", self.connect_timeout)),
            }
        }
        if let Some(reason) = refused {
            return Err(ProtoError::Unreachable {
                what: "ZooKeeper",
                addr: self.endpoints.join(","),
                reason,
            });
        }
        let mut connector = zk::Client::connector()
            .with_session_timeout(timeout)
            .with_connection_timeout(self.connect_timeout);
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
        }
        let servers = self.endpoints.join(",");
        let client = match self.tls()? {
            Some(tls) => {
                // rustls picks no provider by itself when two are built in
                // (ring for etcd and the console, aws-lc for this client):
                // ring, for every TLS client of the process.
                let _ = rustls::crypto::ring::default_provider().install_default();
                connector
                    .with_tls(tls)
                    .secure_connect(&servers)
                    .await
                    .map_err(unreachable)?
            }
            None => connector.connect(&servers).await.map_err(unreachable)?,
        };
        if self.chroot.is_empty() {
            return Ok(client);
        }
        match client.mkdir(&self.chroot, &persistent(self)).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
        client
            .chroot(self.chroot.as_str())
            .map_err(|_| ProtoError::Setting {
                name: "zookeeper.chroot",
                reason: format!("`{}` is not a usable znode path", self.chroot),
            })
    }
}

/// How sweep creates a znode of `mode`. Who may touch it: everyone on an
/// open ensemble, only sweep's own user when it logs in.
fn create(settings: &ZooKeeperSettings, mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    let acls = if settings.username.is_some() {
        zk::Acls::creator_all()
    } else {
        zk::Acls::anyone_all()
    };
    mode.with_acls(acls)
}

fn persistent(settings: &ZooKeeperSettings) -> zk::CreateOptions<'static> {
    create(settings, zk::CreateMode::Persistent)
}

fn ephemeral(settings: &ZooKeeperSettings) -> zk::CreateOptions<'static> {
    create(settings, zk::CreateMode::Ephemeral)
}

/// The znode of a prefix (`/sweep/hunts/` is `/sweep/hunts`).
fn dir_of(prefix: &str) -> &str {
    match prefix.trim_end_matches('/') {
        "" => "/",
        dir => dir,
    }
}

/// The parent znode of a key's znode, if it is not the root.
fn parent_of(key: &str) -> Option<&str> {
    match key.rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((parent, _)) => Some(parent),
    }
}

fn terminal(state: zk::SessionState) -> bool {
    matches!(
        state,
        zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
    )
}

/// A ZooKeeper session, opened again when it expires (clones share it).
#[derive(Clone)]
pub struct ZkStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ZooKeeperSettings,
    session_timeout: Duration,
    client: Mutex<zk::Client>,
}

impl ZkStore {
    pub async fn connect(
        settings: &ZooKeeperSettings,
        session_timeout: Option<Duration>,
    ) -> Result<Self, ProtoError> {
        let session_timeout = session_timeout.unwrap_or(settings.session_timeout);
        let client = settings.session(session_timeout).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                session_timeout,
                client: Mutex::new(client),
            }),
        })
    }

    /// The session's client; a new session when the last one ended.
    async fn client(&self) -> Result<zk::Client, ProtoError> {
        let mut client = self.inner.client.lock().await;
        if terminal(client.state()) {
            let fresh = self
                .inner
                .settings
                .session(self.inner.session_timeout)
                .await?;
            info!(
                old = %client.session_id(),
                new = %fresh.session_id(),
                "ZooKeeper session ended; opened a new one"
            );
            *client = fresh;
        }
        Ok(client.clone())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ProtoError> {
        match self.client().await?.get_data(key).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, ProtoError> {
        list(&self.client().await?, prefix).await
    }

    /// Creates the znodes above `key` that are missing.
    async fn parents(&self, client: &zk::Client, key: &str) -> Result<(), ProtoError> {
        if let Some(parent) = parent_of(key) {
            match client
                .mkdir(parent, &persistent(&self.inner.settings))
                .await
            {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        let client = self.client().await?;
        // Mostly an update of what is there; else a create, which another
        // writer may win, and then an update again.
        for _ in 0..3 {
            match client.set_data(key, value, None).await {
                Ok(_) => return Ok(true),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
            self.parents(&client, key).await?;
            match client
                .create(key, value, &persistent(&self.inner.settings))
                .await
            {
                Ok(_) => return Ok(false),
                Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(zk::Error::RuntimeInconsistent.into())
    }

    pub async fn create(&self, key: &str, value: &[u8]) -> Result<bool, ProtoError> {
        let client = self.client().await?;
        self.parents(&client, key).await?;
        match client
            .create(key, value, &persistent(&self.inner.settings))
            .await
        {
            Ok(_) => Ok(true),
            Err(zk::Error::NodeExists) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ProtoError> {
        match self.client().await?.delete(key, None).await {
            Ok(()) => Ok(true),
            Err(zk::Error::NoNode) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn follow(&self, prefix: &str) -> ZkFollower {
        ZkFollower {
            store: self.clone(),
            prefix: prefix.to_string(),
            watch: None,
            relist: true,
            out: Outbox::default(),
        }
    }

    /// An ephemeral znode at `key` on the current session. One left by an
    /// earlier session of this host (a restart before that session timed
    /// out) is replaced.
    pub async fn register(&self, key: &str, value: &[u8]) -> Result<ZkEphemeral, ProtoError> {
        let client = self.client().await?;
        self.parents(&client, key).await?;
        let session = client.session_id().0;
        for _ in 0..3 {
            match client
                .create(key, value, &ephemeral(&self.inner.settings))
                .await
            {
                Ok(_) => {
                    return Ok(ZkEphemeral {
                        client,
                        key: key.to_string(),
                    })
                }
                Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
            match client.check_stat(key).await? {
                Some(stat) if stat.ephemeral_owner == session => {
                    // Ours already (a retry after a lost answer).
                    client.set_data(key, value, None).await?;
                    return Ok(ZkEphemeral {
                        client,
                        key: key.to_string(),
                    });
                }
                Some(stat) => match client.delete(key, Some(stat.version)).await {
                    Ok(()) | Err(zk::Error::NoNode) | Err(zk::Error::BadVersion) => {}
                    Err(e) => return Err(e.into()),
                },
                None => {}
            }
        }
        Err(zk::Error::NodeExists.into())
    }
}

/// Every znode with a value under `prefix`, in key order. The directories
/// sweep creates on the way (`/sweep/hunts`) have none and are left out.
async fn list(client: &zk::Client, prefix: &str) -> Result<Vec<Entry>, ProtoError> {
    let mut out = Vec::new();
    let mut dirs = vec![dir_of(prefix).to_string()];
    while let Some(dir) = dirs.pop() {
        let children = match client.list_children(&dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e.into()),
        };
        let paths: Vec<String> = children
            .iter()
            .map(|c| match dir.as_str() {
                "/" => format!("/{c}"),
                d => format!("{d}/{c}"),
            })
            .collect();
        for batch in paths.chunks(READ_BATCH) {
            let reads = futures::future::join_all(batch.iter().map(|p| client.get_data(p))).await;
            for (path, read) in batch.iter().zip(reads) {
                match read {
                    Ok((data, stat)) => {
                        if stat.num_children > 0 {
                            dirs.push(path.clone());
                        }
                        if !data.is_empty() {
                            out.push(Entry {
                                key: path.clone(),
                                value: data,
                                held: stat.ephemeral_owner != 0,
                            });
                        }
                    }
                    // Deleted since it was listed.
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A prefix followed by one persistent recursive watch.
pub struct ZkFollower {
    store: ZkStore,
    prefix: String,
    /// The session the watch is on, and the watch.
    watch: Option<(zk::Client, zk::PersistentWatcher)>,
    /// List the prefix (again) before the next event.
    relist: bool,
    out: Outbox,
}

impl ZkFollower {
    pub async fn next(&mut self) -> Result<Option<Change>, ProtoError> {
        loop {
            if let Some(said) = self.out.pop() {
                return Ok(said);
            }
            // A session that ended while we were reading (not waiting on the
            // watch, which would have said so) takes its watch with it.
            if self
                .watch
                .as_ref()
                .is_some_and(|(c, _)| terminal(c.state()))
            {
                self.watch = None;
            }
            if self.watch.is_none() {
                let client = self.store.client().await?;
                let dir = dir_of(&self.prefix);
                // The watch first, then the listing: nothing falls between.
                if dir != "/" {
                    match client
                        .mkdir(dir, &persistent(&self.store.inner.settings))
                        .await
                    {
                        Ok(()) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let watcher = client
                    .watch(dir, zk::AddWatchMode::PersistentRecursive)
                    .await?;
                self.watch = Some((client, watcher));
                self.relist = true;
            }
            let Some((client, watcher)) = self.watch.as_mut() else {
                continue;
            };
            if self.relist {
                let entries = list(client, &self.prefix).await?;
                self.relist = false;
                self.out.listing(entries);
                self.out.established();
                continue;
            }
            let event = watcher.changed().await;
            match event.event_type {
                zk::EventType::Session => match event.session_state {
                    zk::SessionState::Disconnected => {
                        return Err(zk::Error::ConnectionLoss.into());
                    }
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        // Changes made while we were away do not come as
                        // events (ZOOKEEPER-4698), and the watch the client
                        // re-sent was seen to deliver nothing more after a
                        // server restart: watch afresh (before letting go of
                        // the old watch, so the path stays watched) and read
                        // everything again, as Curator does.
                        warn!(prefix = %self.prefix, "ZooKeeper connection back; watching afresh and re-reading");
                        match client
                            .watch(dir_of(&self.prefix), zk::AddWatchMode::PersistentRecursive)
                            .await
                        {
                            Ok(fresh) => *watcher = fresh,
                            Err(e) => {
                                self.watch = None;
                                return Err(e.into());
                            }
                        }
                        self.relist = true;
                    }
                    state => {
                        // The session is gone, and its watch with it.
                        self.watch = None;
                        return Err(session_ended(state));
                    }
                },
                zk::EventType::NodeCreated | zk::EventType::NodeDataChanged => {
                    match client.get_data(&event.path).await {
                        Ok((data, _)) if !data.is_empty() => self.out.push(Change::Put {
                            key: event.path,
                            value: data,
                        }),
                        Ok(_) | Err(zk::Error::NoNode) => {}
                        Err(e) => {
                            // Not knowing this change, start over.
                            self.relist = true;
                            return Err(e.into());
                        }
                    }
                }
                zk::EventType::NodeDeleted => self.out.push(Change::Delete { key: event.path }),
                zk::EventType::NodeChildrenChanged => {}
            }
        }
    }
}

/// Why a session that reached `state` (a terminal one) is gone.
fn session_ended(state: zk::SessionState) -> ProtoError {
    match state {
        zk::SessionState::AuthFailed => zk::Error::AuthFailed.into(),
        zk::SessionState::Closed => zk::Error::ClientClosed.into(),
        _ => zk::Error::SessionExpired.into(),
    }
}

/// An ephemeral znode, there while its session lives.
pub struct ZkEphemeral {
    /// The session it is bound to (not the store's next one).
    client: zk::Client,
    key: String,
}

impl ZkEphemeral {
    pub fn id(&self) -> String {
        format!("session {}", self.client.session_id())
    }

    pub async fn renew(&mut self) -> Result<Renewal, ProtoError> {
        // The client keeps the session alive itself; this checks that it
        // does, and that the node is still this session's.
        if terminal(self.client.state()) {
            return Ok(Renewal::Lost);
        }
        match self.client.check_stat(&self.key).await {
            Ok(Some(stat)) if stat.ephemeral_owner == self.client.session_id().0 => {
                Ok(Renewal::Held)
            }
            Ok(_) => Ok(Renewal::Lost),
            Err(zk::Error::SessionExpired) | Err(zk::Error::ClientClosed) => Ok(Renewal::Lost),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update(&self, value: &[u8]) -> Result<(), ProtoError> {
        self.client.set_data(&self.key, value, None).await?;
        Ok(())
    }

    pub async fn revoke(self) -> Result<(), ProtoError> {
        match self.client.delete(&self.key, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_keys_map_to_znodes() {
        assert_eq!(dir_of("/sweep/hunts/"), "/sweep/hunts");
        assert_eq!(dir_of("/"), "/");
        assert_eq!(parent_of("/sweep/hunts/abc"), Some("/sweep/hunts"));
        assert_eq!(parent_of("/sweep"), None);
    }

    #[test]
    fn settings_are_checked_before_connecting() {
        let ok = ZooKeeperSettings::default();
        assert!(ok.validate().is_ok());
        let bad = |f: fn(&mut ZooKeeperSettings)| {
            let mut s = ZooKeeperSettings::default();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(bad(|s| s.endpoints = vec!["http://zk:2181".into()]).contains("host:port"));
        assert!(bad(|s| s.endpoints.clear()).contains("no endpoint"));
        assert!(bad(|s| s.chroot = "prod".into()).contains("chroot"));
        assert!(bad(|s| s.prefix = "/sweep".into()).contains("prefix"));
        assert!(bad(|s| s.cert_file = Some("c.pem".into())).contains("ca_file"));
        assert!(bad(|s| s.username = Some("sweep".into())).contains("password"));
    }
}
