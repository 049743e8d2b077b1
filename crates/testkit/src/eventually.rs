//! The one bounded wait of the tests: poll a condition until it holds or a limit passes.
//! Built on tokio's clock, so it also works (instantly) under a paused clock.

use std::time::Duration;

/// Polls `check` every 50 ms until it is true or `limit` passes; returns the last result.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
