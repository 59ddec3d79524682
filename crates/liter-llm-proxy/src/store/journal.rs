//! The SQLite store's reservation journal: an append-only log of every reservation,
//! written into the kernel's page cache before `reserve` returns, so a reservation
//! survives `SIGKILL` of the gateway from the moment the request may go upstream. The
//! book (`sqlite_book.rs`) syncs it to disk (`fdatasync`) on every turn of its writer,
//! which bounds what power loss can take.
//!
//! The segment being written is memory-mapped (shared, so its pages *are* the file's
//! page cache): an append is a copy into the mapping, with no system call. A `pwrite`
//! of one record cost about 2 µs of kernel time on ext4, a tenth of everything else a
//! proxied request costs; a process killed after the copy leaves the record in the page
//! cache all the same. This is the workspace's one `unsafe` use (see [`map`]).
//!
//! A reservation is *finished* once its ledger row (or, with the rows off, its mark: see
//! `sqlite_book.rs`) is committed to SQLite; only then may
//! the record go. The log is cut into numbered segments (`<dir>/<seq>.log`, one JSON
//! line a record); a segment other than the one being written is deleted when every
//! reservation in it has finished. Segments are written with zeros to their full size
//! before use (the writer keeps a spare one ready) and records overwrite them in place,
//! so an append neither allocates blocks nor changes the file's size (nor can it hit a
//! full disk through the mapping), and `fdatasync` has only data to write. Readers stop
//! at the zeros. At start-up the records of the segments a previous process left are
//! read back (`sqlite_book::replay`): a reservation with no ledger row was in flight
//! when that process died and is counted in full.
//!
//! This module touches only its directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use memmap2::{MmapMut, MmapOptions};
use serde::{Deserialize, Serialize};

/// A segment's size: it is closed (a new one started) when the next record would not fit.
const SEGMENT_BYTES: u64 = 4 << 20;

/// One reservation, as journalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Record<S = String, L = Vec<S>> {
    /// The reservation id.
    pub id: i64,
    /// The gateway's request id.
    #[serde(rename = "req")]
    pub request_id: S,
    /// The amount held back, nano-USD.
    pub amount: i64,
    /// The scope names it was held back in.
    pub scopes: L,
    /// When it was made, Unix milliseconds.
    pub at: i64,
}

/// `r` as JSON, the bytes `serde_json::to_writer` gives, written field by field (a
/// third of the instructions of the derived serializer, on every reservation).
fn write_record<S: AsRef<str>>(
    buf: &mut Vec<u8>,
    r: &Record<&str, &[S]>,
) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut *buf, &r.id)?;
    buf.extend_from_slice(b",\"req\":");
    serde_json::to_writer(&mut *buf, r.request_id)?;
    buf.extend_from_slice(b",\"amount\":");
    serde_json::to_writer(&mut *buf, &r.amount)?;
    buf.extend_from_slice(b",\"scopes\":[");
    for (i, s) in r.scopes.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut *buf, s.as_ref())?;
    }
    buf.extend_from_slice(b"],\"at\":");
    serde_json::to_writer(&mut *buf, &r.at)?;
    buf.push(b'}');
    Ok(())
}

/// The journal of one store handle. Appends from many tasks are serialised by a mutex
/// (each is one short copy).
pub(super) struct Journal {
    dir: PathBuf,
    active: Mutex<Active>,
}

/// A segment file and its mapping.
struct Segment {
    file: File,
    map: MmapMut,
}

/// Maps a segment that [`Journal::prepare`] made.
#[allow(unsafe_code)]
fn map(file: File) -> io::Result<Segment> {
    // SAFETY: the mapping's memory is only ever reached through `Segment::map`, and the
    // file behind it is one this process created (`create_new`) in the journal folder
    // of a database it holds the exclusive lock on (`sqlite.rs`), written to its full
    // size with real blocks before it is mapped: nothing else truncates or resizes it
    // while mapped, so no access can fault. Deleting the file (a finished segment) only
    // unlinks its name; the mapping stays valid until dropped.
    // Not populated: a page joins the process's memory when the first record lands in
    // it (one fault per page of records), so an idle gateway does not hold the segment.
    let map = unsafe { MmapOptions::new().map_mut(&file)? };
    Ok(Segment { file, map })
}

struct Active {
    /// The segment being written; opened on the first append after start or rotation.
    file: Option<Segment>,
    seq: u64,
    /// Where the next record goes in `file`.
    bytes: u64,
    /// A segment made ready for the next rotation, and its number.
    spare: Option<(u64, Segment)>,
    /// The next segment number to hand out.
    next_seq: u64,
    /// Written since the last [`Journal::sync`].
    unsynced: bool,
    buf: Vec<u8>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.log"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

/// What a previous process left in the journal.
pub(super) struct Leftover {
    pub records: Vec<Record>,
    /// Lines that did not parse: a write cut short by a crash (the request it reserved
    /// for was never sent) or damage.
    pub unreadable: usize,
    segments: Vec<PathBuf>,
}

impl Leftover {
    /// Deletes the old segments; call once their records are accounted for durably.
    pub(super) fn remove(self) -> io::Result<()> {
        for p in self.segments {
            fs::remove_file(p)?;
        }
        Ok(())
    }
}

impl Journal {
    /// Opens (creating) the journal directory and reads what a previous process left.
    /// New records go to a fresh segment numbered after the old ones.
    pub(super) fn open(dir: &Path) -> io::Result<(Journal, Leftover)> {
        fs::create_dir_all(dir)?;
        let mut left = Leftover {
            records: Vec::new(),
            unreadable: 0,
            segments: Vec::new(),
        };
        let mut next = 0;
        for (seq, path) in segments(dir)? {
            next = seq + 1;
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            // Everything from the first zero on is padding (JSON text holds no NUL).
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            for line in bytes[..end].split(|&b| b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Record>(line) {
                    Ok(r) => left.records.push(r),
                    Err(_) => left.unreadable += 1,
                }
            }
            left.segments.push(path);
        }
        let journal = Journal {
            dir: dir.to_owned(),
            active: Mutex::new(Active {
                file: None,
                seq: next,
                bytes: 0,
                spare: None,
                next_seq: next,
                unsynced: false,
                buf: Vec::with_capacity(256),
            }),
        };
        Ok((journal, left))
    }

    fn active(&self) -> MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates segment `seq` at its full size, zero-filled (so its blocks exist: a
    /// full disk fails here, not in a write to the mapping), synced, and maps it.
    fn prepare(&self, seq: u64) -> io::Result<Segment> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(segment_path(&self.dir, seq))?;
        let zeros = vec![0u8; 64 << 10];
        let mut left = SEGMENT_BYTES;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            file.write_all(&zeros[..n as usize])?;
            left -= n;
        }
        file.sync_all()?;
        map(file)
    }

    /// Makes a segment ready for the next rotation, if none is (the writer calls this
    /// every turn, so requests rarely wait for one).
    pub(super) fn ensure_spare(&self) -> io::Result<()> {
        let seq = {
            let mut a = self.active();
            if a.spare.is_some() {
                return Ok(());
            }
            let seq = a.next_seq;
            a.next_seq += 1;
            seq
        };
        let file = self.prepare(seq)?;
        let mut a = self.active();
        if a.spare.is_none() {
            a.spare = Some((seq, file));
        } else {
            drop(a);
            drop(file);
            fs::remove_file(segment_path(&self.dir, seq))?;
        }
        Ok(())
    }

    /// Appends `r` (a copy into the mapped segment); returns the segment it went to.
    pub(super) fn append<S: AsRef<str>>(&self, r: &Record<&str, &[S]>) -> io::Result<u64> {
        let mut a = self.active();
        let a = &mut *a;
        a.buf.clear();
        write_record(&mut a.buf, r).map_err(io::Error::other)?;
        a.buf.push(b'\n');
        if a.file.is_some() && a.bytes + a.buf.len() as u64 > SEGMENT_BYTES {
            // Rotate: the closed segment is synced by the next `sync`, which it waits for
            // before it can be deleted anyway.
            if let Some(f) = a.file.take() {
                f.file.sync_data()?;
            }
            a.bytes = 0;
        }
        if a.file.is_none() {
            let (seq, file) = match a.spare.take() {
                Some(spare) => spare,
                None => {
                    let seq = a.next_seq;
                    a.next_seq += 1;
                    (seq, self.prepare(seq)?)
                }
            };
            a.seq = seq;
            a.file = Some(file);
        }
        if let Some(seg) = &mut a.file {
            let at = a.bytes as usize;
            let Some(dst) = seg.map.get_mut(at..at + a.buf.len()) else {
                return Err(io::Error::other("a journal record larger than a segment"));
            };
            dst.copy_from_slice(&a.buf);
        }
        a.bytes += a.buf.len() as u64;
        a.unsynced = true;
        Ok(a.seq)
    }

    /// The segment being written.
    pub(super) fn active_seq(&self) -> u64 {
        self.active().seq
    }

    /// Flushes what was appended since the last call to disk (`fdatasync`).
    pub(super) fn sync(&self) -> io::Result<()> {
        let file = {
            let mut a = self.active();
            if !std::mem::take(&mut a.unsynced) {
                return Ok(());
            }
            match &a.file {
                Some(f) => f.file.try_clone()?,
                None => return Ok(()),
            }
        };
        // On Linux `fdatasync` also writes the pages dirtied through the mapping
        // (`msync(MS_SYNC)` is the same call, limited to a range).
        file.sync_data()
    }

    /// Deletes a finished segment (never the active one).
    pub(super) fn remove(&self, seq: u64) -> io::Result<()> {
        if seq == self.active_seq() {
            return Ok(());
        }
        match fs::remove_file(segment_path(&self.dir, seq)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::FileExt;

    fn rec(id: i64) -> Record<&'static str, &'static [&'static str]> {
        Record {
            id,
            request_id: "req \"quoted\"",
            amount: 5,
            scopes: &["key:a", "global"],
            at: 7,
        }
    }

    #[test]
    fn records_are_written_as_serde_writes_them() {
        for r in [
            rec(1),
            Record {
                id: -7,
                request_id: "\u{1}\\\"\n\u{e9}",
                amount: i64::MAX,
                scopes: &[],
                at: 0,
            },
            Record {
                id: 0,
                request_id: "",
                amount: 0,
                scopes: &["key:\"x\"", "model:openai/gpt-4o", "global"],
                at: i64::MIN,
            },
        ] {
            let mut ours = Vec::new();
            write_record(&mut ours, &r).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&r).unwrap()
            );
        }
    }

    #[test]
    fn records_survive_reopen_and_torn_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (j, left) = Journal::open(dir.path()).unwrap();
        assert!(left.records.is_empty());
        assert_eq!(j.append(&rec(1)).unwrap(), 0);
        assert_eq!(j.append(&rec(2)).unwrap(), 0);
        j.sync().unwrap();
        drop(j);
        // The segment has its full size; a write cut short by a crash follows the records.
        let path = segment_path(dir.path(), 0);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, SEGMENT_BYTES);
        let end = bytes.iter().position(|&b| b == 0).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"{\"id\":3,\"req\":\"x", end as u64)
            .unwrap();

        let (j, left) = Journal::open(dir.path()).unwrap();
        assert_eq!(left.unreadable, 1);
        let ids: Vec<i64> = left.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(left.records[0].request_id, "req \"quoted\"");
        assert_eq!(left.records[0].scopes, ["key:a", "global"]);
        // New records go after the old segments, which stay until removed.
        assert_eq!(j.append(&rec(4)).unwrap(), 1);
        left.remove().unwrap();
        drop(j);
        let (_, left) = Journal::open(dir.path()).unwrap();
        let ids: Vec<i64> = left.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [4]);
    }

    #[test]
    fn segments_rotate_and_only_closed_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path()).unwrap();
        let mut id = 0;
        while j.append(&rec(id)).unwrap() == 0 {
            id += 1;
        }
        assert_eq!(j.active_seq(), 1);
        j.remove(1).unwrap();
        assert!(segment_path(dir.path(), 1).exists(), "the active one stays");
        j.remove(0).unwrap();
        assert!(!segment_path(dir.path(), 0).exists());
        drop(j);
        let (_, left) = Journal::open(dir.path()).unwrap();
        assert_eq!(left.records.len(), 1);
        assert_eq!(left.records[0].id, id);
    }

    #[test]
    fn a_spare_segment_is_used_at_rotation_and_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path()).unwrap();
        j.ensure_spare().unwrap();
        j.ensure_spare().unwrap();
        assert_eq!(
            segments(dir.path()).unwrap().len(),
            1,
            "one spare at a time"
        );
        // The first append takes the spare; the next rotation has to make its own.
        assert_eq!(j.append(&rec(1)).unwrap(), 0);
        j.ensure_spare().unwrap();
        let mut id = 2;
        while j.append(&rec(id)).unwrap() == 0 {
            id += 1;
        }
        assert_eq!(j.active_seq(), 1, "the spare made after the first append");
        j.ensure_spare().unwrap();
        drop(j);
        // Segment 2 is an unused spare: only zeros, no records.
        let (_, left) = Journal::open(dir.path()).unwrap();
        assert_eq!(left.segments.len(), 3);
        assert_eq!(left.records.len() as i64, id);
        assert_eq!(left.unreadable, 0);
    }
}
