//! The client's write side, shared by the callers: whoever finds it idle writes everything
//! queued (its own request and any others), so a call costs no hop to a writer task, and
//! requests queued while a write is in progress still go out together in the next one.
//! Callers woken by the same batch of replies leave the write to the last of them (see
//! [`SharedWriter::queue`]), so that a burst of calls costs a few system calls, not one
//! each.
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use tokio::io::AsyncWrite;

use crate::transport::{FrameError, FrameWriter, Parts};

type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// How many requests a caller lets gather before it writes them, though others are about
/// to queue theirs: enough to spare most system calls, few enough that the server starts
/// on the first while the client still queues the rest.
const BATCH: usize = 8;

pub(crate) struct SharedWriter {
    queue: Mutex<Vec<Parts>>,
    io: tokio::sync::Mutex<Io>,
    /// Where [`pump_later`] spawns: the runtime the connection was made on, so that a frame
    /// queued on a thread outside it (a stream read there owing credit, a call dropped
    /// there) still goes out.
    runtime: tokio::runtime::Handle,
    /// Callers whose replies are in but who have not taken them yet: woken, about to run,
    /// and likely to make their next calls at once. While there are any, a caller leaves
    /// the write to the last of them (see [`Self::queue`]).
    woken: AtomicUsize,
    /// Whether a deferred flush is on its way.
    flush_scheduled: AtomicBool,
}

/// The write side proper, held by whoever pumps.
struct Io {
    writer: FrameWriter<BoxWrite>,
    /// The queue's previous buffer, empty: swapped with the queue, so that queueing does not
    /// allocate a new one for every batch.
    spare: Vec<Parts>,
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWriter").finish_non_exhaustive()
    }
}

impl SharedWriter {
    /// A writer over `io`; must be called inside a Tokio runtime, which it keeps.
    pub(crate) fn new(io: impl AsyncWrite + Send + 'static, max_frame_len: usize) -> Self {
        SharedWriter {
            runtime: tokio::runtime::Handle::current(),
            queue: Mutex::new(Vec::new()),
            io: tokio::sync::Mutex::new(Io {
                writer: FrameWriter::with_max_frame_len(Box::pin(io), max_frame_len),
                spare: Vec::new(),
            }),
            woken: AtomicUsize::new(0),
            flush_scheduled: AtomicBool::new(false),
        }
    }

    /// The runtime the connection was made on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(crate) fn push(&self, frame: Parts) {
        self.queue.lock().unwrap().push(frame);
    }

    /// A reply is on its way to a caller.
    pub(crate) fn reply_sent(&self) {
        self.woken.fetch_add(1, Ordering::Relaxed);
    }

    /// Callers whose replies are delivered but not yet taken.
    #[cfg(test)]
    pub(crate) fn woken_count(&self) -> usize {
        self.woken.load(Ordering::Relaxed)
    }

    /// A caller has its reply (or will never take it). Always after the matching
    /// [`reply_sent`](Self::reply_sent): the reply's channel orders the two.
    pub(crate) fn reply_taken(&self) {
        let before = self.woken.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before > 0, "a reply taken that was never sent");
    }

    /// Queues a request and tells whether its caller is to [`pump`](Self::pump) now.
    ///
    /// Not while other callers, woken by the same batch of replies, have yet to run and
    /// queue their next requests: the last of them, or the one that makes [`BATCH`]
    /// queued, writes them all in one go, rather than each in a system call of its own. In
    /// case that one never comes (callers that make no further call), a flush deferred
    /// until the runtime has run every task that is ready writes them anyway. A caller
    /// nobody else is about to follow writes at once.
    pub(crate) fn queue<F>(self: &Arc<Self>, frame: Parts, on_error: impl FnOnce() -> F) -> bool
    where
        F: FnOnce(FrameError) + Send + 'static,
    {
        let queued = {
            let mut queue = self.queue.lock().unwrap();
            queue.push(frame);
            queue.len()
        };
        if queued >= BATCH || self.woken.load(Ordering::Relaxed) == 0 {
            return true;
        }
        if !self.flush_scheduled.swap(true, Ordering::SeqCst) {
            let (writer, on_error) = (self.clone(), on_error());
            self.runtime.spawn(async move {
                // Back in line behind every task that is ready, the callers among them.
                tokio::task::yield_now().await;
                writer.flush_scheduled.store(false, Ordering::SeqCst);
                if let Err(e) = writer.flush_all().await {
                    on_error(e);
                }
            });
        }
        false
    }

    /// Whether a writer is to go on with what was queued while it wrote: not if that is
    /// less than a batch and more is about to come, with a deferred flush on its way (which
    /// waits for the write side, so nothing is left behind).
    fn more_to_write(&self, may_leave: bool) -> bool {
        let queued = self.queue.lock().unwrap().len();
        queued > 0
            && !(may_leave
                && queued < BATCH
                && self.woken.load(Ordering::Relaxed) > 0
                && self.flush_scheduled.load(Ordering::SeqCst))
    }

    /// Writes everything queued, waiting for the write side if another task has it.
    async fn flush_all(&self) -> Result<(), FrameError> {
        let mut io = self.io.lock().await;
        self.write_queued(&mut io, false).await?;
        drop(io);
        if self.more_to_write(false) {
            self.pump().await?;
        }
        Ok(())
    }

    /// Writes what is queued, and what is queued meanwhile, until
    /// [`more_to_write`](Self::more_to_write) says no.
    async fn write_queued(&self, io: &mut Io, may_leave: bool) -> Result<(), FrameError> {
        loop {
            std::mem::swap(&mut *self.queue.lock().unwrap(), &mut io.spare);
            for frame in io.spare.drain(..) {
                io.writer.push_parts(&frame.head, frame.payload)?;
            }
            // Also finishes what a pump dropped mid-write left in the writer's buffer.
            io.writer.flush().await?;
            if !self.more_to_write(may_leave) {
                return Ok(());
            }
        }
    }

    /// Writes what is queued, unless another task is writing already: that one writes
    /// what was queued here too before it lets go.
    ///
    /// If this future is dropped mid-write, the frames it took stay in the writer's buffer;
    /// [`pump_later`] makes sure someone finishes the job.
    pub(crate) async fn pump(&self) -> Result<(), FrameError> {
        loop {
            let Ok(mut guard) = self.io.try_lock() else {
                return Ok(());
            };
            self.write_queued(&mut guard, true).await?;
            drop(guard);
            // A frame queued after the last look but before the lock was released would be
            // stranded: look once more.
            if !self.more_to_write(true) {
                return Ok(());
            }
        }
    }
}

/// Pumps from a task of its own (for frames queued where no one can wait: a cancel sent
/// from a destructor, the hello, a pump whose caller went away).
pub(crate) fn pump_later(
    writer: Arc<SharedWriter>,
    on_error: impl FnOnce(FrameError) + Send + 'static,
) {
    let runtime = writer.runtime.clone();
    runtime.spawn(async move {
        if let Err(e) = writer.pump().await {
            on_error(e);
        }
    });
}

/// Finishes a pump from another task if the caller's future is dropped mid-write.
pub(crate) struct PumpGuard<F: FnOnce(FrameError) + Send + 'static> {
    pub(crate) writer: Option<Arc<SharedWriter>>,
    pub(crate) on_error: Option<F>,
}

impl<F: FnOnce(FrameError) + Send + 'static> Drop for PumpGuard<F> {
    fn drop(&mut self) {
        if let (Some(writer), Some(on_error)) = (self.writer.take(), self.on_error.take()) {
            pump_later(writer, on_error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::FrameReader;
    use bytes::Bytes;
    use futures_util::StreamExt;

    fn frame(task: u32, seq: u32) -> Parts {
        let mut b = task.to_le_bytes().to_vec();
        b.extend_from_slice(&seq.to_le_bytes());
        Parts::whole(Bytes::from(b))
    }

    /// Many tasks writing at once through a small pipe (so writes stall): every frame arrives,
    /// each task's in order, none stranded in the queue; including frames whose writer went
    /// away mid-write and frames left for others to write.
    #[test]
    fn concurrent_pumps_lose_nothing() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            const TASKS: u32 = 64;
            const FRAMES: u32 = 100;
            let (a, b) = tokio::io::duplex(256);
            let writer = Arc::new(SharedWriter::new(a, 1 << 20));
            let reader = tokio::spawn(async move {
                let mut reader = FrameReader::new(b);
                let mut next = vec![0u32; TASKS as usize];
                for i in 0..TASKS * FRAMES {
                    if i % 50 == 0 {
                        // A slow reader: writes stall, and pumps get dropped mid-write.
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    let f = reader.next().await.unwrap().unwrap();
                    let task = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
                    let seq = u32::from_le_bytes(f[4..].try_into().unwrap());
                    assert_eq!(seq, next[task], "frames of task {task} in order");
                    next[task] += 1;
                }
                next
            });
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let w = writer.clone();
                    tokio::spawn(async move {
                        for seq in 0..FRAMES {
                            if seq % 3 == 1 {
                                // As if woken by a response along with others.
                                w.reply_sent();
                                if !w.queue(frame(t, seq), || |e: FrameError| panic!("{e}")) {
                                    w.reply_taken();
                                    continue;
                                }
                                w.reply_taken();
                            } else {
                                w.push(frame(t, seq));
                            }
                            if seq % 7 == 0 || seq == FRAMES - 1 {
                                // Give up on this write at once: someone else must finish it.
                                let guard = PumpGuard {
                                    writer: Some(w.clone()),
                                    on_error: Some(|e| panic!("{e}")),
                                };
                                let _ =
                                    tokio::time::timeout(std::time::Duration::ZERO, w.pump()).await;
                                drop(guard);
                            } else {
                                w.pump().await.unwrap();
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let seen = tokio::time::timeout(std::time::Duration::from_secs(20), reader)
                .await
                .expect("every frame arrives")
                .unwrap();
            assert!(seen.iter().all(|&n| n == FRAMES));
        });
    }

    /// Callers woken together leave the write to the last of them, or to the one that
    /// fills a batch; a lone caller writes at once.
    #[tokio::test]
    async fn callers_woken_together_write_once() {
        let (a, _b) = tokio::io::duplex(1 << 16);
        let writer = Arc::new(SharedWriter::new(a, 1 << 20));
        // Queues a frame, writes if told to; tells whether it wrote.
        let send = |task: u32, seq: u32| {
            let writer = writer.clone();
            async move {
                let now = writer.queue(frame(task, seq), || |e: FrameError| panic!("{e}"));
                if now {
                    writer.pump().await.unwrap();
                }
                now
            }
        };
        assert!(send(0, 0).await, "nobody follows: write now");
        for _ in 0..3 {
            writer.reply_sent();
        }
        for task in 1..3 {
            writer.reply_taken();
            assert!(!send(task, 0).await, "others are about to follow");
        }
        writer.reply_taken();
        assert!(send(3, 0).await, "the last one writes");
        for _ in 0..2 * BATCH {
            writer.reply_sent();
        }
        let mut turns = Vec::new();
        for i in 0..BATCH as u32 {
            writer.reply_taken();
            turns.push(send(4, i).await);
        }
        assert_eq!(turns.iter().filter(|&&w| w).count(), 1);
        assert!(turns[BATCH - 1], "the one that fills the batch writes");
    }

    /// Frames left by callers woken together, whose last never came, still go out.
    #[tokio::test]
    async fn frames_left_for_a_caller_that_never_comes_go_out() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let writer = Arc::new(SharedWriter::new(a, 1 << 20));
        writer.reply_sent(); // and never runs
        for seq in 0..3 {
            assert!(!writer.queue(frame(0, seq), || |e: FrameError| panic!("{e}")));
        }
        let mut reader = FrameReader::new(b);
        for seq in 0..3u32 {
            let f = tokio::time::timeout(std::time::Duration::from_secs(10), reader.next())
                .await
                .expect("the deferred flush writes it")
                .unwrap()
                .unwrap();
            assert_eq!(u32::from_le_bytes(f[4..].try_into().unwrap()), seq);
        }
        writer.reply_taken(); // dropped its call instead
        assert!(writer.queue(frame(0, 3), || |e: FrameError| panic!("{e}")));
    }

    /// A pump dropped while its write is stalled leaves the frame in the writer; the guard
    /// has another task finish it.
    #[test]
    fn a_dropped_pump_is_finished_by_the_guard() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, b) = tokio::io::duplex(16); // nobody reads yet: the write stalls
            let writer = Arc::new(SharedWriter::new(a, 1 << 20));
            writer.push(Parts::whole(Bytes::from(vec![7u8; 1000])));
            let guard = PumpGuard {
                writer: Some(writer.clone()),
                on_error: Some(|e| panic!("{e}")),
            };
            let stalled = tokio::time::timeout(std::time::Duration::from_millis(20), writer.pump());
            assert!(
                stalled.await.is_err(),
                "the write cannot finish while nobody reads"
            );
            drop(guard);
            let mut reader = FrameReader::new(b);
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), reader.next())
                .await
                .expect("the guard's task finishes the write")
                .unwrap()
                .unwrap();
            assert_eq!(frame.len(), 1000);
        });
    }
}
