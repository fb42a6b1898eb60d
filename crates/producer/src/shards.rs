//! `ShardMap`: which shard a partition key lands on, computed the way Kinesis
//! does (MD5 of the key as a 128-bit big-endian integer, looked up in the open
//! shards' hash key ranges), so that writes can be paced per shard before
//! they are sent.

/// One open shard and the hash keys it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    /// The shard's id, e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// Lowest hash key of the shard, inclusive.
    pub start: u128,
    /// Highest hash key of the shard, inclusive.
    pub end: u128,
}

/// Why a shard list could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    /// ListShards returned no open shard.
    #[error("the stream has no open shards: wait for resharding to finish, or check the stream")]
    NoOpenShards,
    /// A hash key in the ListShards answer is not a 128-bit decimal number.
    #[error("shard {shard_id} has hash key {value:?}, not a decimal number below 2^128")]
    BadHashKey {
        /// The shard concerned.
        shard_id: String,
        /// The text received.
        value: String,
    },
}

/// Open shards of a stream, ordered by hash key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Sorted by `start`; Kinesis keeps open shards' ranges disjoint and
    /// covering the whole key space.
    shards: Vec<ShardRange>,
}

impl ShardMap {
    /// A map of the given open shards.
    pub fn new(mut shards: Vec<ShardRange>) -> Result<Self, ShardMapError> {
        if shards.is_empty() {
            return Err(ShardMapError::NoOpenShards);
        }
        shards.sort_by_key(|s| s.start);
        Ok(Self { shards })
    }

    /// Parses a shard's decimal hash key text.
    pub fn parse_hash_key(shard_id: &str, value: &str) -> Result<u128, ShardMapError> {
        value.parse().map_err(|_| ShardMapError::BadHashKey {
            shard_id: shard_id.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Number of open shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether there are none (never, for a map built by [`ShardMap::new`]).
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard at `index`.
    pub fn shard(&self, index: usize) -> Option<&ShardRange> {
        self.shards.get(index)
    }

    /// The index of the shard with this id.
    pub fn index_of(&self, shard_id: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.shard_id == shard_id)
    }

    /// The index of the shard that owns `partition_key`. A key in a gap
    /// between ranges (only seen mid-resharding) goes to the range below it.
    pub fn shard_for(&self, partition_key: &str) -> usize {
        let key = hash_key(partition_key);
        self.shards
            .partition_point(|s| s.start <= key)
            .saturating_sub(1)
    }
}

pub use wildrydes_core::input::hash_key;

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: &str, start: u128, end: u128) -> ShardRange {
        ShardRange {
            shard_id: id.to_owned(),
            start,
            end,
        }
    }

    #[test]
    fn keys_land_in_the_owning_range() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![
            range("shardId-000000000001", half + 1, u128::MAX),
            range("shardId-000000000000", 0, half),
        ])
        .unwrap();
        for key in ["Shadowfax", "Rocinante", "Unicorn-0001", "Unicorn-0002", ""] {
            let index = map.shard_for(key);
            let shard = map.shard(index).unwrap();
            assert!((shard.start..=shard.end).contains(&hash_key(key)), "{key}");
        }
        assert_eq!(map.index_of("shardId-000000000001"), Some(1));
        assert_eq!(map.index_of("shardId-000000000009"), None);
    }

    #[test]
    fn an_empty_list_and_bad_keys_are_refused() {
        assert_eq!(ShardMap::new(vec![]), Err(ShardMapError::NoOpenShards));
        assert!(ShardMap::parse_hash_key("s", "12x").is_err());
        assert_eq!(
            ShardMap::parse_hash_key("s", "340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
    }
}
