//! The subset reader on two threads: a large tokens file read as two halves at once.
//!
//! At 100,000 tokens reading the file is about a third of a first start, and the reader
//! is line-based: the state it carries from one account to the next is nothing but its
//! position in the file. So the file is cut at an account's first line near the middle;
//! this thread reads the accounts before the cut, another thread the accounts after it
//! and the rest of the file. Each half is read by the same code, from the same state, as
//! [`super::read`] would reach it, so the result is the same value.
//!
//! Only the shape `scopegate token` writes is split: the first key is the sequence of
//! accounts, in block style. Anything else, or any half the reader gives up on, returns
//! `None` and the caller reads the whole file the usual way (which then decides, and
//! reports the errors). This never accepts a file [`super::read`] declines: the first
//! half must end exactly at the cut inside the sequence, and the second half then
//! continues as the whole-file reader would.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{is_item, plain_text, split_key, BlockDe, Reader, Value};

/// Reads `src` as a mapping whose first key `key` holds a block sequence of `Item`s and
/// whose other keys make a `Tail`; `None` when the file is not in that shape, is too
/// small to be worth a thread, or either half is outside the subset.
pub fn read_split<Item, Tail>(src: &str, key: &str, min_bytes: usize) -> Option<(Vec<Item>, Tail)>
where
    Item: DeserializeOwned + Send,
    Tail: DeserializeOwned + Send,
{
    if src.len() < min_bytes {
        return None;
    }
    let (first, indent) = sequence_start(src, key)?;
    let cut = cut_at_item(src, first + (src.len() - first) / 2, indent)?;
    read_halves(src, first, cut, indent)
}

/// The two halves read at once, the one after `cut` on a thread of its own.
fn read_halves<Item, Tail>(
    src: &str,
    first: usize,
    cut: usize,
    indent: usize,
) -> Option<(Vec<Item>, Tail)>
where
    Item: DeserializeOwned + Send,
    Tail: DeserializeOwned + Send,
{
    std::thread::scope(|scope| {
        let second = scope.spawn(|| second_half::<Item, Tail>(src, cut, indent));
        let mut items = first_half::<Item>(src, first, cut, indent);
        // Joined even when the first half already failed: the thread borrows `src`.
        let second = second.join().ok().flatten();
        let (more, tail) = second?;
        items.as_mut()?.extend(more);
        Some((items?, tail))
    })
}

/// Where the items of `key`'s block sequence start, and their indentation, when `key:`
/// is the file's first entry at the root and a block sequence follows it.
fn sequence_start(src: &str, key: &str) -> Option<(usize, usize)> {
    let mut reader = Reader::new(src);
    let line = reader.peek()?;
    if line.indent != 0 {
        return None;
    }
    let (found, rest) = split_key(line.text)?;
    if found != key {
        return None;
    }
    reader.advance();
    match reader.value_after(rest, 0).ok()? {
        // `value_after` left the reader on the first item's line.
        Value::Seq { indent } => Some((reader.pos, indent)),
        _ => None,
    }
}

/// The start of the first line at or after `from` that is an item of the sequence at
/// `indent` (exactly `indent` spaces, then `- `).
fn cut_at_item(src: &str, from: usize, indent: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut pos = from;
    loop {
        // A byte search: `from` need not fall on a character boundary, a line start does.
        pos += bytes.get(pos..)?.iter().position(|&b| b == b'\n')? + 1;
        let line = src.get(pos..)?;
        let text = line.trim_start_matches(' ');
        if line.len() - text.len() == indent && is_item(text.split('\n').next()?) {
            return Some(pos);
        }
    }
}

/// The items from `first` up to `cut`; the sequence must run right up to the cut (a
/// line that ended it earlier would make the second half something else).
fn first_half<Item: DeserializeOwned>(
    src: &str,
    first: usize,
    cut: usize,
    indent: usize,
) -> Option<Vec<Item>> {
    let head = &src[..cut];
    if !plain_text(head) {
        return None;
    }
    let (items, mut reader) = items_at(head, first, indent)?;
    reader.peek().is_none().then_some(items)
}

/// The block sequence's items at `indent` read from `pos` of `src` (the caller checked
/// that the text is plain, as the whole-file reader requires), and the reader where they
/// ended.
fn items_at<Item: DeserializeOwned>(
    src: &str,
    pos: usize,
    indent: usize,
) -> Option<(Vec<Item>, Reader<'_>)> {
    let mut reader = Reader::new(src);
    reader.pos = pos;
    let items = Vec::<Item>::deserialize(BlockDe {
        reader: &mut reader,
        value: Value::Seq { indent },
    })
    .ok()?;
    Some((items, reader))
}

/// The items from `cut` to the end of the sequence, then the rest of the root mapping,
/// exactly as the whole-file reader continues at that line.
fn second_half<Item: DeserializeOwned, Tail: DeserializeOwned>(
    src: &str,
    cut: usize,
    indent: usize,
) -> Option<(Vec<Item>, Tail)> {
    if !plain_text(&src[cut..]) {
        return None;
    }
    let (items, mut reader) = items_at(src, cut, indent)?;
    let tail = Tail::deserialize(BlockDe {
        reader: &mut reader,
        value: Value::Map {
            indent: 0,
            first: None,
        },
    })
    .ok()?;
    reader.peek().is_none().then_some((items, tail))
}

#[cfg(test)]
mod tests;
