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
}
