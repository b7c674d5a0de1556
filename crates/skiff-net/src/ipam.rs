//! Pod addresses inside the node's `podCIDR`, kept in a small file so a restart hands every
//! running pod the address it already has.
//!
//! The first host address is the gateway on the bridge; pods get the ones after it, never the
//! network or broadcast address. Like the `host-local` IPAM plugin, allocation continues after
//! the last address handed out and wraps around, so a freed address is not reused at once: a
//! proxy or client still holding the old pod's address then reaches nobody rather than a
//! stranger.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The addresses of one node's pod range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodRange {
    /// The node's `podCIDR`.
    pub pod_cidr: Ipv4Net,
}

impl PodRange {
    /// A node's range; its host bits are cleared. It must leave room for one pod (/30 or wider).
    pub fn new(pod_cidr: Ipv4Net) -> Result<Self, IpamError> {
        let pod_cidr = pod_cidr.trunc();
        if pod_cidr.prefix_len() > crate::ranges::MAX_NODE_PREFIX_LEN {
            return Err(IpamError::RangeTooSmall { pod_cidr });
        }
        Ok(PodRange { pod_cidr })
    }

    /// The bridge's address and every pod's default route: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        offset(self.pod_cidr.network(), 1)
    }

    /// The first address a pod may get.
    pub fn first_pod_address(&self) -> Ipv4Addr {
        offset(self.pod_cidr.network(), 2)
    }

    /// The last address a pod may get (the one before broadcast).
    pub fn last_pod_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.pod_cidr.broadcast()) - 1)
    }

    /// Whether `ip` may be given to a pod.
    pub fn is_pod_address(&self, ip: Ipv4Addr) -> bool {
        ip >= self.first_pod_address() && ip <= self.last_pod_address()
    }

    /// How many pods the range holds.
    pub fn capacity(&self) -> u32 {
        u32::from(self.last_pod_address()) - u32::from(self.first_pod_address()) + 1
    }
}

fn offset(network: Ipv4Addr, by: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(network) + by)
}

/// Why an address cannot be allocated, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every pod address is in use.
    #[error("no IP addresses available in range set: {first}-{last}")]
    Exhausted {
        /// The first pod address.
        first: Ipv4Addr,
        /// The last pod address.
        last: Ipv4Addr,
    },
    /// The range leaves no pod address.
    #[error("pod range {pod_cidr} is too small: it must be a /30 or wider")]
    RangeTooSmall {
        /// The range given.
        pod_cidr: Ipv4Net,
    },
    /// The state file was written for another pod range.
    #[error("the address file {path} is for pod range {found}, not {expected}")]
    RangeChanged {
        /// The file.
        path: PathBuf,
        /// The range recorded in it.
        found: Ipv4Net,
        /// The range in use now.
        expected: Ipv4Net,
    },
    /// The state file cannot be read or written.
    #[error("address file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The state file is not what this module writes.
    #[error("address file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Which pod holds which address, and where the next search starts: pure, no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddresses {
    range: PodRange,
    by_pod: BTreeMap<String, Ipv4Addr>,
    last_allocated: Option<Ipv4Addr>,
}

impl PodAddresses {
    /// No address in use.
    pub fn new(range: PodRange) -> Self {
        PodAddresses {
            range,
            by_pod: BTreeMap::new(),
            last_allocated: None,
        }
    }

    /// The range addresses come from.
    pub fn range(&self) -> PodRange {
        self.range
    }

    /// The address a pod holds, if any.
    pub fn get(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.by_pod.get(pod_uid).copied()
    }

    /// Every pod holding an address, by uid.
    pub fn pods(&self) -> &BTreeMap<String, Ipv4Addr> {
        &self.by_pod
    }

    /// The pod's address: the one it holds, else the next free one after the last handed out.
    /// The flag says whether it is new.
    pub fn allocate(&mut self, pod_uid: &str) -> Result<(Ipv4Addr, bool), IpamError> {
        if let Some(ip) = self.get(pod_uid) {
            return Ok((ip, false));
        }
        // Offsets are computed in 64 bits: a range may hold nearly 2^32 addresses.
        let first = u64::from(u32::from(self.range.first_pod_address()));
        let capacity = u64::from(self.range.capacity());
        let start = match self.last_allocated {
            Some(last) if self.range.is_pod_address(last) => u64::from(u32::from(last)) - first + 1,
            _ => 0,
        };
        let in_use: std::collections::BTreeSet<Ipv4Addr> = self.by_pod.values().copied().collect();
        for step in 0..capacity {
            let offset = first + (start + step) % capacity;
            let candidate = Ipv4Addr::from(u32::try_from(offset).expect("within the range"));
            if !in_use.contains(&candidate) {
                self.by_pod.insert(pod_uid.to_string(), candidate);
                self.last_allocated = Some(candidate);
                return Ok((candidate, true));
            }
        }
        Err(IpamError::Exhausted {
            first: self.range.first_pod_address(),
            last: self.range.last_pod_address(),
        })
    }

    /// Frees the pod's address; the address it held, if any.
    pub fn release(&mut self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.by_pod.remove(pod_uid)
    }
}

/// The file's layout: small, readable, and checked on load.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddressFile {
    pod_cidr: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_allocated: Option<Ipv4Addr>,
    pods: BTreeMap<String, Ipv4Addr>,
}

/// [`PodAddresses`] saved to a file after every change (written whole to a temporary file,
/// synced, then renamed over the old one, so a crash leaves the old or the new state).
#[derive(Debug)]
pub struct PodAddressFile {
    path: PathBuf,
    addresses: PodAddresses,
}

impl PodAddressFile {
    /// Loads the file, or starts empty when it does not exist yet.
    pub fn open(path: impl Into<PathBuf>, range: PodRange) -> Result<Self, IpamError> {
        let path = path.into();
        let addresses = match std::fs::read(&path) {
            Ok(bytes) => decode(&path, &bytes, range)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => PodAddresses::new(range),
            Err(source) => return Err(IpamError::Io { path, source }),
        };
        Ok(PodAddressFile { path, addresses })
    }

    /// The addresses as saved.
    pub fn addresses(&self) -> &PodAddresses {
        &self.addresses
    }

    /// Allocates (see [`PodAddresses::allocate`]) and saves before answering.
    pub fn allocate(&mut self, pod_uid: &str) -> Result<(Ipv4Addr, bool), IpamError> {
        let mut next = self.addresses.clone();
        let (ip, new) = next.allocate(pod_uid)?;
        if new {
            self.save(next)?;
        }
        Ok((ip, new))
    }

    /// Releases and saves; the address freed, if any.
    pub fn release(&mut self, pod_uid: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let mut next = self.addresses.clone();
        let freed = next.release(pod_uid);
        if freed.is_some() {
            self.save(next)?;
        }
        Ok(freed)
    }

    fn save(&mut self, next: PodAddresses) -> Result<(), IpamError> {
        let file = AddressFile {
            pod_cidr: next.range.pod_cidr,
            last_allocated: next.last_allocated,
            pods: next.by_pod.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("plain data serializes");
        write_atomically(&self.path, &bytes).map_err(|source| IpamError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.addresses = next;
        Ok(())
    }
}

fn decode(path: &Path, bytes: &[u8], range: PodRange) -> Result<PodAddresses, IpamError> {
    let corrupt = |message: String| IpamError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file: AddressFile =
        serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.pod_cidr != range.pod_cidr {
        return Err(IpamError::RangeChanged {
            path: path.to_path_buf(),
            found: file.pod_cidr,
            expected: range.pod_cidr,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for (pod, ip) in &file.pods {
        if !range.is_pod_address(*ip) {
            return Err(corrupt(format!(
                "pod {pod} holds {ip}, outside the pod addresses"
            )));
        }
        if !seen.insert(*ip) {
            return Err(corrupt(format!("{ip} is held by two pods")));
        }
    }
    Ok(PodAddresses {
        range,
        by_pod: file.pods,
        last_allocated: file.last_allocated,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let dir = dir.unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> PodRange {
        PodRange::new(text.parse().unwrap()).unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn range_addresses_table() {
        let cases = [
            (
                "198.18.0.0/24",
                "198.18.0.1",
                "198.18.0.2",
                "198.18.0.254",
                253,
            ),
            (
                "198.18.5.0/24",
                "198.18.5.1",
                "198.18.5.2",
                "198.18.5.254",
                253,
            ),
            (
                "198.18.0.64/26",
                "198.18.0.65",
                "198.18.0.66",
                "198.18.0.126",
                61,
            ),
            (
                "198.18.0.8/30",
                "198.18.0.9",
                "198.18.0.10",
                "198.18.0.10",
                1,
            ),
            (
                "198.18.0.0/23",
                "198.18.0.1",
                "198.18.0.2",
                "198.18.1.254",
                509,
            ),
        ];
        for (cidr, gateway, first, last, capacity) in cases {
            let r = range(cidr);
            assert_eq!(r.gateway(), ip(gateway), "{cidr}");
            assert_eq!(r.first_pod_address(), ip(first), "{cidr}");
            assert_eq!(r.last_pod_address(), ip(last), "{cidr}");
            assert_eq!(r.capacity(), capacity, "{cidr}");
            assert!(!r.is_pod_address(r.pod_cidr.network()), "{cidr}: network");
            assert!(!r.is_pod_address(r.gateway()), "{cidr}: gateway");
            assert!(
                !r.is_pod_address(r.pod_cidr.broadcast()),
                "{cidr}: broadcast"
            );
        }
        assert!(matches!(
            PodRange::new("198.18.0.0/31".parse().unwrap()),
            Err(IpamError::RangeTooSmall { .. })
        ));
    }

    #[test]
    fn pods_get_addresses_from_dot_two_and_keep_them() {
        let mut addresses = PodAddresses::new(range("198.18.0.0/24"));
        assert_eq!(addresses.allocate("a").unwrap(), (ip("198.18.0.2"), true));
        assert_eq!(addresses.allocate("b").unwrap(), (ip("198.18.0.3"), true));
        assert_eq!(addresses.allocate("a").unwrap(), (ip("198.18.0.2"), false));
    }

    #[test]
    fn a_released_address_is_reused_only_after_the_others() {
        let mut addresses = PodAddresses::new(range("198.18.0.8/29"));
        // Pod addresses .10 to .14.
        for pod in ["a", "b", "c"] {
            addresses.allocate(pod).unwrap();
        }
        assert_eq!(addresses.release("a"), Some(ip("198.18.0.10")));
        assert_eq!(addresses.release("a"), None);
        assert_eq!(addresses.allocate("d").unwrap().0, ip("198.18.0.13"));
        assert_eq!(addresses.allocate("e").unwrap().0, ip("198.18.0.14"));
        // Wraps around to the freed one, skipping those in use.
        assert_eq!(addresses.allocate("f").unwrap().0, ip("198.18.0.10"));
        let err = addresses.allocate("g").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IP addresses available in range set: 198.18.0.10-198.18.0.14"
        );
        assert_eq!(addresses.pods().len(), 5);
    }

    #[test]
    fn the_widest_range_wraps_without_overflow() {
        let wide = PodRange::new("0.0.0.0/0".parse().unwrap()).unwrap();
        assert_eq!(wide.capacity(), u32::MAX - 2);
        let mut addresses = PodAddresses::new(wide);
        addresses.last_allocated = Some(wide.last_pod_address());
        assert_eq!(addresses.allocate("a").unwrap(), (ip("0.0.0.2"), true));
        addresses.last_allocated = Some(ip("255.255.255.253"));
        assert_eq!(
            addresses.allocate("b").unwrap(),
            (ip("255.255.255.254"), true)
        );
        assert_eq!(addresses.allocate("c").unwrap(), (ip("0.0.0.3"), true));
    }

    #[test]
    fn the_file_keeps_allocations_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/pod-addresses.json");
        let r = range("198.18.3.0/24");
        {
            let mut file = PodAddressFile::open(&path, r).unwrap();
            assert_eq!(file.allocate("a").unwrap(), (ip("198.18.3.2"), true));
            assert_eq!(file.allocate("b").unwrap(), (ip("198.18.3.3"), true));
            assert_eq!(file.release("a").unwrap(), Some(ip("198.18.3.2")));
        }
        let mut reopened = PodAddressFile::open(&path, r).unwrap();
        assert_eq!(reopened.addresses().get("b"), Some(ip("198.18.3.3")));
        assert_eq!(reopened.addresses().get("a"), None);
        assert_eq!(reopened.allocate("b").unwrap(), (ip("198.18.3.3"), false));
        // The rotation point survives too: the next pod does not get the freed .2.
        assert_eq!(reopened.allocate("c").unwrap(), (ip("198.18.3.4"), true));
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_file_for_another_range_or_a_corrupt_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod-addresses.json");
        PodAddressFile::open(&path, range("198.18.3.0/24"))
            .unwrap()
            .allocate("a")
            .unwrap();
        assert!(matches!(
            PodAddressFile::open(&path, range("198.18.4.0/24")),
            Err(IpamError::RangeChanged { .. })
        ));
        let bad = [
            "not json",
            r#"{"podCidr":"198.18.3.0/24","pods":{"a":"198.18.3.255"}}"#,
            r#"{"podCidr":"198.18.3.0/24","pods":{"a":"198.18.3.1"}}"#,
            r#"{"podCidr":"198.18.3.0/24","pods":{"a":"198.18.3.9","b":"198.18.3.9"}}"#,
        ];
        for text in bad {
            std::fs::write(&path, text).unwrap();
            let got = PodAddressFile::open(&path, range("198.18.3.0/24"));
            assert!(
                matches!(got, Err(IpamError::Corrupt { .. })),
                "{text}: {got:?}"
            );
        }
    }
}
