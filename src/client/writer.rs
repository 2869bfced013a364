//! The client's write side, shared by the callers: whoever finds it idle writes everything
//! queued (its own request and any others), so a call costs no hop to a writer task, and
//! requests queued while a write is in progress still go out together in the next one.
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use tokio::io::AsyncWrite;

use crate::transport::{FrameError, FrameWriter, Parts};

type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

pub(crate) struct SharedWriter {
    queue: Mutex<Vec<Parts>>,
    io: tokio::sync::Mutex<FrameWriter<BoxWrite>>,
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWriter").finish_non_exhaustive()
    }
}

impl SharedWriter {
    pub(crate) fn new(io: impl AsyncWrite + Send + 'static, max_frame_len: usize) -> Self {
        SharedWriter {
            queue: Mutex::new(Vec::new()),
            io: tokio::sync::Mutex::new(FrameWriter::with_max_frame_len(
                Box::pin(io),
                max_frame_len,
            )),
        }
    }

    pub(crate) fn push(&self, frame: Parts) {
        self.queue.lock().unwrap().push(frame);
    }

    /// Writes what is queued, unless another task is writing already: that one writes
    /// what was queued here too before it lets go.
    ///
    /// If this future is dropped mid-write, the frames it took stay in the writer's buffer;
    /// [`pump_later`] makes sure someone finishes the job.
    pub(crate) async fn pump(&self) -> Result<(), FrameError> {
        loop {
            let Ok(mut io) = self.io.try_lock() else {
                return Ok(());
            };
            loop {
                let batch = std::mem::take(&mut *self.queue.lock().unwrap());
                if batch.is_empty() {
                    break;
                }
                for frame in batch {
                    io.push_parts(&frame.head, frame.payload)?;
                }
                io.flush().await?;
            }
            drop(io);
            // A frame queued after the last look but before the lock was released would be
            // stranded: look once more.
            if self.queue.lock().unwrap().is_empty() {
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
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = writer.pump().await {
                on_error(e);
            }
        });
    }
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
