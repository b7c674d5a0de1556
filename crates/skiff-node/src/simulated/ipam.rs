//! Addresses of simulated nodes and of the pods on them.
//!
//! Node `i` (1-based) gets `InternalIP` `127.0.0.i` (counting on through `127.0.x.y`), so a
//! simulated node's address is local to the machine, and the pod range `10.244.(i-1).0/24`, as
//! a cluster's node IPAM would assign from `10.244.0.0/16`. Both depend only on `i`, so a
//! restarted agent reports the same addresses.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// The first address of the pod ranges.
const POD_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 0);
/// Size of each node's pod range (a /24).
const POD_RANGE_PREFIX: u8 = 24;

/// The `InternalIP` of simulated node `index` (1-based).
pub fn node_address(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)).wrapping_add(index))
}

/// The pod range of simulated node `index` (1-based): its network address and prefix length.
pub fn pod_range(index: u32) -> (Ipv4Addr, u8) {
    let offset = index.saturating_sub(1) << (32 - POD_RANGE_PREFIX);
    (
        Ipv4Addr::from(u32::from(POD_NETWORK).wrapping_add(offset)),
        POD_RANGE_PREFIX,
    )
}

/// The pod addresses of one node: handed out in turn, like the `host-local` CNI plugin, so a
/// freed address is not reused at once.
#[derive(Clone, Debug)]
pub struct PodIpPool {
    first: u32,
    last: u32,
    cursor: u32,
    used: BTreeSet<u32>,
    by_pod: HashMap<String, u32>,
}

impl PodIpPool {
    /// The pool of a range: every address but the network, the gateway (`.1`, the node's
    /// bridge) and the broadcast address.
    pub fn new(network: Ipv4Addr, prefix: u8) -> PodIpPool {
        let prefix = prefix.clamp(1, 30);
        let size = 1u32 << (32 - prefix);
        let base = u32::from(network) & !(size - 1);
        PodIpPool {
            first: base + 2,
            // `base` is aligned to `size`, so this stays below 2^32.
            last: base + (size - 2),
            cursor: base + 2,
            used: BTreeSet::new(),
            by_pod: HashMap::new(),
        }
    }

    /// Records the address a pod already reports (after an agent restart). Returns false if
    /// the address is outside the range or held by another pod.
    pub fn reserve(&mut self, pod: &str, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        if !(self.first..=self.last).contains(&ip) {
            return false;
        }
        match self.by_pod.get(pod) {
            Some(held) if *held == ip => return true,
            Some(_) => return false,
            None => {}
        }
        if !self.used.insert(ip) {
            return false;
        }
        self.by_pod.insert(pod.to_string(), ip);
        true
    }

    /// The pod's address, allocating the next free one on first use; `None` when the range
    /// is full.
    pub fn allocate(&mut self, pod: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_pod.get(pod) {
            return Some(Ipv4Addr::from(*ip));
        }
        let span = self.last - self.first + 1;
        for step in 0..span {
            let candidate = self.first + (self.cursor - self.first + step) % span;
            if self.used.insert(candidate) {
                self.by_pod.insert(pod.to_string(), candidate);
                self.cursor = if candidate == self.last {
                    self.first
                } else {
                    candidate + 1
                };
                return Some(Ipv4Addr::from(candidate));
            }
        }
        None
    }

    /// Frees the pod's address.
    pub fn release(&mut self, pod: &str) {
        if let Some(ip) = self.by_pod.remove(pod) {
            self.used.remove(&ip);
        }
    }

    /// How many addresses are held.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_loopback_addresses_and_disjoint_pod_ranges() {
        let cases = [
            (1, "127.0.0.1", "10.244.0.0"),
            (2, "127.0.0.2", "10.244.1.0"),
            (20, "127.0.0.20", "10.244.19.0"),
            (256, "127.0.1.0", "10.244.255.0"),
            (257, "127.0.1.1", "10.245.0.0"),
        ];
        for (index, address, range) in cases {
            assert_eq!(node_address(index).to_string(), address);
            assert_eq!(pod_range(index), (range.parse().unwrap(), 24));
        }
    }

    #[test]
    fn addresses_are_handed_out_in_turn_and_kept_per_pod() {
        let mut pool = PodIpPool::new("10.244.3.0".parse().unwrap(), 24);
        assert_eq!(pool.allocate("a"), Some("10.244.3.2".parse().unwrap()));
        assert_eq!(pool.allocate("b"), Some("10.244.3.3".parse().unwrap()));
        assert_eq!(pool.allocate("a"), Some("10.244.3.2".parse().unwrap()));
        pool.release("a");
        assert_eq!(
            pool.allocate("c"),
            Some("10.244.3.4".parse().unwrap()),
            "a freed address is not reused at once"
        );
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn reservations_survive_restarts_and_refuse_clashes() {
        let mut pool = PodIpPool::new("10.244.0.0".parse().unwrap(), 24);
        assert!(pool.reserve("a", "10.244.0.7".parse().unwrap()));
        assert!(pool.reserve("a", "10.244.0.7".parse().unwrap()));
        assert!(!pool.reserve("b", "10.244.0.7".parse().unwrap()));
        assert!(!pool.reserve("b", "10.244.1.7".parse().unwrap()));
        assert!(!pool.reserve("b", "10.244.0.1".parse().unwrap()), "gateway");
        assert_eq!(pool.allocate("a"), Some("10.244.0.7".parse().unwrap()));
    }

    #[test]
    fn ranges_at_the_top_of_the_address_space_do_not_overflow() {
        let mut pool = PodIpPool::new("255.255.255.0".parse().unwrap(), 24);
        assert_eq!(pool.allocate("a"), Some("255.255.255.2".parse().unwrap()));
        let mut tiny = PodIpPool::new("255.255.255.252".parse().unwrap(), 32);
        assert_eq!(tiny.allocate("a"), Some("255.255.255.254".parse().unwrap()));
        assert_eq!(tiny.allocate("b"), None);
    }

    #[test]
    fn a_full_range_allocates_nothing_until_an_address_is_freed() {
        let mut pool = PodIpPool::new("10.0.0.0".parse().unwrap(), 29);
        let got: Vec<_> = (0..5)
            .filter_map(|i| pool.allocate(&i.to_string()))
            .collect();
        assert_eq!(got.len(), 5, ".2 to .6");
        assert_eq!(pool.allocate("x"), None);
        pool.release("3");
        assert_eq!(pool.allocate("x"), Some("10.0.0.5".parse().unwrap()));
    }
}
