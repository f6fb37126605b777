//! nginx's rate limit, one rule for `limit_rate` (responses to clients, see
//! `http::proxy::pace`) and stream's `proxy_upload_rate` / `proxy_download_rate`
//! (see [`super::tunnel`]): by the time `t` whole seconds have passed since the
//! start, `rate × (t + 1)` bytes may have gone; what would go past that waits.

use std::time::{Duration, Instant};

/// How many bytes may go now without waiting (0: none yet).
pub fn allowance_now(rate: u64, start: Instant, done: u64) -> u64 {
    rate.saturating_mul(start.elapsed().as_secs() + 1).saturating_sub(done)
}

/// How many bytes may go now, `done` having gone since `start` at `rate` bytes per
/// second; waits until at least one may (nginx counts whole seconds, so a wait can
/// end before the next one has begun and is then followed by another).
pub async fn allowance(rate: u64, start: Instant, done: u64) -> usize {
    loop {
        let allowed = rate.saturating_mul(start.elapsed().as_secs() + 1);
        if allowed > done {
            return (allowed - done).min(usize::MAX as u64) as usize;
        }
        let ms = (done - allowed) * 1000 / rate + 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
