//! The end-to-end harness: a real coordination store (etcd, or ZooKeeper with
//! [`Cluster::start_on`]) and a real Kafka-protocol broker (Tansu) on free
//! loopback ports with temporary data directories, sweep's own binaries
//! started as separate processes, and everything stopped on drop.
//!
//! A missing server binary fails the test with the command that installs it.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sweep_proto::signing::{Envelope, Kind, Signer};
pub use sweep_proto::Backend;
use sweep_proto::{Coordination, EtcdSettings, Hunt, Keyspace, Store, Targets, ZooKeeperSettings};

/// sweep's binaries, next to the test executable (target/debug).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (ops/test does)",
        path.display()
    );
    path
}

/// A chroot and digest login for every binary of a ZooKeeper cluster.
struct ZooKeeperLogin {
    chroot: String,
    user: String,
    password: String,
}

/// How to get ZooKeeper.
const ZOOKEEPER_INSTALL: &str = "apt-get install zookeeper";

/// The class path of Debian's ZooKeeper with the logging it needs, or a
/// failure that says how to install it.
fn zookeeper_classpath() -> String {
    // Debian's zookeeper.jar names most of its libraries in its manifest,
    // but not the logging binding nor the Netty codec its TLS needs.
    let jars = [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
        "/usr/share/java/netty-codec.jar",
        "/usr/share/java/netty-resolver.jar",
    ];
    for jar in jars {
        assert!(
            Path::new(jar).is_file(),
            "{jar} not found: ZooKeeper is not installed. Install it with: {ZOOKEEPER_INSTALL}   (or run ops/install-deps)"
        );
    }
    server("java", ZOOKEEPER_INSTALL);
    jars.join(":")
}

/// Runs each named test, a `fn(Backend)` of the calling file, once per
/// coordination store: as `etcd::NAME` and `zookeeper::NAME`.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            $(#[test]
            fn $name() {
                super::$name($crate::Backend::Etcd)
            })*
        }
        mod zookeeper {
            $(#[test]
            fn $name() {
                super::$name($crate::Backend::ZooKeeper)
            })*
        }
    };
}

/// A server binary from PATH, or a failure that says how to install it.
fn server(name: &str, install: &str) -> PathBuf {
    let extra = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin"))
        .ok();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(extra) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found on PATH. Install it with: {install}   (or run ops/install-deps)");
}

/// A loopback port nothing listens on now, for a server that must be told
/// its port (etcd, ZooKeeper, the broker, the console). A port the kernel
/// picks for a bind to port 0, once let go of, can be picked again for
/// another process's bind before the server binds it; so these come from
/// just below the kernel's ephemeral range, which neither binds to port 0
/// nor outgoing connections draw from, and none twice in this process. Our
/// own daemons listen on port 0 instead and say where in their log.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<Ports>> = std::sync::Mutex::new(None);
    let mut next = NEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    next.get_or_insert_with(Ports::below_ephemeral).take()
}

/// The ports [`free_port`] hands out, each once, starting from a place of
/// this process's own (test binaries run one after another, but a stray one
/// may still hold a port).
struct Ports {
    low: u32,
    span: u32,
    tried: u32,
    start: u32,
}

impl Ports {
    fn below_ephemeral() -> Self {
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(32768);
        let low = ephemeral_low.saturating_sub(12_000).max(1024);
        let span = ephemeral_low.saturating_sub(low);
        Self {
            low,
            span,
            tried: 0,
            start: std::process::id()
                .wrapping_mul(7919)
                .checked_rem(span)
                .unwrap_or(0),
        }
    }

    fn take(&mut self) -> u16 {
        while self.tried < self.span {
            let port = self.low + (self.start + self.tried) % self.span;
            self.tried += 1;
            let port = u16::try_from(port).expect("a port below the ephemeral range");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
        panic!(
            "no free loopback port left in {}..{} (below the kernel's ephemeral range)",
            self.low,
            self.low + self.span
        );
    }
}

pub fn wait_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}")
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // kill(1) keeps this crate free of FFI.
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address its admin endpoint logged (`/metrics`, `/live`, …).
    pub fn admin_addr(&self) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| l.contains("admin endpoint listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .map(str::to_string)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        eventually(timeout, || self.child.try_wait().ok().flatten()).is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc {
        child,
        name: name.to_string(),
        log,
    })
}

/// Counts records the broker did not take.
#[derive(Default)]
struct Failures(std::sync::atomic::AtomicU64);

impl rdkafka::ClientContext for Failures {}

impl rdkafka::producer::ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The coordination store and the broker, on free ports, in a temporary
/// directory.
pub struct Cluster {
    /// Which store this cluster coordinates through.
    pub backend: Backend,
    /// etcd's client URL (etcd clusters).
    pub etcd_url: String,
    /// ZooKeeper's `host:port` (ZooKeeper clusters).
    pub zookeeper_addr: String,
    zookeeper_port: u16,
    /// A chroot and a digest login every binary is given (ZooKeeper).
    zookeeper_login: Option<ZooKeeperLogin>,
    pub kafka: String,
    kafka_port: u16,
    etcd_ports: (u16, u16),
    /// The test CA and the store's certificate, when the store speaks TLS.
    store_tls: Option<TlsFiles>,
    signer: Signer,
    key_file: PathBuf,
    // Fields drop in order: the servers stop before their directory goes.
    broker: Option<Proc>,
    etcd: Option<Proc>,
    zookeeper: Option<Proc>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster coordinated through etcd.
    pub fn start() -> Result<Self> {
        Self::start_with(Backend::Etcd, false)
    }

    /// A cluster coordinated through `backend`.
    pub fn start_on(backend: Backend) -> Result<Self> {
        Self::start_with(backend, false)
    }

    /// A cluster whose etcd speaks only TLS, with a CA made for the test;
    /// agents and the controller are configured with it.
    pub fn start_tls() -> Result<Self> {
        Self::start_with(Backend::Etcd, true)
    }

    /// A cluster whose store (etcd or ZooKeeper) speaks only TLS.
    pub fn start_tls_on(backend: Backend) -> Result<Self> {
        Self::start_with(backend, true)
    }

    fn start_with(backend: Backend, tls: bool) -> Result<Self> {
        // Fail early, with the install hint, before anything starts.
        match backend {
            Backend::Etcd => {
                server("etcd", "apt-get install etcd-server");
            }
            Backend::ZooKeeper => {
                zookeeper_classpath();
            }
        }
        server(
            "tansu",
            "cargo install tansu --version 0.6.0 --locked --features dynostore,libsql",
        );
        let dir = tempfile::tempdir()?;
        let (client, peer, kport) = (free_port(), free_port(), free_port());
        // The cluster's operators' key: the controller signs with it, agents trust it.
        let signer = Signer::generate()?;
        let key_file = dir.path().join("sweep.key");
        std::fs::write(&key_file, signer.secret_hex())?;
        let store_tls = if tls {
            Some(make_tls(dir.path())?)
        } else {
            None
        };
        let scheme = if tls { "https" } else { "http" };
        let zookeeper_port = free_port();
        let mut cluster = Self {
            backend,
            zookeeper_addr: format!("127.0.0.1:{zookeeper_port}"),
            zookeeper_port,
            zookeeper_login: None,
            signer,
            key_file,
            store_tls,
            etcd_url: format!("{scheme}://127.0.0.1:{client}"),
            etcd_ports: (client, peer),
            kafka: format!("127.0.0.1:{kport}"),
            kafka_port: kport,
            dir,
            etcd: None,
            zookeeper: None,
            broker: None,
        };
        match backend {
            Backend::Etcd => cluster.start_etcd()?,
            Backend::ZooKeeper => cluster.start_zookeeper()?,
        }
        cluster.start_broker()?;
        Ok(cluster)
    }

    /// Starts ZooKeeper (again) on the cluster's port and data directory:
    /// Debian's package, standalone, with short ticks so that sessions can
    /// be as short as the agents' 3 s heartbeat TTL.
    pub fn start_zookeeper(&mut self) -> Result<()> {
        let classpath = zookeeper_classpath();
        let dir = self.dir.path().join("zookeeper");
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf)?;
        let mut cfg = format!(
            "tickTime=500\ndataDir={}\nadmin.enableServer=false\nmaxSessionTimeout=60000\nmaxClientCnxns=0\n",
            dir.join("data").display(),
        );
        match &self.store_tls {
            None => cfg.push_str(&format!(
                "clientPort={}\nclientPortAddress=127.0.0.1\n",
                self.zookeeper_port
            )),
            Some(tls) => {
                // Netty serves TLS; the key store is the key and its
                // certificate in one PEM file.
                let keystore = dir.join("server-keystore.pem");
                let mut pem = std::fs::read(&tls.key)?;
                pem.extend(std::fs::read(&tls.cert)?);
                std::fs::write(&keystore, pem)?;
                cfg.push_str(&format!(
                    "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\nsecureClientPort={}\nsecureClientPortAddress=127.0.0.1\nssl.keyStore.location={}\nssl.keyStore.type=PEM\nssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=none\n",
                    self.zookeeper_port,
                    keystore.display(),
                    tls.ca.display()
                ));
            }
        }
        std::fs::write(conf.join("zoo.cfg"), cfg)?;
        std::fs::write(
            conf.join("log4j.properties"),
            "log4j.rootLogger=INFO,CONSOLE\nlog4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\nlog4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\nlog4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %m%n\n",
        )?;
        let zookeeper = spawn(
            "zookeeper",
            Command::new(server("java", ZOOKEEPER_INSTALL))
                // A small, quick JVM: tests start many.
                .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
                .arg("-cp")
                .arg(format!("{}:{classpath}", conf.display()))
                .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                .arg(conf.join("zoo.cfg")),
            self.dir.path(),
        )?;
        self.zookeeper = Some(zookeeper);
        wait_port(self.zookeeper_port, Duration::from_secs(30)).context("zookeeper")
    }

    /// Kills ZooKeeper, as a crash or network loss would look to clients.
    pub fn stop_zookeeper(&mut self) {
        self.zookeeper = None;
    }

    /// Kills the coordination store (etcd or ZooKeeper).
    pub fn stop_store(&mut self) {
        match self.backend {
            Backend::Etcd => self.stop_etcd(),
            Backend::ZooKeeper => self.stop_zookeeper(),
        }
    }

    /// Starts the coordination store again on its port and data.
    pub fn start_store(&mut self) -> Result<()> {
        match self.backend {
            Backend::Etcd => self.start_etcd(),
            Backend::ZooKeeper => self.start_zookeeper(),
        }
    }

    /// From now on every binary (and this harness) works under `chroot`
    /// and logs in to ZooKeeper as `user`.
    pub fn zookeeper_login(&mut self, chroot: &str, user: &str, password: &str) {
        assert_eq!(self.backend, Backend::ZooKeeper);
        self.zookeeper_login = Some(ZooKeeperLogin {
            chroot: chroot.into(),
            user: user.into(),
            password: password.into(),
        });
    }

    /// `[zookeeper]` lines of the login, if any.
    fn zookeeper_lines(&self) -> String {
        // JSON strings are TOML basic strings.
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        match &self.zookeeper_login {
            Some(l) => format!(
                "chroot = {}\nusername = {}\npassword = {}\n",
                quote(&l.chroot),
                quote(&l.user),
                quote(&l.password)
            ),
            None => String::new(),
        }
    }

    /// The coordination store's settings, as every sweep binary of this
    /// cluster is given them.
    pub fn coordination(&self) -> Coordination {
        match self.backend {
            Backend::Etcd => Coordination::Etcd(EtcdSettings {
                endpoints: vec![self.etcd_url.clone()],
                ca_file: self.store_tls.as_ref().map(|t| t.ca.clone()),
                ..EtcdSettings::default()
            }),
            Backend::ZooKeeper => {
                let mut zk = ZooKeeperSettings {
                    endpoints: vec![self.zookeeper_addr.clone()],
                    ca_file: self.store_tls.as_ref().map(|t| t.ca.clone()),
                    ..ZooKeeperSettings::default()
                };
                if let Some(l) = &self.zookeeper_login {
                    zk.chroot = l.chroot.clone();
                    zk.username = Some(l.user.clone());
                    zk.password = Some(l.password.clone());
                }
                Coordination::ZooKeeper(zk)
            }
        }
    }

    /// Starts etcd (again) on the cluster's ports and data directory.
    pub fn start_etcd(&mut self) -> Result<()> {
        let etcd_bin = server("etcd", "apt-get install etcd-server");
        let (client, peer) = self.etcd_ports;
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(etcd_bin);
        if let Some(tls) = &self.store_tls {
            cmd.arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()));
        }
        let etcd = spawn(
            "etcd",
            cmd.arg("--name=e2e")
                .arg(format!(
                    "--data-dir={}",
                    self.dir.path().join("etcd").display()
                ))
                .arg(format!("--listen-client-urls={}", self.etcd_url))
                .arg(format!("--advertise-client-urls={}", self.etcd_url))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=e2e={peer_url}")),
            self.dir.path(),
        )?;
        self.etcd = Some(etcd);
        wait_port(client, Duration::from_secs(20)).context("etcd")
    }

    /// Writes a hunt straight to etcd, past the controller and its guard, as a
    /// compromised or buggy controller could; signed by `signer` if given.
    pub fn put_hunt(&self, hunt: Hunt, signer: Option<&Signer>) {
        let body = hunt.to_json();
        let env = match signer {
            Some(s) => s.seal(Kind::Hunt, body),
            None => Envelope::unsigned(Kind::Hunt, body),
        };
        self.put_value(
            &Keyspace::default().hunt(&hunt.id),
            &env.to_json(),
            Some(300),
        );
    }

    /// Writes `value` under `key` in the store, expiring after
    /// `lease_secs` if given.
    pub fn put_value(&self, key: &str, value: &str, lease_secs: Option<i64>) {
        self.with_store(|store| async move {
            match lease_secs {
                Some(ttl) => store
                    .put_expiring(key, value.as_bytes(), Duration::from_secs(ttl as u64))
                    .await
                    .expect("put"),
                None => {
                    store.put(key, value.as_bytes()).await.expect("put");
                }
            }
        });
    }

    /// The keys under `prefix` now.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.with_store(|store| async move {
            let entries = store.list(prefix).await.expect("list");
            entries.into_iter().map(|e| e.key).collect()
        })
    }

    /// The value under `key` in the store.
    pub fn get_value(&self, key: &str) -> Option<Vec<u8>> {
        self.with_store(|store| async move { store.get(key).await.expect("get") })
    }

    fn with_store<F, T>(&self, f: impl FnOnce(Store) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::connect(&self.coordination(), None)
                .await
                .expect("the coordination store");
            f(store).await
        })
    }

    /// The key hunts of this cluster are signed with.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Kills etcd, as a crash or network loss would look to clients.
    pub fn stop_etcd(&mut self) {
        self.etcd = None;
    }

    /// Starts the broker (again) on the cluster's port and storage.
    pub fn start_broker(&mut self) -> Result<()> {
        let tansu_bin = server(
            "tansu",
            "cargo install tansu --version 0.6.0 --locked --features dynostore,libsql",
        );
        let url = format!("tcp://127.0.0.1:{}", self.kafka_port);
        let broker = spawn(
            "tansu",
            Command::new(tansu_bin)
                .arg("broker")
                .arg(format!("--listener-url={url}"))
                .arg(format!("--advertised-listener-url={url}"))
                // Tansu 0.6's memory:// engine loses records from producers that
                // start after others (seen in these tests); SQLite storage does
                // not, and survives a broker restart.
                .arg("--storage-engine=sqlite://tansu.db")
                .current_dir(self.dir.path()),
            self.dir.path(),
        )?;
        self.broker = Some(broker);
        wait_port(self.kafka_port, Duration::from_secs(20)).context("tansu")
    }

    /// Kills the broker, as a crash or network loss would look to clients.
    pub fn stop_broker(&mut self) {
        self.broker = None;
    }

    /// Kafka properties that make consumer groups settle in tests, not minutes.
    fn kafka_properties() -> &'static str {
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\"topic.metadata.refresh.interval.ms\" = \"1000\"\n"
    }

    /// Starts an agent with this host id and labels; lease TTL 3 s.
    pub fn agent(&self, host_id: &str, labels: &[(&str, &str)]) -> Result<Proc> {
        self.agent_with(host_id, labels, "wall_time = \"2s\"\n")
    }

    /// Produces one raw record to `topic`, as anyone with produce access to
    /// the broker could.
    pub fn produce_raw(&self, topic: &str, key: &str, value: &[u8]) {
        self.produce_many(topic, None, [(key, value)]);
    }

    /// As [`produce_raw`](Self::produce_raw), into one partition.
    pub fn produce_to(&self, topic: &str, partition: i32, key: &str, value: &[u8]) {
        self.produce_many(topic, Some(partition), [(key, value)]);
    }

    /// Produces every `(key, value)` and waits until all are delivered.
    pub fn produce_many<'a>(
        &self,
        topic: &str,
        partition: Option<i32>,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer<Failures> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(Failures::default())
            .expect("a producer");
        for (key, value) in records {
            let mut rec = BaseRecord::to(topic).key(key).payload(value);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            producer.send(rec).map_err(|(e, _)| e).expect("queued");
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).expect("delivered");
        // A record the broker refused (a topic that does not exist, say) is
        // reported only to the delivery callback: count them, and fail.
        let failed = producer
            .context()
            .0
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            failed, 0,
            "{failed} record(s) to {topic} were not delivered"
        );
    }

    /// The broker's bootstrap address.
    pub fn kafka_brokers(&self) -> &str {
        &self.kafka
    }

    /// Where the agent `host_id` keeps its state (spool, ledger, quarantine).
    pub fn state_dir(&self, host_id: &str) -> PathBuf {
        self.dir.path().join(host_id)
    }

    /// As [`agent`](Self::agent), with these lines in its `[limits]`.
    pub fn agent_with(&self, host_id: &str, labels: &[(&str, &str)], limits: &str) -> Result<Proc> {
        self.agent_configured(host_id, labels, limits, "")
    }

    /// As [`agent_with`](Self::agent_with), plus `tables` (whole TOML
    /// tables, e.g. `[kafka.properties]`) at the end of its configuration.
    pub fn agent_configured(
        &self,
        host_id: &str,
        labels: &[(&str, &str)],
        limits: &str,
        tables: &str,
    ) -> Result<Proc> {
        self.agent_full(host_id, labels, limits, tables, "")
    }

    /// Starts an agent with the configuration [`agent_config`](Self::agent_config) writes.
    fn agent_full(
        &self,
        host_id: &str,
        labels: &[(&str, &str)],
        limits: &str,
        tables: &str,
        etcd: &str,
    ) -> Result<Proc> {
        let path = self.agent_config(host_id, labels, limits, tables, etcd)?;
        spawn(
            host_id,
            Command::new(bin("sweep-agent"))
                .arg("run")
                .arg("--config")
                .arg(&path)
                .env("SWEEP_LOG", "info"),
            self.dir.path(),
        )
    }

    /// `sweep-agent fleet`: `agents` virtual agents (host ids `sim-00000`,
    /// …) in one process, configured as a real agent named `fleet` would be.
    pub fn fleet(&self, agents: usize) -> Result<Proc> {
        let path =
            self.agent_config("fleet", &[("role", "sim")], "wall_time = \"5s\"\n", "", "")?;
        spawn(
            "fleet",
            Command::new(bin("sweep-agent"))
                .arg("fleet")
                .arg("--config")
                .arg(&path)
                .arg("--agents")
                .arg(agents.to_string())
                .env("SWEEP_LOG", "info"),
            self.dir.path(),
        )
    }

    /// Writes an agent's configuration (`etcd` lines added to `[etcd]`);
    /// returns its path.
    fn agent_config(
        &self,
        host_id: &str,
        labels: &[(&str, &str)],
        limits: &str,
        tables: &str,
        etcd: &str,
    ) -> Result<PathBuf> {
        let state = self.dir.path().join(host_id);
        std::fs::create_dir_all(&state)?;
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let mut cfg = format!(
            "host_id = \"{host_id}\"\nstate_dir = \"{}\"\n[labels]\n",
            state.display()
        );
        for (k, v) in &labels {
            cfg.push_str(&format!("{k} = \"{v}\"\n"));
        }
        cfg.push_str(&self.coordination_tables("", etcd));
        cfg.push_str(&format!(
            "[kafka]\nbrokers = \"{}\"\n[heartbeat]\nttl = \"3s\"\nreport_every = \"1s\"\n[spool]\ndelivery_timeout = \"3s\"\n[limits]\n{limits}[metrics]\nlisten = \"127.0.0.1:0\"\n[trust]\npublic_keys = [\"{}\"]\n",
            self.kafka,
            self.signer.public_hex()
        ));
        cfg.push_str(tables);
        let path = self.dir.path().join(format!("{host_id}.toml"));
        std::fs::write(&path, cfg)?;
        Ok(path)
    }

    /// Where sweep-rules keeps its state (`checkpoint.json`).
    pub fn rules_state_dir(&self) -> PathBuf {
        self.dir.path().join("rules-state")
    }

    /// A directory of rules holding one rule file with `toml` in it, for
    /// [`rules`](Self::rules).
    pub fn rules_dir(&self, toml: &str) -> PathBuf {
        let dir = self.dir.path().join("rules");
        std::fs::create_dir_all(&dir).expect("rules dir");
        std::fs::write(dir.join("rules.toml"), toml).expect("rule file");
        dir
    }

    /// Starts sweep-rules on a directory of rule files, checking rows
    /// against the identities pinned in this cluster's etcd.
    pub fn rules(&self, rules_dir: &Path) -> Result<Proc> {
        let cfg = format!(
            "rules_dir = \"{}\"\ngroup_id = \"e2e-rules\"\nmetrics_listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[kafka]\nbrokers = \"{}\"\n{}\n[integrity]\npublic_keys = [\"{}\"]\nrefresh = \"1s\"\n{}",
            rules_dir.display(),
            self.rules_state_dir().display(),
            self.kafka,
            Self::kafka_properties(),
            self.signer.public_hex(),
            self.coordination_tables("integrity.", ""),
        );
        let path = self.dir.path().join("rules.toml");
        std::fs::write(&path, cfg)?;
        spawn(
            "sweep-rules",
            Command::new(bin("sweep-rules"))
                .arg("--config")
                .arg(&path)
                .env("SWEEP_LOG", "info"),
            self.dir.path(),
        )
    }

    /// The TOML tables that point a binary at this cluster's store, under
    /// `parent` (`""`, or `"integrity."` for sweep-rules); `etcd_lines` go
    /// into an `[etcd]` table.
    fn coordination_tables(&self, parent: &str, etcd_lines: &str) -> String {
        match self.backend {
            Backend::Etcd => format!(
                "[{parent}etcd]\n{}{etcd_lines}endpoints = [\"{}\"]\n",
                self.store_ca_line(),
                self.etcd_url
            ),
            Backend::ZooKeeper => format!(
                "[{parent}coordination]\nbackend = \"zookeeper\"\n[{parent}zookeeper]\n{}{}endpoints = [\"{}\"]\n",
                self.store_ca_line(),
                self.zookeeper_lines(),
                self.zookeeper_addr
            ),
        }
    }

    /// `ca_file = "…"` for the store's section, when it speaks TLS.
    fn store_ca_line(&self) -> String {
        match &self.store_tls {
            Some(tls) => format!("ca_file = \"{}\"\n", tls.ca.display()),
            None => String::new(),
        }
    }

    /// The controller, pointed at this cluster.
    pub fn sweep_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("sweep"));
        match self.backend {
            Backend::Etcd => cmd
                .env("SWEEP_ETCD", &self.etcd_url)
                .env_remove("SWEEP_COORDINATION")
                .env_remove("SWEEP_ZOOKEEPER"),
            Backend::ZooKeeper => cmd
                .env("SWEEP_COORDINATION", "zookeeper")
                .env("SWEEP_ZOOKEEPER", &self.zookeeper_addr)
                .env_remove("SWEEP_ETCD"),
        };
        cmd.args(args)
            .env("SWEEP_KAFKA", &self.kafka)
            .env("SWEEP_SIGNING_KEY", &self.key_file)
            .env_remove("SWEEP_CONFIG")
            .stdin(Stdio::null());
        if self.zookeeper_login.is_some() || self.store_tls.is_some() {
            // The CA, chroot and login reach the controller through its
            // config file.
            let table = match self.backend {
                Backend::Etcd => "etcd",
                Backend::ZooKeeper => "zookeeper",
            };
            let path = self.dir.path().join("controller.toml");
            let _ = std::fs::write(
                &path,
                format!(
                    "[{table}]\n{}{}",
                    self.store_ca_line(),
                    self.zookeeper_lines()
                ),
            );
            cmd.env("SWEEP_CONFIG", path);
        }
        cmd
    }

    /// Starts a long-running command of this cluster (a console, a
    /// webdriver) with its output in `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, cmd: &mut Command) -> Result<Proc> {
        spawn(name, cmd, self.dir.path())
    }

    pub fn sweep(&self, args: &[&str]) -> Output {
        self.sweep_cmd(args).output().expect("running sweep")
    }

    /// Host ids `sweep agents --json` lists now.
    pub fn live_agents(&self) -> Vec<String> {
        let out = self.sweep(&["agents", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["host_id"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits until exactly `hosts` are live.
    pub fn wait_agents(&self, hosts: &[&str], timeout: Duration) -> Result<()> {
        let mut want: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        want.sort();
        let mut last = Vec::new();
        let ok = eventually(timeout, || {
            last = self.live_agents();
            last.sort();
            (last == want).then_some(())
        });
        match ok {
            Some(()) => Ok(()),
            None => bail!("live agents are {last:?}, wanted {want:?}"),
        }
    }

    /// As [`agent`](Self::agent) (no labels), logging in to etcd as
    /// `etcd_user` with `etcd_password`: for an etcd with authentication on
    /// (ops/etcd-rbac).
    pub fn agent_as(&self, host_id: &str, etcd_user: &str, etcd_password: &str) -> Result<Proc> {
        // JSON strings are TOML basic strings.
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let login = format!(
            "username = {}\npassword = {}\n",
            quote(etcd_user),
            quote(etcd_password)
        );
        self.agent_full(host_id, &[], "wall_time = \"2s\"\n", "", &login)
    }
}

/// The response (status line, headers, body) of a plain HTTP GET of `path`
/// at `addr`.
pub fn http_get(addr: &str, path: &str) -> String {
    http_request(addr, "GET", path)
}

/// As [`http_get`], with any method.
pub fn http_request(addr: &str, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text
}

/// `sweep-agent query` on this host.
pub fn agent_query(sql: &str) -> Output {
    Command::new(bin("sweep-agent"))
        .args(["query", "--json", sql])
        .output()
        .expect("running sweep-agent")
}

/// Asserts a command exited 0, showing its output when it did not.
pub fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses NDJSON output into objects.
pub fn ndjson(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// A hunt for every agent, live for five minutes.
pub fn hunt(id: &str, sql: &str) -> Hunt {
    let now = sweep_proto::time::unix_now();
    Hunt {
        id: id.into(),
        sql: sql.into(),
        targets: Targets::all(),
        issued_at: now,
        expires_at: now + 300,
        issuer: "e2e".into(),
        partition: None,
    }
}

/// A test CA and a certificate for 127.0.0.1 signed by it.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA and a server certificate with the `openssl` command.
pub fn make_tls(dir: &Path) -> Result<TlsFiles> {
    let openssl = server("openssl", "apt-get install openssl");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(&tls)
            .output()?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=sweep-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(tls.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ])?;
    Ok(TlsFiles {
        ca: tls.join("ca.pem"),
        cert: tls.join("server.pem"),
        key: tls.join("server.key"),
    })
}

/// Runs `args` as root: directly when we are root, else through `sudo -n`.
pub fn as_root(args: &[&str]) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let status = if root {
        Command::new(args[0]).args(&args[1..]).status()
    } else {
        Command::new("sudo").arg("-n").args(args).status()
    }
    .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        status.success(),
        "{args:?} failed: this test needs root or passwordless sudo (it makes a throwaway \
         local user, or files only root may make)"
    );
}

/// A real, throwaway local account (`useradd`), removed when dropped. A test
/// binary that makes one changes `/etc/passwd`, so it should hold one test:
/// cargo runs test binaries one at a time.
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
}

impl LocalUser {
    /// Creates `name` with `home` (not created) and no login shell.
    pub fn create(name: &str, home: &Path) -> Self {
        as_root(&[
            "useradd",
            "--no-create-home",
            "--home-dir",
            &home.display().to_string(),
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]);
        let out = Command::new("id").args(["-u", name]).output().unwrap();
        let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Self {
            name: name.to_string(),
            uid,
        }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        as_root(&["userdel", &self.name]);
    }
}
