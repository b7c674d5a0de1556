//! API Priority and Fairness decided without I/O: which FlowSchema and priority level a
//! request belongs to (the classifier), how much of the server's concurrency each level gets
//! and how many seats a request takes (the seat accounting), and the queues of one level (the
//! queue set), after kube-apiserver's `util/flowcontrol`.
//!
//! The server's shell reads the configuration objects, keeps one [`QueueSet`] per limited
//! level behind a lock, and turns the set's verdicts into served requests, waits and 429s.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::flow_control::{mandatory_flow_schemas, mandatory_priority_levels};

/// The wildcard of every list in a FlowSchema rule.
const EVERY: &str = "*";
/// The seats a list takes per this many objects it reads, as upstream estimates it.
pub const OBJECTS_PER_SEAT: u64 = 100;
/// The most seats a list ever takes (upstream's `MaximumListSeatsLimit`).
pub const MAXIMUM_LIST_SEATS: u64 = 10;
/// How long a request may wait in a queue: a quarter of the default request timeout (60 s),
/// as kube-apiserver bounds it.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(15);

/// What the classifier reads of a request: who sends it and what it asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDigest {
    /// The authenticated user's name.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The request's verb (`get`, `list`, `create`...; for non-resource paths the lowercased
    /// HTTP method).
    pub verb: String,
    /// Whether the path names an API resource.
    pub is_resource_request: bool,
    /// The API group (`""` for core).
    pub api_group: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`status`), empty when none.
    pub subresource: String,
    /// The namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// The URL path, for non-resource rules.
    pub path: String,
}

/// How the flows of one FlowSchema are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distinguisher {
    /// One flow for the whole schema.
    None,
    /// One flow per user.
    ByUser,
    /// One flow per namespace.
    ByNamespace,
}

/// A FlowSchema as the classifier uses it.
#[derive(Clone, Debug)]
pub struct Schema {
    /// The object's name.
    pub name: String,
    /// The object's uid, sent back in `X-Kubernetes-PF-FlowSchema-UID`.
    pub uid: String,
    /// Lower matches first.
    pub precedence: i64,
    /// The priority level's name.
    pub level: String,
    /// How flows are told apart.
    pub distinguisher: Distinguisher,
    /// The rules, from `spec.rules` as stored.
    rules: Vec<Value>,
}

/// How a limited level answers requests beyond its concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queuing {
    /// The number of queues.
    pub queues: usize,
    /// How many queues a flow is dealt.
    pub hand_size: usize,
    /// The most requests one queue holds.
    pub queue_length_limit: usize,
}

/// What a priority level does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelKind {
    /// Served at once, never limited.
    Exempt,
    /// Limited to its share of the server's concurrency; beyond it, queued or (`None`)
    /// rejected.
    Limited(Option<Queuing>),
}

/// A PriorityLevelConfiguration as the dispatcher uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// The object's name.
    pub name: String,
    /// The object's uid, sent back in `X-Kubernetes-PF-PriorityLevel-UID`.
    pub uid: String,
    /// Its nominal concurrency shares.
    pub shares: u64,
    /// Exempt or limited.
    pub kind: LevelKind,
}

/// The configuration digested from the stored objects: the schemas that can match, in
/// matching order, and every level by name.
#[derive(Clone, Debug)]
pub struct FlowConfig {
    schemas: Vec<Schema>,
    levels: BTreeMap<String, Level>,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The matching FlowSchema's name.
    pub schema: String,
    /// Its uid.
    pub schema_uid: String,
    /// The priority level's name.
    pub level: String,
    /// Its uid.
    pub level_uid: String,
    /// The flow within the schema (user or namespace), empty when not distinguished.
    pub flow: String,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn u64_at(value: &Value, pointer: &str) -> Option<u64> {
    value.pointer(pointer).and_then(Value::as_u64)
}

fn parse_schema(object: &Value) -> Schema {
    let distinguisher = match str_at(object, "/spec/distinguisherMethod/type") {
        "ByUser" => Distinguisher::ByUser,
        "ByNamespace" => Distinguisher::ByNamespace,
        _ => Distinguisher::None,
    };
    Schema {
        name: str_at(object, "/metadata/name").to_string(),
        uid: str_at(object, "/metadata/uid").to_string(),
        // Kubernetes' default precedence.
        precedence: object
            .pointer("/spec/matchingPrecedence")
            .and_then(Value::as_i64)
            .unwrap_or(1000),
        level: str_at(object, "/spec/priorityLevelConfiguration/name").to_string(),
        distinguisher,
        rules: object
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    }
}

fn parse_level(object: &Value) -> Level {
    let name = str_at(object, "/metadata/name").to_string();
    let uid = str_at(object, "/metadata/uid").to_string();
    if str_at(object, "/spec/type") == "Exempt" {
        return Level {
            name,
            uid,
            shares: u64_at(object, "/spec/exempt/nominalConcurrencyShares").unwrap_or(0),
            kind: LevelKind::Exempt,
        };
    }
    let limited = object.pointer("/spec/limited");
    let at = |pointer: &str| limited.and_then(|l| u64_at(l, pointer));
    let queuing = (limited
        .map(|l| str_at(l, "/limitResponse/type"))
        .unwrap_or("Reject")
        == "Queue")
        .then(|| Queuing {
            // Kubernetes' defaults for a queuing level.
            queues: at("/limitResponse/queuing/queues").unwrap_or(64) as usize,
            hand_size: at("/limitResponse/queuing/handSize").unwrap_or(8) as usize,
            queue_length_limit: at("/limitResponse/queuing/queueLengthLimit").unwrap_or(50)
                as usize,
        })
        .filter(|q| q.queues > 0);
    Level {
        name,
        uid,
        shares: at("/nominalConcurrencyShares").unwrap_or(30),
        kind: LevelKind::Limited(queuing),
    }
}

impl FlowConfig {
    /// Digests the stored FlowSchemas and PriorityLevelConfigurations as kube-apiserver's
    /// config consumer does: a schema whose level does not exist (dangling) never matches,
    /// schemas match in `matchingPrecedence` order then by name, and a missing mandatory
    /// object (`exempt`, `catch-all`) is used as bootstrapped until it is back.
    pub fn digest(flow_schemas: &[Value], levels: &[Value]) -> FlowConfig {
        let mut by_name: BTreeMap<String, Level> = levels
            .iter()
            .map(parse_level)
            .map(|l| (l.name.clone(), l))
            .collect();
        for mandatory in mandatory_priority_levels() {
            let level = parse_level(&mandatory);
            by_name.entry(level.name.clone()).or_insert(level);
        }
        let mut schemas: Vec<Schema> = flow_schemas.iter().map(parse_schema).collect();
        for mandatory in mandatory_flow_schemas() {
            let schema = parse_schema(&mandatory);
            if !schemas.iter().any(|s| s.name == schema.name) {
                schemas.push(schema);
            }
        }
        schemas.retain(|s| by_name.contains_key(&s.level));
        schemas.sort_by(|a, b| {
            a.precedence
                .cmp(&b.precedence)
                .then_with(|| a.name.cmp(&b.name))
        });
        FlowConfig {
            schemas,
            levels: by_name,
        }
    }

    /// Every level, by name.
    pub fn levels(&self) -> &BTreeMap<String, Level> {
        &self.levels
    }

    /// The level named `name`.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.get(name)
    }

    /// The first schema matching the request, and its flow. The mandatory catch-all matches
    /// every authenticated or anonymous request, so only a request of neither falls through
    /// to it here as well.
    pub fn classify(&self, request: &RequestDigest) -> Classification {
        let schema = self
            .schemas
            .iter()
            .find(|s| s.rules.iter().any(|rule| rule_matches(rule, request)))
            .or_else(|| self.schemas.iter().find(|s| s.name == "catch-all"));
        let Some(schema) = schema else {
            return Classification {
                schema: "catch-all".into(),
                schema_uid: String::new(),
                level: "catch-all".into(),
                level_uid: String::new(),
                flow: request.user.clone(),
            };
        };
        let level_uid = self
            .levels
            .get(&schema.level)
            .map(|l| l.uid.clone())
            .unwrap_or_default();
        let flow = match schema.distinguisher {
            Distinguisher::None => String::new(),
            Distinguisher::ByUser => request.user.clone(),
            Distinguisher::ByNamespace => request.namespace.clone(),
        };
        Classification {
            schema: schema.name.clone(),
            schema_uid: schema.uid.clone(),
            level: schema.level.clone(),
            level_uid,
            flow,
        }
    }

    /// Each limited level's nominal concurrency limit out of the server's: its shares'
    /// part of every level's shares (the exempt ones' included), rounded up, as upstream.
    pub fn concurrency_limits(&self, server_limit: u64) -> BTreeMap<String, u64> {
        let total: u64 = self
            .levels
            .values()
            .fold(0u64, |sum, l| sum.saturating_add(l.shares));
        self.levels
            .values()
            .filter(|l| matches!(l.kind, LevelKind::Limited(_)))
            .map(|l| {
                (
                    l.name.clone(),
                    nominal_concurrency_limit(server_limit, l.shares, total),
                )
            })
            .collect()
    }
}

/// `ceil(server_limit * shares / total_shares)`, at least 1 for a level with shares, computed
/// without overflow.
pub fn nominal_concurrency_limit(server_limit: u64, shares: u64, total_shares: u64) -> u64 {
    if total_shares == 0 || shares == 0 {
        return 0;
    }
    let product = u128::from(server_limit) * u128::from(shares);
    let limit = product.div_ceil(u128::from(total_shares));
    u64::try_from(limit).unwrap_or(u64::MAX)
}

/// The most seats one request of a level may take: 15 % of its concurrency limit, and no
/// more than its limit divided by its hand size, and at least one, as upstream bounds it.
pub fn max_seats(concurrency_limit: u64, hand_size: Option<usize>) -> u64 {
    let fifteen_percent = (u128::from(concurrency_limit) * 15).div_ceil(100) as u64;
    let by_hand = match hand_size {
        Some(hand) if hand > 0 => concurrency_limit / hand as u64,
        _ => u64::MAX,
    };
    fifteen_percent.min(by_hand).max(1)
}

/// The seats a list takes: one per hundred objects it reads (its `limit` when smaller than
/// the stored count), between 1 and `max_seats` capped at [`MAXIMUM_LIST_SEATS`]; with no
/// count known, one, as upstream does for a resource it has no count of. Every other request
/// takes one seat.
pub fn list_seats(stored_objects: Option<u64>, limit: Option<u64>, max_seats: u64) -> u64 {
    let ceiling = max_seats.clamp(1, MAXIMUM_LIST_SEATS);
    let Some(stored) = stored_objects else {
        return 1;
    };
    let read = match limit {
        Some(limit) if limit > 0 => stored.min(limit),
        _ => stored,
    };
    read.div_ceil(OBJECTS_PER_SEAT).clamp(1, ceiling)
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `wanted` is in `list`, or the list is the wildcard alone.
fn contains_or_every(list: &[String], wanted: &str) -> bool {
    (list.len() == 1 && list[0] == EVERY) || list.iter().any(|x| x == wanted)
}

fn rule_matches(rule: &Value, request: &RequestDigest) -> bool {
    let subjects = rule
        .get("subjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !subjects.iter().any(|s| subject_matches(s, request)) {
        return false;
    }
    let key = if request.is_resource_request {
        "resourceRules"
    } else {
        "nonResourceRules"
    };
    rule.get(key)
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules.iter().any(|r| {
                if request.is_resource_request {
                    resource_rule_matches(r, request)
                } else {
                    non_resource_rule_matches(r, request)
                }
            })
        })
}

fn subject_matches(subject: &Value, request: &RequestDigest) -> bool {
    match str_at(subject, "/kind") {
        "User" => {
            let name = str_at(subject, "/user/name");
            subject.get("user").is_some() && (name == EVERY || name == request.user)
        }
        "Group" => {
            let name = str_at(subject, "/group/name");
            subject.get("group").is_some()
                && (name == EVERY || request.groups.iter().any(|g| g == name))
        }
        "ServiceAccount" => {
            if subject.get("serviceAccount").is_none() {
                return false;
            }
            let namespace = str_at(subject, "/serviceAccount/namespace");
            let name = str_at(subject, "/serviceAccount/name");
            let Some(rest) = request.user.strip_prefix("system:serviceaccount:") else {
                return false;
            };
            let Some((user_namespace, user_name)) = rest.split_once(':') else {
                return false;
            };
            user_namespace == namespace && (name == EVERY || user_name == name)
        }
        _ => false,
    }
}

fn resource_rule_matches(rule: &Value, request: &RequestDigest) -> bool {
    let resource = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    if !contains_or_every(&strings(rule, "verbs"), &request.verb)
        || !contains_or_every(&strings(rule, "resources"), &resource)
        || !contains_or_every(&strings(rule, "apiGroups"), &request.api_group)
    {
        return false;
    }
    if request.namespace.is_empty() {
        return rule
            .get("clusterScope")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    contains_or_every(&strings(rule, "namespaces"), &request.namespace)
}

fn non_resource_rule_matches(rule: &Value, request: &RequestDigest) -> bool {
    if !contains_or_every(&strings(rule, "verbs"), &request.verb) {
        return false;
    }
    strings(rule, "nonResourceURLs").iter().any(|url| {
        if url == EVERY || *url == request.path {
            return true;
        }
        let mut prefix = url.trim_end_matches('*').to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        request.path.starts_with(&prefix)
    })
}

/// A stable 64-bit hash of a flow (FNV-1a over the schema's name and the distinguisher),
/// which deals the flow its queues.
pub fn flow_hash(schema: &str, flow: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes().chain([0u8]).chain(flow.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Shuffle sharding: `hand_size` distinct queues out of `queues`, drawn from the hash as
/// digits of a mixed-radix number, so a flow always gets the same hand and two flows rarely
/// share all of theirs.
pub fn deal(hash: u64, queues: usize, hand_size: usize) -> Vec<usize> {
    let hand_size = hand_size.clamp(1, queues.max(1));
    let mut remaining = hash;
    let mut hand: Vec<usize> = Vec::with_capacity(hand_size);
    for drawn in 0..hand_size {
        let choices = (queues - drawn) as u64;
        let mut card = (remaining % choices) as usize;
        remaining /= choices;
        let mut taken = hand.clone();
        taken.sort_unstable();
        for t in taken {
            if card >= t {
                card += 1;
            }
        }
        hand.push(card);
    }
    hand
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// A level without queues had no seats left.
    ConcurrencyLimit,
    /// The flow's chosen queue was full.
    QueueFull,
    /// The request waited in its queue longer than allowed.
    TimedOut,
}

/// What the queue set decided on a request's arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it now; hand `queue` back to [`QueueSet::finish`].
    Execute {
        /// The queue it counts against, if the level queues.
        queue: Option<usize>,
    },
    /// It waits in a queue until [`QueueSet`] dispatches it (or it times out).
    Wait,
    /// Refuse it.
    Reject(RejectReason),
}

/// A waiting request the set has just dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatched {
    /// The request's id.
    pub id: u64,
    /// The queue to hand back when it finishes.
    pub queue: usize,
}

#[derive(Clone, Copy, Debug)]
struct Waiting {
    id: u64,
    seats: u64,
    since: Instant,
}

/// The queues of one limited level and the seats its executing requests hold. Requests are
/// dispatched from the queues round robin while seats are free; a request wider than what is
/// free waits at its queue's head (none is skipped), except when nothing executes, so a wide
/// request always runs eventually.
#[derive(Debug)]
pub struct QueueSet {
    concurrency_limit: u64,
    queuing: Option<Queuing>,
    queues: Vec<VecDeque<Waiting>>,
    executing_per_queue: Vec<u64>,
    seats_in_use: u64,
    next_queue: usize,
}

impl QueueSet {
    /// A set for a level with this concurrency limit and queuing (`None`: reject beyond it).
    pub fn new(concurrency_limit: u64, queuing: Option<Queuing>) -> QueueSet {
        let queue_count = queuing.map(|q| q.queues).unwrap_or(0);
        QueueSet {
            concurrency_limit,
            queuing,
            queues: vec![VecDeque::new(); queue_count],
            executing_per_queue: vec![0; queue_count],
            seats_in_use: 0,
            next_queue: 0,
        }
    }

    /// The seats held by executing requests.
    pub fn seats_in_use(&self) -> u64 {
        self.seats_in_use
    }

    /// The requests waiting in every queue.
    pub fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// The level's concurrency limit.
    pub fn concurrency_limit(&self) -> u64 {
        self.concurrency_limit
    }

    /// Takes a new limit and queuing; waiting requests keep their place when the number of
    /// queues is unchanged, else they are spread over the new queues in order. May dispatch.
    pub fn reconfigure(
        &mut self,
        concurrency_limit: u64,
        queuing: Option<Queuing>,
    ) -> Vec<Dispatched> {
        self.concurrency_limit = concurrency_limit;
        let queue_count = queuing.map(|q| q.queues).unwrap_or(0);
        self.queuing = queuing;
        if queue_count != self.queues.len() {
            let waiting: Vec<Waiting> = self.queues.drain(..).flatten().collect();
            self.queues = vec![VecDeque::new(); queue_count];
            self.executing_per_queue.resize(queue_count, 0);
            self.next_queue = 0;
            for (i, w) in waiting.into_iter().enumerate() {
                match self.queues.get_mut(i.checked_rem(queue_count).unwrap_or(0)) {
                    Some(queue) => queue.push_back(w),
                    // No queues any more: the shell times them out.
                    None => break,
                }
            }
        }
        self.dispatch()
    }

    fn fits(&self, seats: u64) -> bool {
        self.seats_in_use == 0 || self.seats_in_use.saturating_add(seats) <= self.concurrency_limit
    }

    /// A request `id` of the flow hashed `flow_hash` arrives at `now` needing `seats`; the
    /// verdict, and the waiting requests the arrival let through.
    pub fn arrive(
        &mut self,
        id: u64,
        flow_hash: u64,
        seats: u64,
        now: Instant,
    ) -> (Verdict, Vec<Dispatched>) {
        let seats = seats.clamp(1, self.concurrency_limit.max(1));
        let Some(queuing) = self.queuing.filter(|_| !self.queues.is_empty()) else {
            if self.fits(seats) {
                self.seats_in_use = self.seats_in_use.saturating_add(seats);
                return (Verdict::Execute { queue: None }, Vec::new());
            }
            return (Verdict::Reject(RejectReason::ConcurrencyLimit), Vec::new());
        };
        let hand = deal(flow_hash, self.queues.len(), queuing.hand_size);
        let Some(&chosen) = hand.iter().min_by_key(|&&q| {
            let waiting: u64 = self.queues[q].iter().map(|w| w.seats).sum();
            waiting.saturating_add(self.executing_per_queue[q])
        }) else {
            return (Verdict::Reject(RejectReason::QueueFull), Vec::new());
        };
        if self.waiting() == 0 && self.fits(seats) {
            self.seats_in_use = self.seats_in_use.saturating_add(seats);
            self.executing_per_queue[chosen] =
                self.executing_per_queue[chosen].saturating_add(seats);
            return (
                Verdict::Execute {
                    queue: Some(chosen),
                },
                Vec::new(),
            );
        }
        if self.queues[chosen].len() >= queuing.queue_length_limit {
            return (Verdict::Reject(RejectReason::QueueFull), Vec::new());
        }
        self.queues[chosen].push_back(Waiting {
            id,
            seats,
            since: now,
        });
        let mut dispatched = self.dispatch();
        if let Some(at) = dispatched.iter().position(|d| d.id == id) {
            let own = dispatched.remove(at);
            return (
                Verdict::Execute {
                    queue: Some(own.queue),
                },
                dispatched,
            );
        }
        (Verdict::Wait, dispatched)
    }

    /// Dispatches waiting requests round robin over the queues while their heads fit.
    fn dispatch(&mut self) -> Vec<Dispatched> {
        let mut dispatched = Vec::new();
        let count = self.queues.len();
        if count == 0 {
            return dispatched;
        }
        loop {
            let next = (0..count)
                .map(|offset| (self.next_queue + offset) % count)
                .find(|&q| !self.queues[q].is_empty());
            let Some(q) = next else { break };
            let Some(head) = self.queues[q].front().copied() else {
                break;
            };
            if !self.fits(head.seats) {
                break;
            }
            self.queues[q].pop_front();
            self.seats_in_use = self.seats_in_use.saturating_add(head.seats);
            self.executing_per_queue[q] = self.executing_per_queue[q].saturating_add(head.seats);
            self.next_queue = (q + 1) % count;
            dispatched.push(Dispatched {
                id: head.id,
                queue: q,
            });
        }
        dispatched
    }

    /// A request holding `seats` from `queue` finished; the waiting requests that now run.
    pub fn finish(&mut self, queue: Option<usize>, seats: u64) -> Vec<Dispatched> {
        let seats = seats.clamp(1, self.concurrency_limit.max(1));
        self.seats_in_use = self.seats_in_use.saturating_sub(seats);
        if let Some(executing) = queue.and_then(|q| self.executing_per_queue.get_mut(q)) {
            *executing = executing.saturating_sub(seats);
        }
        self.dispatch()
    }

    /// Removes a waiting request (its client went away); `false` when it was not waiting
    /// (already dispatched).
    pub fn cancel(&mut self, id: u64) -> (bool, Vec<Dispatched>) {
        for queue in &mut self.queues {
            if let Some(at) = queue.iter().position(|w| w.id == id) {
                queue.remove(at);
                return (true, self.dispatch());
            }
        }
        (false, Vec::new())
    }

    /// The requests that have waited longer than `limit` at `now`, removed; and the ones
    /// their leaving let through.
    pub fn expire(&mut self, now: Instant, limit: Duration) -> (Vec<u64>, Vec<Dispatched>) {
        let mut expired = Vec::new();
        for queue in &mut self.queues {
            queue.retain(|w| {
                let keep = now.saturating_duration_since(w.since) <= limit;
                if !keep {
                    expired.push(w.id);
                }
                keep
            });
        }
        let dispatched = if expired.is_empty() {
            Vec::new()
        } else {
            self.dispatch()
        };
        (expired, dispatched)
    }
}

/// The longest `Retry-After` a refusal suggests, in seconds.
pub const MAX_RETRY_AFTER: i64 = 32;

/// A level's recent refusals and the `Retry-After` they suggest, as kube-apiserver's dropped
/// requests tracker keeps them: it starts at one second, doubles (up to
/// [`MAX_RETRY_AFTER`]) when at least three times as many requests as its value were refused
/// over that many seconds, at most once per that many seconds, and shrinks by one when fewer
/// than its value were. Times are Unix seconds passed in.
#[derive(Clone, Debug)]
pub struct RefusalTracker {
    /// Refusals per past second, oldest first.
    history: VecDeque<(i64, i64)>,
    current_second: i64,
    current_count: i64,
    retry_after: i64,
    bumped_at: i64,
}

impl Default for RefusalTracker {
    fn default() -> Self {
        RefusalTracker {
            history: VecDeque::new(),
            current_second: 0,
            current_count: 0,
            retry_after: 1,
            bumped_at: 0,
        }
    }
}

impl RefusalTracker {
    /// The `Retry-After` to send now, in seconds.
    pub fn retry_after(&self) -> i64 {
        self.retry_after
    }

    /// Counts a refusal at `now`; the value changes only when a new second begins, from the
    /// seconds before it.
    pub fn record(&mut self, now: i64) {
        if now == self.current_second {
            self.current_count = self.current_count.saturating_add(1);
            return;
        }
        let closed = self.current_second;
        self.history.push_back((closed, self.current_count));
        while self
            .history
            .front()
            .is_some_and(|(second, _)| closed.saturating_sub(*second) > MAX_RETRY_AFTER)
        {
            self.history.pop_front();
        }
        self.current_second = now;
        self.current_count = 1;
        let window = self.retry_after;
        let refused: i64 = self
            .history
            .iter()
            .rev()
            .take_while(|(second, _)| now.saturating_sub(*second) <= window)
            .filter(|(second, _)| *second < now)
            .map(|(_, count)| *count)
            .fold(0i64, i64::saturating_add);
        if now.saturating_sub(self.bumped_at) >= window && refused >= window.saturating_mul(3) {
            self.retry_after = window.saturating_mul(2).min(MAX_RETRY_AFTER);
            self.bumped_at = now;
        } else if refused < window && window > 1 {
            self.retry_after = window - 1;
        }
    }
}

#[cfg(test)]
mod tests;
