//! Every stored record is `version byte || postcard(body)`. Postcard's wire format is
//! specified and stable (postcard 1.x), so the bytes on disk are fixed by the record types in
//! `docs/storage-format.md`, and a future format gets a new version byte.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StorageError;

/// The only record format so far.
pub(crate) const RECORD_V1: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![RECORD_V1]).expect("encoding into a Vec cannot fail")
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&RECORD_V1, body)) => {
            postcard::from_bytes(body).map_err(|source| StorageError::Decode { what, source })
        }
        Some((&version, _)) => Err(StorageError::UnknownVersion { what, version }),
        None => Err(StorageError::UnknownVersion { what, version: 0 }),
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
            Err(StorageError::UnknownVersion { version: 9, .. })
        ));
        assert!(matches!(
            decode::<(u64, String)>("t", &bytes[..2]),
            Err(StorageError::Decode { .. })
        ));
    }
}
