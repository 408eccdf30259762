//! Records: `version byte || postcard(body)`, the one encoding of Blindstore's binary
//! formats — values on disk (docs/storage-format.md) and the `*_record` fields of the
//! node-to-node protocol (proto/). Postcard's wire format is specified and stable (postcard
//! 1.x), so the bytes are fixed by the record types, and a future format gets a new version
//! byte.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The only record format so far.
pub const RECORD_V1: u8 = 1;

/// Why bytes are not a record of the expected type.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body does not decode as the expected type: damaged, or from an incompatible build.
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: postcard::Error,
    },
    /// The version byte is not one this build knows (0 for an empty record).
    #[error("{what} has unknown format version {version}")]
    UnknownVersion { what: &'static str, version: u8 },
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![RECORD_V1]).expect("encoding into a Vec cannot fail")
}

/// The length of [`encode`]'s output for `value`, without encoding it: what a value adds to a
/// log entry or a message, by the bytes that cross the boundary.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    1 + postcard::serialize_with_flavor::<T, _, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .expect("sizing cannot fail")
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, RecordError> {
    match bytes.split_first() {
        Some((&RECORD_V1, body)) => {
            postcard::from_bytes(body).map_err(|source| RecordError::Decode { what, source })
        }
        Some((&version, _)) => Err(RecordError::UnknownVersion { what, version }),
        None => Err(RecordError::UnknownVersion { what, version: 0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let bytes = encode(&(7u64, "x".to_string()));
        assert_eq!(bytes[0], RECORD_V1);
        assert_eq!(
            decode::<(u64, String)>("t", &bytes).unwrap(),
            (7, "x".into())
        );
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<(u64, String)>("t", &future),
            Err(RecordError::UnknownVersion { version: 9, .. })
        ));
        assert!(matches!(
            decode::<(u64, String)>("t", &bytes[..2]),
            Err(RecordError::Decode { .. })
        ));
    }

    #[test]
    fn the_encoded_length_is_the_length_of_the_encoding() {
        for value in [(0u64, String::new()), (u64::MAX, "x".repeat(70_000))] {
            assert_eq!(encoded_len(&value), encode(&value).len());
        }
    }
}
