//! Driver packages: `.zip` and `.cab` archives opened in memory, their members handed to the
//! audit one at a time.
//!
//! The zip and cab crates decompress; this module chooses the members, checks each archive's
//! structure before a crate sees it, and bounds the work and memory a hostile archive can
//! cause. Members are streamed: [`read_members`] decompresses one, hands it to the caller and
//! drops it before the next, so an archive never costs more than one member's bytes at a time.
//!
//! Sources: PKWARE, "APPNOTE.TXT — .ZIP File Format Specification" 6.3.10, sections 4.3.7
//! (local file header) and 4.3.12 (central directory); Microsoft, [MS-CAB] "Cabinet File
//! Format" (see [`cabinet`]).
//!
//! # Budgets
//!
//! Every limit on the work one archive can cause, with the reason for its figure. A limit
//! reached is a [`Problem`] of kind [`ProblemKind::Budget`] naming the limit, its figure and
//! the figure that exceeded it; what was left unexamined is named, and every member read
//! before it is still audited.
//!
//! | Limit | Figure | Why |
//! |---|---|---|
//! | bytes held at a time | one member (at most [`MAX_MEMBER`]) | members are streamed; the archive's own bytes, one member and the decompressor's state (a 32 KiB inflate window; for a cabinet one 32 KiB block, or an LZX window of at most 32 MiB) are all an archive holds |
//! | [`MAX_MEMBER`] | 256 MiB per member | far above any real driver (display drivers, the largest, are under 100 MiB), far below what a deflate bomb expands to |
//! | [`MAX_EXPANDED`] | 1 GiB decompressed per archive | the sum over the members read, counting for a cabinet the start of the folder the cab crate decompresses again before each member (it cannot seek within a folder); about 4× the largest driver packages (a few hundred MiB), a few seconds of inflate |
//! | overlapping members | none accepted | no archiver writes two entries over the same stored bytes: it is the shape of a zip bomb (200 central-directory entries on one 16 MiB member expand 3.2 GB from 27 KB). A member whose stored data overlaps an earlier member's is not expanded; one notice per archive says how many and names the first |
//! | [`MAX_PROBLEMS`] | 32 member notices per archive | a damaged directory can make every entry fail; beyond this, one notice counts the rest |
//!
//! Bounds that only stop damage, each at its use: a cabinet's `CFDATA` chains are walked once
//! each and may not overlap ([`cabinet::BlockWalker`]), so the walk visits at most one block per
//! eight bytes of the file; entry counts are the formats' own (65,535 per cabinet, a zip's
//! central directory is bounded by the file).
//!
//! A member that cannot be read (a corrupt stream, an unsupported method, a structure the cab
//! crate would panic on — see [`cabinet::check_member`]) is a problem of kind
//! [`ProblemKind::Malformed`] naming it; the other members are still read.

mod cabinet;

pub use cabinet::CabError;

use std::collections::BTreeMap;
use std::io::{Cursor, Read as _};

use crate::util::guard::{self, Component};

/// Largest member drvaudit will decompress.
pub const MAX_MEMBER: u64 = 256 << 20;
/// Bytes decompressed from one archive in total (see the budget table).
pub const MAX_EXPANDED: u64 = 1 << 30;
/// Member problems reported one by one per archive.
pub const MAX_PROBLEMS: usize = 32;

/// The limits an archive is read under (the budget table above); [`Limits::default`] is the
/// documented figures, which a scan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest member decompressed ([`MAX_MEMBER`]).
    pub member: u64,
    /// Bytes decompressed from one archive in total ([`MAX_EXPANDED`]).
    pub expanded: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            member: MAX_MEMBER,
            expanded: MAX_EXPANDED,
        }
    }
}

/// The zip crate, decompressing a member.
static ZIP_READER: Component = Component::library("zip reader", "zip");
/// The cab crate, decompressing a member.
static CAB_READER: Component = Component::library("cabinet reader", "cab");

/// Which archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    Zip,
    Cab,
}

/// A member of a package, decompressed.
#[derive(Debug)]
pub struct Member {
    /// Path inside the package, forward slashes.
    pub path: String,
    /// Decompressed bytes.
    pub bytes: Vec<u8>,
}

/// What kind of problem a package has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A member, or the structure around it, cannot be read (corrupt, unsupported, hostile).
    Malformed,
    /// A budget was reached: the rest of the archive was not examined.
    Budget,
}

/// Something about a package the report must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The member concerned (its path in the package), or `None` for the archive as a whole.
    pub member: Option<String>,
    pub kind: ProblemKind,
    /// What and why.
    pub message: String,
}

/// Why a package could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The zip crate rejected the archive's directory.
    #[error("not a readable zip archive: {0}")]
    Zip(#[source] zip::result::ZipError),
    /// The cab crate rejected the cabinet's header or folders.
    #[error("not a readable cabinet: {0}")]
    Cab(#[source] std::io::Error),
    /// The cabinet's directory is damaged (read before the cab crate is given it).
    #[error("not a readable cabinet: {0}")]
    CabDirectory(#[source] CabError),
}

/// Every file's path in a zip archive (forward slashes), for the INF's "file missing from the
/// package" check; empty when the archive cannot be read (reading its members says why).
pub fn zip_names(bytes: &[u8]) -> Vec<String> {
    let Ok(archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Vec::new();
    };
    archive
        .file_names()
        .filter(|n| !n.ends_with('/'))
        .map(|n| n.replace('\\', "/"))
        .collect()
}

/// Every file's path in a cabinet (forward slashes), from drvaudit's own read of its directory
/// (the cab crate never sees a damaged one); empty when it cannot be read.
pub fn cab_names(bytes: &[u8]) -> Vec<String> {
    cabinet::read_directory(bytes).map_or_else(
        |_| Vec::new(),
        |dir| {
            dir.files
                .iter()
                .map(|f| f.name.replace('\\', "/"))
                .collect()
        },
    )
}

/// Whether a member is a driver image (`*.sys`, any case): what a scan audits.
pub fn is_driver(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".sys")
}

/// Decompresses the members of an archive for which `wanted(path)` holds, in archive order
/// (zip: central directory order; cab: file entry order), handing each to `visit` and dropping
/// it before the next. Returns what the report must say about the archive: unreadable
/// members, overlapping members, budgets reached. `Err` only when the archive cannot be opened
/// at all.
pub fn read_members(
    kind: PackageKind,
    bytes: &[u8],
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(Member),
) -> Result<Vec<Problem>, PackageError> {
    read_members_within(kind, bytes, Limits::default(), wanted, visit)
}

/// [`read_members`] under other limits than the documented ones (tests use small ones).
pub fn read_members_within(
    kind: PackageKind,
    bytes: &[u8],
    limits: Limits,
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(Member),
) -> Result<Vec<Problem>, PackageError> {
    let mut log = Log {
        limits,
        ..Log::default()
    };
    match kind {
        PackageKind::Zip => zip_members(bytes, wanted, visit, &mut log)?,
        PackageKind::Cab => cab_members(bytes, wanted, visit, &mut log)?,
    }
    Ok(log.finish())
}

/// The problems of one archive, with the overlapping members gathered into one notice.
#[derive(Default)]
struct Log {
    problems: Vec<Problem>,
    /// Member problems beyond [`MAX_PROBLEMS`], counted.
    more: usize,
    /// Members not expanded because they overlap an earlier member: (count, first, what).
    overlaps: usize,
    first_overlap: Option<(String, String)>,
    /// Bytes decompressed so far.
    expanded: u64,
    /// The budget is spent: nothing more is read.
    stopped: bool,
    limits: Limits,
}

impl Log {
    fn member(&mut self, member: &str, message: String) {
        if self.problems.len() >= MAX_PROBLEMS {
            self.more += 1;
            return;
        }
        self.problems.push(Problem {
            member: Some(member.to_string()),
            kind: ProblemKind::Malformed,
            message,
        });
    }

    fn overlap(&mut self, member: &str, why: String) {
        self.overlaps += 1;
        if self.first_overlap.is_none() {
            self.first_overlap = Some((member.to_string(), why));
        }
    }

    /// The decompression budget is spent: reading `member` would bring the total to `total`.
    /// Nothing more is read from the archive.
    fn exhausted(&mut self, member: &str, total: u64) {
        self.stopped = true;
        self.problems.push(Problem {
            member: None,
            kind: ProblemKind::Budget,
            message: format!(
                "decompression budget reached: reading `{member}` brings the bytes decompressed \
                 from this archive to {total}, over the limit of {}; it and every member after \
                 it were not examined",
                self.limits.expanded
            ),
        });
    }

    fn finish(mut self) -> Vec<Problem> {
        if self.more > 0 {
            self.problems.push(Problem {
                member: None,
                kind: ProblemKind::Malformed,
                message: format!(
                    "{} more member(s) could not be read (only the first {MAX_PROBLEMS} are \
                     listed)",
                    self.more
                ),
            });
        }
        if let Some((first, why)) = self.first_overlap.take() {
            self.problems.push(Problem {
                member: None,
                kind: ProblemKind::Malformed,
                message: format!(
                    "hostile structure: {} member(s) overlap the stored data of an earlier \
                     member (none is allowed) and were not expanded again; the first is \
                     `{first}`, {why}",
                    self.overlaps
                ),
            });
        }
        self.problems
    }
}

/// Byte ranges already handed over, to refuse a member whose data overlaps one of them.
#[derive(Default)]
struct Ranges {
    /// start → (end, member).
    taken: BTreeMap<u64, (u64, String)>,
}

impl Ranges {
    /// Takes `[start, end)` for `member`, or names the earlier member it overlaps.
    fn take(&mut self, start: u64, end: u64, member: &str) -> Result<(), String> {
        // The ranges held are disjoint: only the last one starting before `end` can overlap.
        if let Some((&s, (e, other))) = self.taken.range(..end.max(start + 1)).next_back() {
            if *e > start {
                return Err(format!(
                    "whose data [{start:#x}, {end:#x}) overlaps that of `{other}` [{s:#x}, {e:#x})"
                ));
            }
        }
        self.taken.insert(start, (end, member.to_string()));
        Ok(())
    }
}

/// How reading one member ended.
enum Read {
    /// Every byte, at most the limit.
    Whole(Vec<u8>),
    /// More than the limit.
    TooLarge,
    /// The decompressor failed.
    Failed(String),
}

/// Reads at most `limit` bytes of a member; also returns how many bytes were decompressed,
/// whatever the outcome (they count against the archive's budget).
fn read_bounded(mut r: impl std::io::Read, limit: u64) -> (Read, u64) {
    let mut bytes = Vec::new();
    // On an error, `read_to_end` has appended what it read before it.
    let result = r.by_ref().take(limit + 1).read_to_end(&mut bytes);
    let n = bytes.len() as u64;
    let outcome = match result {
        Err(e) => Read::Failed(format!("cannot decompress: {e}")),
        Ok(_) if n > limit => Read::TooLarge,
        Ok(_) => Read::Whole(bytes),
    };
    (outcome, n)
}

/// What reading a member came to, for the log: the member's bytes, or `None` (problem logged).
/// `limit` is what the member may expand to: the member limit, or less when that is all the
/// archive's budget has left.
fn settle(
    log: &mut Log,
    path: &str,
    limit: u64,
    read: Result<(Read, u64), guard::Failure>,
) -> Option<Vec<u8>> {
    let (outcome, n) = match read {
        Ok(x) => x,
        Err(failure) => {
            log.member(path, failure.describe());
            return None;
        }
    };
    log.expanded = log.expanded.saturating_add(n);
    match outcome {
        Read::Whole(bytes) => Some(bytes),
        Read::TooLarge if limit < log.limits.member => {
            log.exhausted(path, log.expanded);
            None
        }
        Read::TooLarge => {
            let max = log.limits.member;
            log.member(path, format!("larger than {max} bytes; skipped"));
            None
        }
        Read::Failed(why) => {
            log.member(path, why);
            None
        }
    }
}

fn zip_members(
    bytes: &[u8],
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(Member),
    log: &mut Log,
) -> Result<(), PackageError> {
    let mut archive = guard::within(&ZIP_READER, || zip::ZipArchive::new(Cursor::new(bytes)))
        .map_err(PackageError::Zip)?;
    let mut ranges = Ranges::default();
    for i in 0..archive.len() {
        let limit = log.limits.member.min(log.limits.expanded - log.expanded);
        let read = guard::guarded(|| {
            guard::within(&ZIP_READER, || {
                let file = archive.by_index(i).map_err(|e| e.to_string())?;
                let path = file.name().replace('\\', "/");
                if !file.is_file() || !wanted(&path) {
                    return Ok(None);
                }
                // The entry's stored bytes: its local header through its compressed data.
                let start = file.header_start();
                let end = file.data_start().saturating_add(file.compressed_size());
                if let Err(why) = ranges.take(start, end.max(start + 1), &path) {
                    return Ok(Some((path, Err(why))));
                }
                Ok(Some((path, Ok(read_bounded(file, limit)))))
            })
        });
        let (path, read) = match read {
            Ok(Ok(Some(x))) => x,
            Ok(Ok(None)) => continue,
            Ok(Err(why)) => {
                log.member(&format!("member #{i}"), why);
                continue;
            }
            Err(failure) => {
                log.member(&format!("member #{i}"), failure.describe());
                continue;
            }
        };
        let read = match read {
            Ok(read) => read,
            Err(why) => {
                log.overlap(&path, why);
                continue;
            }
        };
        if let Some(bytes) = settle(log, &path, limit, Ok(read)) {
            visit(Member { path, bytes });
        }
        if log.stopped {
            break;
        }
    }
    Ok(())
}

fn cab_members(
    bytes: &[u8],
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(Member),
    log: &mut Log,
) -> Result<(), PackageError> {
    // The crate first: its errors on the header are the ones users know.
    let mut cab = guard::within(&CAB_READER, || cab::Cabinet::new(Cursor::new(bytes)))
        .map_err(PackageError::Cab)?;
    let dir = cabinet::read_directory(bytes).map_err(PackageError::CabDirectory)?;
    let mut walker = cabinet::BlockWalker::default();
    let mut names = std::collections::HashSet::new();
    // Per folder: uncompressed ranges handed over (members of one folder may not overlap).
    let mut ranges: BTreeMap<u16, Ranges> = BTreeMap::new();
    for file in &dir.files {
        let path = file.name.replace('\\', "/");
        if !wanted(&path) {
            continue;
        }
        // The crate finds a member by name: a second entry of the same name would read the
        // first one's data again.
        if !names.insert(file.name.as_str()) {
            log.overlap(
                &path,
                "whose name an earlier member already has".to_string(),
            );
            continue;
        }
        if u64::from(file.size) > log.limits.member {
            let max = log.limits.member;
            log.member(&path, format!("larger than {max} bytes; skipped"));
            continue;
        }
        let data = match walker.folder(bytes, &dir, file.folder) {
            Ok(d) => d,
            Err(e) => {
                log.member(&path, e.to_string());
                continue;
            }
        };
        if let Err(why) = cabinet::check_member(file, data) {
            log.member(&path, why);
            continue;
        }
        let start = u64::from(file.offset);
        let end = start + u64::from(file.size);
        let folder_ranges = ranges.entry(file.folder).or_default();
        if let Err(why) = folder_ranges.take(start, end.max(start + 1), &path) {
            log.overlap(&path, format!("in folder {}, {why}", file.folder));
            continue;
        }
        // The crate decompresses the folder from its start up to the member, then the member.
        if log.expanded.saturating_add(end) > log.limits.expanded {
            log.exhausted(&path, log.expanded.saturating_add(end));
            break;
        }
        log.expanded += start;
        let read = guard::guarded(|| {
            guard::within(&CAB_READER, || match cab.read_file(&file.name) {
                Ok(reader) => read_bounded(reader, log.limits.member),
                Err(e) => (Read::Failed(format!("cannot decompress: {e}")), 0),
            })
        });
        let member_limit = log.limits.member;
        let Some(bytes) = settle(log, &path, member_limit, read) else {
            continue;
        };
        if bytes.len() as u64 != u64::from(file.size) {
            log.member(
                &path,
                format!(
                    "decompressed to {} bytes, but its entry declares {}",
                    bytes.len(),
                    file.size
                ),
            );
            continue;
        }
        visit(Member { path, bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_any_overlap_and_accept_neighbours() {
        let mut r = Ranges::default();
        assert!(r.take(100, 200, "a").is_ok());
        assert!(r.take(200, 300, "b").is_ok());
        assert!(r.take(0, 100, "c").is_ok());
        let e = r.take(150, 160, "d").unwrap_err();
        assert!(e.contains("`a`"), "{e}");
        assert!(r.take(299, 400, "e").unwrap_err().contains("`b`"));
        assert!(r.take(50, 250, "f").is_err());
        assert!(r.take(300, 301, "g").is_ok());
    }
}
