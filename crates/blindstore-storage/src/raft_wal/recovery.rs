//! Opening the Raft log: every segment is read and each record checked and replayed; a torn
//! tail is cut and the tail synced before anyone is told what the log holds.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::format::{self, Checkpoint, Frame, Record, FRAME_HEADER, HEADER_LEN};
use super::{apply, segment_path, sync_dir, Index, Loc, Segment, WalMeta, Writer};
use crate::StorageError;

pub(super) struct Recovered {
    pub meta: WalMeta,
    pub index: Index,
    pub segments: BTreeMap<u64, Segment>,
    pub writer: Writer,
}

pub(super) fn recover(dir: &Path) -> Result<Recovered, StorageError> {
    let mut seqs = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") {
            // A segment being created when the process stopped: nothing was written to it.
            std::fs::remove_file(dir.join(&*name))?;
        } else if let Some(seq) = name.strip_suffix(".wal") {
            let seq = u64::from_str_radix(seq, 16)
                .map_err(|_| StorageError::Damaged(format!("Raft log: unexpected file {name}")))?;
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    if seqs.is_empty() {
        new_segment(
            dir,
            0,
            &Checkpoint {
                meta: WalMeta::default(),
                next_index: 0,
            },
        )?;
        seqs.push(0);
    }
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(StorageError::Damaged(format!(
                "Raft log: segment {:x} is missing",
                pair[0] + 1
            )));
        }
    }

    let mut meta = WalMeta::default();
    let mut index = Index::default();
    let mut segments = BTreeMap::new();
    let last = *seqs.last().expect("at least one segment");
    let mut tail_len = 0;
    for &seq in &seqs {
        let path = segment_path(dir, seq);
        let damaged = |what: String| StorageError::Damaged(format!("{}: {what}", path.display()));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let bytes = std::fs::read(&path)?;
        match format::parse_header(&bytes) {
            Ok(named) if named == seq => {}
            Ok(named) => return Err(damaged(format!("its header names segment {named:x}"))),
            Err(e) => return Err(damaged(e)),
        }
        let mut pos = HEADER_LEN;
        let checkpoint = match format::frame_at(&bytes, pos) {
            Frame::Record { bytes: body, end } => {
                pos = end;
                match Record::decode(body)? {
                    Record::Checkpoint(c) => c,
                    _ => return Err(damaged("it does not start with a checkpoint".into())),
                }
            }
            _ => return Err(damaged("its checkpoint is unreadable".into())),
        };
        if segments.is_empty() {
            meta = checkpoint.meta;
            index = Index {
                first: checkpoint.next_index,
                locs: Default::default(),
            };
        } else if checkpoint.next_index != index.next() {
            return Err(damaged(format!(
                "it starts at entry {} where {} was expected",
                checkpoint.next_index,
                index.next()
            )));
        }
        loop {
            match format::frame_at(&bytes, pos) {
                Frame::End => break,
                Frame::Record { bytes: body, end } => {
                    let record = Record::decode(body)?;
                    let loc = Loc {
                        seq,
                        offset: (pos + FRAME_HEADER + 1 + 8) as u64,
                        len: (end - pos - FRAME_HEADER).saturating_sub(9) as u32,
                    };
                    apply(&mut meta, &mut index, record, loc)?;
                    pos = end;
                }
                Frame::Torn(why) if seq == last => {
                    tracing::warn!(
                        segment = %path.display(),
                        at = pos,
                        cut = bytes.len() - pos,
                        why,
                        "cutting the Raft log's torn tail (a write a crash interrupted; it was never acknowledged)"
                    );
                    file.set_len(pos as u64)?;
                    break;
                }
                Frame::Torn(why) | Frame::Damaged(why) => {
                    return Err(damaged(format!("at byte {pos}: {why}")))
                }
            }
        }
        if seq == last {
            tail_len = pos as u64;
        }
        segments.insert(
            seq,
            Segment {
                file: Arc::new(file),
                next_index: checkpoint.next_index,
            },
        );
    }
    let tail = segments[&last].file.clone();
    // Bytes a crashed process wrote but never synced are still in the page cache: sync them
    // before openraft counts the log as this node's durable copy.
    tail.sync_data()?;
    sync_dir(dir)?;
    Ok(Recovered {
        meta,
        index,
        segments,
        writer: Writer {
            seq: last,
            file: tail,
            len: tail_len,
            failed: None,
        },
    })
}

/// Creates segment `seq` starting with `checkpoint`: written aside, synced and renamed, so a
/// segment file either is whole or does not exist.
pub(super) fn new_segment(
    dir: &Path,
    seq: u64,
    checkpoint: &Checkpoint,
) -> Result<File, StorageError> {
    let path = segment_path(dir, seq);
    let tmp = path.with_extension("tmp");
    let mut bytes = format::header(seq);
    Record::Checkpoint(checkpoint.clone()).encode_into(&mut bytes);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(file)
}
