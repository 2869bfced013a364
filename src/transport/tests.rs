use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn frames_round_trip_in_order() {
    rt().block_on(async {
        let (mut a, mut b) = memory();
        let sizes = [0usize, 1, 5, 4096, 16 * 1024, 16 * 1024 + 1, 300_000];
        let sender = tokio::spawn(async move {
            for (i, &n) in sizes.iter().enumerate() {
                a.feed(Bytes::from(vec![i as u8; n])).await.unwrap();
            }
            a.close().await.unwrap();
        });
        for (i, &n) in sizes.iter().enumerate() {
            let frame = b.next().await.unwrap().unwrap();
            assert_eq!(frame.len(), n);
            assert!(frame.iter().all(|&x| x == i as u8));
        }
        assert!(
            b.next().await.is_none(),
            "clean end of stream after the last frame"
        );
        sender.await.unwrap();
    });
}

#[test]
fn oversize_frame_is_refused_before_sending() {
    rt().block_on(async {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = Framed::with_max_frame_len(a, 100);
        let mut b = Framed::new(b);
        match a.send(Bytes::from(vec![0u8; 101])).await {
            Err(FrameError::TooLarge { len: 101, max: 100 }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Nothing was written and the transport still works.
        a.send(Bytes::from_static(b"ok")).await.unwrap();
        assert_eq!(b.next().await.unwrap().unwrap(), "ok");
    });
}

#[test]
fn announced_oversize_frame_ends_the_stream() {
    rt().block_on(async {
        let (mut raw, b) = tokio::io::duplex(1024);
        let mut b = Framed::with_max_frame_len(b, 1 << 20);
        raw.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        match b.next().await {
            Some(Err(FrameError::TooLarge { len, max })) => {
                assert_eq!(len, u64::from(u32::MAX));
                assert_eq!(max, 1 << 20);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(b.next().await.is_none(), "framing is lost after an error");
    });
}

#[test]
fn truncated_frames_are_typed_errors() {
    rt().block_on(async {
        // Header cut short.
        let (mut raw, b) = tokio::io::duplex(1024);
        raw.write_all(&[7, 0]).await.unwrap();
        drop(raw);
        match Framed::new(b).next().await {
            Some(Err(FrameError::Truncated {
                expected: 4,
                received: 2,
            })) => {}
            other => panic!("expected Truncated header, got {other:?}"),
        }
        // Body cut short.
        let (mut raw, b) = tokio::io::duplex(1024);
        raw.write_all(&10u32.to_le_bytes()).await.unwrap();
        raw.write_all(b"abc").await.unwrap();
        drop(raw);
        match Framed::new(b).next().await {
            Some(Err(FrameError::Truncated {
                expected: 14,
                received: 7,
            })) => {}
            other => panic!("expected Truncated body, got {other:?}"),
        }
    });
}

/// Records every write call.
#[derive(Default)]
struct CountingWriter {
    writes: usize,
    vectored: usize,
    data: Vec<u8>,
}

impl AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes += 1;
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.vectored += 1;
        let mut n = 0;
        for b in bufs {
            self.data.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
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

#[test]
fn queued_frames_are_coalesced() {
    rt().block_on(async {
        let mut w = FrameWriter::new(CountingWriter::default());
        for i in 0..100u8 {
            w.feed(Bytes::from(vec![i; 32])).await.unwrap();
        }
        w.flush().await.unwrap();
        assert_eq!(
            w.get_ref().writes + w.get_ref().vectored,
            1,
            "100 small frames in one write"
        );
        assert_eq!(w.get_ref().data.len(), 100 * 36);

        let mut w = FrameWriter::new(CountingWriter::default());
        // Three frames stay below the back-pressure threshold, so one flush writes them all.
        for i in 0..3u8 {
            w.feed(Bytes::from(vec![i; 80_000])).await.unwrap();
        }
        w.flush().await.unwrap();
        assert_eq!(w.get_ref().writes, 0);
        assert_eq!(
            w.get_ref().vectored,
            1,
            "large frames go out in one vectored write"
        );
        let data = &w.get_ref().data;
        assert_eq!(data.len(), 3 * 80_004);
        assert_eq!(&data[..4], &80_000u32.to_le_bytes());
        assert_eq!(data[80_004 + 4], 1);
    });
}
