//! Reading frames: a 4-byte little-endian length, then that many bytes.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use super::{FrameError, HEADER_LEN};

/// Smallest read buffer growth; frames larger than this get their whole size reserved at once,
/// after their header has been checked against the limit.
const READ_CHUNK: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) struct ReadState {
    buf: BytesMut,
    max: usize,
    done: bool,
}

impl ReadState {
    pub(crate) fn new(max: usize) -> Self {
        ReadState {
            buf: BytesMut::new(),
            max,
            done: false,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The next complete frame, `None` at a clean end of stream (between frames).
    /// After an error the stream is finished: framing cannot be recovered.
    pub(crate) fn poll_next<R: AsyncRead + ?Sized>(
        &mut self,
        mut io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FrameError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let mut need = HEADER_LEN;
            if self.buf.len() >= HEADER_LEN {
                let len = u32::from_le_bytes(self.buf[..HEADER_LEN].try_into().unwrap()) as usize;
                if len > self.max {
                    self.done = true;
                    return Poll::Ready(Some(Err(FrameError::TooLarge {
                        len: len as u64,
                        max: self.max,
                    })));
                }
                need = HEADER_LEN + len;
                if self.buf.len() >= need {
                    self.buf.advance(HEADER_LEN);
                    return Poll::Ready(Some(Ok(self.buf.split_to(len).freeze())));
                }
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve((need - self.buf.len()).max(READ_CHUNK));
            }
            let n = match ready!(poll_read_buf(io.as_mut(), cx, &mut self.buf)) {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            if n == 0 {
                self.done = true;
                if self.buf.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(FrameError::Truncated {
                    expected: need as u64,
                    received: self.buf.len(),
                })));
            }
        }
    }
}

/// Reads into the spare capacity of `buf` without zeroing it first.
fn poll_read_buf<R: AsyncRead + ?Sized>(
    io: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let ptr = spare.as_ptr();
    let mut read_buf = ReadBuf::uninit(spare);
    ready!(io.poll_read(cx, &mut read_buf))?;
    let filled = read_buf.filled();
    assert_eq!(
        filled.as_ptr(),
        ptr.cast(),
        "AsyncRead swapped the read buffer"
    );
    let n = filled.len();
    // SAFETY: `ReadBuf` guarantees its first `n` bytes were initialized, and they are the
    // first `n` bytes of `buf`'s spare capacity (checked above).
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_length_allocates_nothing() {
        let mut state = ReadState::new(1 << 20);
        let mut input: &[u8] = &u32::MAX.to_le_bytes();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let got = state.poll_next(Pin::new(&mut input), &mut cx);
        assert!(matches!(
            got,
            Poll::Ready(Some(Err(FrameError::TooLarge { .. })))
        ));
        assert!(
            state.buf.capacity() <= READ_CHUNK,
            "{}",
            state.buf.capacity()
        );
    }
}
