//! Skiff's cluster DNS, CoreDNS's job in a library: the records Services, EndpointSlices and pods
//! publish under the cluster domain ([`model`]), a DNS server answering them over UDP and TCP
//! and forwarding other names to the host's resolvers ([`server`]), and the `/etc/resolv.conf`
//! each pod gets for its `dnsPolicy` ([`resolv`]).

pub mod model;
pub mod resolv;
pub mod server;

pub use model::{ClusterZone, ReverseAnswer, ZoneAnswer, ZoneError};
