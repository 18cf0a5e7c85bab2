//! Reading a whole etcd prefix in pages. A fleet's heartbeats or pins are
//! megabytes (10,000 heartbeats are 4.4 MB), more than one gRPC message may
//! carry (4 MiB by default); pages of a bounded count, all read at the
//! revision of the first, give the same consistent listing at any size.

use etcd_client::{Client, GetOptions, KeyValue};

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
