//! The cost of the aggregator's keyed state, measured on a full shard as KPL
//! aggregation lets one carry it: 5,000 unicorns at one reading a second,
//! with the default horizon (1 h) and lateness (10 s).
//!
//! It drives `MinuteWindow` as the daemon's consumer does (one batch a
//! second, what is due emitted, the changed minutes stored at every
//! checkpoint) for 70 minutes of event time, so the horizon is full, and
//! prints, per checkpoint interval:
//! - the state held per unicorn and per shard (items as `MinuteStore`
//!   writes them: key, figures, attributes);
//! - DynamoDB writes (one PutItem per changed minute) and reads (one Query
//!   per unicorn, once per consumer life) per reading;
//! - CPU time per reading of the window's work (fold, due, dirty, stored).
//!
//! Run: `cargo bench -p wildrydes-core --bench state` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use wildrydes_core::minute_store::encode_figures;
use wildrydes_core::window::WindowRules;
use wildrydes_core::{MinuteWindow, Reading, StatusTime, UnicornName};

const UNICORNS: usize = 5_000;
const MINUTES: i64 = 70;
const START: i64 = 1_455_235_200_000;

/// Bytes DynamoDB counts for a minute item besides `Figures` and the name:
/// attribute names and number values of `Minute`, `Figures`, `Emitted`,
/// `Version`, `Touched`, `ExpiresAt` and (while pending) `Pending`.
const ITEM_OVERHEAD: usize = 6 + 8 + 7 + 7 + 1 + 7 + 3 + 7 + 8 + 9 + 6 + 7 + 2;

fn main() {
    let names: Vec<UnicornName> = (0..UNICORNS)
        .map(|u| UnicornName::new(&format!("Unicorn-{u:05}")).unwrap())
        .collect();
    println!(
        "| checkpoint interval | readings | PutItem per reading | Query per reading | state per unicorn | state per shard | window CPU per reading |"
    );
    println!("|---|---|---|---|---|---|---|");
    for interval in [1i64, 10, 60] {
        let mut window = MinuteWindow::new(WindowRules::default());
        let (mut puts, mut readings, mut cpu) = (0usize, 0usize, Duration::ZERO);
        let mut batch = Vec::with_capacity(UNICORNS);
        for second in 0..MINUTES * 60 {
            batch.clear();
            for (u, name) in names.iter().enumerate() {
                let ms = START + second * 1000 + (u as i64 * 7) % 1000;
                batch.push(Reading {
                    name: name.clone(),
                    status_time: StatusTime::from_epoch_millis(ms).unwrap(),
                    latitude: 40.749167,
                    longitude: -73.985184,
                    distance: 150,
                    magic_points: 120,
                    health_points: 130,
                });
            }
            let now = second * 1000;
            let started = Instant::now();
            for r in &batch {
                window.push(r, now);
            }
            let due = window.due(now);
            window.emitted(due.iter().map(|d| (&d.name, d.minute_ms)));
            if (second + 1) % interval == 0 {
                let dirty = window.dirty();
                puts += dirty.len();
                let stored: Vec<_> = dirty
                    .into_iter()
                    .map(|d| {
                        let v = d.state.version + 1;
                        (d, v)
                    })
                    .collect();
                window.stored(&stored);
            }
            cpu += started.elapsed();
            readings += batch.len();
        }
        let bytes = state_bytes(&window);
        println!(
            "| {interval} s | {readings} | {:.4} | {:.6} | {:.1} KB | {:.1} MB | {:.2} µs |",
            puts as f64 / readings as f64,
            UNICORNS as f64 / readings as f64,
            bytes as f64 / UNICORNS as f64 / 1000.0,
            bytes as f64 / 1e6,
            cpu.as_secs_f64() * 1e6 / readings as f64,
        );
    }
}

/// The bytes DynamoDB would bill for every minute the window holds.
fn state_bytes(window: &MinuteWindow) -> usize {
    window
        .held()
        .map(|(name, _, state)| {
            name.as_str().len()
                + "Unicorn".len()
                + ITEM_OVERHEAD
                + "Figures".len()
                + encode_figures(state).len()
        })
        .sum()
}
