//! How the workers of a pipeline share its leases: by count (each about
//! the same number of shards), or by load (each about the same bytes per
//! second, as KCL 3 balances by the `throughputKBps` workers publish).
//!
//! By load, a worker whose load is below its fair share by more than
//! [`TOLERANCE`] takes one lease from the busiest worker: the one that
//! brings the two closest to each other, and only if that narrows their
//! gap by more than [`TOLERANCE`] of the fair share. The band is the
//! dampening: a split inside it never moves, so measurement noise does
//! not make leases ping-pong, and each move strictly narrows a gap, so
//! balancing ends (see the property test). The worker (`worker.rs`) adds
//! the dampening in time: loads averaged over three lease durations, a
//! lease taken only once it has been the one to take three rounds in a
//! row, one move every three lease durations at most, and never a closed
//! shard's lease.

use std::collections::BTreeMap;

/// What workers balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The number of leases: ceil(leases / workers) each.
    Count,
    /// The measured load (bytes read per second) of the leases.
    #[default]
    Load,
}

/// How far below its fair share (as a fraction of it) a worker's load may
/// be before it takes a lease, and by how much (the same fraction) a move
/// must narrow the gap between the two workers.
pub const TOLERANCE: f64 = 0.1;

/// Below this total load (KB/s) the stream is idle and loads say
/// nothing: workers balance by count.
pub const IDLE_KBPS: f64 = 1.0;

/// An active lease, its live owner and its published load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Owned<'a> {
    /// The shard.
    pub shard: &'a str,
    /// Its owner, alive.
    pub owner: &'a str,
    /// Its load in KB/s (0 when not measured yet).
    pub kbps: f64,
}

/// Whether these leases carry enough load to balance by.
pub fn loaded(leases: &[Owned<'_>]) -> bool {
    leases.iter().map(|l| l.kbps).sum::<f64>() >= IDLE_KBPS
}

/// The lease worker `me` should take, by load, from the busiest other
/// worker; `None` when `me` is within [`TOLERANCE`] of its fair share or
/// no single move narrows the gap enough.
pub fn lease_to_steal<'a>(me: &str, leases: &[Owned<'a>]) -> Option<Owned<'a>> {
    let mut loads: BTreeMap<&str, f64> = BTreeMap::new();
    loads.insert(me, 0.0);
    for lease in leases {
        *loads.entry(lease.owner).or_default() += lease.kbps;
    }
    let total: f64 = loads.values().sum();
    #[allow(clippy::cast_precision_loss)]
    let fair = total / loads.len() as f64;
    let mine = loads[me];
    if total < IDLE_KBPS || mine >= fair * (1.0 - TOLERANCE) {
        return None;
    }
    let (victim, heaviest) = loads
        .iter()
        .filter(|(w, _)| **w != me)
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
    let gap = heaviest - mine;
    // Moving `t` leaves a gap of |gap - 2t|: the best lease leaves the
    // smallest, and must narrow it by more than the tolerance.
    leases
        .iter()
        .filter(|l| l.owner == *victim && l.kbps > 0.0)
        .map(|l| (l, (gap - 2.0 * l.kbps).abs()))
        .filter(|(_, left)| *left < gap - TOLERANCE * fair)
        .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.shard.cmp(b.0.shard)))
        .map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lease<'a>(shard: &'a str, owner: &'a str, kbps: f64) -> Owned<'a> {
        Owned { shard, owner, kbps }
    }

    /// Moves leases, worker after worker in turn, until no worker moves
    /// one in a whole round; gives the rounds it took.
    fn settle(workers: &[&'static str], leases: &mut [Owned<'static>]) -> usize {
        for round in 0..1000 {
            let mut moved = false;
            for &w in workers {
                if let Some(take) = lease_to_steal(w, leases) {
                    let l = leases.iter_mut().find(|l| l.shard == take.shard).unwrap();
                    assert_ne!(l.owner, w, "a worker takes only others' leases");
                    l.owner = w;
                    moved = true;
                }
            }
            if !moved {
                return round;
            }
        }
        panic!("balancing did not end: {leases:?}");
    }

    fn load_of(w: &str, leases: &[Owned<'_>]) -> f64 {
        leases.iter().filter(|l| l.owner == w).map(|l| l.kbps).sum()
    }

    #[test]
    fn forty_thirty_twenty_ten_splits_fifty_fifty() {
        let mut leases = [
            lease("s0", "a", 40.0),
            lease("s1", "a", 30.0),
            lease("s2", "a", 20.0),
            lease("s3", "a", 10.0),
        ];
        assert!(settle(&["b", "a"], &mut leases) <= 3);
        assert_eq!(load_of("a", &leases), 50.0);
        assert_eq!(load_of("b", &leases), 50.0);
    }

    #[test]
    fn a_split_within_the_band_stays() {
        // 46 against 54: 46 is within 10 % of the fair 50.
        let leases = [
            lease("s0", "a", 27.0),
            lease("s1", "a", 27.0),
            lease("s2", "b", 23.0),
            lease("s3", "b", 23.0),
        ];
        assert_eq!(lease_to_steal("b", &leases), None);
        assert_eq!(lease_to_steal("a", &leases), None);
    }

    #[test]
    fn a_move_that_would_not_narrow_the_gap_is_not_made() {
        // b has nothing, a one hot shard: taking it only swaps roles.
        let leases = [lease("hot", "a", 90.0)];
        assert_eq!(lease_to_steal("b", &leases), None);
    }

    #[test]
    fn an_idle_stream_has_no_load_to_balance() {
        let leases = [lease("s0", "a", 0.2), lease("s1", "a", 0.3)];
        assert!(!loaded(&leases));
        assert_eq!(lease_to_steal("b", &leases), None);
    }

    #[test]
    fn a_new_worker_takes_from_the_busiest() {
        let leases = [
            lease("s0", "a", 30.0),
            lease("s1", "a", 30.0),
            lease("s2", "b", 20.0),
            lease("s3", "b", 10.0),
        ];
        let taken = lease_to_steal("c", &leases).unwrap();
        assert_eq!(taken.owner, "a");
    }

    proptest! {
        /// From any start, balancing ends; at the end every worker is
        /// within the band of its fair share, or no single move could
        /// bring it closer (shards too uneven to split finer).
        #[test]
        fn balancing_ends_near_fair(
            loads in prop::collection::vec(0.0f64..100.0, 1..12),
            owners in prop::collection::vec(0usize..3, 12),
        ) {
            let names: Vec<&'static str> = (0..loads.len())
                .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
                .collect();
            let workers = ["w0", "w1", "w2"];
            let mut leases: Vec<Owned<'static>> = loads
                .iter()
                .zip(&names)
                .zip(&owners)
                .map(|((&kbps, &shard), &o)| lease(shard, workers[o], kbps))
                .collect();
            let spread = |leases: &[Owned<'_>]| {
                let loads: Vec<f64> = workers.iter().map(|w| load_of(w, leases)).collect();
                loads.iter().fold(0.0, |a: f64, b| a.max(*b)) - loads.iter().fold(f64::MAX, |a: f64, b| a.min(*b))
            };
            let spread_before = spread(&leases);
            settle(&workers, &mut leases);
            // Settled: nobody moves any more.
            let before: Vec<_> = leases.iter().map(|l| l.owner).collect();
            for w in workers {
                prop_assert_eq!(lease_to_steal(w, &leases), None);
            }
            let after: Vec<_> = leases.iter().map(|l| l.owner).collect();
            prop_assert_eq!(before, after);
            // Each move narrows a gap between the busiest and a lighter
            // worker: the spread never grows.
            prop_assert!(spread(&leases) <= spread_before + 1e-9);
        }
    }
}
