//! What is kept across visits besides the models: the number of loads that ended on a lower
//! tier than the first. Workers have no `localStorage`, and IndexedDB would be a third
//! storage API for one number, so it is a small JSON file next to the cache, in OPFS or the
//! Cache API (whichever [`Store`] the cache uses).

use serde::{Deserialize, Serialize};

use super::store::Store;

/// The file under the app directory.
const STATS_FILE: &str = "stats.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stats {
    fallback_activations: u64,
}

async fn read(dir: &Store) -> Stats {
    match dir.read_text(STATS_FILE).await {
        Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_default(),
        _ => Stats::default(),
    }
}

/// The fallback activations counted so far (0 when nothing was stored).
pub async fn fallback_count(dir: &Store) -> u64 {
    read(dir).await.fallback_activations
}

/// Counts one more fallback activation and returns the new total (kept in memory only when
/// storage fails).
pub async fn count_fallback(dir: &Store) -> u64 {
    let mut stats = read(dir).await;
    stats.fallback_activations += 1;
    let text = serde_json::to_string(&stats).expect("stats serialise");
    let _ = dir.write_text(STATS_FILE, &text).await;
    stats.fallback_activations
}
