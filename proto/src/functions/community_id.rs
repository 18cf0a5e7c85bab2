//! `community_id_v1(saddr, daddr, sport, dport, proto [, seed])`: the
//! Community ID of a flow (corelight's community-id-spec, version 1), as
//! osquery computes it (`osquery/sql/sqlite_hashing.cpp`): `"1:"` and the
//! base64 SHA-1 of seed, the ordered addresses, protocol, a zero byte and the
//! ports, in network byte order. The lesser endpoint (address, then port;
//! IPv4 before IPv6) goes first, so both directions of a flow get one ID.
//! Like osquery, no ICMP type/code mapping. Bad input gives NULL
//! (`community_id_v1`) or an error naming the problem
//! (`community_id_v1_strict`).

use std::net::IpAddr;

use base64::Engine as _;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, Result};
use sha1::{Digest, Sha1};

/// The names registered here, for the guard's list.
pub const NAMES: &[&str] = &["community_id_v1", "community_id_v1_strict"];

pub fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for args in [5, 6] {
        conn.create_scalar_function("community_id_v1", args, flags, |ctx| {
            Ok(community_id(ctx).ok())
        })?;
        conn.create_scalar_function("community_id_v1_strict", args, flags, |ctx| {
            community_id(ctx)
                .map(Some)
                .map_err(|why| Error::UserFunctionError(why.into()))
        })?;
    }
    Ok(())
}

fn community_id(ctx: &Context<'_>) -> std::result::Result<String, &'static str> {
    let seed = if ctx.len() == 6 {
        let ValueRef::Integer(seed) = ctx.get_raw(5) else {
            return Err("Community ID seed must be an integer");
        };
        i16::try_from(seed).map_err(|_| "Community ID seed must fit in 2 bytes")?
    } else {
        0
    };
    let (ValueRef::Text(saddr), ValueRef::Text(daddr)) = (ctx.get_raw(0), ctx.get_raw(1)) else {
        return Err("Community ID IPs must be strings");
    };
    let ip = |t: &[u8]| std::str::from_utf8(t).ok()?.parse::<IpAddr>().ok();
    let saddr = ip(saddr).ok_or("Community ID saddr cannot be parsed as IP")?;
    let daddr = ip(daddr).ok_or("Community ID daddr cannot be parsed as IP")?;
    let (ValueRef::Integer(sport), ValueRef::Integer(dport)) = (ctx.get_raw(2), ctx.get_raw(3))
    else {
        return Err("Community ID ports must be integers");
    };
    let port = |p: i64| u16::try_from(p).map_err(|_| "Community ID ports must fit in 2 bytes");
    let (sport, dport) = (port(sport)?, port(dport)?);
    let ValueRef::Integer(proto) = ctx.get_raw(4) else {
        return Err("Community ID protocol must be an integer");
    };
    let proto = u8::try_from(proto).map_err(|_| "Community ID protocol must fit in 1 byte")?;
    Ok(compute(seed, (saddr, sport), (daddr, dport), proto))
}

/// The ID of the flow between two endpoints, in either order.
pub fn compute(seed: i16, a: (IpAddr, u16), b: (IpAddr, u16), proto: u8) -> String {
    // IpAddr orders V4 before V6, then by address, as osquery's (boost's) does.
    let ((saddr, sport), (daddr, dport)) = if a < b { (a, b) } else { (b, a) };
    let mut hash = Sha1::new();
    hash.update(seed.to_be_bytes());
    for addr in [saddr, daddr] {
        match addr {
            IpAddr::V4(v4) => hash.update(v4.octets()),
            IpAddr::V6(v6) => hash.update(v6.octets()),
        }
    }
    hash.update([proto, 0]);
    hash.update(sport.to_be_bytes());
    hash.update(dport.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(hash.finalize())
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;

    fn eval(sql: &str) -> rusqlite::Result<Value> {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(sql, [], |r| r.get(0))
    }

    /// The spec's own examples (community-id-spec README and its baseline
    /// outputs, which osquery's tests repeat), each flow in both directions.
    #[test]
    fn the_specs_examples() {
        for (args, want) in [
            // The README's worked example: TCP 128.232.110.120:34855 → 66.35.250.204:80.
            (
                "'66.35.250.204', '128.232.110.120', 80, 34855, 6, 0",
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "'128.232.110.120', '66.35.250.204', 34855, 80, 6",
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "'66.35.250.204', '128.232.110.120', 80, 34855, 6, 1",
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (
                "'128.232.110.120', '66.35.250.204', 34855, 80, 6, 1",
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            // IPv4 with IPv6: the v4 endpoint is the lesser.
            (
                "'127.0.0.1', 'fe80::14b0:de4a:f8e8:522f', 64, 10, 6",
                "1:Jww+Ua4pSUNl9TvSUwvSHL4n93w=",
            ),
            (
                "'fe80::14b0:de4a:f8e8:522f', '127.0.0.1', 10, 64, 6, 0",
                "1:Jww+Ua4pSUNl9TvSUwvSHL4n93w=",
            ),
            // SCTP and UDP from the baseline pcaps.
            (
                "'192.168.170.8', '192.168.170.56', 7, 80, 132, 0",
                "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=",
            ),
            (
                "'192.168.170.56', '192.168.170.8', 80, 7, 132, 1",
                "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU=",
            ),
            (
                "'192.168.1.52', '8.8.8.8', 54585, 53, 17, 0",
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
        ] {
            let got = eval(&format!("SELECT community_id_v1({args})")).unwrap();
            assert_eq!(got, Value::Text(want.into()), "{args}");
        }
    }

    #[test]
    fn bad_input_is_null_or_a_named_error() {
        for (args, why) in [
            ("1, '8.8.8.8', 1, 2, 6", "IPs must be strings"),
            ("'x', '8.8.8.8', 1, 2, 6", "saddr cannot be parsed"),
            (
                "'1.1.1.1', '8.8.8.8', 70000, 2, 6",
                "ports must fit in 2 bytes",
            ),
            ("'1.1.1.1', '8.8.8.8', '1', 2, 6", "ports must be integers"),
            (
                "'1.1.1.1', '8.8.8.8', 1, 2, 256",
                "protocol must fit in 1 byte",
            ),
            (
                "'1.1.1.1', '8.8.8.8', 1, 2, 6, 40000",
                "seed must fit in 2 bytes",
            ),
        ] {
            assert_eq!(
                eval(&format!("SELECT community_id_v1({args})")).unwrap(),
                Value::Null
            );
            let err = eval(&format!("SELECT community_id_v1_strict({args})")).unwrap_err();
            assert!(err.to_string().contains(why), "{args}: {err}");
        }
    }
}
