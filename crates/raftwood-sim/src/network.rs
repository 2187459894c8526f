//! The simulated network between members: per-message latency from a
//! distribution (so messages reorder), random drops and duplicates, and
//! partitions as a set of cut directed links (full, partial, one-way, and
//! the bridge case, where two sides cannot talk to each other but both
//! talk to one member in the middle).
//!
//! Links between clients and members are not partitioned: a client request
//! is lost only with the member it was sent to.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use raftwood_raft::NodeId;

/// How the network behaves for one seed.
#[derive(Debug, Clone, Copy)]
pub struct NetworkOptions {
    /// Smallest one-way latency.
    pub min_latency_us: u64,
    /// Largest latency of the common case.
    pub max_latency_us: u64,
    /// Probability that a message takes a slow path (up to
    /// `slow_latency_us` more).
    pub slow_probability: f64,
    /// Extra latency of the slow path, at most.
    pub slow_latency_us: u64,
    /// Probability that a message is lost.
    pub drop_probability: f64,
    /// Probability that a message is delivered twice.
    pub duplicate_probability: f64,
}

/// The kinds of partition the simulator creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartitionKind {
    /// One member cut off from all others, both ways.
    Isolate,
    /// The members split into two groups that cannot talk.
    Split,
    /// Two groups that cannot talk to each other, and one member that
    /// talks to both (the "bridge").
    Bridge,
    /// One member's messages to others are lost; it still hears them.
    OneWayOut,
    /// One member hears nobody; others still hear it.
    OneWayIn,
}

impl PartitionKind {
    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Isolate => "partition-isolate",
            PartitionKind::Split => "partition-split",
            PartitionKind::Bridge => "partition-bridge",
            PartitionKind::OneWayOut => "partition-one-way-out",
            PartitionKind::OneWayIn => "partition-one-way-in",
        }
    }
}

/// What happens to one message sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Lost (a partition or a random drop).
    Dropped,
    /// Delivered after these delays (two for a duplicate).
    Delivered(Vec<u64>),
}

/// The network's state: options and the cut links.
#[derive(Debug, Clone)]
pub struct Network {
    options: NetworkOptions,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Whether random drops and duplicates are on (off in the liveness
    /// phase).
    faulty: bool,
}

impl Network {
    /// A healed network.
    pub fn new(options: NetworkOptions) -> Network {
        Network {
            options,
            cut: BTreeSet::new(),
            faulty: true,
        }
    }

    /// Turns random drops and duplicates on or off.
    pub fn set_faulty(&mut self, faulty: bool) {
        self.faulty = faulty;
    }

    /// Whether `from` can reach `to` now.
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// A latency draw for one message.
    pub fn latency_us(&self, rng: &mut ChaCha8Rng) -> u64 {
        let o = &self.options;
        let mut latency = rng.random_range(o.min_latency_us..=o.max_latency_us);
        if rng.random_bool(o.slow_probability) {
            latency += rng.random_range(0..=o.slow_latency_us);
        }
        latency
    }

    /// Decides the fate of a message from `from` to `to` sent now.
    pub fn send(&self, from: NodeId, to: NodeId, rng: &mut ChaCha8Rng) -> Fate {
        if !self.connected(from, to) {
            return Fate::Dropped;
        }
        if self.faulty && rng.random_bool(self.options.drop_probability) {
            return Fate::Dropped;
        }
        let mut delays = vec![self.latency_us(rng)];
        if self.faulty && rng.random_bool(self.options.duplicate_probability) {
            delays.push(self.latency_us(rng));
        }
        Fate::Delivered(delays)
    }

    /// Cuts links according to `kind` over `members` (at least two); returns
    /// a description for the trace. `focus`, if given and a member, is the
    /// member singled out (isolated, cut one way, or the bridge).
    pub fn partition(
        &mut self,
        kind: PartitionKind,
        members: &[NodeId],
        focus: Option<NodeId>,
        rng: &mut ChaCha8Rng,
    ) -> String {
        self.cut.clear();
        if members.len() < 2 {
            return "no partition (fewer than two members)".to_owned();
        }
        let mut shuffled = members.to_vec();
        for i in (1..shuffled.len()).rev() {
            let j = rng.random_range(0..=i);
            shuffled.swap(i, j);
        }
        if let Some(at) = focus.and_then(|f| shuffled.iter().position(|&m| m == f)) {
            shuffled.swap(0, at);
        }
        let pick = shuffled[0];
        let others = &shuffled[1..];
        let cut_between = |cut: &mut BTreeSet<(NodeId, NodeId)>, a: &[NodeId], b: &[NodeId]| {
            for &x in a {
                for &y in b {
                    cut.insert((x, y));
                    cut.insert((y, x));
                }
            }
        };
        match kind {
            PartitionKind::Isolate => {
                cut_between(&mut self.cut, &[pick], others);
                format!("{pick} isolated")
            }
            PartitionKind::Split => {
                let size = rng.random_range(1..shuffled.len());
                let (a, b) = shuffled.split_at(size);
                cut_between(&mut self.cut, a, b);
                format!("split {a:?} | {b:?}")
            }
            PartitionKind::Bridge => {
                if others.len() < 2 {
                    cut_between(&mut self.cut, &[pick], others);
                    return format!("{pick} isolated (too few members for a bridge)");
                }
                let size = rng.random_range(1..others.len());
                let (a, b) = others.split_at(size);
                cut_between(&mut self.cut, a, b);
                format!("bridge {pick} between {a:?} and {b:?}")
            }
            PartitionKind::OneWayOut => {
                for &other in others {
                    self.cut.insert((pick, other));
                }
                format!("{pick} cannot send")
            }
            PartitionKind::OneWayIn => {
                for &other in others {
                    self.cut.insert((other, pick));
                }
                format!("{pick} cannot hear")
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn options() -> NetworkOptions {
        NetworkOptions {
            min_latency_us: 100,
            max_latency_us: 200,
            slow_probability: 0.0,
            slow_latency_us: 0,
            drop_probability: 0.0,
            duplicate_probability: 0.0,
        }
    }

    #[test]
    fn bridge_member_talks_to_both_sides_that_cannot_talk() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut network = Network::new(options());
        let members = [1, 2, 3, 4, 5];
        let description = network.partition(PartitionKind::Bridge, &members, None, &mut rng);
        let bridges: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|&m| {
                members
                    .iter()
                    .all(|&o| o == m || (network.connected(m, o) && network.connected(o, m)))
            })
            .collect();
        assert_eq!(bridges.len(), 1, "{description}");
        assert!(network.is_partitioned());
        network.heal();
        assert!(!network.is_partitioned());
    }

    #[test]
    fn one_way_cut_drops_only_one_direction() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut network = Network::new(options());
        let members = [1, 2, 3];
        network.partition(PartitionKind::OneWayOut, &members, Some(2), &mut rng);
        let mut one_way = 0;
        for &a in &members {
            for &b in &members {
                if a != b && !network.connected(a, b) {
                    assert!(network.connected(b, a));
                    assert_eq!(network.send(a, b, &mut rng), Fate::Dropped);
                    one_way += 1;
                }
            }
        }
        assert_eq!(one_way, 2);
        assert!(!network.connected(2, 1) && !network.connected(2, 3));
    }
}
