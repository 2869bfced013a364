//! A future with an optional deadline, for the client's calls and the server's handlers.
//!
//! Like `tokio::time::timeout_at`, but the timer exists only when there is a deadline (boxed,
//! so a call without one carries no timer at all), and the type is the same either way, so
//! callers need no `match` on the deadline, which inside an `async fn` would hold the future
//! once per arm.
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::task::Unconstrained;
use tokio::time::Sleep;

/// Runs `fut` until `at`: `Some` of its output, or `None` if the deadline came first.
#[inline]
pub(crate) fn deadline<F: Future>(at: Option<Instant>, fut: F) -> Deadline<F> {
    Deadline {
        fut,
        // Unconstrained, as `tokio::time::timeout` polls its timer: a future that uses up the
        // task's coop budget must not keep its deadline from firing.
        sleep: at.map(|at| {
            Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(
                at.into(),
            )))
        }),
    }
}

/// Polls a future inside a runtime's context: for work that makes timers, sockets or tasks
/// (dialing again, say) on behalf of a caller that may be outside any runtime.
pub(crate) struct InRuntime<F> {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) fut: Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.runtime.enter();
        self.fut.as_mut().poll(cx)
    }
}

/// The future of [`deadline`].
pub(crate) struct Deadline<F> {
    fut: F,
    sleep: Option<Pin<Box<Unconstrained<Sleep>>>>,
}

impl<F: Future> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        // SAFETY: `fut` is pinned with `self`: never moved out, and `Deadline` implements
        // neither `Drop` nor `Unpin` by hand. `sleep` is not pinned through `self`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        if let Poll::Ready(out) = fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        match &mut this.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).map(|()| None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_future_or_the_deadline_whichever_comes_first() {
        assert_eq!(deadline(None, async { 7 }).await, Some(7));
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(deadline(soon, std::future::pending::<u8>()).await, None);
        // A future that uses up the coop budget on every poll is still stopped.
        let busy = async {
            loop {
                tokio::task::coop::consume_budget().await;
            }
        };
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(deadline(soon, busy).await, None::<()>);
    }
}
