//! Sources shared by the network tables: the socket inventory behind
//! `process_open_sockets` and `listening_ports`, rtnetlink dumps of links,
//! addresses and routes, and address text as osquery prints it.

pub mod rtnetlink;
pub mod sockets;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as glibc's `inet_ntop` writes it, which is what osquery shows.
pub fn ip_text(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => ipv6_text(a),
    }
}

/// Rust's formatting is RFC 5952 like glibc's, except for the deprecated
/// IPv4-compatible form (`::a.b.c.d`), which glibc still writes dotted.
pub fn ipv6_text(addr: Ipv6Addr) -> String {
    let w = addr.segments();
    if w[..6].iter().all(|&s| s == 0) && w[6] != 0 {
        let [.., a, b, c, d] = addr.octets();
        return format!("::{}", Ipv4Addr::new(a, b, c, d));
    }
    addr.to_string()
}

/// The netmask of a prefix length, as an address (`255.255.255.0`, `ffff:ffff::`).
pub fn mask_text(v6: bool, prefix: u8) -> String {
    if v6 {
        let bits = u128::MAX
            .checked_shl(128 - u32::from(prefix.min(128)))
            .unwrap_or(0);
        ipv6_text(Ipv6Addr::from(bits))
    } else {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0);
        Ipv4Addr::from(bits).to_string()
    }
}

/// The first six bytes of a hardware address as `aa:bb:cc:dd:ee:ff`,
/// zero-padded like the `SIOCGIFHWADDR` buffer osquery formats.
pub fn mac_text(bytes: &[u8]) -> String {
    let mut six = [0u8; 6];
    for (dst, src) in six.iter_mut().zip(bytes) {
        *dst = *src;
    }
    six.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_inet_ntop() {
        let v6 = |s: &str| ipv6_text(s.parse().unwrap());
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::ffff:127.0.0.1"), "::ffff:127.0.0.1");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("fe80:0:0:0:1:0:0:1"), "fe80::1:0:0:1");
        assert_eq!(v6("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
        assert_eq!(mask_text(false, 8), "255.0.0.0");
        assert_eq!(mask_text(false, 0), "0.0.0.0");
        assert_eq!(mask_text(false, 32), "255.255.255.255");
        assert_eq!(mask_text(true, 64), "ffff:ffff:ffff:ffff::");
        assert_eq!(
            mask_text(true, 128),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(mac_text(&[2, 0xfc, 0, 0, 0, 1]), "02:fc:00:00:00:01");
        assert_eq!(mac_text(&[]), "00:00:00:00:00:00");
    }
}
