//! The pool APIs drvaudit follows, as data: adding an API is adding one entry.
//!
//! Parameter lists follow the WDK prototypes summarised in `pool-apis-and-rules.md` §2. Only the
//! order and width of parameters are recorded; where each parameter sits at a call instruction
//! (register or stack slot) is the calling convention's business, computed per architecture by
//! [`crate::callsite::arg_location`].

use crate::pool::{TAG_MMCM, TAG_NONE};

/// What a call does to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ApiKind {
    /// Returns a new pool block.
    Allocate,
    /// Releases a pool block.
    Free,
    /// Initialises a lookaside list whose blocks are later allocated with its tag and type.
    LookasideInit,
}

/// The meaning of one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A `POOL_TYPE`.
    PoolType,
    /// `POOL_FLAGS` of `ExAllocatePool2/3` (64-bit).
    PoolFlags,
    /// The `Flags` of a lookaside list (`POOL_NX_ALLOCATION` 0x200 makes it NX).
    LookasideFlags,
    /// Bytes requested.
    Size,
    /// The pool tag.
    Tag,
    /// `EX_POOL_PRIORITY`.
    Priority,
    /// `MEMORY_CACHING_TYPE` of contiguous allocations (`MmCached` = 1 is executable).
    CacheType,
    /// `FLT_CONTEXT_TYPE` of `FltAllocateContext`: selects the registered context, whose
    /// `FLT_CONTEXT_REGISTRATION.PoolTag` is the tag.
    ContextType,
    /// Anything drvaudit does not track (pointers, handles, addresses).
    Other,
}

/// How each tracked role is named: in messages, as a SARIF property, and as the property that
/// says how its value was recovered. The one table of these names; `Other` has none.
const ROLE_NAMES: &[(Role, &str, &str, &str)] = &[
    (Role::PoolType, "pool type", "poolType", "poolTypeHow"),
    (Role::PoolFlags, "flags", "poolFlags", "poolFlagsHow"),
    (
        Role::LookasideFlags,
        "lookaside flags",
        "lookasideFlags",
        "lookasideFlagsHow",
    ),
    (Role::Size, "size", "size", "sizeHow"),
    (Role::Tag, "tag", "tag", "tagHow"),
    (Role::Priority, "priority", "priority", "priorityHow"),
    (Role::CacheType, "cache type", "cacheType", "cacheTypeHow"),
    (
        Role::ContextType,
        "context type",
        "contextType",
        "contextTypeHow",
    ),
];

impl Role {
    fn names(self) -> Option<&'static (Role, &'static str, &'static str, &'static str)> {
        ROLE_NAMES.iter().find(|(r, ..)| *r == self)
    }

    /// The role in messages (`pool type`); `None` for roles drvaudit does not report.
    pub fn label(self) -> Option<&'static str> {
        self.names().map(|n| n.1)
    }

    /// The SARIF property holding the value (`poolType`) and the one saying how it was
    /// recovered (`poolTypeHow`).
    pub fn property_names(self) -> Option<(&'static str, &'static str)> {
        self.names().map(|n| (n.2, n.3))
    }
}

/// One parameter: its role and whether it is 64 bits wide on 32-bit x86 (and so takes two
/// stack slots there, low dword at the lower address).
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// What the parameter means.
    pub role: Role,
    /// 64-bit on every architecture (`POOL_FLAGS`, `PHYSICAL_ADDRESS`).
    pub wide: bool,
}

const fn p(role: Role) -> Param {
    Param { role, wide: false }
}
const fn wide(role: Role) -> Param {
    Param { role, wide: true }
}

/// One pool API.
#[derive(Debug)]
pub struct ApiSpec {
    /// Export name.
    pub name: &'static str,
    /// Modules exporting it (lower case).
    pub dlls: &'static [&'static str],
    /// Allocation, free or lookaside initialisation.
    pub kind: ApiKind,
    /// Parameters in declaration order.
    pub params: &'static [Param],
    /// The tag the kernel records when the API takes none: `None` for the untagged
    /// allocators, `MmCm` for contiguous memory.
    pub implied_tag: Option<u32>,
}

impl ApiSpec {
    /// The 1-based index of the first parameter with `role`.
    pub fn index_of(&self, role: Role) -> Option<usize> {
        self.params
            .iter()
            .position(|p| p.role == role)
            .map(|i| i + 1)
    }

    /// Whether the kernel charges this API's allocations to tag `None`.
    pub fn is_untagged(&self) -> bool {
        self.implied_tag == Some(TAG_NONE)
    }
}

use Role::*;

const NT: &[&str] = &[
    "ntoskrnl.exe",
    "ntkrnlpa.exe",
    "ntkrnlmp.exe",
    "ntkrpamp.exe",
];
const NDIS: &[&str] = &["ndis.sys"];
const FLTMGR: &[&str] = &["fltmgr.sys"];

/// Every pool API drvaudit recognises at call sites.
pub static APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "ExAllocatePool",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(PoolType), p(Size)],
        implied_tag: Some(TAG_NONE),
    },
    ApiSpec {
        name: "ExAllocatePoolWithQuota",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(PoolType), p(Size)],
        implied_tag: Some(TAG_NONE),
    },
    ApiSpec {
        name: "ExAllocatePoolWithTag",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(PoolType), p(Size), p(Tag)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExAllocatePoolWithQuotaTag",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(PoolType), p(Size), p(Tag)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExAllocatePoolWithTagPriority",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(PoolType), p(Size), p(Tag), p(Priority)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExAllocatePool2",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[wide(PoolFlags), p(Size), p(Tag)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExAllocatePool3",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[wide(PoolFlags), p(Size), p(Tag), p(Other), p(Other)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExFreePool",
        dlls: NT,
        kind: ApiKind::Free,
        params: &[p(Other)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExFreePoolWithTag",
        dlls: NT,
        kind: ApiKind::Free,
        params: &[p(Other), p(Tag)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExFreePool2",
        dlls: NT,
        kind: ApiKind::Free,
        params: &[p(Other), p(Tag), p(Other), p(Other)],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExInitializeNPagedLookasideList",
        dlls: NT,
        kind: ApiKind::LookasideInit,
        params: &[
            p(Other),
            p(Other),
            p(Other),
            p(LookasideFlags),
            p(Size),
            p(Tag),
            p(Other),
        ],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExInitializePagedLookasideList",
        dlls: NT,
        kind: ApiKind::LookasideInit,
        params: &[
            p(Other),
            p(Other),
            p(Other),
            p(LookasideFlags),
            p(Size),
            p(Tag),
            p(Other),
        ],
        implied_tag: None,
    },
    ApiSpec {
        name: "ExInitializeLookasideListEx",
        dlls: NT,
        kind: ApiKind::LookasideInit,
        params: &[
            p(Other),
            p(Other),
            p(Other),
            p(PoolType),
            p(LookasideFlags),
            p(Size),
            p(Tag),
            p(Other),
        ],
        implied_tag: None,
    },
    // Obsolete and untagged (DRV1008); listed so that its call sites and sizes are found.
    ApiSpec {
        name: "NdisAllocateMemory",
        dlls: NDIS,
        kind: ApiKind::Allocate,
        params: &[p(Other), p(Size), p(Other), wide(Other)],
        implied_tag: None,
    },
    ApiSpec {
        name: "NdisAllocateMemoryWithTag",
        dlls: NDIS,
        kind: ApiKind::Allocate,
        params: &[p(Other), p(Size), p(Tag)],
        implied_tag: None,
    },
    ApiSpec {
        name: "NdisAllocateMemoryWithTagPriority",
        dlls: NDIS,
        kind: ApiKind::Allocate,
        params: &[p(Other), p(Size), p(Tag), p(Priority)],
        implied_tag: None,
    },
    ApiSpec {
        name: "FltAllocatePoolAlignedWithTag",
        dlls: FLTMGR,
        kind: ApiKind::Allocate,
        params: &[p(Other), p(PoolType), p(Size), p(Tag)],
        implied_tag: None,
    },
    // The tag is not an argument: it is the PoolTag of the FLT_CONTEXT_REGISTRATION whose
    // ContextType the call passes (see `fltctx`).
    ApiSpec {
        name: "FltAllocateContext",
        dlls: FLTMGR,
        kind: ApiKind::Allocate,
        params: &[p(Other), p(ContextType), p(Size), p(PoolType), p(Other)],
        implied_tag: None,
    },
    ApiSpec {
        name: "MmAllocateContiguousMemory",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(Size), wide(Other)],
        implied_tag: Some(TAG_MMCM),
    },
    ApiSpec {
        name: "MmAllocateContiguousMemorySpecifyCache",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[p(Size), wide(Other), wide(Other), wide(Other), p(CacheType)],
        implied_tag: Some(TAG_MMCM),
    },
    ApiSpec {
        name: "MmAllocateContiguousMemorySpecifyCacheNode",
        dlls: NT,
        kind: ApiKind::Allocate,
        params: &[
            p(Size),
            wide(Other),
            wide(Other),
            wide(Other),
            p(CacheType),
            p(Other),
        ],
        implied_tag: Some(TAG_MMCM),
    },
];

/// Looks an API up by its export name, optionally checking the exporting module.
pub fn find(name: &str) -> Option<&'static ApiSpec> {
    APIS.iter().find(|a| a.name == name)
}

/// Looks an API up from an import (`dll`, `name`); the module must be one that exports it.
pub fn for_import(dll: &str, name: &str) -> Option<&'static ApiSpec> {
    let dll = dll.to_ascii_lowercase();
    find(name).filter(|a| a.dlls.contains(&dll.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_positions_match_the_wdk_prototypes() {
        assert_eq!(
            find("ExAllocatePoolWithTag").unwrap().index_of(Tag),
            Some(3)
        );
        assert_eq!(find("ExFreePoolWithTag").unwrap().index_of(Tag), Some(2));
        assert_eq!(
            find("ExInitializeNPagedLookasideList")
                .unwrap()
                .index_of(Tag),
            Some(6)
        );
        assert_eq!(
            find("ExInitializeLookasideListEx").unwrap().index_of(Tag),
            Some(7)
        );
        assert_eq!(
            find("FltAllocatePoolAlignedWithTag")
                .unwrap()
                .index_of(PoolType),
            Some(2)
        );
        assert!(find("ExAllocatePool").unwrap().is_untagged());
        assert!(for_import("NTOSKRNL.EXE", "ExAllocatePool2").is_some());
        assert!(for_import("hal.dll", "ExAllocatePool2").is_none());
    }
}
