//! Idle client connections of one worker: those kept alive between requests and
//! those waiting for a first request. Each waits on its socket and on one [`Wake`];
//! the worker's [`IdleSet`] fires that wake when its deadline passes
//! (`keepalive_timeout`, or the first request's `client_header_timeout`), when
//! `worker_connections` run out (the soonest due are closed to make room, nginx's
//! `ngx_drain_connections`), and on graceful quit. One timer ([`timer`]) serves all
//! of them: an idle connection holds no timer of its own, which keeps its task small
//! (what 10,000 idle clients cost) and a keep-alive request free of a timer-wheel
//! insert and cancel.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use tokio::sync::Notify;

/// A one-shot signal to one idle connection's task.
#[derive(Default)]
pub struct Wake {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Wake {
    /// Ends the connection's wait (it closes).
    pub fn fire(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Ready once [`Wake::fire`]d (since the last [`Wake::reset`]).
    pub async fn fired(&self) {
        poll_fn(|cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            let mut w = self.waker.take();
            match &mut w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => w = Some(cx.waker().clone()),
            }
            self.waker.set(w);
            Poll::Pending
        })
        .await
    }

    /// Clears a fire that came too late to matter (the connection was already
    /// reading), so the next wait does not end at once.
    pub fn reset(&self) {
        self.fired.set(false);
        self.waker.take();
    }
}

/// Where a connection sits in the [`IdleSet`]: its deadline, then entry order.
pub type Key = (Instant, u64);

/// The idle connections of one worker, soonest due first.
#[derive(Default)]
pub struct IdleSet {
    next: u64,
    waiting: BTreeMap<Key, Rc<Wake>>,
    /// The deadline the timer sleeps until, if it sleeps.
    armed: Option<Instant>,
    /// Wakes the timer for an entry due before `armed`.
    kick: Rc<Notify>,
}

impl IdleSet {
    /// A connection starts waiting idle until `until`; `wake` ends the wait.
    pub fn enter(&mut self, until: Instant, wake: Rc<Wake>) -> Key {
        self.next += 1;
        let key = (until, self.next);
        self.waiting.insert(key, wake);
        if self.armed.is_none_or(|a| until < a) {
            self.armed = Some(until);
            self.kick.notify_one();
        }
        key
    }

    pub fn leave(&mut self, key: Key) {
        self.waiting.remove(&key);
    }

    /// Closes up to `n` of the idle connections due soonest; how many.
    pub fn drain(&mut self, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            let Some((_, wake)) = self.waiting.pop_first() else {
                break;
            };
            wake.fire();
            done += 1;
        }
        done
    }

    /// Closes the connections due by `now`; the next deadline, which the timer
    /// is then armed for.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        while let Some(e) = self.waiting.first_entry() {
            if e.key().0 > now {
                break;
            }
            e.remove().fire();
        }
        self.armed = self.waiting.first_key_value().map(|(k, _)| k.0);
        self.armed
    }
}

/// The worker's one idle timer: fires each idle connection's wake at its deadline.
pub async fn timer(set: &std::cell::RefCell<IdleSet>) {
    let kick = set.borrow().kick.clone();
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    loop {
        let next = set.borrow_mut().expire(Instant::now());
        match next {
            Some(at) => {
                sleep.as_mut().reset(at.into());
                tokio::select! {
                    biased;
                    _ = kick.notified() => {}
                    _ = sleep.as_mut() => {}
                }
            }
            None => kick.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    #[test]
    fn expire_fires_what_is_due_and_arms_for_the_next() {
        let mut s = IdleSet::default();
        let t = Instant::now();
        let (a, b) = (Rc::new(Wake::default()), Rc::new(Wake::default()));
        s.enter(t + Duration::from_secs(2), b.clone());
        s.enter(t + Duration::from_secs(1), a.clone());
        assert_eq!(
            s.expire(t + Duration::from_millis(1500)),
            Some(t + Duration::from_secs(2))
        );
        assert!(a.fired.get() && !b.fired.get());
        assert_eq!(s.expire(t + Duration::from_secs(2)), None);
        assert!(b.fired.get());
    }

    /// A fire that lost to readiness is cleared by the next wait's reset, so that
    /// wait does not end at once (a `Notify` would have kept it as a permit).
    #[test]
    fn reset_clears_a_late_fire() {
        let w = Wake::default();
        w.fire();
        w.reset();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut wait = std::pin::pin!(w.fired());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        w.fire();
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn drain_closes_the_soonest_due_and_leave_withdraws() {
        let mut s = IdleSet::default();
        let t = Instant::now();
        let w: Vec<Rc<Wake>> = (0..3).map(|_| Rc::new(Wake::default())).collect();
        let keys: Vec<Key> = (0..3)
            .map(|i| s.enter(t + Duration::from_secs(10 - i as u64), w[i].clone()))
            .collect();
        s.leave(keys[2]);
        assert_eq!(s.drain(1), 1);
        assert!(w[1].fired.get() && !w[0].fired.get() && !w[2].fired.get());
        assert_eq!(s.drain(5), 1);
        assert!(w[0].fired.get() && !w[2].fired.get());
    }
}
