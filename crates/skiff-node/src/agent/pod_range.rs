//! Picks the real node's pod range so that several Skiff instances on one machine (a developer's
//! cluster beside a CI run, or tests running side by side) never hand out the same loopback
//! address: pods listen on their own IP, and a shared IP means a port already taken.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

/// The second octet of the first and last /16 that pod ranges come from: 127.128.0.0/9, clear
/// of Service ClusterIPs (127.96.0.0/12) and of 127.0.0.0/16, where servers usually listen.
const FIRST_RANGE: u8 = 128;
const LAST_RANGE: u8 = 255;

/// The pod range recorded in `state_file`, or a fresh /16 nobody listens in, recorded there so
/// the node keeps its range (and its pods their addresses' range) across restarts.
pub fn pod_range_for(state_file: &Path) -> (Ipv4Addr, u8) {
    if let Some(range) = std::fs::read_to_string(state_file)
        .ok()
        .and_then(|text| parse_range(text.trim()))
    {
        return range;
    }
    let busy = busy_ranges(&listening_ipv4_addresses());
    let free: Vec<u8> = (FIRST_RANGE..=LAST_RANGE)
        .filter(|second| !busy.contains(second))
        .collect();
    let second = if free.is_empty() {
        FIRST_RANGE
    } else {
        free[rand::random_range(0..free.len())]
    };
    let range = (Ipv4Addr::new(127, second, 0, 0), 16);
    if let Some(dir) = state_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Written aside and renamed, so a crash mid-write never leaves half a range to read back.
    let partial = state_file.with_extension("partial");
    let written = std::fs::write(&partial, format!("{}/{}\n", range.0, range.1))
        .and_then(|()| std::fs::rename(&partial, state_file));
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %state_file.display(), "cannot record the pod range");
    }
    range
}

/// `a.b.c.d/n` as written by [`pod_range_for`].
fn parse_range(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, bits) = text.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    (address.octets()[0] == 127 && (8..=30).contains(&bits)).then_some((address, bits))
}

/// The second octets of the 127.x.0.0/16 ranges in which something listens.
fn busy_ranges(listening: &[Ipv4Addr]) -> HashSet<u8> {
    listening
        .iter()
        .filter(|ip| ip.octets()[0] == 127)
        .map(|ip| ip.octets()[1])
        .collect()
}

/// Local addresses of listening IPv4 TCP sockets, from `/proc/net/tcp` (state `0A`).
fn listening_ipv4_addresses() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| parse_listeners(&table))
        .unwrap_or_default()
}

/// Parses `/proc/net/tcp`: the local address is little-endian hex `AABBCCDD:PPPP`.
fn parse_listeners(table: &str) -> Vec<Ipv4Addr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != "0A" {
                return None;
            }
            let hex = local.split_once(':')?.0;
            let raw = u32::from_str_radix(hex, 16).ok()?;
            Some(Ipv4Addr::from(raw.swap_bytes()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_the_kernel_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0200807F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_listeners(table),
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 128, 0, 2)]
        );
        assert_eq!(
            busy_ranges(&parse_listeners(table)),
            HashSet::from([0, 128])
        );
    }

    #[test]
    fn a_range_is_chosen_clear_of_listeners_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node/pod-range");
        let first = pod_range_for(&file);
        assert_eq!(first.1, 16);
        assert_eq!(first.0.octets()[0], 127);
        assert!(first.0.octets()[1] >= FIRST_RANGE);
        assert_eq!(pod_range_for(&file), first, "the recorded range is reused");
        std::fs::write(&file, "127.200.0.0/16\n").unwrap();
        assert_eq!(pod_range_for(&file), (Ipv4Addr::new(127, 200, 0, 0), 16));
    }

    #[test]
    fn only_loopback_ranges_are_accepted_from_the_record() {
        assert_eq!(parse_range("10.0.0.0/16"), None);
        assert_eq!(parse_range("127.130.0.0/40"), None);
        assert_eq!(parse_range("garbage"), None);
        assert_eq!(
            parse_range("127.130.0.0/16"),
            Some((Ipv4Addr::new(127, 130, 0, 0), 16))
        );
    }
}
