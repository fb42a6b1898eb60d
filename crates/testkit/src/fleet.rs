//! A seeded generator of fleets that behave like real ones, and the
//! aggregates they must produce, computed by plain arithmetic.
//!
//! Real fleets are not the tidy one-reading-per-second-per-unicorn stream
//! the workshop's producer sends: each device has its own clock (off by a
//! fixed offset, running a little fast or slow), readings land exactly on
//! minute boundaries now and then, devices that were offline upload an old
//! backlog while the rest of the fleet is live, the network reorders
//! readings of one unicorn, producers retry and send duplicates, and
//! everything arrives cut into small PutRecords batches that mix unicorns.
//! [`Fleet::generate`] makes all of that from one seed, so a failing
//! whole-system test can be replayed exactly.
//!
//! [`expected`] is the oracle: the workshop's SQL (SUM, MIN, MAX per unicorn
//! and minute of `StatusTime`) done with integer arithmetic over the
//! generated readings, each (unicorn, millisecond) once. It deliberately
//! shares nothing with the aggregation under test (no `MinuteWindow`, no
//! `minute_of`): the two must agree, not be the same code.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng as _};
use wildrydes_core::{Aggregate, Reading, StatusTime, UnicornName};

/// A minute, in milliseconds.
const MINUTE: i64 = 60_000;

/// What fleet to make. Times are epoch milliseconds of event time (the
/// readings' own `StatusTime`); `at_ms` of a [`Batch`] is arrival time
/// relative to the start of the live period, which a test maps onto wall
/// time at whatever pace it likes.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Everything random comes from this.
    pub seed: u64,
    /// Live unicorns: one reading per second of their own clock for the
    /// whole live period, delivered as they are taken.
    pub live: usize,
    /// Devices that were offline: their readings are a backlog, older than
    /// the live period, uploaded during it. Every second one of them is
    /// also live (it reconnected and sends live readings besides its
    /// backlog), the others send only their backlog.
    pub late: usize,
    /// Start of the live period (true time; each device's clock is off by
    /// its offset).
    pub start_ms: i64,
    /// Length of the live period, in minutes.
    pub minutes: i64,
    /// Length of each late device's backlog, in minutes.
    pub backlog_minutes: i64,
    /// How much older than the live period a backlog starts: drawn per
    /// device in this range of minutes. Keep the oldest reading within the
    /// aggregator's horizon of the device's newest one.
    pub backlog_age_minutes: (i64, i64),
    /// Largest offset of a device's clock, either way, in milliseconds.
    pub max_offset_ms: i64,
    /// Largest skew of a device's clock, either way, in parts per million
    /// (1,000 ppm: 1 ms per second).
    pub max_skew_ppm: i64,
    /// Readings, per thousand, delivered a second time a little later.
    pub duplicates_per_mille: u32,
    /// Readings, per thousand, delayed by up to `max_delay_ms`, so that they
    /// arrive after later readings of their unicorn.
    pub delayed_per_mille: u32,
    /// Longest delay of a delayed reading (arrival time).
    pub max_delay_ms: i64,
    /// Largest PutRecords batch; sizes are drawn from 1 to this.
    pub max_batch: usize,
}

impl FleetSpec {
    /// A fleet of `live` live unicorns and `late` late devices over
    /// `minutes` of live time, with the defaults the whole-system tests
    /// use: offsets up to 90 s, skew up to ±0.5 %, backlogs of 4 minutes
    /// 10 to 45 minutes old, 2 % duplicates, 3 % delayed by up to 5 s,
    /// batches of 1 to 40 records.
    pub fn new(seed: u64, live: usize, late: usize, minutes: i64) -> Self {
        Self {
            seed,
            live,
            late,
            // 2026-03-01 10:00:00 UTC.
            start_ms: 1_772_359_200_000,
            minutes,
            backlog_minutes: 4,
            backlog_age_minutes: (10, 45),
            max_offset_ms: 90_000,
            max_skew_ppm: 5_000,
            duplicates_per_mille: 20,
            delayed_per_mille: 30,
            max_delay_ms: 5_000,
            max_batch: 40,
        }
    }
}

/// One PutRecords call of the delivery plan.
#[derive(Debug, Clone)]
pub struct Batch {
    /// When it is sent, in milliseconds of arrival time after the start of
    /// the live period (non-decreasing along the plan).
    pub at_ms: i64,
    /// Its records, in order; several unicorns, sometimes a duplicate.
    pub readings: Vec<Reading>,
}

/// A generated fleet: every reading taken, and the order they are sent in.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Every distinct reading, unicorn by unicorn, in each one's time order.
    pub readings: Vec<Reading>,
    /// Every reading at least once (some twice), cut into batches, in the
    /// order they are sent.
    pub batches: Vec<Batch>,
    /// The names of the late devices.
    pub late: BTreeSet<String>,
}

/// One device's clock: true time to its own time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset_ms: i64,
    skew_ppm: i64,
}

impl Clock {
    /// The device's time at true time `t`, with the skew counted from `origin`.
    fn at(self, origin: i64, t: i64) -> i64 {
        let elapsed = t - origin;
        t + self.offset_ms + elapsed * self.skew_ppm / 1_000_000
    }
}

/// One device's walk, as the workshop's producer simulates it.
#[derive(Debug, Clone)]
struct Walk {
    magic: i16,
    health: i16,
    base_distance: i16,
    bearing: f64,
    latitude: f64,
    longitude: f64,
}

impl Walk {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        Self {
            magic: 150,
            health: 150,
            base_distance: 100 + small(rng, 100),
            bearing: unit(rng) * std::f64::consts::TAU,
            latitude: 40.749167,
            longitude: -73.985184,
        }
    }

    /// One second: magic and health move by -1, 0 or +1 (25/50/25 %), the
    /// distance is uniform in [base, base + 19], the position moves along
    /// the bearing.
    fn step(&mut self, rng: &mut ChaCha8Rng) -> (i16, i16, i16, f64, f64) {
        self.magic += step(rng);
        self.health += step(rng);
        let distance = self.base_distance + small(rng, 20);
        let d = f64::from(distance);
        self.latitude = (self.latitude + d * self.bearing.sin() / 110_540.0).clamp(-89.0, 89.0);
        self.longitude += d * self.bearing.cos() / (111_320.0 * self.latitude.to_radians().cos());
        if self.longitude > 180.0 {
            self.longitude -= 360.0;
        }
        (
            distance,
            self.magic,
            self.health,
            self.latitude,
            self.longitude,
        )
    }
}

/// A reading with when it arrives (arrival time, relative to the start of
/// the live period) and a tie-breaker that keeps the sort deterministic.
struct Sent {
    arrives: i64,
    order: u64,
    reading: Reading,
}

impl Fleet {
    /// Makes the fleet `spec` describes; the same spec gives the same fleet.
    ///
    /// # Panics
    /// If the spec makes invalid readings (times before 1970, more than
    /// 32 characters of name): a mistake in the test, not in the code under
    /// test.
    pub fn generate(spec: &FleetSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut readings = Vec::new();
        let mut sent = Vec::new();
        let mut order = 0u64;
        let mut late = BTreeSet::new();
        let live_len = spec.minutes * MINUTE;
        let mut push = |sent: &mut Vec<Sent>, arrives: i64, reading: &Reading| {
            order += 1;
            sent.push(Sent {
                arrives,
                order,
                reading: reading.clone(),
            });
        };
        for device in 0..spec.live + spec.late {
            let is_late = device >= spec.live;
            let name = if is_late {
                format!("Late-{:03}", device - spec.live)
            } else {
                format!("Unicorn-{device:03}")
            };
            if is_late {
                late.insert(name.clone());
            }
            let name = UnicornName::new(&name).expect("a short name");
            let clock = Clock {
                offset_ms: signed(&mut rng, spec.max_offset_ms),
                skew_ppm: signed(&mut rng, spec.max_skew_ppm),
            };
            let mut walk = Walk::new(&mut rng);
            let mut last = i64::MIN;
            // (true time of the first reading, how many seconds, backlog?)
            let mut periods = Vec::new();
            if is_late {
                let (lo, hi) = spec.backlog_age_minutes;
                let age = lo + i64::from(below(&mut rng, u32::try_from(hi - lo + 1).unwrap_or(1)));
                periods.push((
                    spec.start_ms - age * MINUTE,
                    spec.backlog_minutes * 60,
                    true,
                ));
            }
            if !is_late || (device - spec.live) % 2 == 1 {
                periods.push((spec.start_ms, spec.minutes * 60, false));
            }
            for (from, seconds, backlog) in periods {
                // A backlog goes up at a steady rate over the live period,
                // starting at a random moment of its first half.
                let upload_start = i64::from(below(
                    &mut rng,
                    1 + u32::try_from(live_len / 2).unwrap_or(0),
                ));
                let upload_len = (live_len - upload_start).max(1);
                for second in 0..seconds {
                    let t = from + second * 1000;
                    let own = clock.at(spec.start_ms, t);
                    let mut ms = own + i64::from(below(&mut rng, 900));
                    let in_minute = ms.rem_euclid(MINUTE);
                    // A reading in the first or last second of a minute is,
                    // one time in four, exactly on the minute's boundary.
                    if below(&mut rng, 4) == 0 {
                        if in_minute < 1000 {
                            ms -= in_minute;
                        } else if in_minute >= 59_000 {
                            ms += 59_999 - in_minute;
                        }
                    }
                    // One reading per millisecond at most, in time order.
                    ms = ms.max(last + 1);
                    last = ms;
                    let (distance, magic, health, latitude, longitude) = walk.step(&mut rng);
                    let reading = Reading {
                        name: name.clone(),
                        status_time: StatusTime::from_epoch_millis(ms).expect("a time after 1970"),
                        latitude,
                        longitude,
                        distance,
                        magic_points: magic,
                        health_points: health,
                    };
                    let mut arrives = if backlog {
                        upload_start + second * upload_len / seconds.max(1)
                    } else {
                        t - spec.start_ms + i64::from(below(&mut rng, 200))
                    };
                    if below(&mut rng, 1000) < spec.delayed_per_mille {
                        arrives += 1 + i64::from(below(
                            &mut rng,
                            u32::try_from(spec.max_delay_ms).unwrap_or(1),
                        ));
                    }
                    push(&mut sent, arrives, &reading);
                    if below(&mut rng, 1000) < spec.duplicates_per_mille {
                        let again = arrives + i64::from(below(&mut rng, 20_000));
                        push(&mut sent, again, &reading);
                    }
                    readings.push(reading);
                }
            }
        }
        sent.sort_by_key(|s| (s.arrives, s.order));
        let mut batches: Vec<Batch> = Vec::new();
        let mut rest = sent.into_iter().peekable();
        while let Some(first) = rest.next() {
            let size = 1 + below(&mut rng, u32::try_from(spec.max_batch.max(1)).unwrap_or(1));
            let mut batch = Batch {
                at_ms: first.arrives,
                readings: vec![first.reading],
            };
            while batch.readings.len() < size as usize
                && let Some(next) = rest.next_if(|s| s.arrives <= batch.at_ms + 250)
            {
                batch.readings.push(next.reading);
            }
            batches.push(batch);
        }
        Self {
            readings,
            batches,
            late,
        }
    }

    /// Every reading as sent, duplicates included.
    pub fn deliveries(&self) -> impl Iterator<Item = &Reading> {
        self.batches.iter().flat_map(|b| &b.readings)
    }
}

/// A minute's running figures: (sum of distance, min magic, max magic,
/// min health, max health).
type Figures = (i64, i16, i16, i16, i16);

/// The aggregates `readings` must give, by (minute start in epoch ms,
/// unicorn name): per unicorn and minute of `StatusTime`, the sum of
/// `Distance` and the extremes of `MagicPoints` and `HealthPoints`, each
/// (unicorn, millisecond) counted once whatever the number of copies.
///
/// # Panics
/// If a minute's distance does not fit a SMALLINT, or the generated
/// readings are not valid aggregates: the fleet is wrong, not the code
/// under test.
pub fn expected(readings: &[Reading]) -> BTreeMap<(i64, String), Aggregate> {
    let mut once: BTreeMap<(String, i64), &Reading> = BTreeMap::new();
    for r in readings {
        once.entry((r.name.to_string(), r.status_time.epoch_millis()))
            .or_insert(r);
    }
    let mut sums: BTreeMap<(i64, String), Figures> = BTreeMap::new();
    for ((name, ms), r) in once {
        let minute = ms - ms.rem_euclid(MINUTE);
        let s = sums
            .entry((minute, name))
            .or_insert((0, i16::MAX, i16::MIN, i16::MAX, i16::MIN));
        s.0 += i64::from(r.distance);
        s.1 = s.1.min(r.magic_points);
        s.2 = s.2.max(r.magic_points);
        s.3 = s.3.min(r.health_points);
        s.4 = s.4.max(r.health_points);
    }
    sums.into_iter()
        .map(|((minute, name), (distance, min_m, max_m, min_h, max_h))| {
            let aggregate = Aggregate {
                name: UnicornName::new(&name).expect("a generated name"),
                status_time: StatusTime::from_epoch_millis(minute).expect("a generated time"),
                distance: i16::try_from(distance).expect("a minute's distance within SMALLINT"),
                min_magic_points: min_m,
                max_magic_points: max_m,
                min_health_points: min_h,
                max_health_points: max_h,
            };
            ((minute, name), aggregate)
        })
        .collect()
}

/// Seeded draws for a test's own random choices (which worker to kill, and
/// when), so that a failing run is replayed from its seed like its fleet.
#[derive(Debug, Clone)]
pub struct Draws(ChaCha8Rng);

impl Draws {
    /// Draws from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A uniform integer in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        below(&mut self.0, u32::try_from(n).unwrap_or(u32::MAX)).into()
    }
}

/// A uniform integer in `[0, n)` (Lemire's method, no modulo bias).
fn below(rng: &mut impl RngCore, n: u32) -> u32 {
    let n = n.max(1);
    loop {
        let m = u64::from(rng.next_u32()) * u64::from(n);
        #[allow(clippy::cast_possible_truncation)]
        let low = m as u32;
        if low >= n.wrapping_neg() % n {
            #[allow(clippy::cast_possible_truncation)]
            return (m >> 32) as u32;
        }
    }
}

/// A uniform integer in `[-max, max]`.
fn signed(rng: &mut impl RngCore, max: i64) -> i64 {
    let span = u32::try_from(2 * max.max(0) + 1).unwrap_or(u32::MAX);
    i64::from(below(rng, span)) - max.max(0)
}

/// A uniform float in `[0, 1)` with 53 random bits.
fn unit(rng: &mut impl RngCore) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = (rng.next_u64() >> 11) as f64;
    x / (1u64 << 53) as f64
}

/// A uniform `i16` in `[0, n)`, for small `n`.
fn small(rng: &mut impl RngCore, n: u32) -> i16 {
    i16::try_from(below(rng, n)).unwrap_or(0)
}

/// A walk step: -1 (25 %), 0 (50 %) or +1 (25 %).
fn step(rng: &mut impl RngCore) -> i16 {
    match below(rng, 4) {
        0 => -1,
        3 => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    fn fleet(seed: u64) -> Fleet {
        Fleet::generate(&FleetSpec::new(seed, 6, 4, 3))
    }

    fn key(r: &Reading) -> (String, i64) {
        (r.name.to_string(), r.status_time.epoch_millis())
    }

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_another_seed_another() {
        let (a, b, c) = (fleet(7), fleet(7), fleet(8));
        assert_eq!(a.readings, b.readings);
        let plan = |f: &Fleet| -> Vec<(i64, Vec<Reading>)> {
            f.batches
                .iter()
                .map(|b| (b.at_ms, b.readings.clone()))
                .collect()
        };
        assert_eq!(plan(&a), plan(&b));
        assert_ne!(a.readings, c.readings);
    }

    #[test]
    fn every_reading_is_delivered_and_some_twice() {
        let f = fleet(1);
        let distinct: HashSet<_> = f.readings.iter().map(key).collect();
        assert_eq!(distinct.len(), f.readings.len(), "one reading per ms");
        let sent: Vec<_> = f.deliveries().map(key).collect();
        assert_eq!(sent.iter().collect::<HashSet<_>>().len(), distinct.len());
        let copies = sent.len() - distinct.len();
        assert!(
            copies > 0 && copies < sent.len() / 10,
            "{copies} duplicates"
        );
        assert!(f.batches.iter().all(|b| b.readings.len() <= 40));
        assert!(f.batches.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        let mixed = f
            .batches
            .iter()
            .filter(|b| {
                b.readings
                    .iter()
                    .map(|r| &r.name)
                    .collect::<HashSet<_>>()
                    .len()
                    > 1
            })
            .count();
        assert!(mixed > f.batches.len() / 4, "batches mix unicorns");
    }

    #[test]
    fn backlogs_are_older_than_the_live_period_and_arrive_during_it() {
        let spec = FleetSpec::new(3, 6, 4, 3);
        let f = Fleet::generate(&spec);
        // Live readings start at most the largest offset early; backlogs end
        // at least six minutes before the live period, less that offset.
        let live_from = spec.start_ms - spec.max_offset_ms - MINUTE;
        let backlog: Vec<_> = f
            .readings
            .iter()
            .filter(|r| r.status_time.epoch_millis() < live_from)
            .collect();
        assert_eq!(backlog.len(), 4 * 4 * 60, "four minutes of four devices");
        assert!(backlog.iter().all(|r| f.late.contains(r.name.as_str())));
        // Each unicorn's readings span less than the aggregator's hour.
        let mut span: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for r in &f.readings {
            let ms = r.status_time.epoch_millis();
            let s = span.entry(r.name.as_str()).or_insert((ms, ms));
            *s = (s.0.min(ms), s.1.max(ms));
        }
        assert!(span.values().all(|(lo, hi)| hi - lo < 55 * MINUTE));
        // Backlog readings are interleaved with live ones in the plan.
        let first_live_batch = f
            .batches
            .iter()
            .position(|b| b.readings.iter().any(|r| !f.late.contains(r.name.as_str())))
            .unwrap();
        let last_backlog_batch = f
            .batches
            .iter()
            .rposition(|b| {
                b.readings
                    .iter()
                    .any(|r| r.status_time.epoch_millis() < live_from)
            })
            .unwrap();
        assert!(first_live_batch < last_backlog_batch);
    }

    #[test]
    fn deliveries_reorder_unicorns_and_hit_minute_boundaries() {
        let f = fleet(5);
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        let mut backwards = 0;
        for r in f.deliveries() {
            let ms = r.status_time.epoch_millis();
            let l = last.entry(r.name.as_str()).or_insert(ms);
            if ms < *l {
                backwards += 1;
            }
            *l = (*l).max(ms);
        }
        assert!(backwards > 0, "some readings arrive after later ones");
        let at = |off: i64| {
            f.readings
                .iter()
                .filter(|r| r.status_time.epoch_millis().rem_euclid(MINUTE) == off)
                .count()
        };
        assert!(
            at(0) > 0 && at(59_999) > 0,
            "{} at :00.000, {} at :59.999",
            at(0),
            at(59_999)
        );
    }

    #[test]
    fn expected_counts_each_millisecond_once_by_plain_arithmetic() {
        let r = |name: &str, ms: i64, d: i16, m: i16, h: i16| Reading {
            name: UnicornName::new(name).unwrap(),
            status_time: StatusTime::from_epoch_millis(ms).unwrap(),
            latitude: 0.0,
            longitude: 0.0,
            distance: d,
            magic_points: m,
            health_points: h,
        };
        let minute = 1_772_359_200_000;
        let readings = [
            r("A", minute, 10, 100, 150),
            r("A", minute, 10, 100, 150), // a duplicate
            r("A", minute + 59_999, 5, 98, 151),
            r("A", minute + 60_000, 7, 90, 140), // the next minute
            r("B", minute + 30_000, 3, 120, 130),
        ];
        let e = expected(&readings);
        assert_eq!(e.len(), 3);
        let a = &e[&(minute, "A".to_owned())];
        assert_eq!(
            (a.distance, a.min_magic_points, a.max_magic_points),
            (15, 98, 100)
        );
        assert_eq!((a.min_health_points, a.max_health_points), (150, 151));
        assert_eq!(e[&(minute + 60_000, "A".to_owned())].distance, 7);
        assert_eq!(
            e[&(minute, "B".to_owned())].status_time.epoch_millis(),
            minute
        );
    }
}
