//! Addresses are serialised as `"0x…"` strings: kernel VAs exceed 2^53, and JSON readers that
//! hold numbers as doubles (jq, JavaScript) would silently round them.

use serde::Serializer;

pub(crate) fn u64<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

pub(crate) fn opt<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&format!("{v:#x}")),
        None => s.serialize_none(),
    }
}

pub(crate) fn arr4<S: Serializer>(v: &[u64; 4], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| format!("{x:#x}")))
}
