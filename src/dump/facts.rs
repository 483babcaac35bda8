//! Facts about how and when a dump was taken: its time and the machine's uptime, what wrote it
//! (a crash, Windows' own live dump, or a live acquisition tool), and how much of the memory
//! its headers describe the file really holds.
//!
//! Sources:
//! * SystemTime (FILETIME, 100 ns since 1601-01-01 UTC) and SystemUpTime (100 ns) sit at
//!   0xFA8/0x1030 in DUMP_HEADER64 and 0xFC0/0xFB8 in DUMP_HEADER32 (crash-dumps.md §1.1, §1.2).
//! * Kernel live dump codes: Microsoft Learn, "Kernel Live Dump Code Reference"
//!   (windows-hardware/drivers/debugger/bug-check-code-reference-live-dump): codes that "can never
//!   be used for a real bug check; [they are] used to identify live dumps", among them 0x161
//!   LIVE_SYSTEM_DUMP, which Task Manager and `Get-StorageDiagnosticInfo -IncludeLiveDump` write;
//!   and three codes used "for live dumps or to bug check the device" (0x124, 0x144, 0x164).
//! * DumpIt (MoonSols, later Comae) writes the bugcheck code `MATT` (0x5454414D) with the
//!   parameters `MOON` and `SOLS`: the sample `dumpit_win10_x64_truncated.dmp` (corpus README),
//!   and Volatility `crashinfo` output of DumpIt dumps published on the web show BugCheckCode
//!   0x5454414d.
//! * LiveKD (Sysinternals) writes a DumpType 1 header with bugcheck code 0 and the Comment
//!   "LiveKD live system view": both LiveKD samples (livekd_win7_x86pae_header.raw,
//!   livekd_win10_x64_header.raw), and kd sessions on LiveKD dumps print "Comment: 'LiveKD live
//!   system view'". LiveKD's `-ml` mode asks Windows for a native live dump instead, which
//!   carries a live dump code (above).

use serde::Serialize;

/// 100 ns ticks per second.
const TICKS: u64 = 10_000_000;

/// A point in time from a dump header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpTime {
    /// The FILETIME as stored: 100 ns intervals since 1601-01-01 00:00 UTC.
    #[serde(serialize_with = "super::hex::u64")]
    pub filetime: u64,
    /// The same as an RFC 3339 UTC date-time with seven fractional digits
    /// (`2024-10-12T12:57:59.7110784Z`).
    pub utc: String,
}

impl DumpTime {
    /// `None` for 0 and for the `PAGE` fill of an unset field.
    pub(crate) fn from_filetime(ft: u64) -> Option<DumpTime> {
        if ft == 0 || super::bytes::unset(ft) {
            return None;
        }
        Some(DumpTime {
            filetime: ft,
            utc: filetime_utc(ft),
        })
    }
}

/// How long the machine had been running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpTime {
    /// SystemUpTime as stored, in 100 ns units.
    pub ticks_100ns: u64,
    /// The same as `<days>d <hh>:<mm>:<ss>.<7 digits>` (`0d 00:38:41.1047238`).
    pub text: String,
}

impl UpTime {
    /// `None` for the `PAGE` fill of an unset field (LiveKD leaves it so).
    pub(crate) fn from_ticks(t: u64) -> Option<UpTime> {
        if super::bytes::unset(t) {
            return None;
        }
        let (secs, frac) = (t / TICKS, t % TICKS);
        Some(UpTime {
            ticks_100ns: t,
            text: format!(
                "{}d {:02}:{:02}:{:02}.{frac:07}",
                secs / 86_400,
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60
            ),
        })
    }
}

fn leap(y: u64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// FILETIME → `YYYY-MM-DDTHH:MM:SS.fffffffZ`. The Gregorian calendar repeats every 400 years
/// (146,097 days) and 1601 starts such a cycle, so whole cycles are taken off first and at
/// most 400 years and 12 months are counted one by one.
fn filetime_utc(ft: u64) -> String {
    let (secs, frac) = (ft / TICKS, ft % TICKS);
    let mut days = secs / 86_400;
    let mut year = 1601 + 400 * (days / 146_097);
    days %= 146_097;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let mut month = 1;
    for len in [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{frac:07}Z",
        days + 1,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// Kernel live dump codes (Microsoft Learn, "Kernel Live Dump Code Reference", first table):
/// Windows writes them for a live dump of the running system, never for a crash.
const LIVE_DUMP_CODES: [(u32, &str); 44] = [
    (0xAB, "SESSION_HAS_VALID_POOL_ON_EXIT"),
    (0x117, "VIDEO_TDR_TIMEOUT_DETECTED"),
    (0x141, "VIDEO_ENGINE_TIMEOUT_DETECTED"),
    (0x142, "VIDEO_TDR_APPLICATION_BLOCKED"),
    (0x156, "WINSOCK_DETECTED_HUNG_CLOSESOCKET_LIVEDUMP"),
    (0x15C, "PDC_WATCHDOG_TIMEOUT_LIVEDUMP"),
    (0x15D, "SOC_SUBSYSTEM_FAILURE_LIVEDUMP"),
    (0x15E, "BUGCODE_NDIS_DRIVER_LIVE_DUMP"),
    (0x15F, "CONNECTED_STANDBY_WATCHDOG_TIMEOUT_LIVEDUMP"),
    (0x161, "LIVE_SYSTEM_DUMP"),
    (0x165, "CLUSTER_CSV_STATUS_IO_TIMEOUT_LIVEDUMP"),
    (0x166, "CLUSTER_RESOURCE_CALL_TIMEOUT_LIVEDUMP"),
    (0x167, "CLUSTER_CSV_SNAPSHOT_DEVICE_INFO_TIMEOUT_LIVEDUMP"),
    (0x168, "CLUSTER_CSV_STATE_TRANSITION_TIMEOUT_LIVEDUMP"),
    (0x169, "CLUSTER_CSV_VOLUME_ARRIVAL_LIVEDUMP"),
    (0x16A, "CLUSTER_CSV_VOLUME_REMOVAL_LIVEDUMP"),
    (0x16B, "CLUSTER_CSV_CLUSTER_WATCHDOG_LIVEDUMP"),
    (
        0x16F,
        "CLUSTER_CSV_STATE_TRANSITION_INTERVAL_TIMEOUT_LIVEDUMP",
    ),
    (0x175, "PREVIOUS_FATAL_ABNORMAL_RESET_ERROR"),
    (0x179, "CLUSTER_CLUSPORT_STATUS_IO_TIMEOUT_LIVEDUMP"),
    (0x17C, "PDC_LOCK_WATCHDOG_LIVEDUMP"),
    (0x17D, "PDC_UNEXPECTED_REVOCATION_LIVEDUMP"),
    (0x187, "VIDEO_DWMINIT_TIMEOUT_FALLBACK_BDD"),
    (0x188, "CLUSTER_CSVFS_LIVEDUMP"),
    (0x190, "WIN32K_CRITICAL_FAILURE_LIVEDUMP"),
    (0x193, "VIDEO_DXGKRNL_LIVEDUMP"),
    (0x195, "SMB_SERVER_LIVEDUMP"),
    (0x198, "UFX_LIVEDUMP"),
    (0x19D, "CLUSTER_SVHDX_LIVEDUMP"),
    (0x1A1, "WIN32K_CALLOUT_WATCHDOG_LIVEDUMP"),
    (0x1A3, "CALL_HAS_NOT_RETURNED_WATCHDOG_TIMEOUT_LIVEDUMP"),
    (0x1A4, "DRIPS_SW_HW_DIVERGENCE_LIVEDUMP"),
    (0x1A5, "USB_DRIPS_BLOCKER_SURPRISE_REMOVAL_LIVEDUMP"),
    (0x1A6, "BLUETOOTH_ERROR_RECOVERY_LIVEDUMP"),
    (0x1A7, "SMB_REDIRECTOR_LIVEDUMP"),
    (0x1A8, "VIDEO_DXGKRNL_BLACK_SCREEN_LIVEDUMP"),
    (0x1B0, "VIDEO_MINIPORT_FAILED_LIVEDUMP"),
    (0x1B8, "VIDEO_MINIPORT_BLACK_SCREEN_LIVEDUMP"),
    (0x1C4, "DRIVER_VERIFIER_DETECTED_VIOLATION_LIVEDUMP"),
    (0x1C5, "IO_THREADPOOL_DEADLOCK_LIVEDUMP"),
    (0x1C9, "USER_MODE_HEALTH_MONITOR_LIVEDUMP"),
    (0x1CC, "EXRESOURCE_TIMEOUT_LIVEDUMP"),
    (0x1D1, "TELEMETRY_ASSERTS_LIVEDUMP"),
    (0x1D4, "UCMUCSI_LIVEDUMP"),
];

/// Codes used "for live dumps or to bug check the device" (same page, second table).
const LIVE_OR_CRASH_CODES: [(u32, &str); 3] = [
    (0x124, "WHEA_UNCORRECTABLE_ERROR"),
    (0x144, "BUGCODE_USB3_DRIVER"),
    (0x164, "WIN32K_CRITICAL_FAILURE"),
];

/// DumpIt's bugcheck code, `MATT` as a little-endian u32.
pub const DUMPIT_CODE: u32 = 0x5454_414D;
/// LiveKD's header Comment.
pub const LIVEKD_COMMENT: &str = "LiveKD live system view";

/// What wrote the dump, read from the bugcheck code and the Comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Acquisition {
    /// A bug check: the system stopped and wrote the dump.
    Crash {
        /// The bugcheck code.
        code: u32,
    },
    /// Windows' own live kernel dump of the running system (no crash); the code names the
    /// trigger (0x161 LIVE_SYSTEM_DUMP: requested by an administrator).
    LiveKernelDump {
        /// The live dump code.
        code: u32,
        /// Its name in the live dump code reference.
        name: &'static str,
    },
    /// A code Windows uses both for live dumps and for bug checks: the header alone does not
    /// say which.
    LiveDumpOrCrash {
        /// The code.
        code: u32,
        /// Its name.
        name: &'static str,
    },
    /// A live acquisition by DumpIt: bugcheck code `MATT`, not a crash.
    DumpIt {
        /// The four parameters as ASCII where printable (`MOON`, `SOLS`), else hex.
        parameters: [String; 4],
    },
    /// A live acquisition by LiveKD (Comment "LiveKD live system view"), not a crash.
    LiveKd,
    /// Bugcheck code 0 and no known tool marker: not a crash, most likely a live acquisition by
    /// a tool this reader does not recognise.
    NoBugcheck,
}

impl Acquisition {
    /// Classifies a header's bugcheck code, parameters and comment.
    pub(crate) fn classify(code: u32, params: &[u64; 4], comment: &str) -> Acquisition {
        if code == DUMPIT_CODE {
            return Acquisition::DumpIt {
                parameters: params.map(ascii_or_hex),
            };
        }
        if comment == LIVEKD_COMMENT {
            return Acquisition::LiveKd;
        }
        if let Some(&(code, name)) = LIVE_DUMP_CODES.iter().find(|c| c.0 == code) {
            return Acquisition::LiveKernelDump { code, name };
        }
        if let Some(&(code, name)) = LIVE_OR_CRASH_CODES.iter().find(|c| c.0 == code) {
            return Acquisition::LiveDumpOrCrash { code, name };
        }
        if code == 0 {
            return Acquisition::NoBugcheck;
        }
        Acquisition::Crash { code }
    }

    /// `Some(true)` for a dump of a running system, `Some(false)` for a crash, `None` when the
    /// code is used for both.
    pub fn is_live(&self) -> Option<bool> {
        match self {
            Acquisition::Crash { .. } => Some(false),
            Acquisition::LiveDumpOrCrash { .. } => None,
            _ => Some(true),
        }
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        match self {
            Acquisition::Crash { code } => format!("crash: bugcheck {code:#010x}"),
            Acquisition::LiveKernelDump { code, name } => {
                format!("live kernel dump by Windows ({code:#x} {name}), not a crash")
            }
            Acquisition::LiveDumpOrCrash { code, name } => {
                format!("bugcheck {code:#x} {name}: a crash or a live kernel dump (the header does not say which)")
            }
            Acquisition::DumpIt { parameters } => format!(
                "live acquisition by DumpIt (bugcheck field 'MATT', parameters {}), not a crash",
                parameters
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Acquisition::LiveKd => {
                "live acquisition by LiveKD (comment \"LiveKD live system view\"), not a crash"
                    .into()
            }
            Acquisition::NoBugcheck => {
                "no bugcheck code (0): a live acquisition by an unrecognised tool, not a crash"
                    .into()
            }
        }
    }
}

/// The low 32 bits as four ASCII characters when all are printable, else `0x…` of the value.
fn ascii_or_hex(v: u64) -> String {
    let b = (v as u32).to_le_bytes();
    if v >> 32 == 0 && b.iter().all(|c| (0x20..0x7F).contains(c)) {
        b.iter().map(|&c| c as char).collect()
    } else {
        format!("{v:#x}")
    }
}

/// How much of the memory the headers describe the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The file's length in bytes.
    pub file_len: u64,
    /// RequiredDumpSpace from the header, when set (the writer's figure; real triage dumps do not
    /// match their length).
    pub required_dump_space: Option<u64>,
    /// Physical pages the memory descriptor (run list, bitmap, range list) describes; `None`
    /// for triage and header-only dumps.
    pub pages_described: Option<u64>,
    /// Physical pages the file holds.
    pub pages_held: u64,
    /// SizeOfDump from the triage header, for triage dumps.
    pub triage_size: Option<u64>,
    /// The file is shorter than its headers describe: memory (or triage data) is missing.
    pub truncated: bool,
}

impl Coverage {
    /// One line for a report ("truncated: 0x2 of 0x7fe86 described pages are in the file").
    pub fn describe(&self) -> String {
        let what = if self.truncated {
            "truncated"
        } else {
            "complete"
        };
        match (self.pages_described, self.triage_size) {
            (Some(d), _) => format!(
                "{what}: {:#x} of {d:#x} described physical pages ({}) are in the file of {:#x} bytes",
                self.pages_held,
                percent(self.pages_held, d),
                self.file_len
            ),
            (None, Some(t)) => format!(
                "{what}: the file is {:#x} bytes, the triage header's SizeOfDump {t:#x}",
                self.file_len
            ),
            (None, None) => format!("{what}: the file is {:#x} bytes", self.file_len),
        }
    }
}

/// `held` of `of` as a percentage with enough digits to tell a sliver from nothing.
fn percent(held: u64, of: u64) -> String {
    if of == 0 {
        return "100%".into();
    }
    let p = held as f64 * 100.0 / of as f64;
    if held == 0 {
        "0%".into()
    } else if p < 0.01 {
        format!("{p:.6}%")
    } else {
        format!("{p:.2}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_become_utc_date_times() {
        assert_eq!(filetime_utc(0), "1601-01-01T00:00:00.0000000Z");
        // 1970-01-01: 11,644,473,600 s after 1601-01-01.
        assert_eq!(
            filetime_utc(116_444_736_000_000_000),
            "1970-01-01T00:00:00.0000000Z"
        );
        // A leap day and the last tick of a year.
        assert_eq!(
            filetime_utc(116_444_736_000_000_000 + 951_782_400 * TICKS + 1),
            "2000-02-29T00:00:00.0000001Z"
        );
        assert_eq!(
            filetime_utc(116_444_736_000_000_000 + 1_704_067_200 * TICKS - 1),
            "2023-12-31T23:59:59.9999999Z"
        );
    }

    #[test]
    fn uptime_and_unset_fields() {
        assert_eq!(
            UpTime::from_ticks(37_470_697).unwrap().text,
            "0d 00:00:03.7470697"
        );
        assert_eq!(
            UpTime::from_ticks(90_061 * TICKS).unwrap().text,
            "1d 01:01:01.0000000"
        );
        assert_eq!(UpTime::from_ticks(0x4547_4150_4547_4150), None);
        assert_eq!(DumpTime::from_filetime(0), None);
    }

    #[test]
    fn acquisition_markers() {
        let moon = 0x4E4F_4F4D;
        let sols = 0x534C_4F53;
        assert_eq!(
            Acquisition::classify(DUMPIT_CODE, &[moon, sols, moon, sols], ""),
            Acquisition::DumpIt {
                parameters: ["MOON", "SOLS", "MOON", "SOLS"].map(String::from)
            }
        );
        assert_eq!(
            Acquisition::classify(0, &[0; 4], LIVEKD_COMMENT),
            Acquisition::LiveKd
        );
        assert_eq!(
            Acquisition::classify(0x161, &[0; 4], "").is_live(),
            Some(true)
        );
        assert_eq!(Acquisition::classify(0x144, &[0; 4], "").is_live(), None);
        assert_eq!(
            Acquisition::classify(0x1000_007E, &[0; 4], ""),
            Acquisition::Crash { code: 0x1000_007E }
        );
        assert_eq!(
            Acquisition::classify(0, &[0; 4], ""),
            Acquisition::NoBugcheck
        );
    }
}
