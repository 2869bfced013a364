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
/// Spare read capacity kept when no partial frame is pending; beyond it the buffer is released.
const KEEP_IDLE: usize = 64 * 1024;

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

    /// Whether a whole frame (or a frame header over the limit) waits in the buffer, so
    /// that the next [`poll_next`](Self::poll_next) answers without reading.
    #[cfg(unix)]
    pub(crate) fn has_frame(&self) -> bool {
        if self.done {
            return true;
        }
        let Some(head) = self.buf.get(..HEADER_LEN) else {
            return false;
        };
        let len = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
        len > self.max || self.buf.len() - HEADER_LEN >= len
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
                    let frame = self.buf.split_to(len).freeze();
                    if self.buf.is_empty() && self.buf.capacity() > KEEP_IDLE {
                        // Do not pin a large buffer to an idle connection.
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
            let missing = need - self.buf.len();
            if self.buf.capacity() - self.buf.len() < missing.min(READ_CHUNK) {
                // Room for more than the frame: a read that comes back short shows the
                // socket drained, which spares the read that would only say "would block".
                self.buf.reserve(if missing < READ_CHUNK {
                    READ_CHUNK
                } else {
                    missing + READ_CHUNK
                });
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

#[cfg(unix)]
impl ReadState {
    /// The next frame as [`poll_next`](Self::poll_next) gives it, read with `read`: a
    /// blocking read into memory that need not be initialized.
    ///
    /// # Safety
    ///
    /// When `read` returns `Ok(n)`, it must have initialized the first `n` bytes of the
    /// slice it was given (as `recv(2)` does).
    pub(crate) unsafe fn next_blocking<F>(&mut self, read: F) -> Option<Result<Bytes, FrameError>>
    where
        F: FnMut(&mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> + Unpin,
    {
        let mut io = BlockingRead(read);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_next(Pin::new(&mut io), &mut cx) {
            Poll::Ready(next) => next,
            Poll::Pending => unreachable!("a blocking read is never pending"),
        }
    }
}

/// A blocking read as an [`AsyncRead`] that is always ready. Built only by
/// [`ReadState::next_blocking`], whose caller promises what the read initializes.
#[cfg(unix)]
struct BlockingRead<F>(F);

#[cfg(unix)]
impl<F> AsyncRead for BlockingRead<F>
where
    F: FnMut(&mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = &mut self.get_mut().0;
        // SAFETY: `read` only writes bytes, and initializes the first `n` it reports (the
        // promise made to `next_blocking`).
        let unfilled = unsafe { buf.unfilled_mut() };
        let len = unfilled.len();
        loop {
            match read(unfilled) {
                Ok(n) => {
                    assert!(n <= len, "read reported more bytes than it was given");
                    // SAFETY: `read` initialized the first `n` bytes of `unfilled`.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
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

    /// Hands out `data` and notes how much room each read offered.
    struct Recorded<'a> {
        data: &'a [u8],
        offered: Vec<usize>,
    }

    impl AsyncRead for Recorded<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.offered.push(buf.remaining());
            let n = buf.remaining().min(self.data.len());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_read_offers_room_beyond_the_frame_so_a_drained_socket_shows() {
        const LEN: usize = 100_000;
        let mut wire = (LEN as u32).to_le_bytes().to_vec();
        wire.resize(4 + LEN, 7);
        wire.extend_from_slice(&3u32.to_le_bytes());
        wire.extend_from_slice(b"abc");
        let mut io = Recorded {
            data: &wire,
            offered: Vec::new(),
        };
        let mut state = ReadState::new(1 << 20);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut next = || match state.poll_next(Pin::new(&mut io), &mut cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => panic!("expected a frame, got {other:?}"),
        };
        assert_eq!(next().len(), LEN);
        assert_eq!(&next()[..], b"abc");
        // The first read offers a chunk, the next all the frame still misses and more: the
        // second frame came with it, and no read was spent on it alone.
        let missing = LEN + 4 - io.offered[0];
        assert_eq!(io.offered.len(), 2, "{:?}", io.offered);
        assert!(io.offered[1] > missing, "{:?}", io.offered);
    }
}

#[cfg(test)]
mod shrink_tests {
    use super::*;

    #[test]
    fn large_buffer_is_released_after_its_frame() {
        let mut state = ReadState::new(4 << 20);
        let mut wire = (1u32 << 20).to_le_bytes().to_vec();
        wire.resize(4 + (1 << 20), 7);
        let mut input: &[u8] = &wire;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match state.poll_next(Pin::new(&mut input), &mut cx) {
            Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.len(), 1 << 20),
            other => panic!("expected a frame, got {other:?}"),
        }
        assert!(
            state.buf.capacity() <= KEEP_IDLE,
            "{}",
            state.buf.capacity()
        );
    }
}
