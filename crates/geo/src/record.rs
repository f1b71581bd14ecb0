//! One-pass extraction of a few leaf values from a MaxMind DB record (the fields pktvisor
//! formats), without allocating; it does not format anything (see `db`).
//!
//! `LookupResult::decode_path` walks the record from its start once per field, skipping the large
//! `names` maps of every level each time; walking the record once and descending only into the
//! wanted keys is several times cheaper on a cache miss.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// A leaf value of a record, typed the way pktvisor checks `MMDB_entry_data_s::type`: only the
/// variants a field accepts are used, anything else counts as present-but-unusable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Double(f64),
    Unsigned(u64),
    Signed(i64),
    Other,
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any MaxMind DB value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Double(v))
    }
    // MaxMind "float" (f32) is a different type from "double"; pktvisor reads only doubles.
    fn visit_f32<E: de::Error>(self, _: f32) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }
    // uint16 and uint32 arrive here through serde's default forwarding.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Value::Unsigned(v))
    }
    // int32 arrives here through serde's default forwarding.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Signed(v))
    }
    // pktvisor's ASN switch has no uint128 case.
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
}

/// One step of a path into a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Key(&'static str),
    /// The first element of an array.
    First,
}

/// A set of paths to pick from a record; at most 8 (they are tracked in a `u8` mask).
pub(crate) type Paths = [&'static [Step]];

/// The picked values, indexed like the paths: `None` when a path is missing or cannot be
/// navigated (libmaxminddb leaves `has_data` false in both cases).
pub(crate) type Picked<'a, const N: usize> = [Option<Value<'a>>; N];

/// Deserializes a record, keeping the leaves at `P::PATHS`.
pub(crate) struct Pick<'a, P: PathSet>(pub(crate) Picked<'a, 8>, pub(crate) PhantomData<P>);

/// A constant set of paths (so `Pick` can implement `Deserialize`, which takes no seed).
pub(crate) trait PathSet {
    const PATHS: &'static Paths;
}

impl<'de, P: PathSet> Deserialize<'de> for Pick<'de, P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        debug_assert!(P::PATHS.len() <= 8);
        let mut out = [None; 8];
        let all = if P::PATHS.len() >= 8 {
            u8::MAX
        } else {
            (1u8 << P::PATHS.len()) - 1
        };
        Node {
            paths: P::PATHS,
            mask: all,
            depth: 0,
            out: &mut out,
        }
        .deserialize(deserializer)?;
        Ok(Pick(out, PhantomData))
    }
}

/// A position inside the record: the paths still alive (`mask`) after `depth` steps.
struct Node<'o, 'de> {
    paths: &'static Paths,
    mask: u8,
    depth: usize,
    out: &'o mut Picked<'de, 8>,
}

impl<'o, 'de> Node<'o, 'de> {
    /// The distinct map keys the live paths take next, each with the mask of those paths;
    /// computed once per map so each record key costs a few length checks.
    fn key_candidates(&self) -> ([(&'static [u8], u8); 8], usize) {
        let mut cands: [(&'static [u8], u8); 8] = [(&[], 0); 8];
        let mut n = 0;
        for (i, path) in self.paths.iter().enumerate().take(8) {
            let Some(Step::Key(k)) = path.get(self.depth) else {
                continue;
            };
            if self.mask & (1 << i) == 0 {
                continue;
            }
            let k = k.as_bytes();
            match cands.iter_mut().take(n).find(|(c, _)| *c == k) {
                Some((_, m)) => *m |= 1 << i,
                None => {
                    if let Some(slot) = cands.get_mut(n) {
                        *slot = (k, 1 << i);
                        n += 1;
                    }
                }
            }
        }
        (cands, n)
    }

    /// Live paths whose next step is the first array element.
    fn first_element(&self) -> u8 {
        let mut m = 0u8;
        for (i, path) in self.paths.iter().enumerate().take(8) {
            if self.mask & (1 << i) != 0 && path.get(self.depth) == Some(&Step::First) {
                m |= 1 << i;
            }
        }
        m
    }

    /// Paths in `m` that end with the next step.
    fn leaves(&self, m: u8) -> u8 {
        let mut l = 0u8;
        for (i, path) in self.paths.iter().enumerate().take(8) {
            if m & (1 << i) != 0 && path.len() == self.depth + 1 {
                l |= 1 << i;
            }
        }
        l
    }

    fn store(&mut self, leaves: u8, v: Value<'de>) {
        for (i, slot) in self.out.iter_mut().enumerate() {
            // The first occurrence wins, as with libmaxminddb's linear key search.
            if leaves & (1 << i) != 0 && slot.is_none() {
                *slot = Some(v);
            }
        }
    }

    fn child(&mut self, m: u8) -> Node<'_, 'de> {
        Node {
            paths: self.paths,
            mask: m,
            depth: self.depth + 1,
            out: self.out,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = ();

    /// Asks for the container type the live paths expect rather than for "any" value: typed
    /// requests skip the decoder's expansion bookkeeping. A value of another type is then an
    /// error, and the caller falls back to per-field lookups, which treat it as a dead end.
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let first = (0..self.paths.len().min(8))
            .find(|&i| self.mask & (1 << i) != 0)
            .and_then(|i| self.paths.get(i))
            .and_then(|p| p.get(self.depth));
        match first {
            Some(Step::Key(_)) => deserializer.deserialize_map(self),
            Some(Step::First) => deserializer.deserialize_seq(self),
            None => deserializer.deserialize_ignored_any(self),
        }
    }
}

/// A map key as raw bytes: the decoder hands identifiers over without UTF-8 validation.
struct KeyBytes<'de>(&'de [u8]);

impl<'de> Deserialize<'de> for KeyBytes<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyBytes<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(KeyBytes(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(KeyBytes(v.as_bytes()))
    }
}

/// A scalar where a container was expected: the paths end here unresolved.
macro_rules! dead_end {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<(), E> { Ok(()) })*
    };
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MaxMind DB record")
    }

    dead_end!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_u128: u128, visit_f32: f32,
        visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let (cands, n) = self.key_candidates();
        let cands = cands.get(..n).unwrap_or(&[]);
        while let Some(KeyBytes(key)) = map.next_key::<KeyBytes<'de>>()? {
            let m = cands
                .iter()
                .find(|(k, _)| k.len() == key.len() && *k == key)
                .map_or(0, |&(_, m)| m);
            if m == 0 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let leaves = self.leaves(m);
            if leaves != 0 {
                let v = map.next_value::<Value<'de>>()?;
                self.store(leaves, v);
            } else {
                map.next_value_seed(self.child(m))?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let m = self.first_element();
        if m != 0 {
            let leaves = self.leaves(m);
            if leaves != 0 {
                if let Some(v) = seq.next_element::<Value<'de>>()? {
                    self.store(leaves, v);
                }
            } else {
                seq.next_element_seed(self.child(m))?;
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, SeqDeserializer};

    struct Two;
    impl PathSet for Two {
        const PATHS: &'static Paths = &[
            &[Step::Key("a"), Step::Key("b")],
            &[Step::Key("s"), Step::First],
        ];
    }

    #[test]
    fn picks_the_first_array_element_only() {
        let mut out = [None; 8];
        let seq = SeqDeserializer::<_, Error>::new([7u64, 8].into_iter());
        Node {
            paths: Two::PATHS,
            mask: 0b10,
            depth: 1,
            out: &mut out,
        }
        .deserialize(seq)
        .unwrap();
        assert_eq!(out[1], Some(Value::Unsigned(7)));
        assert_eq!(out[0], None);
    }

    #[test]
    fn scalar_where_a_container_is_expected_picks_nothing() {
        let mut out = [None; 8];
        let scalar = de::IntoDeserializer::<Error>::into_deserializer(3u32);
        Node {
            paths: Two::PATHS,
            mask: 0b11,
            depth: 0,
            out: &mut out,
        }
        .deserialize(scalar)
        .unwrap();
        assert_eq!(out, [None; 8]);
        let seq = SeqDeserializer::<_, Error>::new([1.5f64].into_iter());
        Node {
            paths: Two::PATHS,
            mask: 0b01,
            depth: 0,
            out: &mut out,
        }
        .deserialize(seq)
        .unwrap();
        assert_eq!(out, [None; 8]);
    }
}
