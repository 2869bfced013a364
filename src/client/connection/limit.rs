//! The bound on a connection's calls in flight, as the server set it in the handshake.
//!
//! A counter rather than `tokio::sync::Semaphore`: taking and giving back a slot is an atomic
//! operation each, where the semaphore's release takes a lock; callers only wait when the
//! connection is at its limit.
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub(super) struct CallLimit {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    /// Woken when a slot is given back or the limit rises.
    freed: Notify,
}

/// A slot for one call in flight; given back when dropped.
#[derive(Debug)]
pub(super) struct Slot(Arc<CallLimit>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

impl CallLimit {
    pub(super) fn new(limit: usize) -> Arc<CallLimit> {
        Arc::new(CallLimit {
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            freed: Notify::new(),
        })
    }

    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.limit.load(Ordering::Acquire);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// A slot, once the connection is below its limit.
    pub(super) async fn take(self: &Arc<Self>) -> Slot {
        loop {
            if let Some(slot) = self.try_take() {
                return slot;
            }
            let mut freed = pin!(self.freed.notified());
            // Registered before looking again, so that a slot given back in between wakes us.
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }

    /// Applies the server's limit; calls over a lower limit finish, new ones wait.
    pub(super) fn set(&self, limit: usize) {
        self.limit.store(limit, Ordering::Release);
        self.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_over_the_limit_wait_for_a_slot() {
        let limit = CallLimit::new(2);
        let a = limit.take().await;
        let _b = limit.take().await;
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move { limit.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a third call went over the limit");
        drop(a);
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a freed slot wakes the waiting call")
            .unwrap();
        // A lower limit holds new calls back until enough are over; a higher one lets
        // waiting calls go.
        limit.set(1);
        assert!(limit.try_take().is_none());
        drop(c);
        assert!(
            limit.try_take().is_none(),
            "still one in flight, at a limit of one"
        );
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move { limit.take().await }
        });
        tokio::task::yield_now().await;
        limit.set(3);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a raised limit wakes the waiting call")
            .unwrap();
    }
}
