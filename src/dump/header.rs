//! The fixed dump header: DUMP_HEADER64 (`PAGE`/`DU64`, 0x2000 bytes) and DUMP_HEADER32
//! (`PAGE`/`DUMP`, 0x1000 bytes), crash-dumps.md §1.1 and §1.2. What the header says about how
//! and when the dump was taken (time, uptime, crash or live acquisition) is decoded in `facts`.
//!
//! Only the fields the reader or the report needs are decoded. Fields the writer left unused
//! hold the `PAGE` fill pattern (0x45474150); `bytes::unset` recognises it so that, for example, a
//! LiveKD 32-bit header without a KdDebuggerDataBlock is not mistaken for an address.

use serde::Serialize;

use super::bytes::{u32_at, u64_at, unset, PAGE_FILL};
use super::facts::{Acquisition, DumpTime, UpTime};

/// Processor architecture and paging mode of the dumped machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 32-bit x86 with two-level paging (PaeEnabled = 0).
    X86,
    /// 32-bit x86 with PAE paging (PaeEnabled = 1).
    X86Pae,
    /// x64 with four-level paging.
    X64,
    /// ARM64, 4 KB granule, 48-bit VA.
    Arm64,
}

impl Arch {
    /// Size of a pointer in kernel structures.
    pub fn pointer_size(self) -> usize {
        match self {
            Arch::X86 | Arch::X86Pae => 4,
            Arch::X64 | Arch::Arm64 => 8,
        }
    }

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X86Pae => "x86 (PAE)",
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// DumpType names (§1.3); the value decides how physical pages map to file offsets.
pub fn dump_type_name(t: u32) -> &'static str {
    match t {
        1 => "full (run list)",
        2 => "summary (kernel, x86 bitmap)",
        3 => "header only",
        4 => "triage (small memory dump)",
        5 => "bitmap full",
        6 => "bitmap kernel / live",
        7 => "automatic",
        8 => "kernel memory (range list)",
        9 => "kernel and user memory (range list)",
        0xA => "complete memory (range list)",
        _ => "unknown",
    }
}

/// Everything the header says about the dumped machine, in the shape the report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpSummary {
    /// Architecture and paging mode.
    pub arch: Arch,
    /// MachineImageType as stored (0x14C, 0x8664, 0xAA64).
    pub machine: u32,
    /// True for `PAGEDU64` files.
    pub is_64bit_header: bool,
    /// DumpType as stored.
    pub dump_type: u32,
    /// Human name of the DumpType.
    pub dump_type_name: String,
    /// MajorVersion (0xF free build, 0xC checked).
    pub major_version: u32,
    /// MinorVersion: the OS build number.
    pub build: u32,
    /// DirectoryTableBase as stored (PCID bits and PAE alignment not yet masked).
    #[serde(serialize_with = "super::hex::u64")]
    pub directory_table_base: u64,
    /// PfnDataBase as stored (an address of the variable or the database itself, §1.1).
    #[serde(serialize_with = "super::hex::u64")]
    pub pfn_database: u64,
    /// Address of the PsLoadedModuleList head.
    #[serde(serialize_with = "super::hex::u64")]
    pub ps_loaded_module_list: u64,
    /// Address of the PsActiveProcessHead list head.
    #[serde(serialize_with = "super::hex::u64")]
    pub ps_active_process_head: u64,
    /// Number of processors.
    pub processors: u32,
    /// Bugcheck code.
    pub bugcheck_code: u32,
    /// Bugcheck parameters 1..4 (32-bit values zero-extended on x86).
    #[serde(serialize_with = "super::hex::arr4")]
    pub bugcheck_parameters: [u64; 4],
    /// What wrote the dump: a crash, a Windows live dump, or a live acquisition tool (DumpIt,
    /// LiveKD), read from the bugcheck fields and the Comment.
    pub acquisition: Acquisition,
    /// SystemTime: when the dump was taken, `None` when unset.
    pub system_time: Option<DumpTime>,
    /// SystemUpTime: how long the machine had been running, `None` when unset.
    pub system_up_time: Option<UpTime>,
    /// KdDebuggerDataBlock VA, `None` when the field holds the `PAGE` fill.
    #[serde(serialize_with = "super::hex::opt")]
    pub kd_debugger_data_block: Option<u64>,
    /// The writer's comment ("LiveKD live system view"), when present.
    pub comment: String,
    /// RequiredDumpSpace as recorded by the writer.
    pub required_dump_space: u64,
    /// MiniDumpFields (TRIAGE_DUMP_* bits for triage dumps).
    pub mini_dump_fields: u32,
    /// Size of the fixed header (0x1000 or 0x2000): where type-specific data starts.
    pub header_size: u64,
}

/// One run of the PHYSICAL_MEMORY_DESCRIPTOR in the header (§1.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderRun {
    pub base_page: u64,
    pub page_count: u64,
}

/// The parsed header plus the run list, which only the physical map needs.
pub(crate) struct Header {
    pub summary: DumpSummary,
    /// `None` when the descriptor holds the `PAGE` fill (not a run dump).
    pub runs: Option<Vec<HeaderRun>>,
}

/// Why a header was rejected; the caller adds the path.
pub(crate) fn parse(data: &[u8]) -> Result<Header, String> {
    let sig = data.get(0..8).ok_or_else(|| {
        format!(
            "file is {} bytes, shorter than a dump signature",
            data.len()
        )
    })?;
    match sig {
        b"PAGEDU64" => parse64(data),
        b"PAGEDUMP" => parse32(data),
        _ => Err(format!(
            "signature {:02x?} is neither PAGEDU64 nor PAGEDUMP",
            sig
        )),
    }
}

fn need(data: &[u8], len: usize, what: &str) -> Result<(), String> {
    if data.len() < len {
        Err(format!(
            "{what} needs {len:#x} bytes, file has {:#x}",
            data.len()
        ))
    } else {
        Ok(())
    }
}

/// The Comment field, empty when it holds only the `PAGE` fill.
fn comment(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = &raw[..end];
    if text.chunks(4).all(|c| b"PAGE".starts_with(c)) {
        return String::new();
    }
    crate::printable_text(String::from_utf8_lossy(text).into_owned())
}

fn parse64(data: &[u8]) -> Result<Header, String> {
    // DUMP_HEADER64 is 0x2000 bytes, but the fields we read end at 0x1040 (MiniDumpFields);
    // demanding the whole 0x2000 would reject nothing useful, so require what we read.
    need(data, 0x1040, "DUMP_HEADER64")?;
    let r32 = |o| u32_at(data, o).unwrap_or(0);
    let r64 = |o| u64_at(data, o).unwrap_or(0);
    let machine = r32(0x30);
    let arch = match machine {
        0x8664 => Arch::X64,
        0xAA64 => Arch::Arm64,
        other => {
            return Err(format!(
                "MachineImageType {other:#x} in a 64-bit header is not x64 or ARM64"
            ))
        }
    };
    let dump_type = r32(0xF98);
    let kdbg = r64(0x80);
    let runs = read_runs(data, 0x88, true);
    let bugcheck_code = r32(0x38);
    let bugcheck_parameters = [r64(0x40), r64(0x48), r64(0x50), r64(0x58)];
    let comment = comment(&data[0xFB0..0x1030]);
    Ok(Header {
        summary: DumpSummary {
            arch,
            machine,
            is_64bit_header: true,
            dump_type,
            dump_type_name: dump_type_name(dump_type).to_string(),
            major_version: r32(0x8),
            build: r32(0xC),
            directory_table_base: r64(0x10),
            pfn_database: r64(0x18),
            ps_loaded_module_list: r64(0x20),
            ps_active_process_head: r64(0x28),
            processors: r32(0x34),
            bugcheck_code,
            bugcheck_parameters,
            acquisition: Acquisition::classify(bugcheck_code, &bugcheck_parameters, &comment),
            system_time: DumpTime::from_filetime(r64(0xFA8)),
            system_up_time: UpTime::from_ticks(r64(0x1030)),
            kd_debugger_data_block: (!unset(kdbg) && kdbg != 0).then_some(kdbg),
            comment,
            required_dump_space: r64(0xFA0),
            mini_dump_fields: r32(0x1038),
            header_size: 0x2000,
        },
        runs,
    })
}

fn parse32(data: &[u8]) -> Result<Header, String> {
    need(data, 0x1000, "DUMP_HEADER32")?;
    let r32 = |o| u32_at(data, o).unwrap_or(0);
    let machine = r32(0x20);
    if machine != 0x14C {
        return Err(format!(
            "MachineImageType {machine:#x} in a 32-bit header is not x86 (0x14c)"
        ));
    }
    // PaeEnabled is a byte at 0x5C (§1.2); anything but 0 or 1 means a damaged header, and
    // guessing the paging mode wrong would turn every translation into garbage.
    let arch = match data[0x5C] {
        0 => Arch::X86,
        1 => Arch::X86Pae,
        other => {
            return Err(format!(
                "PaeEnabled byte at 0x5c is {other:#x}, expected 0 or 1"
            ))
        }
    };
    let dump_type = r32(0xF88);
    let kdbg = u64::from(r32(0x60));
    let runs = read_runs(data, 0x64, false);
    let bugcheck_code = r32(0x28);
    let bugcheck_parameters = [0x2C, 0x30, 0x34, 0x38].map(|o| u64::from(r32(o)));
    let comment = comment(&data[0x820..0x8A0]);
    let r64 = |o| u64_at(data, o).unwrap_or(0);
    Ok(Header {
        summary: DumpSummary {
            arch,
            machine,
            is_64bit_header: false,
            dump_type,
            dump_type_name: dump_type_name(dump_type).to_string(),
            major_version: r32(0x8),
            build: r32(0xC),
            directory_table_base: u64::from(r32(0x10)),
            pfn_database: u64::from(r32(0x14)),
            ps_loaded_module_list: u64::from(r32(0x18)),
            ps_active_process_head: u64::from(r32(0x1C)),
            processors: r32(0x24),
            bugcheck_code,
            bugcheck_parameters,
            acquisition: Acquisition::classify(bugcheck_code, &bugcheck_parameters, &comment),
            // DUMP_HEADER32 keeps SystemUpTime before SystemTime (§1.2).
            system_time: DumpTime::from_filetime(r64(0xFC0)),
            system_up_time: UpTime::from_ticks(r64(0xFB8)),
            kd_debugger_data_block: (!unset(kdbg) && kdbg != 0).then_some(kdbg),
            comment,
            required_dump_space: r64(0xFA0),
            mini_dump_fields: r32(0xF8C),
            header_size: 0x1000,
        },
        runs,
    })
}

/// Reads PHYSICAL_MEMORY_DESCRIPTOR{32,64} (§1.4.1). Returns `None` for the `PAGE` fill.
/// The run count is capped by the room in the header (42 runs on 64-bit, 86 on 32-bit), the
/// same bound LeechCore and Rekall apply in spirit: a larger count cannot be real.
fn read_runs(data: &[u8], at: usize, wide: bool) -> Option<Vec<HeaderRun>> {
    let count = u32_at(data, at)?;
    if count == PAGE_FILL {
        return None;
    }
    let (first, stride, room) = if wide {
        (at + 0x10, 16, 42)
    } else {
        (at + 8, 8, 86)
    };
    let n = (count as usize).min(room);
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let o = first + i * stride;
        let (base_page, page_count) = if wide {
            (u64_at(data, o)?, u64_at(data, o + 8)?)
        } else {
            (u64::from(u32_at(data, o)?), u64::from(u32_at(data, o + 4)?))
        };
        runs.push(HeaderRun {
            base_page,
            page_count,
        });
    }
    Some(runs)
}
