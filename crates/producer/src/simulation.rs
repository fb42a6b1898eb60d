//! `Unicorn` and `Fleet`: the workshop producer's sensor simulation, seeded so
//! that a run can be replayed byte for byte.
//!
//! Each unicorn has its own random stream, derived from the run's seed and its
//! name only: adding or removing other unicorns does not change its readings.
//! Draws use `rand_core`'s raw output through the small samplers below, not
//! `rand`'s distributions, so a future `rand` release cannot change them; only
//! the ChaCha8 algorithm (fixed by its specification) matters.

use std::f64::consts::TAU;

use md5::{Digest as _, Md5};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng as _};
use wildrydes_core::{Reading, StatusTime, UnicornName};

use crate::scenario::{MagicDrain, Scenario};

/// Where every unicorn starts: 40.749167 N, 73.985184 W (Manhattan), as in the workshop.
pub const START_POSITION: (f64, f64) = (40.749_167, -73.985_184);
/// Magic and health points of a fresh unicorn.
pub const START_VITALS: i16 = 150;
/// Smallest per-unicorn base distance, in metres per second.
pub const BASE_DISTANCE_MIN: i16 = 100;
/// Largest per-unicorn base distance: the base is uniform in `100..=199`.
pub const BASE_DISTANCE_MAX: i16 = 199;
/// Each second's distance is uniform in `base..=base + DISTANCE_SPREAD`.
pub const DISTANCE_SPREAD: i16 = 19;
/// Metres per degree of latitude, the workshop's constant.
const METRES_PER_DEGREE_LATITUDE: f64 = 110_540.0;
/// Metres per degree of longitude at the equator, the workshop's constant.
const METRES_PER_DEGREE_LONGITUDE: f64 = 111_320.0;
/// Tag mixed into every per-unicorn seed, so these streams never coincide
/// with another use of the same seed.
const SEED_DOMAIN: &[u8] = b"wildrydes-producer/unicorn/v1";

/// One simulated unicorn: its random stream and what it has done so far.
#[derive(Debug, Clone)]
pub struct Unicorn {
    /// Its name, which is also the partition key of its records.
    name: UnicornName,
    /// Its own random stream, derived from (seed, name).
    rng: ChaCha8Rng,
    /// Drawn once: each second's distance lies in `base..=base + 19`.
    base_distance: i16,
    /// Drawn once: the direction of travel in radians, counter-clockwise
    /// from east (latitude moves with its sine, longitude with its cosine).
    bearing: f64,
    /// Current position, degrees north.
    latitude: f64,
    /// Current position, degrees east.
    longitude: f64,
    /// Current magic points.
    magic_points: i16,
    /// Current health points.
    health_points: i16,
}

/// What one simulated second draws for a unicorn, before any scenario
/// rewrites it. Drawn in this order: magic step, health step, distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Change of magic points: -1, 0 or +1.
    pub magic: i16,
    /// Change of health points: -1, 0 or +1.
    pub health: i16,
    /// Metres travelled in this second.
    pub distance: i16,
}

impl Unicorn {
    /// A fresh unicorn at the start position with 150/150 vitals, its base
    /// distance and bearing drawn from the stream of (`seed`, `name`).
    pub fn new(name: UnicornName, seed: u64) -> Self {
        let mut rng = rng_for(seed, &name);
        let spread = u32::from(BASE_DISTANCE_MAX.abs_diff(BASE_DISTANCE_MIN)) + 1;
        let base_distance = BASE_DISTANCE_MIN + small(below(&mut rng, spread));
        let bearing = unit(&mut rng) * TAU;
        Self {
            name,
            rng,
            base_distance,
            bearing,
            latitude: START_POSITION.0,
            longitude: START_POSITION.1,
            magic_points: START_VITALS,
            health_points: START_VITALS,
        }
    }

    /// The unicorn's name.
    pub fn name(&self) -> &UnicornName {
        &self.name
    }

    /// Its base distance, metres per second.
    pub fn base_distance(&self) -> i16 {
        self.base_distance
    }

    /// Its bearing in radians, counter-clockwise from east.
    pub fn bearing(&self) -> f64 {
        self.bearing
    }

    /// Its current magic points.
    pub fn magic_points(&self) -> i16 {
        self.magic_points
    }

    /// Draws the next second: both vitals walk by -1 (25 %), 0 (50 %) or +1
    /// (25 %), independently, and the distance is uniform in `base..=base + 19`.
    pub fn draw(&mut self) -> Step {
        let magic = walk_step(&mut self.rng);
        let health = walk_step(&mut self.rng);
        let spread = u32::from(DISTANCE_SPREAD.unsigned_abs()) + 1;
        let distance = self.base_distance + small(below(&mut self.rng, spread));
        Step {
            magic,
            health,
            distance,
        }
    }

    /// Applies one second's `step` and reports the result, stamped `at`.
    ///
    /// The position follows the workshop's formulas, latitude first, then
    /// longitude with the new latitude. So that a run of many simulated hours
    /// stays valid, a unicorn that crosses a pole comes down the other side
    /// (latitude reflected, longitude turned by 180°, north-south direction
    /// reversed) and longitude wraps at the antimeridian; neither happens in
    /// the first several hours.
    pub fn apply(&mut self, step: Step, at: StatusTime) -> Reading {
        let d = f64::from(step.distance);
        self.latitude += d * self.bearing.sin() / METRES_PER_DEGREE_LATITUDE;
        if self.latitude.abs() > 90.0 {
            self.latitude = 180.0f64.copysign(self.latitude) - self.latitude;
            self.longitude += 180.0;
            self.bearing = -self.bearing;
        }
        self.longitude += d * self.bearing.cos()
            / (METRES_PER_DEGREE_LONGITUDE * self.latitude.to_radians().cos());
        if !(-180.0..=180.0).contains(&self.longitude) {
            self.longitude = (self.longitude + 180.0).rem_euclid(360.0) - 180.0;
        }
        self.magic_points = self.magic_points.saturating_add(step.magic);
        self.health_points = self.health_points.saturating_add(step.health);
        Reading {
            name: self.name.clone(),
            status_time: at,
            latitude: self.latitude,
            longitude: self.longitude,
            distance: step.distance,
            magic_points: self.magic_points,
            health_points: self.health_points,
        }
    }
}

/// All simulated unicorns of a run, and the scenario that steers one of them.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The unicorns, in the order the operator named them.
    unicorns: Vec<Unicorn>,
    /// The magic-drain scenario and the index of the unicorn it drives.
    drain: Option<(usize, MagicDrain)>,
}

/// Why a fleet could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// No unicorns at all.
    #[error("the fleet is empty: name at least one unicorn with --name or --count")]
    Empty,
    /// The same name twice: two simulations would share one partition key.
    #[error("unicorn {0} is named twice: give each unicorn a different --name")]
    Duplicate(String),
    /// The scenario names a unicorn that is not simulated.
    #[error("--drain-unicorn {0} is not in the fleet: pass one of the --name values")]
    UnknownDrainUnicorn(String),
}

impl Fleet {
    /// Builds the fleet for `names`, each unicorn seeded from (`seed`, name).
    pub fn new(names: &[UnicornName], seed: u64, scenario: &Scenario) -> Result<Self, FleetError> {
        if names.is_empty() {
            return Err(FleetError::Empty);
        }
        let mut seen = std::collections::HashSet::new();
        for name in names {
            if !seen.insert(name.as_str()) {
                return Err(FleetError::Duplicate(name.to_string()));
            }
        }
        let drain = match scenario {
            Scenario::Walk => None,
            Scenario::MagicDrain { unicorn, start } => {
                let index = match unicorn {
                    None => 0,
                    Some(wanted) => names
                        .iter()
                        .position(|n| n == wanted)
                        .ok_or_else(|| FleetError::UnknownDrainUnicorn(wanted.to_string()))?,
                };
                Some((index, MagicDrain::new(start.as_secs())))
            }
        };
        let unicorns = names
            .iter()
            .map(|name| Unicorn::new(name.clone(), seed))
            .collect();
        Ok(Self { unicorns, drain })
    }

    /// How many unicorns there are.
    pub fn len(&self) -> usize {
        self.unicorns.len()
    }

    /// Whether there are none (never, for a fleet built by [`Fleet::new`]).
    pub fn is_empty(&self) -> bool {
        self.unicorns.is_empty()
    }

    /// The unicorns, in fleet order.
    pub fn unicorns(&self) -> &[Unicorn] {
        &self.unicorns
    }

    /// Simulates second number `second` of the run (0 is the first), stamped
    /// `at`: one reading per unicorn, in fleet order.
    pub fn tick(&mut self, second: u64, at: StatusTime) -> Vec<Reading> {
        self.unicorns
            .iter_mut()
            .enumerate()
            .map(|(index, unicorn)| {
                let mut step = unicorn.draw();
                if let Some((target, drain)) = &mut self.drain
                    && *target == index
                {
                    step.magic = drain.magic_delta(second, unicorn.magic_points(), step.magic);
                }
                unicorn.apply(step, at)
            })
            .collect()
    }
}

/// The random stream of one unicorn: ChaCha8 keyed by two MD5 digests of
/// (domain tag, half index, seed as big-endian bytes, name as UTF-8).
fn rng_for(seed: u64, name: &UnicornName) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (half, chunk) in (0u8..).zip(key.chunks_mut(16)) {
        let mut digest = Md5::new();
        digest.update(SEED_DOMAIN);
        digest.update([half]);
        digest.update(seed.to_be_bytes());
        digest.update(name.as_str().as_bytes());
        chunk.copy_from_slice(&digest.finalize());
    }
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n` > 0), by rejection, so without bias.
fn below(rng: &mut impl RngCore, n: u32) -> u32 {
    let n = n.max(1);
    let limit = (u32::MAX / n) * n;
    loop {
        let x = rng.next_u32();
        if x < limit {
            return x % n;
        }
    }
}

/// A uniform float in `[0, 1)` with 53 random bits.
fn unit(rng: &mut impl RngCore) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// -1 with probability 1/4, 0 with 1/2, +1 with 1/4: the sum of two coin
/// flips minus one, as the original producer walks its vitals.
fn walk_step(rng: &mut impl RngCore) -> i16 {
    match below(rng, 4) {
        0 => -1,
        3 => 1,
        _ => 0,
    }
}

/// A sampler result known to be below 100, as an `i16`.
fn small(n: u32) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn name(s: &str) -> UnicornName {
        UnicornName::new(s).unwrap()
    }

    fn start() -> StatusTime {
        StatusTime::parse("2017-06-05 09:17:08.189").unwrap()
    }

    #[test]
    fn same_seed_and_name_give_the_same_readings() {
        let mut a = Unicorn::new(name("Shadowfax"), 7);
        let mut b = Unicorn::new(name("Shadowfax"), 7);
        for _ in 0..100 {
            let (sa, sb) = (a.draw(), b.draw());
            assert_eq!(a.apply(sa, start()), b.apply(sb, start()));
        }
        let c = Unicorn::new(name("Shadowfax"), 8);
        let d = Unicorn::new(name("Rocinante"), 7);
        assert_ne!(a.bearing(), c.bearing());
        assert_ne!(Unicorn::new(name("Shadowfax"), 7).bearing(), d.bearing());
    }

    #[test]
    fn a_unicorn_does_not_depend_on_the_rest_of_the_fleet() {
        let solo = [name("Shadowfax")];
        let crowd = [name("Rocinante"), name("Shadowfax"), name("Bucephalus")];
        let mut alone = Fleet::new(&solo, 3, &Scenario::Walk).unwrap();
        let mut together = Fleet::new(&crowd, 3, &Scenario::Walk).unwrap();
        for second in 0..50 {
            let a = alone.tick(second, start());
            let b = together.tick(second, start());
            assert_eq!(a[0], b[1]);
        }
    }

    #[test]
    fn the_first_reading_starts_from_the_workshop_state() {
        let mut u = Unicorn::new(name("Shadowfax"), 1);
        assert!((BASE_DISTANCE_MIN..=BASE_DISTANCE_MAX).contains(&u.base_distance()));
        assert!((0.0..TAU).contains(&u.bearing()));
        let step = u.draw();
        let r = u.apply(step, start());
        assert!((149..=151).contains(&r.magic_points));
        assert!((149..=151).contains(&r.health_points));
        let d = f64::from(r.distance);
        let expected_lat = START_POSITION.0 + d * u.bearing().sin() / 110_540.0;
        assert_eq!(r.latitude, expected_lat);
        let expected_lon = START_POSITION.1
            + d * u.bearing().cos() / (111_320.0 * expected_lat.to_radians().cos());
        assert_eq!(r.longitude, expected_lon);
    }

    #[test]
    fn walks_and_distances_have_the_workshop_distribution() {
        let mut counts = [0u32; 3];
        let mut u = Unicorn::new(name("Shadowfax"), 99);
        let base = u.base_distance();
        let n = 40_000;
        for _ in 0..n {
            let step = u.draw();
            for s in [step.magic, step.health] {
                counts[usize::try_from(s + 1).unwrap()] += 1;
            }
            assert!((base..=base + DISTANCE_SPREAD).contains(&step.distance));
        }
        let total = f64::from(2 * n);
        let shares: Vec<f64> = counts.iter().map(|&c| f64::from(c) / total).collect();
        for (share, expected) in shares.iter().zip([0.25, 0.5, 0.25]) {
            assert!((share - expected).abs() < 0.01, "{shares:?}");
        }
    }

    #[test]
    fn base_distances_cover_their_whole_range() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..2_000 {
            seen.insert(Unicorn::new(name("Shadowfax"), seed).base_distance());
        }
        assert_eq!(seen.first(), Some(&BASE_DISTANCE_MIN));
        assert_eq!(seen.last(), Some(&BASE_DISTANCE_MAX));
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn crossing_a_pole_keeps_the_position_valid() {
        let mut u = Unicorn::new(name("Shadowfax"), 5);
        u.bearing = std::f64::consts::FRAC_PI_2 - 0.01; // almost due north
        let at = start();
        for _ in 0..100_000 {
            let step = u.draw();
            let r = u.apply(step, at);
            assert!((-90.0..=90.0).contains(&r.latitude), "{r:?}");
            assert!((-180.0..=180.0).contains(&r.longitude), "{r:?}");
        }
    }

    #[test]
    fn fleets_refuse_duplicates_and_unknown_drain_targets() {
        let names = [name("A"), name("A")];
        assert_eq!(
            Fleet::new(&names, 1, &Scenario::Walk).unwrap_err(),
            FleetError::Duplicate("A".into())
        );
        assert_eq!(
            Fleet::new(&[], 1, &Scenario::Walk).unwrap_err(),
            FleetError::Empty
        );
        let drain = Scenario::MagicDrain {
            unicorn: Some(name("Z")),
            start: Duration::ZERO,
        };
        assert_eq!(
            Fleet::new(&[name("A")], 1, &drain).unwrap_err(),
            FleetError::UnknownDrainUnicorn("Z".into())
        );
    }

    #[test]
    fn the_sampler_is_fixed_by_the_seed() {
        // Pinned output: if this changes, every recorded seed replays
        // differently; that needs a deliberate decision, not a dependency bump.
        // Integers and the bearing are exact; positions go through the
        // platform's sin and cos, so they are compared to a tolerance.
        let mut u = Unicorn::new(name("Shadowfax"), 42);
        assert_eq!(u.base_distance(), 177);
        assert_eq!(u.bearing(), 3.600_468_885_109_179_5);
        let expected = [
            (
                184,
                149,
                150,
                40.748_429_700_196_134,
                -73.987_140_092_518_74,
            ),
            (181, 149, 150, 40.747_704_421_584_72, -73.989_064_271_238_48),
            (193, 148, 151, 40.746_931_058_203_49, -73.991_115_995_957_83),
        ];
        for (distance, magic, health, lat, lon) in expected {
            let step = u.draw();
            let r = u.apply(step, start());
            assert_eq!(
                (r.distance, r.magic_points, r.health_points),
                (distance, magic, health)
            );
            assert!((r.latitude - lat).abs() < 1e-12 && (r.longitude - lon).abs() < 1e-12);
        }
    }
}
