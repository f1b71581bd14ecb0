//! A minimal protobuf wire-format reader and writer, just enough for dnstap.
//!
//! The reader walks the fields of one message without allocating, borrowing length-delimited
//! values from the input; it knows nothing about schemas (that is [`super::Dnstap`]). The
//! writer appends fields to a `Vec` and exists for building test messages and for tools; it
//! is not used on the decoding path.

use thiserror::Error;

/// Why a protobuf byte sequence could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PbError {
    /// The input ended inside a tag, a varint or a field value.
    #[error("truncated protobuf field")]
    Truncated,
    /// A varint ran past ten bytes, or its tenth byte overflows 64 bits.
    #[error("varint too long")]
    VarintTooLong,
    /// A field number of 0 or above 2^29 - 1.
    #[error("invalid field number {0}")]
    BadFieldNumber(u64),
    /// Wire types 3 and 4 (deprecated groups) and the undefined 6 and 7.
    #[error("unsupported wire type {0}")]
    BadWireType(u8),
}

/// Largest valid protobuf field number.
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// The value of one field as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (`fixed64`, `sfixed64`, `double`).
    Fixed64(u64),
    /// Wire type 2 (bytes, strings, nested messages, packed repeated fields).
    Bytes(&'a [u8]),
    /// Wire type 5 (`fixed32`, `sfixed32`, `float`).
    Fixed32(u32),
}

/// One decoded field: its number and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field number from the tag.
    pub number: u32,
    /// The value.
    pub value: Value<'a>,
}

/// Reads one varint at the start of `buf`: the value and the bytes it used.
pub fn read_varint(buf: &[u8]) -> Result<(u64, usize), PbError> {
    // Tags, enums and short lengths are one byte: the common case skips the loop.
    if let Some(&b) = buf.first()
        && b < 0x80
    {
        return Ok((u64::from(b), 1));
    }
    let mut value = 0u64;
    // A u64 needs at most ten 7-bit groups; the loop bound also bounds the work per varint.
    for i in 0..10 {
        let Some(&b) = buf.get(i) else {
            return Err(PbError::Truncated);
        };
        let group = u64::from(b & 0x7f);
        if i == 9 && group > 1 {
            return Err(PbError::VarintTooLong);
        }
        value |= group << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(PbError::VarintTooLong)
}

/// Iterates over the fields of one message, in wire order.
///
/// Stops at the first malformed field, yielding its error once and then `None`.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over the encoded message `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn field(&mut self) -> Result<Field<'a>, PbError> {
        let (tag, n) = read_varint(self.rest)?;
        let mut rest = self.rest.get(n..).ok_or(PbError::Truncated)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(MAX_FIELD_NUMBER) {
            return Err(PbError::BadFieldNumber(number));
        }
        // Checked above to fit in 29 bits.
        let number = number as u32;
        let value = match (tag & 7) as u8 {
            0 => {
                let (v, n) = read_varint(rest)?;
                rest = rest.get(n..).ok_or(PbError::Truncated)?;
                Value::Varint(v)
            }
            1 => {
                let (b, r) = rest.split_first_chunk::<8>().ok_or(PbError::Truncated)?;
                rest = r;
                Value::Fixed64(u64::from_le_bytes(*b))
            }
            2 => {
                let (len, n) = read_varint(rest)?;
                let body = rest.get(n..).ok_or(PbError::Truncated)?;
                let len = usize::try_from(len).map_err(|_| PbError::Truncated)?;
                if len > body.len() {
                    return Err(PbError::Truncated);
                }
                let (bytes, r) = body.split_at(len);
                rest = r;
                Value::Bytes(bytes)
            }
            5 => {
                let (b, r) = rest.split_first_chunk::<4>().ok_or(PbError::Truncated)?;
                rest = r;
                Value::Fixed32(u32::from_le_bytes(*b))
            }
            wt => return Err(PbError::BadWireType(wt)),
        };
        self.rest = rest;
        Ok(Field { number, value })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Field<'a>, PbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            // Nothing after a malformed field can be located reliably.
            self.rest = &[];
        }
        Some(r)
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes a varint of `v` takes.
pub fn varint_len(v: u64) -> usize {
    // One byte per started group of 7 significant bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    put_tag(out, number, 0);
    put_varint(out, v);
}

/// Appends the tag and length of a length-delimited field whose `len` value bytes the
/// caller writes next (used to nest a message without a temporary buffer).
pub fn put_len_tag(out: &mut Vec<u8>, number: u32, len: usize) {
    put_tag(out, number, 2);
    put_varint(out, len as u64);
}

/// Appends a length-delimited field.
pub fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_len_tag(out, number, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a `fixed32` field.
pub fn put_fixed32_field(out: &mut Vec<u8>, number: u32, v: u32) {
    put_tag(out, number, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `fixed64` field.
pub fn put_fixed64_field(out: &mut Vec<u8>, number: u32, v: u64) {
    put_tag(out, number, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Bytes a field's tag takes.
pub fn tag_len(number: u32) -> usize {
    varint_len(u64::from(number) << 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_known_values() {
        assert_eq!(read_varint(&[0x00]), Ok((0, 1)));
        assert_eq!(read_varint(&[0x96, 0x01]), Ok((150, 2)));
        assert_eq!(read_varint(&[0xff; 9]), Err(PbError::Truncated));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max), Ok((u64::MAX, 10)));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_varint(&over), Err(PbError::VarintTooLong));
        assert_eq!(read_varint(&[0x80; 11]), Err(PbError::VarintTooLong));
        assert_eq!(read_varint(&[]), Err(PbError::Truncated));
    }

    #[test]
    fn reads_every_wire_type() {
        let mut m = Vec::new();
        put_varint_field(&mut m, 1, 300);
        put_fixed64_field(&mut m, 2, 0x0102_0304_0506_0708);
        put_bytes_field(&mut m, 3, b"abc");
        put_fixed32_field(&mut m, 4, 0xdead_beef);
        put_varint_field(&mut m, MAX_FIELD_NUMBER, 1);
        let fields: Vec<_> = Reader::new(&m).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            vec![
                Field {
                    number: 1,
                    value: Value::Varint(300)
                },
                Field {
                    number: 2,
                    value: Value::Fixed64(0x0102_0304_0506_0708)
                },
                Field {
                    number: 3,
                    value: Value::Bytes(b"abc")
                },
                Field {
                    number: 4,
                    value: Value::Fixed32(0xdead_beef)
                },
                Field {
                    number: MAX_FIELD_NUMBER,
                    value: Value::Varint(1)
                },
            ]
        );
    }

    #[test]
    fn malformed_fields() {
        // Field number 0.
        assert_eq!(
            Reader::new(&[0x00, 0x01]).next(),
            Some(Err(PbError::BadFieldNumber(0)))
        );
        // Group start (wire type 3).
        assert_eq!(
            Reader::new(&[0x0b]).next(),
            Some(Err(PbError::BadWireType(3)))
        );
        // Length beyond the end, then nothing more.
        let mut r = Reader::new(&[0x0a, 0x05, b'a']);
        assert_eq!(r.next(), Some(Err(PbError::Truncated)));
        assert_eq!(r.next(), None);
        // Fixed32 cut short.
        assert_eq!(
            Reader::new(&[0x0d, 1, 2]).next(),
            Some(Err(PbError::Truncated))
        );
        // Huge length must not overflow.
        let huge = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(Reader::new(&huge).next(), Some(Err(PbError::Truncated)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn varint_round_trip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(read_varint(&out), Ok((v, out.len())));
        }

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut consumed = 0;
            for f in Reader::new(&data) {
                consumed += 1;
                prop_assert!(consumed <= data.len());
                if f.is_err() { break; }
            }
        }
    }
}
