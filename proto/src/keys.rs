//! The coordination keyspace (etcd keys, or ZooKeeper znodes of the same
//! paths). Every key lives under one configurable prefix so several
//! sweep installations can share one etcd cluster or ZooKeeper ensemble.

/// Builds and parses keys under a prefix such as `/sweep/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

pub const DEFAULT_PREFIX: &str = "/sweep/";

impl Default for Keyspace {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Keyspace {
    /// A keyspace rooted at `prefix`; a missing trailing slash is added.
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>agents/` — one heartbeat key per live agent.
    pub fn agents(&self) -> String {
        format!("{}agents/", self.prefix)
    }

    pub fn agent(&self, host_id: &str) -> String {
        format!("{}{}", self.agents(), host_id)
    }

    /// `<prefix>hunts/` — one key per live hunt, on a lease that ends at its expiry.
    pub fn hunts(&self) -> String {
        format!("{}hunts/", self.prefix)
    }

    pub fn hunt(&self, hunt_id: &str) -> String {
        format!("{}{}", self.hunts(), hunt_id)
    }

    /// `<prefix>schedule/` — scheduled queries.
    pub fn schedules(&self) -> String {
        format!("{}schedule/", self.prefix)
    }

    pub fn schedule(&self, name: &str) -> String {
        format!("{}{}", self.schedules(), name)
    }

    /// `<prefix>packs/` — osquery-format packs.
    pub fn packs(&self) -> String {
        format!("{}packs/", self.prefix)
    }

    pub fn pack(&self, name: &str) -> String {
        format!("{}{}", self.packs(), name)
    }

    /// `<prefix>identities/` — agents' identity keys as the controller
    /// pinned them, signed by the controller.
    pub fn identities(&self) -> String {
        format!("{}identities/", self.prefix)
    }

    pub fn identity(&self, host_id: &str) -> String {
        format!("{}{}", self.identities(), host_id)
    }

    /// Whether `id` may be a host id: what becomes one key segment (a znode) and
    /// shows on every row. Not empty, at most 253 bytes (a DNS name), no
    /// `/`, not `.` or `..`, no white space or control characters.
    pub fn check_host_id(id: &str) -> Result<(), String> {
        if id.is_empty() || id.len() > 253 {
            return Err(format!("host id {id:?}: must be 1 to 253 bytes"));
        }
        if id == "." || id == ".." || id.contains('/') {
            return Err(format!("host id {id:?}: no `/`, and not `.` or `..`"));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "host id {id:?}: no white space or control characters"
            ));
        }
        Ok(())
    }

    /// The last path segment of `key` if it lies directly under `dir`.
    pub fn leaf<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(dir)
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_rooted_at_the_prefix() {
        let ks = Keyspace::new("/corp/sweep");
        assert_eq!(ks.agent("web-1"), "/corp/sweep/agents/web-1");
        assert_eq!(ks.hunt("h1"), "/corp/sweep/hunts/h1");
        assert_eq!(
            Keyspace::leaf(&ks.hunts(), "/corp/sweep/hunts/h1"),
            Some("h1")
        );
        assert_eq!(Keyspace::leaf(&ks.hunts(), "/corp/sweep/hunts/"), None);
        assert_eq!(Keyspace::leaf(&ks.hunts(), "/corp/sweep/agents/x"), None);
    }
}
