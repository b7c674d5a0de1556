//! The decisions of the `kubernetes` Service's endpoint reconciler, pure: from the API servers'
//! identity Leases and the time, which servers are live (and so listed in the
//! `default/kubernetes` Endpoints and EndpointSlices) and which Leases have expired for good
//! (and so are deleted, as kube-apiserver's identity lease garbage collector does).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jiff::Timestamp;

/// How often a server renews its identity Lease and rewrites the endpoints, as kube-apiserver's
/// identity lease controller and lease endpoint reconciler do (10 s).
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How long after its last renewal a server still counts as live for the endpoints:
/// kube-apiserver's lease endpoint reconciler keeps a server's address for 15 s.
pub const LIVE_FOR: Duration = Duration::from_secs(15);
/// The `leaseDurationSeconds` of an identity Lease, kube-apiserver's (one hour).
pub const IDENTITY_LEASE_SECONDS: i32 = 3600;

/// What the planner needs of one identity Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLease {
    /// The Lease's name, `apiserver-<id>`.
    pub name: String,
    /// The address the server advertises, when the Lease carries a valid one.
    pub advertise_address: Option<SocketAddr>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseDurationSeconds`.
    pub lease_duration_seconds: Option<i32>,
}

/// The live servers on one port: one Endpoints subset, one EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    /// The port the servers listen on.
    pub port: u16,
    /// Their addresses, sorted, each once.
    pub ips: Vec<IpAddr>,
}

/// What one reconcile writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointsPlan {
    /// The live servers grouped by port, ports ascending.
    pub groups: Vec<PortGroup>,
    /// Leases whose own duration has run out since their last renewal: deleted.
    pub expired_leases: Vec<String>,
}

/// Whether a lease renewed at `renewed` still counts at `now` for `window` (checked: a renew
/// time far in the future or a huge window never overflows).
fn within(renewed: Timestamp, window: Duration, now: Timestamp) -> bool {
    let Ok(span) = jiff::SignedDuration::try_from(window) else {
        return true;
    };
    match renewed.checked_add(span) {
        Ok(until) => until > now,
        // Past the end of time: still live.
        Err(_) => true,
    }
}

/// Plans the endpoints of the `kubernetes` Service from the identity Leases at `now`.
pub fn plan(leases: &[ServerLease], now: Timestamp) -> EndpointsPlan {
    let mut by_port: BTreeMap<u16, Vec<IpAddr>> = BTreeMap::new();
    let mut expired_leases = Vec::new();
    for lease in leases {
        let Some(renewed) = lease.renew_time else {
            // Never renewed: nothing says the server ever ran.
            expired_leases.push(lease.name.clone());
            continue;
        };
        let own_seconds = lease.lease_duration_seconds.unwrap_or(0).max(0);
        let own_duration = Duration::from_secs(u64::try_from(own_seconds).unwrap_or(0));
        if !within(renewed, own_duration, now) {
            expired_leases.push(lease.name.clone());
            continue;
        }
        if !within(renewed, LIVE_FOR, now) {
            continue;
        }
        if let Some(address) = lease.advertise_address {
            by_port
                .entry(address.port())
                .or_default()
                .push(address.ip());
        }
    }
    let groups = by_port
        .into_iter()
        .map(|(port, mut ips)| {
            ips.sort();
            ips.dedup();
            PortGroup { port, ips }
        })
        .collect();
    expired_leases.sort();
    EndpointsPlan {
        groups,
        expired_leases,
    }
}

/// The name of the EndpointSlice for the `index`th port group: `kubernetes` for the first, as
/// Kubernetes names its one slice; servers on other ports (several servers on one machine) get
/// `kubernetes-<port>`, since one slice carries one set of ports.
pub fn slice_name(index: usize, group: &PortGroup) -> String {
    if index == 0 {
        "kubernetes".to_string()
    } else {
        format!("kubernetes-{}", group.port)
    }
}

/// The identity Lease's name for a server on `host` advertising `address`: `apiserver-` and a
/// base32 digest, as kube-apiserver names its own after its host name. The address is part of
/// it, so several servers on one machine hold a Lease each, while a restarted server finds its
/// own again.
pub fn identity_lease_name(host: &str, address: SocketAddr) -> String {
    let key = format!("{host}\n{address}");
    let mut digest = [0u8; 16];
    digest[..8].copy_from_slice(&fnv1a(key.as_bytes(), 0xcbf2_9ce4_8422_2325).to_be_bytes());
    digest[8..].copy_from_slice(&fnv1a(key.as_bytes(), 0x6c62_272e_07bb_0142).to_be_bytes());
    format!("apiserver-{}", base32_lower(&digest))
}

/// 64-bit FNV-1a from `seed`: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// RFC 4648 base32 in lower case, without padding.
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("a valid time")
    }

    fn lease(name: &str, address: &str, renewed: Option<i64>, duration: i32) -> ServerLease {
        ServerLease {
            name: name.to_string(),
            advertise_address: address.parse().ok(),
            renew_time: renewed.map(at),
            lease_duration_seconds: Some(duration),
        }
    }

    fn group(port: u16, ips: &[&str]) -> PortGroup {
        PortGroup {
            port,
            ips: ips.iter().map(|ip| ip.parse().expect("an IP")).collect(),
        }
    }

    #[test]
    fn plans_the_endpoints_from_the_leases() {
        struct Case {
            name: &'static str,
            leases: Vec<ServerLease>,
            now: i64,
            groups: Vec<PortGroup>,
            expired: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "no leases: no endpoints",
                leases: vec![],
                now: 0,
                groups: vec![],
                expired: vec![],
            },
            Case {
                name: "three servers on one port, listed sorted",
                leases: vec![
                    lease("c", "10.0.0.3:6443", Some(0), 3600),
                    lease("a", "10.0.0.1:6443", Some(-5), 3600),
                    lease("b", "10.0.0.2:6443", Some(-14), 3600),
                ],
                now: 0,
                groups: vec![group(6443, &["10.0.0.1", "10.0.0.2", "10.0.0.3"])],
                expired: vec![],
            },
            Case {
                name: "a server not renewed for 15 s is dropped, its lease kept",
                leases: vec![
                    lease("a", "10.0.0.1:6443", Some(0), 3600),
                    lease("b", "10.0.0.2:6443", Some(-15), 3600),
                ],
                now: 0,
                groups: vec![group(6443, &["10.0.0.1"])],
                expired: vec![],
            },
            Case {
                name: "a lease past its own duration is deleted",
                leases: vec![
                    lease("a", "10.0.0.1:6443", Some(0), 3600),
                    lease("old", "10.0.0.9:6443", Some(-3600), 3600),
                    lease("never", "10.0.0.8:6443", None, 3600),
                ],
                now: 0,
                groups: vec![group(6443, &["10.0.0.1"])],
                expired: vec!["never", "old"],
            },
            Case {
                name: "servers on several ports of one machine: a group per port",
                leases: vec![
                    lease("b", "127.0.0.1:7443", Some(0), 3600),
                    lease("a", "127.0.0.1:6443", Some(0), 3600),
                    lease("c", "127.0.0.2:6443", Some(-1), 3600),
                ],
                now: 0,
                groups: vec![
                    group(6443, &["127.0.0.1", "127.0.0.2"]),
                    group(7443, &["127.0.0.1"]),
                ],
                expired: vec![],
            },
            Case {
                name: "a lease without an address counts for nothing but expiry",
                leases: vec![lease("x", "not an address", Some(0), 3600)],
                now: 0,
                groups: vec![],
                expired: vec![],
            },
            Case {
                name: "a negative duration has expired; a renew time in the future is live",
                leases: vec![
                    lease("neg", "10.0.0.1:6443", Some(0), -10),
                    lease("future", "10.0.0.2:6443", Some(100), 3600),
                ],
                now: 0,
                groups: vec![group(6443, &["10.0.0.2"])],
                expired: vec!["neg"],
            },
            Case {
                name: "the same address twice is listed once",
                leases: vec![
                    lease("a", "10.0.0.1:6443", Some(0), 3600),
                    lease("a2", "10.0.0.1:6443", Some(0), 3600),
                ],
                now: 0,
                groups: vec![group(6443, &["10.0.0.1"])],
                expired: vec![],
            },
        ];
        for case in cases {
            let plan = plan(&case.leases, at(case.now));
            assert_eq!(plan.groups, case.groups, "{}", case.name);
            assert_eq!(plan.expired_leases, case.expired, "{}", case.name);
        }
    }

    #[test]
    fn a_renew_time_at_the_end_of_time_does_not_overflow() {
        let leases = vec![ServerLease {
            name: "max".to_string(),
            advertise_address: "10.0.0.1:6443".parse().ok(),
            renew_time: Some(Timestamp::MAX),
            lease_duration_seconds: Some(i32::MAX),
        }];
        let plan = plan(&leases, at(0));
        assert_eq!(plan.groups, vec![group(6443, &["10.0.0.1"])]);
    }

    #[test]
    fn slices_are_named_kubernetes_then_by_port() {
        assert_eq!(slice_name(0, &group(6443, &[])), "kubernetes");
        assert_eq!(slice_name(1, &group(7443, &[])), "kubernetes-7443");
    }

    #[test]
    fn identity_lease_names_are_stable_and_differ_by_address() {
        let a: SocketAddr = "127.0.0.1:6443".parse().expect("address");
        let b: SocketAddr = "127.0.0.1:7443".parse().expect("address");
        let name = identity_lease_name("host", a);
        assert_eq!(name, identity_lease_name("host", a));
        assert_ne!(name, identity_lease_name("host", b));
        assert_ne!(name, identity_lease_name("other", a));
        let id = name.strip_prefix("apiserver-").expect("apiserver- prefix");
        assert_eq!(id.len(), 26, "{name}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
    }

    #[test]
    fn base32_matches_rfc_4648() {
        // RFC 4648's test vectors, in lower case and without padding.
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"fo"), "mzxq");
        assert_eq!(base32_lower(b"foo"), "mzxw6");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }
}
