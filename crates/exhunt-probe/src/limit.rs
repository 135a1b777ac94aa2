//! Rate limits: one global rate for the whole run and one per host address.
//!
//! Both are schedules, not token buckets with a background task: each request reserves the
//! next free slot under a short lock and sleeps until it. The per-host schedule lives in a
//! fixed table of slots indexed by a hash of the address, so its memory does not grow with the
//! scope; two hosts sharing a slot only make each other slower, never faster.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const HOST_SLOTS: usize = 4096;

/// Global and per-host request schedules.
#[derive(Debug)]
pub struct Limiter {
    global: Option<(Duration, Mutex<Instant>)>,
    per_host: Option<(Duration, Vec<Mutex<Instant>>)>,
}

fn interval(per_second: f64) -> Option<Duration> {
    (per_second > 0.0 && per_second.is_finite()).then(|| Duration::from_secs_f64(1.0 / per_second))
}

impl Limiter {
    /// `rate` requests per second in all, `per_host` per address; 0 means no limit.
    pub fn new(rate: f64, per_host: f64) -> Limiter {
        let now = Instant::now();
        Limiter {
            global: interval(rate).map(|i| (i, Mutex::new(now))),
            per_host: interval(per_host)
                .map(|i| (i, (0..HOST_SLOTS).map(|_| Mutex::new(now)).collect())),
        }
    }

    fn reserve(slot: &Mutex<Instant>, every: Duration) -> Instant {
        let mut next = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let at = (*next).max(now);
        *next = at + every;
        at
    }

    /// Waits until a request to `ip` may be sent.
    pub async fn wait(&self, ip: IpAddr) {
        if let Some((every, slots)) = &self.per_host {
            let h = match ip {
                IpAddr::V4(a) => u64::from(u32::from(a)).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                IpAddr::V6(a) => {
                    let n = u128::from(a);
                    ((n >> 64) as u64 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                }
            };
            let i = usize::try_from(h >> 52).unwrap_or(0) % HOST_SLOTS;
            tokio::time::sleep_until(Self::reserve(&slots[i], *every)).await;
        }
        if let Some((every, slot)) = &self.global {
            tokio::time::sleep_until(Self::reserve(slot, *every)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn schedules_space_requests() {
        let l = Limiter::new(10.0, 2.0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            l.wait(ip).await;
        }
        // Per host 2/s: five requests take at least 2 s (slots at 0, 0.5, 1, 1.5, 2).
        assert!(
            t0.elapsed() >= Duration::from_millis(2000),
            "{:?}",
            t0.elapsed()
        );
        let t1 = Instant::now();
        for i in 0..20u32 {
            l.wait(IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]))
                .await;
        }
        // Global 10/s over distinct hosts: twenty requests take about 2 s.
        assert!(
            t1.elapsed() >= Duration::from_millis(1800),
            "{:?}",
            t1.elapsed()
        );
        let free = Limiter::new(0.0, 0.0);
        let t2 = Instant::now();
        for _ in 0..1000 {
            free.wait(ip).await;
        }
        assert_eq!(t2.elapsed(), Duration::ZERO);
    }
}
