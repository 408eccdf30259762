//! The Raft log's file: what survives a crash at every byte of its last write, what is refused
//! as damage, and segments coming and going.

use std::path::{Path, PathBuf};

use blindstore_storage::{RaftWal, StorageError, WalMeta};

/// Everything a reader of the log can see.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Seen {
    meta: WalMeta,
    bounds: (u64, u64),
    entries: Vec<Vec<u8>>,
}

fn seen(wal: &RaftWal) -> Seen {
    let bounds = wal.bounds();
    Seen {
        meta: wal.meta(),
        bounds,
        entries: wal.entries(bounds.0, bounds.1).unwrap(),
    }
}

/// A payload without zero bytes (a zeroed sector inside a record reads as a torn write).
fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as usize * 7 + i) as u8 | 1)
        .collect()
}

fn entries(from: u64, n: u64, len: usize) -> Vec<(u64, Vec<u8>)> {
    (from..from + n).map(|i| (i, payload(i, len))).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        std::fs::copy(item.path(), to.join(item.file_name())).unwrap();
    }
}

fn tail(wal: &RaftWal) -> PathBuf {
    wal.segment_files().pop().unwrap()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The frame boundaries in `path` from `start` to `end` (parsed from the length fields).
fn boundaries(path: &Path, start: u64, end: u64) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = start;
    let mut out = vec![at];
    while at < end {
        let l = u32::from_be_bytes(bytes[at as usize..at as usize + 4].try_into().unwrap());
        at += 8 + l as u64;
        out.push(at);
    }
    assert_eq!(at, end, "the last write is whole frames");
    out
}

type Op = fn(&RaftWal);

/// Each case: what the log holds first, then the last write, cut at every byte.
const CASES: &[(&str, Op, Op)] = &[
    (
        "an entry",
        |w| w.append(entries(0, 3, 40)).unwrap(),
        |w| w.append(entries(3, 1, 40)).unwrap(),
    ),
    (
        "a batch of three entries",
        |w| w.append(entries(0, 3, 40)).unwrap(),
        |w| w.append(entries(3, 3, 300)).unwrap(),
    ),
    (
        "a vote",
        |w| w.append(entries(0, 2, 40)).unwrap(),
        |w| w.save_vote(b"vote-2".to_vec()).unwrap(),
    ),
    (
        "an entry with a committed id and the node id",
        |w| w.append(entries(0, 2, 40)).unwrap(),
        |w| {
            w.set_committed(b"committed-1".to_vec());
            w.adopt_node_id(7).unwrap();
        },
    ),
    (
        "a truncation",
        |w| w.append(entries(0, 5, 40)).unwrap(),
        |w| w.truncate(3).unwrap(),
    ),
    (
        "a purge",
        |w| w.append(entries(0, 5, 40)).unwrap(),
        |w| w.purge(2, b"purged-2".to_vec()).unwrap(),
    ),
    (
        "a purge past the last entry",
        |w| w.append(entries(0, 5, 40)).unwrap(),
        |w| w.purge(9, b"purged-9".to_vec()).unwrap(),
    ),
];

#[test]
fn a_crash_at_any_byte_of_the_last_write_keeps_whole_records_and_the_log_goes_on() {
    for &(name, setup, last) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let wal = RaftWal::open(&live).unwrap();
        wal.save_vote(b"vote-1".to_vec()).unwrap();
        setup(&wal);
        let before = seen(&wal);
        let start = len(&tail(&wal));
        last(&wal);
        let after = seen(&wal);
        let end = len(&tail(&wal));
        let cuts = boundaries(&tail(&wal), start, end);
        let tail_name = tail(&wal).file_name().unwrap().to_owned();
        drop(wal);

        for k in start..=end {
            // Two ways a crash leaves the tail: the file's length cut at any byte, or its
            // length kept (or grown, as a preallocated file) with the sectors from the one
            // holding byte `k` on never written (zeros): disks write whole sectors.
            for zeroed in [false, true] {
                let case = format!("{name}: crash at byte {k} of {start}..{end}, zeroed {zeroed}");
                let copy = dir.path().join(format!("cut-{k}-{zeroed}"));
                copy_dir(&live, &copy);
                let path = copy.join(&tail_name);
                let good = if zeroed {
                    let mut bytes = std::fs::read(&path).unwrap();
                    let from = (k / 512 * 512).max(start);
                    bytes.truncate(from as usize);
                    bytes.resize((end.div_ceil(4096) * 4096 + 4096) as usize, 0);
                    std::fs::write(&path, &bytes).unwrap();
                    from
                } else {
                    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    file.set_len(k).unwrap();
                    k
                };

                let wal = RaftWal::open(&copy).unwrap_or_else(|e| panic!("{case}: {e}"));
                let kept = *cuts.iter().rfind(|&&b| b <= good).unwrap();
                assert_eq!(len(&path), kept, "{case}: cut to a record");
                let now = seen(&wal);
                if kept == start {
                    assert_eq!(now, before, "{case}");
                } else if kept == end {
                    assert_eq!(now, after, "{case}");
                } else {
                    // Part of the write: a prefix of its records, each field as before or after.
                    assert!(now.bounds.1 >= before.bounds.1, "{case}");
                    assert_eq!(
                        now.entries[..],
                        after.entries[..now.entries.len()],
                        "{case}"
                    );
                    let m = (&now.meta, &before.meta, &after.meta);
                    assert!(
                        m.0.node_id == m.1.node_id || m.0.node_id == m.2.node_id,
                        "{case}"
                    );
                    assert!(m.0.committed == m.1.committed || m.0.committed == m.2.committed);
                    assert!(m.0.vote == m.1.vote || m.0.vote == m.2.vote, "{case}");
                }
                // The log goes on from there, and that survives another open.
                let next = now.bounds.1;
                wal.append(entries(next, 1, 10)).unwrap();
                drop(wal);
                let wal = RaftWal::open(&copy).unwrap();
                assert_eq!(wal.bounds(), (now.bounds.0, next + 1), "{case}");
                assert_eq!(
                    wal.entries(next, next + 1).unwrap(),
                    vec![payload(next, 10)]
                );
                drop(wal);
                std::fs::remove_dir_all(&copy).unwrap();
            }
        }
    }
}

#[test]
fn a_zeroed_sector_in_the_last_record_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let wal = RaftWal::open(dir.path()).unwrap();
    wal.append(entries(0, 2, 40)).unwrap();
    let start = len(&tail(&wal));
    wal.append(entries(2, 1, 3000)).unwrap();
    let end = len(&tail(&wal));
    let path = tail(&wal);
    drop(wal);
    let mut bytes = std::fs::read(&path).unwrap();
    // Zero the second whole sector the record covers: its length and checksum survived.
    let sector = (start / 512 + 2) * 512;
    assert!(sector + 512 <= end);
    bytes[sector as usize..sector as usize + 512].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let wal = RaftWal::open(dir.path()).unwrap();
    assert_eq!(wal.bounds(), (0, 2));
    assert_eq!(len(&path), start);
}

fn assert_damaged(result: Result<RaftWal, StorageError>, what: &str) {
    match result {
        Err(StorageError::Damaged(why)) => eprintln!("{what}: refused: {why}"),
        Err(other) => panic!("{what}: expected damage, got {other}"),
        Ok(_) => panic!("{what}: opened a damaged log"),
    }
}

#[test]
fn damage_that_is_not_a_torn_write_is_refused_never_read_or_cut() {
    let build = |dir: &Path| {
        let wal = RaftWal::open(dir).unwrap();
        wal.append(entries(0, 3, 100)).unwrap();
        let middle = len(&tail(&wal));
        wal.append(entries(3, 3, 100)).unwrap();
        let last = len(&tail(&wal)) - 50;
        (tail(&wal), middle + 30, last)
    };
    for (what, at) in [("a middle record", 1usize), ("the last record", 2)] {
        let dir = tempfile::tempdir().unwrap();
        let (path, middle, last) = build(dir.path());
        let offset = if at == 1 { middle } else { last };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let size = len(&path);
        assert_damaged(
            RaftWal::open(dir.path()),
            &format!("a flipped bit in {what}"),
        );
        assert_eq!(len(&path), size, "{what}: nothing was cut");
    }

    // A bad header, a missing segment, an entry out of order.
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = build(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    assert_damaged(RaftWal::open(dir.path()), "a bad header");

    let dir = tempfile::tempdir().unwrap();
    let wal = RaftWal::open_with(dir.path(), 512).unwrap();
    for i in 0..10 {
        wal.append(entries(i, 1, 200)).unwrap();
    }
    let files = wal.segment_files();
    assert!(files.len() >= 3, "{files:?}");
    drop(wal);
    std::fs::remove_file(&files[1]).unwrap();
    assert_damaged(RaftWal::open(dir.path()), "a missing segment");

    let dir = tempfile::tempdir().unwrap();
    let wal = RaftWal::open(dir.path()).unwrap();
    wal.append(entries(0, 2, 10)).unwrap();
    assert!(
        wal.append(entries(5, 1, 10)).is_err(),
        "a gap is refused before it is written"
    );
    assert!(wal.purge(1, b"p1".to_vec()).is_ok());
    assert!(wal.purge(0, b"p0".to_vec()).is_err(), "a purge backwards");
    drop(wal);
    let wal = RaftWal::open(dir.path()).unwrap();
    assert_eq!(
        wal.bounds(),
        (2, 2),
        "the refused writes left nothing behind"
    );
}

#[test]
fn segments_rotate_and_purged_ones_are_deleted_keeping_vote_and_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let wal = RaftWal::open_with(dir.path(), 1024).unwrap();
    wal.adopt_node_id(3).unwrap();
    wal.save_vote(b"vote-1".to_vec()).unwrap();
    for i in 0..40 {
        wal.append(entries(i, 1, 200)).unwrap();
    }
    let before = wal.segment_files();
    assert!(before.len() > 5, "{} segments", before.len());
    wal.set_committed(b"c-30".to_vec());
    wal.purge(30, b"purged-30".to_vec()).unwrap();
    let after = wal.segment_files();
    assert!(
        after.len() < before.len() && !after.contains(&before[0]),
        "{after:?}"
    );
    for gone in before.iter().filter(|f| !after.contains(f)) {
        assert!(!gone.exists(), "{} deleted", gone.display());
    }
    let kept = seen(&wal);
    assert_eq!(kept.bounds, (31, 40));
    drop(wal);
    let wal = RaftWal::open_with(dir.path(), 1024).unwrap();
    assert_eq!(seen(&wal), kept);
    assert_eq!(wal.meta().node_id, Some(3));
    assert_eq!(wal.meta().vote.as_deref(), Some(&b"vote-1"[..]));
    assert_eq!(wal.meta().committed.as_deref(), Some(&b"c-30"[..]));

    // Past the last entry: everything goes, and the next entry takes the index after.
    wal.purge(100, b"purged-100".to_vec()).unwrap();
    assert_eq!(wal.bounds(), (101, 101));
    wal.append(entries(101, 2, 200)).unwrap();
    // A truncation, then entries again in its place.
    wal.truncate(102).unwrap();
    wal.append(entries(102, 1, 50)).unwrap();
    let kept = seen(&wal);
    assert_eq!(kept.entries, vec![payload(101, 200), payload(102, 50)]);
    drop(wal);
    let wal = RaftWal::open_with(dir.path(), 1024).unwrap();
    assert_eq!(seen(&wal), kept);
    assert!(!wal.is_pristine());
}

#[test]
fn a_crash_between_a_purge_and_deleting_its_segments_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let wal = RaftWal::open_with(&live, 1024).unwrap();
    for i in 0..30 {
        wal.append(entries(i, 1, 200)).unwrap();
    }
    let before = dir.path().join("before");
    copy_dir(&live, &before);
    wal.purge(20, b"purged-20".to_vec()).unwrap();
    let expected = seen(&wal);
    // The purge record reached the disk; the deletions did not. A segment being created is
    // left half-written too.
    let tail_path = tail(&wal);
    std::fs::copy(&tail_path, before.join(tail_path.file_name().unwrap())).unwrap();
    std::fs::write(before.join("00000000000000ff.tmp"), b"half").unwrap();
    drop(wal);
    let count = |d: &Path| std::fs::read_dir(d).unwrap().count();
    assert!(count(&before) > count(&live));
    let wal = RaftWal::open_with(&before, 1024).unwrap();
    assert_eq!(seen(&wal), expected);
    assert_eq!(
        count(&before),
        count(&live),
        "the purged segments and the .tmp are gone"
    );
}
