//! The PE side of Authenticode: where the checksum, the certificate-table directory entry and
//! the certificate table are; the Authenticode digest; the first-page hash; the
//! `WIN_CERTIFICATE` entries.
//!
//! Sources: Microsoft, "Windows Authenticode Portable Executable Signature Format" (Calculating
//! the PE Image Hash) and the PE format documentation on learn.microsoft.com ("The Attribute
//! Certificate Table (Image Only)": data directory 4 holds a *file offset*, entries are
//! quadword aligned, `WIN_CERTIFICATE` = dwLength, wRevision 0x0200, wCertificateType 2 =
//! PKCS#7 SignedData).
//!
//! The digest is computed the way Windows code integrity computes it (and so the values that
//! Microsoft's block rules, WDAC policies and LOLDrivers' authentihashes hold): the file from
//! offset 0 to the start of the certificate table (to the end of the file when there is none),
//! without the 4-byte CheckSum field and the 8-byte directory entry 4, hashed as one run; an
//! unsigned file whose hashed run does not end on an 8-byte boundary is hashed as if padded
//! with zeros to one (signing tools pad the file so before they append the table). Bytes after
//! the certificate table are not covered: the table is meant to be last, and a file with bytes
//! after it (a download padded to a page) keeps the digest it was signed with; their count is
//! reported ([`PeLayout::trailing_after_certificates`]). Hashing the run linearly equals the
//! specification's header + sorted-sections + extra-data order for every image whose sections
//! follow the headers without gaps, and is what signing tools compute.
//!
//! The first-page hash (WDAC "Hash Page Sha1/Sha256" rules) is the hash of the first 4096
//! offsets of the file computed the same way (CheckSum and directory entry 4 skipped), with
//! bytes at or beyond SizeOfHeaders replaced by zeros: the headers as the loader maps them,
//! one page long (4084 bytes hashed). This equals page 0 of the `SpcPeImagePageHashes` that
//! signing tools write.

use std::ops::Range;

use sha2::Digest as _;

use super::types::{DigestAlgorithm, SignatureError};
use crate::util::le::{u16_at, u32_at};

/// Page size of the first-page hash.
pub const PAGE_SIZE: usize = 4096;

/// Largest certificate table read: real ones are tens of KiB; WDAC's limit is far below this.
pub const MAX_CERTIFICATE_TABLE: usize = 16 << 20;

/// Most `WIN_CERTIFICATE` entries read from one table.
pub const MAX_WIN_CERTIFICATES: usize = 16;

/// Where the parts Authenticode excludes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeLayout {
    pub file_len: usize,
    /// File offset of OptionalHeader.CheckSum.
    pub checksum_offset: usize,
    /// File offset of data directory entry 4 (`IMAGE_DIRECTORY_ENTRY_SECURITY`), when the
    /// optional header has one.
    pub security_entry_offset: Option<usize>,
    pub size_of_headers: usize,
    /// End of the last section's raw data (at least SizeOfHeaders).
    pub end_of_sections: usize,
    /// The certificate table, bounds-checked, when directory entry 4 names one.
    pub certificate_table: Option<Range<usize>>,
    /// Bytes of the file after the certificate table (not covered by the digest).
    pub trailing_after_certificates: usize,
}

fn not_pe(why: &'static str) -> SignatureError {
    SignatureError::NotPe { why }
}

/// Finds the excluded fields and checks the certificate table's bounds.
pub fn layout(pe: &[u8]) -> Result<PeLayout, SignatureError> {
    if pe.get(0..2) != Some(b"MZ") {
        return Err(not_pe("no MZ signature"));
    }
    let lfanew = u32_at(pe, 0x3c).ok_or(not_pe("truncated DOS header"))? as usize;
    if pe.get(lfanew..lfanew.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(not_pe("e_lfanew does not point at a PE signature"));
    }
    let coff = lfanew + 4;
    let sections = usize::from(u16_at(pe, coff + 2).ok_or(not_pe("truncated COFF header"))?);
    let opt_size = usize::from(u16_at(pe, coff + 16).ok_or(not_pe("truncated COFF header"))?);
    let opt = coff + 20;
    let magic = u16_at(pe, opt).ok_or(not_pe("truncated optional header"))?;
    let (dirs_at, count_at) = match magic {
        0x10b => (96, 92),
        0x20b => (112, 108),
        _ => return Err(not_pe("optional header magic is neither PE32 nor PE32+")),
    };
    let checksum_offset = opt + 64;
    let size_of_headers = u32_at(pe, opt + 60).ok_or(not_pe("truncated optional header"))? as usize;
    if checksum_offset + 4 > pe.len() {
        return Err(not_pe("truncated optional header"));
    }
    let dir_count = u32_at(pe, opt + count_at).unwrap_or(0) as usize;
    let sec_entry = opt + dirs_at + 4 * 8;
    let security_entry_offset =
        (dir_count > 4 && dirs_at + 5 * 8 <= opt_size && sec_entry + 8 <= pe.len())
            .then_some(sec_entry);
    let table = opt + opt_size;
    let mut end_of_sections = size_of_headers;
    for i in 0..sections {
        let h = table + 40 * i;
        let (Some(raw_size), Some(raw_ptr)) = (u32_at(pe, h + 16), u32_at(pe, h + 20)) else {
            return Err(not_pe("section table runs past the end of the file"));
        };
        if raw_size > 0 {
            end_of_sections = end_of_sections.max(raw_ptr as usize + raw_size as usize);
        }
    }
    let mut certificate_table = None;
    let mut trailing = 0;
    if let Some(e) = security_entry_offset {
        let offset = u32_at(pe, e).unwrap_or(0) as usize;
        let size = u32_at(pe, e + 4).unwrap_or(0) as usize;
        if offset != 0 && size != 0 {
            let end = offset + size;
            if end > pe.len() {
                return Err(SignatureError::CertificateTableOutOfBounds {
                    offset,
                    size,
                    file_len: pe.len(),
                });
            }
            if offset < size_of_headers.max(checksum_offset + 4).max(e + 8) {
                return Err(SignatureError::CertificateTableOverlaps {
                    offset,
                    size,
                    what: "the headers",
                    limit: size_of_headers,
                });
            }
            if offset < end_of_sections {
                return Err(SignatureError::CertificateTableOverlaps {
                    offset,
                    size,
                    what: "the section data",
                    limit: end_of_sections,
                });
            }
            if size > MAX_CERTIFICATE_TABLE {
                return Err(SignatureError::TooLarge {
                    what: "certificate table",
                    size,
                    limit: MAX_CERTIFICATE_TABLE,
                });
            }
            trailing = pe.len() - end;
            certificate_table = Some(offset..end);
        }
    }
    Ok(PeLayout {
        file_len: pe.len(),
        checksum_offset,
        security_entry_offset,
        size_of_headers,
        end_of_sections,
        certificate_table,
        trailing_after_certificates: trailing,
    })
}

/// A running hash of one of the algorithms Authenticode uses.
#[derive(Clone)]
pub(crate) enum Hasher {
    Md5(crate::util::md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(alg: DigestAlgorithm) -> Hasher {
        match alg {
            DigestAlgorithm::Md5 => Hasher::Md5(crate::util::md5::Md5::new()),
            DigestAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// One-shot hash.
pub fn hash(alg: DigestAlgorithm, bytes: &[u8]) -> Vec<u8> {
    let mut h = Hasher::new(alg);
    h.update(bytes);
    h.finish()
}

/// The runs of the file the Authenticode digest covers, and the zero padding after them.
fn digest_runs(l: &PeLayout) -> (Vec<Range<usize>>, usize) {
    let end = l.certificate_table.as_ref().map_or(l.file_len, |t| t.start);
    let mut cuts = vec![(l.checksum_offset, 4)];
    if let Some(e) = l.security_entry_offset {
        cuts.push((e, 8));
    }
    cuts.sort_unstable();
    let mut runs = Vec::new();
    let mut pos = 0;
    for (at, len) in cuts {
        if at > pos {
            runs.push(pos..at.min(end));
        }
        pos = pos.max(at + len);
    }
    if end > pos {
        runs.push(pos..end);
    }
    (runs, (8 - end % 8) % 8)
}

/// The Authenticode digest of a file-layout PE with each of `algs`, in one pass.
pub fn authenticode_digests(
    pe: &[u8],
    algs: &[DigestAlgorithm],
) -> Result<Vec<Vec<u8>>, SignatureError> {
    let l = layout(pe)?;
    Ok(digests_with_layout(pe, &l, algs))
}

/// The Authenticode digests of a file-layout PE with each of `algs` as Windows computes them
/// (zero padding to 8 bytes, see [`digest_runs`]), and, when the file needed padding, also
/// without it: many tools (VirusTotal among them, and so the LOLDrivers lists) hash an
/// unsigned file whose length is not a multiple of 8 without the padding Windows adds.
/// One pass over the file for both.
#[allow(clippy::type_complexity)]
pub fn authenticode_digests_padded_and_not(
    pe: &[u8],
    algs: &[DigestAlgorithm],
) -> Result<(Vec<Vec<u8>>, Option<Vec<Vec<u8>>>), SignatureError> {
    let l = layout(pe)?;
    let (runs, pad) = digest_runs(&l);
    let mut hashers = hash_runs(pe, &runs, algs);
    let unpadded = (pad > 0).then(|| hashers.clone().into_iter().map(Hasher::finish).collect());
    for h in &mut hashers {
        h.update(&[0u8; 8][..pad]);
    }
    Ok((hashers.into_iter().map(Hasher::finish).collect(), unpadded))
}

/// Hashes of one file computed in a single pass: its Authenticode digests (padded as Windows
/// pads, and without the padding when it needed some) and its flat hashes.
#[derive(Debug, Clone)]
pub struct FileHashes {
    /// One per Authenticode algorithm asked for, in order.
    pub authenticode: Vec<Vec<u8>>,
    /// The same without the zero padding, when the hashed data does not end on 8 bytes.
    pub unpadded: Option<Vec<Vec<u8>>>,
    /// One per flat algorithm asked for, in order.
    pub flat: Vec<Vec<u8>>,
}

/// The Authenticode digests with `auth` and the flat hashes with `flat` of a file-layout PE
/// whose layout is `l`, reading each byte once: a driver's bytes are hashed for its
/// signature, its catalog and the blocklists in one pass rather than one per purpose.
pub fn file_hashes(
    pe: &[u8],
    l: &PeLayout,
    auth: &[DigestAlgorithm],
    flat: &[DigestAlgorithm],
) -> FileHashes {
    let (runs, pad) = digest_runs(l);
    let mut a: Vec<Hasher> = auth.iter().map(|&x| Hasher::new(x)).collect();
    let mut f: Vec<Hasher> = flat.iter().map(|&x| Hasher::new(x)).collect();
    // The flat hashes read the whole file, the Authenticode ones its digest runs.
    let file = 0..pe.len();
    hash_streams(
        pe,
        [(std::slice::from_ref(&file), &mut f), (&runs[..], &mut a)],
    );
    let unpadded =
        (pad > 0 && !a.is_empty()).then(|| a.clone().into_iter().map(Hasher::finish).collect());
    for h in &mut a {
        h.update(&[0u8; 8][..pad]);
    }
    FileHashes {
        authenticode: a.into_iter().map(Hasher::finish).collect(),
        unpadded,
        flat: f.into_iter().map(Hasher::finish).collect(),
    }
}

/// The bytes of `runs` (sorted, disjoint ranges of a file) as the one stream a hash reads, in
/// pieces that end on the stream's own block boundaries.
///
/// Why one block at a time when several hashes run: each hasher of the pass gets the same
/// block in turn, so the CPU overlaps one hash's block with the next one's (MD5 is one long
/// chain of dependent additions that leaves most of the core idle; SHA-1 and SHA-256 run on
/// the SHA extensions). For a blocklist's four hashes of a driver (flat MD5 and SHA-1,
/// Authenticode SHA-1 and SHA-256) that measured 14 % less time than 64 KiB chunks. Why
/// aligned to the stream and not to the file: the Authenticode stream is the file less 12
/// header bytes, and pieces cut at file offsets would leave every block straddling two
/// pieces, copied through the hasher's buffer, which lost most of the gain. One hash alone
/// gains nothing from small pieces and pays their calls, so it reads 64 KiB at a time.
struct Blocks<'a> {
    pe: &'a [u8],
    runs: &'a [Range<usize>],
    piece: usize,
    run: usize,
    /// File offset reached.
    pos: usize,
    /// Stream bytes handed out.
    streamed: usize,
}

impl<'a> Blocks<'a> {
    /// The piece size for `hashers` hashes in one pass: one MD5/SHA-1/SHA-256 block (SHA-384
    /// and SHA-512 take two pieces per block) when several share the pass.
    fn piece(hashers: usize) -> usize {
        if hashers > 1 {
            64
        } else {
            64 << 10
        }
    }

    fn new(pe: &'a [u8], runs: &'a [Range<usize>], piece: usize) -> Blocks<'a> {
        Blocks {
            pe,
            runs,
            piece,
            run: 0,
            pos: 0,
            streamed: 0,
        }
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        while let Some(r) = self.runs.get(self.run) {
            let at = self.pos.max(r.start);
            let end = r.end.min(self.pe.len());
            if at >= end {
                self.run += 1;
                continue;
            }
            let take = (self.piece - self.streamed % self.piece).min(end - at);
            self.pos = at + take;
            self.streamed += take;
            return Some(&self.pe[at..at + take]);
        }
        None
    }
}

fn hash_runs(pe: &[u8], runs: &[Range<usize>], algs: &[DigestAlgorithm]) -> Vec<Hasher> {
    let mut hashers: Vec<Hasher> = algs.iter().map(|&a| Hasher::new(a)).collect();
    hash_streams(pe, [(runs, &mut hashers)]);
    hashers
}

/// Feeds each stream (the `runs` of `pe` it covers) to its hashers, the streams in turn one
/// piece at a time ([`Blocks`]); a stream without hashers is not read.
fn hash_streams<const N: usize>(pe: &[u8], streams: [(&[Range<usize>], &mut Vec<Hasher>); N]) {
    let piece = Blocks::piece(streams.iter().map(|(_, h)| h.len()).sum());
    let mut streams = streams.map(|(runs, hashers)| (Blocks::new(pe, runs, piece), hashers));
    loop {
        let mut fed = false;
        for (blocks, hashers) in streams.iter_mut().filter(|(_, h)| !h.is_empty()) {
            if let Some(p) = blocks.next() {
                hashers.iter_mut().for_each(|h| h.update(p));
                fed = true;
            }
        }
        if !fed {
            break;
        }
    }
}

/// The flat (whole-file) hashes of `bytes` with each of `algs`, in one pass.
pub fn flat_digests(bytes: &[u8], algs: &[DigestAlgorithm]) -> Vec<Vec<u8>> {
    hash_runs(bytes, std::slice::from_ref(&(0..bytes.len())), algs)
        .into_iter()
        .map(Hasher::finish)
        .collect()
}

pub(crate) fn digests_with_layout(
    pe: &[u8],
    l: &PeLayout,
    algs: &[DigestAlgorithm],
) -> Vec<Vec<u8>> {
    let (runs, pad) = digest_runs(l);
    let mut hashers = hash_runs(pe, &runs, algs);
    for h in &mut hashers {
        h.update(&[0u8; 8][..pad]);
    }
    hashers.into_iter().map(Hasher::finish).collect()
}

/// The Authenticode digest with one algorithm.
pub fn authenticode_digest(pe: &[u8], alg: DigestAlgorithm) -> Result<Vec<u8>, SignatureError> {
    Ok(authenticode_digests(pe, &[alg])?.remove(0))
}

/// The first-page hash with each of `algs` (see the module documentation).
pub fn first_page_hashes(
    pe: &[u8],
    algs: &[DigestAlgorithm],
) -> Result<Vec<Vec<u8>>, SignatureError> {
    let l = layout(pe)?;
    let headers = l.size_of_headers.min(PAGE_SIZE);
    if pe.len() < headers {
        return Err(not_pe("the file is shorter than its headers"));
    }
    let mut cuts = vec![(l.checksum_offset, 4)];
    if let Some(e) = l.security_entry_offset {
        cuts.push((e, 8));
    }
    cuts.sort_unstable();
    let mut runs = Vec::new();
    let mut pos = 0;
    for (at, len) in cuts {
        if at.min(PAGE_SIZE) > pos {
            runs.push(pos..at.min(PAGE_SIZE));
        }
        pos = pos.max((at + len).min(PAGE_SIZE));
    }
    if pos < PAGE_SIZE {
        runs.push(pos..PAGE_SIZE);
    }
    // File bytes below SizeOfHeaders, zeros above: the header page as mapped.
    let mut page = Vec::with_capacity(PAGE_SIZE);
    for r in runs {
        let data_end = r.end.min(headers).max(r.start);
        page.extend_from_slice(&pe[r.start..data_end]);
        page.resize(page.len() + (r.end - data_end), 0);
    }
    Ok(algs.iter().map(|&a| hash(a, &page)).collect())
}

/// One `WIN_CERTIFICATE` entry of the certificate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinCertificate {
    /// File offset of the entry's header.
    pub offset: usize,
    pub revision: u16,
    /// 2 = `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
    pub certificate_type: u16,
    /// File range of the certificate data (after the 8-byte header).
    pub data: Range<usize>,
}

/// The entries of the certificate table (each 8-byte aligned), bounds-checked.
pub fn win_certificates(pe: &[u8], l: &PeLayout) -> Result<Vec<WinCertificate>, SignatureError> {
    let Some(table) = l.certificate_table.clone() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut pos = table.start;
    while pos + 8 <= table.end {
        if out.len() == MAX_WIN_CERTIFICATES {
            return Err(SignatureError::TooMany {
                what: "WIN_CERTIFICATE entries",
                limit: MAX_WIN_CERTIFICATES,
            });
        }
        let len = u32_at(pe, pos).unwrap_or(0) as usize;
        let revision = u16_at(pe, pos + 4).unwrap_or(0);
        let certificate_type = u16_at(pe, pos + 6).unwrap_or(0);
        if len < 8 || pos + len > table.end {
            return Err(SignatureError::BadWinCertificate {
                offset: pos,
                why: format!(
                    "dwLength {len} does not fit the certificate table ({} bytes left)",
                    table.end - pos
                ),
            });
        }
        out.push(WinCertificate {
            offset: pos,
            revision,
            certificate_type,
            data: pos + 8..pos + len,
        });
        pos += (len + 7) & !7;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces of a stream are its bytes in order, and each ends where a block of the
    /// stream (not of the file) ends, or where a run ends.
    #[test]
    fn pieces_follow_the_stream_blocks() {
        let pe: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let runs = [0..0xd8, 0xdc..0x128, 0x130..1000];
        let mut blocks = Blocks::new(&pe, &runs, 64);
        let (mut stream, mut ends) = (Vec::new(), Vec::new());
        while let Some(p) = blocks.next() {
            stream.extend_from_slice(p);
            ends.push(stream.len());
        }
        let expect: Vec<u8> = runs.iter().flat_map(|r| pe[r.clone()].to_vec()).collect();
        assert_eq!(stream, expect);
        // Blocks end at 64, 128, ...; the runs end at 0xd8 and 0xd8 + 0x4c in the stream.
        assert_eq!(&ends[..6], &[64, 128, 192, 0xd8, 256, 0xd8 + 0x4c]);
        assert_eq!(*ends.last().unwrap(), expect.len());
    }

    #[test]
    fn known_vectors() {
        // RFC 1321 / FIPS 180 test vectors for "abc".
        let algs = [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
        ];
        let h: Vec<String> = flat_digests(b"abc", &algs)
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(h[0], "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(h[1], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            h[2],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // More than one chunk gives the same digest as one update.
        let big = vec![0x5au8; 200_000];
        let sha256 = &flat_digests(&big, &algs)[2];
        assert_eq!(hex::encode(sha256), crate::sha256_hex(&big));
    }

    /// One block at a time and 64 KiB at a time give the same digests.
    #[test]
    fn piece_size_does_not_change_a_digest() {
        let pe: Vec<u8> = (0..200_000u32).map(|i| (i ^ (i >> 7)) as u8).collect();
        let runs = vec![0..0xd8, 0xdc..0x128, 0x130..199_990];
        for algs in [
            &[DigestAlgorithm::Sha256][..],
            &[
                DigestAlgorithm::Md5,
                DigestAlgorithm::Sha1,
                DigestAlgorithm::Sha384,
            ],
        ] {
            let small: Vec<Vec<u8>> = hash_runs(&pe, &runs, algs)
                .into_iter()
                .map(Hasher::finish)
                .collect();
            let joined: Vec<u8> = runs.iter().flat_map(|r| pe[r.clone()].to_vec()).collect();
            let whole: Vec<Vec<u8>> = algs.iter().map(|&a| hash(a, &joined)).collect();
            assert_eq!(small, whole);
        }
    }
}
