//! Frames of stream items (`Envelope { stream_item { call_id, items } }`): the sender encodes
//! items straight into the frame ([`ItemFrame`]), and the receiver reads them where they lie
//! ([`ItemBatch`]), so a batch of small items costs one buffer on each side, not one per item.
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};

use super::{ENVELOPE_STREAM_ITEM, STREAM_ITEM_PAYLOAD, envelope_head, varint};
use crate::transport::{Parts, Payload, Segment};

/// The tag of `StreamItem.call_id`, a varint.
const CALL_ID: u8 = 1 << 3;
/// Room kept before the items for the envelope's tag and the message length.
const HEAD_ROOM: usize = 1 + 5;
/// Room kept before an item for its length: one varint byte, enough for most items; a
/// longer item moves up a byte to make room for a second.
const LEN_ROOM: usize = 1;
/// What a new frame allocates: a frame often carries a single small item (a stream that
/// sends now and then); one with more ready makes room for a whole batch.
const INITIAL_CAPACITY: usize = 512;

/// Encodes `Envelope { stream_item { call_id, items: [payload] } }` with the payload as its
/// own buffer: for an item too large to batch, sent without a copy.
pub(crate) fn stream_item_parts(call_id: u64, payload: Bytes) -> Parts {
    let id_field = if call_id == 0 {
        0
    } else {
        1 + encoded_len_varint(call_id)
    };
    let payload_field = 1 + encoded_len_varint(payload.len() as u64) + payload.len();
    let head = envelope_head(
        ENVELOPE_STREAM_ITEM,
        id_field + payload_field,
        payload.len(),
        STREAM_ITEM_PAYLOAD,
        |buf| {
            if call_id != 0 {
                prost::encoding::uint64::encode(1, &call_id, buf);
            }
        },
    );
    Parts {
        head,
        payload: payload.into(),
    }
}

/// A frame of small stream items being built: each item is encoded in place, after room for
/// its length that [`ItemFrame::close_item`] fills in.
#[derive(Debug)]
pub(crate) struct ItemFrame {
    buf: BytesMut,
    /// Where the item being encoded begins (its tag), if one is open.
    open: Option<usize>,
    count: usize,
}

impl ItemFrame {
    /// The largest item a frame takes in place.
    pub(crate) const MAX_ITEM: usize = (1 << 14) - 1;

    /// An empty frame for call `call_id`, with room for a small item.
    pub(crate) fn new(call_id: u64) -> ItemFrame {
        let mut buf = BytesMut::with_capacity(INITIAL_CAPACITY);
        buf.put_bytes(0, HEAD_ROOM);
        if call_id != 0 {
            buf.put_u8(CALL_ID);
            encode_varint(call_id, &mut buf);
        }
        ItemFrame {
            buf,
            open: None,
            count: 0,
        }
    }

    /// Makes room for `additional` more bytes of items at once.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Items closed in the frame.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Opens an item: its encoding is to be appended to the buffer returned.
    #[inline]
    pub(crate) fn open_item(&mut self) -> &mut BytesMut {
        debug_assert!(self.open.is_none(), "one item at a time");
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&[STREAM_ITEM_PAYLOAD, 0]);
        &mut self.buf
    }

    /// The encoded length of the open item so far.
    #[inline]
    pub(crate) fn open_len(&self) -> usize {
        self.open
            .map_or(0, |start| self.buf.len() - start - 1 - LEN_ROOM)
    }

    /// Keeps the open item, which must be at most [`ItemFrame::MAX_ITEM`] bytes.
    #[inline]
    pub(crate) fn close_item(&mut self) {
        let start = self.open.take().expect("an open item");
        let len = self.buf.len() - start - 1 - LEN_ROOM;
        match self.buf.get_mut(start + 1) {
            Some(room) if len < 0x80 => *room = len as u8,
            _ => self.close_longer_item(start, len),
        }
        self.count += 1;
    }

    /// [`close_item`](Self::close_item) for an item of two length bytes, which moves up by
    /// one to make room for the second; out of line, as most items are small.
    #[cold]
    fn close_longer_item(&mut self, start: usize, len: usize) {
        assert!(len <= Self::MAX_ITEM, "an item too large for a batch");
        self.buf.put_u8(0);
        self.buf.copy_within(start + 2..start + 2 + len, start + 3);
        self.buf[start + 1] = (len as u8 & 0x7f) | 0x80;
        self.buf[start + 2] = (len >> 7) as u8;
    }

    /// Takes the open item out of the frame, as its own buffer (no copy).
    pub(crate) fn take_item(&mut self) -> Bytes {
        let start = self.open.take().expect("an open item");
        let item = self.buf.split_off(start + 1 + LEN_ROOM).freeze();
        self.buf.truncate(start);
        item
    }

    /// Whether an item is open.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Drops whatever the open item has written (an item that failed to encode).
    #[inline]
    pub(crate) fn discard_item(&mut self) {
        if let Some(start) = self.open.take() {
            self.buf.truncate(start);
        }
    }

    /// Appends an item already encoded.
    pub(crate) fn push(&mut self, item: &[u8]) {
        self.open_item().extend_from_slice(item);
        self.close_item();
    }

    /// The frame to send.
    pub(crate) fn finish(mut self) -> Parts {
        self.discard_item();
        let message_len = self.buf.len() - HEAD_ROOM;
        let head_len = 1 + encoded_len_varint(message_len as u64);
        let start = HEAD_ROOM - head_len;
        let mut head = &mut self.buf[start..HEAD_ROOM];
        head.put_u8(ENVELOPE_STREAM_ITEM);
        encode_varint(message_len as u64, &mut head);
        // All payload: the writer sends a large frame from this buffer rather than copy it.
        Parts {
            head: Segment::default(),
            payload: Payload::from(self.buf.freeze().slice(start..)),
        }
    }
}

/// The items of a received stream frame, read where they lie.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemBatch {
    /// The `StreamItem` message.
    body: Bytes,
    count: usize,
    /// The items' bytes, together.
    len: usize,
}

impl ItemBatch {
    /// A batch of `items` (that came otherwise than in a frame of their own).
    pub(crate) fn of(items: &[Bytes]) -> ItemBatch {
        let mut body = BytesMut::new();
        for item in items {
            prost::encoding::bytes::encode(2, item, &mut body);
        }
        ItemBatch {
            body: body.freeze(),
            count: items.len(),
            len: items.iter().map(Bytes::len).sum(),
        }
    }

    /// How many items it holds.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The items' encoded bytes, together.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes the items lie in.
    pub(crate) fn body(&self) -> &Bytes {
        &self.body
    }

    /// The item at or after `pos` in [`body`](Self::body), moving `pos` past it.
    #[inline]
    pub(crate) fn next_item(&self, pos: &mut usize) -> Option<Range<usize>> {
        if let Some(item) = self.small_item_at(*pos) {
            *pos = item.end;
            return Some(item);
        }
        self.next_item_slow(pos)
    }

    /// The item at `pos` in [`body`](Self::body), if it is a small one as most are: a tag
    /// and one length byte before it.
    #[inline]
    pub(crate) fn small_item_at(&self, pos: usize) -> Option<Range<usize>> {
        let (len, _) = small_item(self.body.get(pos..)?)?;
        Some(pos + 2..pos + 2 + len)
    }

    /// [`next_item`](Self::next_item) for any other field at `pos`: a larger item, the
    /// call id, or a field this version does not know.
    #[inline(never)]
    fn next_item_slow(&self, pos: &mut usize) -> Option<Range<usize>> {
        let mut rest = self.body.get(*pos..)?;
        let total = self.body.len();
        while !rest.is_empty() {
            match next_field(&mut rest) {
                Some(Field::Item(len)) => {
                    let end = total - rest.len();
                    *pos = end;
                    return Some(end - len..end);
                }
                Some(Field::CallId(_) | Field::Other) => {}
                None => break,
            }
        }
        *pos = total;
        None
    }
}

/// If `frame` is an envelope of stream items as this crate's sender writes it (the one field
/// of the envelope), its call id and items. Any other frame, well-formed or not, is left to
/// the envelope's decoder.
pub(crate) fn stream_items(frame: &Bytes) -> Option<(u64, ItemBatch)> {
    let mut rest = frame.strip_prefix(&[ENVELOPE_STREAM_ITEM])?;
    if varint(&mut rest)? != rest.len() as u64 {
        return None;
    }
    let mut batch = ItemBatch {
        body: frame.slice(frame.len() - rest.len()..),
        count: 0,
        len: 0,
    };
    let mut call_id = 0;
    while !rest.is_empty() {
        if let Some((len, after)) = small_item(rest) {
            rest = after;
            batch.count += 1;
            batch.len += len;
            continue;
        }
        match next_field(&mut rest)? {
            Field::CallId(id) => call_id = id,
            Field::Item(len) => {
                batch.count += 1;
                batch.len += len;
            }
            Field::Other => {}
        }
    }
    Some((call_id, batch))
}

enum Field {
    CallId(u64),
    /// An item of this length, just before where the cursor now is.
    Item(usize),
    /// A field this version does not know, skipped.
    Other,
}

/// If `rest` starts with a small item, as most are from this crate's sender (a tag, one
/// length byte, then the item), the item's length and what follows the item.
#[inline]
fn small_item(rest: &[u8]) -> Option<(usize, &[u8])> {
    match *rest {
        [STREAM_ITEM_PAYLOAD, len, ref after @ ..] if len < 0x80 => {
            let len = usize::from(len);
            Some((len, after.get(len..)?))
        }
        _ => None,
    }
}

/// Reads one field of a `StreamItem` message and moves past it: the general case, for what
/// [`small_item`] does not take.
fn next_field(rest: &mut &[u8]) -> Option<Field> {
    let key = varint(rest)?;
    let field = key >> 3;
    let skip = match key & 7 {
        0 => {
            let value = varint(rest)?;
            return Some(if field == 1 {
                Field::CallId(value)
            } else {
                Field::Other
            });
        }
        1 => 8,
        2 => usize::try_from(varint(rest)?).unwrap_or(usize::MAX),
        5 => 4,
        _ => return None, // groups: not in this message
    };
    if skip > rest.len() {
        return None;
    }
    *rest = &rest[skip..];
    Some(if field == 2 && key & 7 == 2 {
        Field::Item(skip)
    } else {
        Field::Other
    })
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::wire::{Envelope, envelope, messages::StreamItem};

    fn joined(parts: &Parts) -> Bytes {
        [&parts.head[..], &parts.payload.join()[..]].concat().into()
    }

    fn items_of(batch: &ItemBatch) -> Vec<Bytes> {
        let mut pos = 0;
        std::iter::from_fn(|| batch.next_item(&mut pos))
            .map(|r| batch.body().slice(r))
            .collect()
    }

    #[test]
    fn a_frame_built_in_place_decodes_as_the_message_and_reads_back_in_place() {
        for id in [0, 1, 300, u64::MAX] {
            let items: Vec<Bytes> = [0usize, 1, 127, 128, 300, ItemFrame::MAX_ITEM]
                .iter()
                .map(|&n| Bytes::from(vec![n as u8; n]))
                .collect();
            let mut frame = ItemFrame::new(id);
            for item in &items {
                frame.open_item().extend_from_slice(item);
                assert_eq!(frame.open_len(), item.len());
                frame.close_item();
            }
            // An item taken out and one discarded leave nothing behind.
            frame.open_item().extend_from_slice(b"taken");
            assert_eq!(frame.take_item(), Bytes::from_static(b"taken"));
            frame.open_item().extend_from_slice(b"discarded");
            frame.discard_item();
            assert_eq!(frame.count(), items.len());
            let bytes = joined(&frame.finish());
            assert_eq!(
                Envelope::decode(&bytes[..]).unwrap().kind,
                Some(envelope::Kind::StreamItem(StreamItem {
                    call_id: id,
                    items: items.clone(),
                }))
            );
            let (call_id, batch) = stream_items(&bytes).unwrap();
            assert_eq!(call_id, id);
            assert_eq!(batch.count(), items.len());
            assert_eq!(batch.len(), items.iter().map(Bytes::len).sum::<usize>());
            assert_eq!(items_of(&batch), items);
        }
    }

    #[test]
    fn a_frame_from_another_encoder_reads_the_same_and_others_go_to_the_envelope_decoder() {
        // Fields in another order, and a field this version does not know.
        let mut body = BytesMut::new();
        prost::encoding::bytes::encode(2, &Bytes::from_static(b"one"), &mut body);
        prost::encoding::uint64::encode(9, &5, &mut body);
        prost::encoding::uint64::encode(1, &42, &mut body);
        prost::encoding::bytes::encode(2, &Bytes::from_static(b"two"), &mut body);
        let mut frame = BytesMut::new();
        frame.put_u8(ENVELOPE_STREAM_ITEM);
        encode_varint(body.len() as u64, &mut frame);
        frame.extend_from_slice(&body);
        let frame = frame.freeze();
        let (id, batch) = stream_items(&frame).unwrap();
        assert_eq!(id, 42);
        assert_eq!(items_of(&batch), [&b"one"[..], &b"two"[..]]);
        let items = vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")];
        let expected = Some(envelope::Kind::StreamItem(StreamItem {
            call_id: 42,
            items,
        }));

        // A valid envelope with another field after the items is not read in place, but
        // decodes as the same message.
        let mut longer = BytesMut::from(&frame[..]);
        prost::encoding::uint64::encode(15, &1, &mut longer);
        assert!(stream_items(&longer.clone().freeze()).is_none());
        assert_eq!(Envelope::decode(&longer[..]).unwrap().kind, expected);

        // Broken frames are not read in place, and the envelope's decoder refuses them.
        let truncated = frame.slice(..frame.len() - 1);
        let mut overlong = BytesMut::from(&frame[..]);
        overlong[1] += 1;
        let group = Bytes::from_static(&[ENVELOPE_STREAM_ITEM, 2, 0x13, 0]);
        for broken in [truncated, overlong.freeze(), group] {
            assert!(stream_items(&broken).is_none());
            assert!(Envelope::decode(&broken[..]).is_err());
        }
        assert!(stream_items(&Bytes::from_static(b"\x0a\x00")).is_none());
    }

    #[test]
    fn a_large_item_travels_in_parts_that_decode_as_the_message() {
        for (id, payload) in [
            (0, Bytes::new()),
            (1, Bytes::from_static(b"x")),
            (u64::MAX, Bytes::from(vec![5u8; 70_000])),
        ] {
            let bytes = joined(&stream_item_parts(id, payload.clone()));
            let decoded = Envelope::decode(&bytes[..]).unwrap();
            assert_eq!(
                decoded.kind,
                Some(envelope::Kind::StreamItem(StreamItem {
                    call_id: id,
                    items: vec![payload.clone()]
                }))
            );
            let (call_id, batch) = stream_items(&bytes).unwrap();
            assert_eq!((call_id, items_of(&batch)), (id, vec![payload]));
        }
    }
}
