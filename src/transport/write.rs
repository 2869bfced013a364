//! Writing frames with as few syscalls as possible.
//!
//! Small frames are copied, header and all, into one staging buffer, so a burst of them goes
//! out in a single `write`. Large payloads are not copied: the queue keeps their `Bytes` and a
//! flush hands up to [`MAX_IOV`] pieces to one vectored write.
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::{FrameError, HEADER_LEN, Payload, Segment};

/// Payloads up to this size are copied into the staging buffer; larger ones are queued as is.
const COPY_MAX: usize = 16 * 1024;
/// Pieces per vectored write (Linux's `UIO_MAXIOV` is 1024; 64 covers any realistic burst).
const MAX_IOV: usize = 64;

#[derive(Debug)]
pub(crate) struct WriteState {
    staging: BytesMut,
    queue: VecDeque<Bytes>,
    queued: usize,
    max: usize,
}

impl WriteState {
    pub(crate) fn new(max: usize) -> Self {
        WriteState {
            staging: BytesMut::new(),
            queue: VecDeque::new(),
            queued: 0,
            max,
        }
    }

    /// Bytes accepted but not yet written.
    pub(crate) fn buffered(&self) -> usize {
        self.queued + self.staging.len()
    }

    /// Queues one frame, or refuses it (queueing nothing) if it is over the limit.
    pub(crate) fn push(&mut self, frame: Bytes) -> Result<(), FrameError> {
        self.push_parts(&[], frame.into())
    }

    /// Queues one frame made of `head` followed by `body`, or refuses it (queueing nothing)
    /// if it is over the limit. The head is always copied; large pieces of the body are not.
    pub(crate) fn push_parts(&mut self, head: &[u8], body: Payload) -> Result<(), FrameError> {
        let len = head.len() + body.len();
        if len > self.max {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        self.staging.reserve(HEADER_LEN + head.len());
        self.staging.put_u32_le(len as u32);
        self.staging.extend_from_slice(head);
        let (first, rest) = body.into_parts();
        match first {
            Segment::Heap(piece) => self.push_piece(piece),
            inline => self.staging.extend_from_slice(&inline),
        }
        for piece in rest {
            self.push_piece(piece);
        }
        Ok(())
    }

    /// Copies a small piece into the staging buffer; queues a large one as it is.
    fn push_piece(&mut self, piece: Bytes) {
        if piece.len() <= COPY_MAX {
            self.staging.extend_from_slice(&piece);
        } else {
            self.stage_out();
            self.queued += piece.len();
            self.queue.push_back(piece);
        }
    }

    fn stage_out(&mut self) {
        if !self.staging.is_empty() {
            let chunk = self.staging.split().freeze();
            self.queued += chunk.len();
            self.queue.push_back(chunk);
        }
    }

    /// Writes everything queued, then flushes the stream.
    pub(crate) fn poll_flush<W: AsyncWrite + ?Sized>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), FrameError>> {
        self.stage_out();
        while !self.queue.is_empty() {
            let n = if self.queue.len() > 1 && io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let count = self.queue.len().min(MAX_IOV);
                for (slice, chunk) in slices.iter_mut().zip(&self.queue) {
                    *slice = IoSlice::new(chunk);
                }
                ready!(io.as_mut().poll_write_vectored(cx, &slices[..count]))?
            } else {
                ready!(io.as_mut().poll_write(cx, &self.queue[0]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
            }
            self.advance(n);
        }
        ready!(io.poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Writes what is queued with `write`, a vectored write that does not wait: `true` once
    /// everything is written, `false` if `write` said it would block first (what is left
    /// stays queued).
    #[cfg(unix)]
    pub(crate) fn flush_now<F>(&mut self, write: F) -> Result<bool, FrameError>
    where
        F: FnMut(&[IoSlice<'_>]) -> io::Result<usize> + Unpin,
    {
        let mut io = WriteNow(write);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_flush(Pin::new(&mut io), &mut cx) {
            Poll::Ready(done) => done.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self.queue.front_mut().expect("wrote more than was queued");
            if n >= front.len() {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// A vectored write that does not wait, as an [`AsyncWrite`]: pending when it would block
/// (nothing will wake it: [`WriteState::flush_now`] reports it instead).
#[cfg(unix)]
struct WriteNow<F>(F);

#[cfg(unix)]
impl<F: FnMut(&[IoSlice<'_>]) -> io::Result<usize> + Unpin> AsyncWrite for WriteNow<F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = &mut self.get_mut().0;
        loop {
            match write(bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
