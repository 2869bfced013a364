//! The send side's credit: what the receiver has granted and the sender not yet spent, and
//! the entry a table of calls keeps to route grants to it.
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// The send side's credit.
#[derive(Debug, Default)]
pub(crate) struct SendFlow {
    state: Mutex<SendState>,
}

#[derive(Debug, Default)]
struct SendState {
    available: i64,
    window: i64,
    stopped: bool,
    waker: Option<Waker>,
}

impl SendFlow {
    /// A flow with `initial` credit (0: wait for the receiver's first grant).
    pub(crate) fn new(initial: u32) -> Arc<SendFlow> {
        let flow = SendFlow::default();
        if initial > 0 {
            flow.grant(initial);
        }
        Arc::new(flow)
    }

    pub(crate) fn grant(&self, bytes: u32) {
        let mut state = self.state.lock().unwrap();
        if state.window == 0 {
            state.window = i64::from(bytes);
        }
        // A receiver never has reason to grant beyond its window: a peer that does is not
        // allowed to make this side queue more.
        state.available = (state.available + i64::from(bytes)).min(state.window);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// The receiver wants no more items (or the call is over).
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock().unwrap();
        state.stopped = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Takes all the credit there is now, for a batch to spend item by item; 0 once stopped.
    pub(super) fn take_all(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        if state.stopped {
            return 0;
        }
        let available = state.available.max(0);
        state.available -= available;
        usize::try_from(available).unwrap_or(0)
    }

    /// Gives back credit taken and not spent.
    pub(super) fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            let mut state = self.state.lock().unwrap();
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            state.available = (state.available + bytes).min(state.window);
        }
    }

    /// Waits until an item of `cost` may go and takes its credit; `false` once stopped.
    pub(crate) async fn reserve(&self, cost: usize) -> bool {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        std::future::poll_fn(|cx| {
            let mut state = self.state.lock().unwrap();
            if state.stopped {
                return Poll::Ready(false);
            }
            // As TCP avoids silly windows: no frame starts on the last crumbs of credit
            // (it would carry an item or two) while most of the window is on its way back.
            // A receiver that has taken all it received gives back all it took, so the wait
            // always ends.
            let enough = cost.max(state.window / 4);
            let whole_window = state.window > 0 && state.available >= state.window;
            if enough <= state.available || whole_window {
                state.available -= cost;
                return Poll::Ready(true);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A sender's credit as a table of calls holds it, to route grants to: the call is over
/// when the entry goes, and dropping it stops the sender.
#[derive(Debug)]
pub(crate) struct CreditSlot(Arc<SendFlow>);

impl CreditSlot {
    pub(crate) fn new(flow: &Arc<SendFlow>) -> CreditSlot {
        CreditSlot(flow.clone())
    }
}

impl std::ops::Deref for CreditSlot {
    type Target = SendFlow;

    fn deref(&self) -> &SendFlow {
        &self.0
    }
}

impl Drop for CreditSlot {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::Context;

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        fut.poll(&mut cx)
    }

    #[tokio::test]
    async fn a_sender_low_on_credit_waits_for_a_quarter_of_the_window() {
        let flow = SendFlow::new(1000);
        assert!(flow.reserve(790).await);
        // 210 left, less than a quarter of the window: even a 10 waits.
        let waiting = flow.reserve(10);
        tokio::pin!(waiting);
        assert!(poll_once(waiting.as_mut()).is_pending());
        flow.grant(30);
        assert!(
            poll_once(waiting.as_mut()).is_pending(),
            "240 is still short"
        );
        flow.grant(10);
        assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(true));
        // Spending within the batch is item by item: what was taken is gone, the rest stays.
        assert_eq!(flow.take_all(), 240);
        flow.give_back(240);
        // An item costing more than a quarter needs its own cost, no more.
        flow.grant(40);
        let big = flow.reserve(280);
        tokio::pin!(big);
        assert_eq!(poll_once(big.as_mut()), Poll::Ready(true));
    }

    #[tokio::test]
    async fn the_sender_waits_for_credit_and_a_large_item_goes_alone() {
        let flow = SendFlow::new(100);
        assert!(flow.reserve(60).await);
        // 40 left: a 60 must wait.
        let waiting = flow.reserve(60);
        tokio::pin!(waiting);
        assert!(poll_once(waiting.as_mut()).is_pending());
        flow.grant(60);
        assert!(waiting.await);
        // Only with the whole window back may an item larger than it go.
        flow.grant(40);
        let big = flow.reserve(500);
        tokio::pin!(big);
        assert!(poll_once(big.as_mut()).is_pending());
        flow.grant(20);
        assert!(big.await);
        flow.stop();
        assert!(!flow.reserve(1).await);
    }
}
