//! Virtual → physical translation for x86 (two-level), x86 PAE, x64 four-level and ARM64
//! (4 KB granule, 48-bit), crash-dumps.md §5.
//!
//! Every walk has a fixed depth, so a page table that points at itself (a "loop") can only
//! produce a wrong answer, never an endless walk. A miss is data, not a failure: [`Miss`] says
//! which level was not valid or which physical page the dump does not hold, and callers record
//! it as a hole. Five-level paging (LA57) is detected and reported as unsupported (§5).

use std::fmt;

use super::header::Arch;

/// Why a virtual address could not be translated or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The entry at `level` is not valid (not present, paged out, discarded).
    NotPresent {
        /// Table level name ("PML4E", "PDE", "PTE", "L2" …).
        level: &'static str,
        /// The raw entry.
        entry: u64,
    },
    /// The page (or a page table) is at physical address `pa`, which the dump does not hold.
    NotInDump {
        /// Physical address.
        pa: u64,
    },
    /// The address is not canonical for 48-bit paging; five-level paging (LA57) would allow
    /// it, and that mode is not supported.
    NotCanonical,
    /// Triage dumps hold only some virtual data blocks; this address is not among them.
    NotInDataBlocks,
    /// The dump carries no memory at all (header-only file).
    NoMemory,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NotPresent { level, entry } => write!(f, "{level} {entry:#x} is not valid"),
            Miss::NotInDump { pa } => write!(f, "physical page {pa:#x} is not in the dump"),
            Miss::NotCanonical => write!(
                f,
                "address is not 48-bit canonical (five-level paging is not supported)"
            ),
            Miss::NotInDataBlocks => write!(f, "not in any triage data block"),
            Miss::NoMemory => write!(f, "the file holds no physical memory"),
        }
    }
}

/// Physical memory as the walker sees it.
pub(crate) trait PhysRead {
    fn phys_u64(&self, pa: u64) -> Option<u64>;
    fn phys_u32(&self, pa: u64) -> Option<u32>;
}

/// A translator for one address space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging {
    arch: Arch,
    root: u64,
}

/// Transition PTE: not valid, but the page is still in RAM and the PFN is good (§5).
fn transition(pte: u64) -> bool {
    pte & 0xC01 == 0x800
}

impl Paging {
    /// `dtb` is the header's DirectoryTableBase. x64 masks the PCID bits (low 12), PAE keeps
    /// the 32-byte alignment of the PDPT, ARM64 and x86 take the page-aligned table.
    pub(crate) fn new(arch: Arch, dtb: u64) -> Paging {
        let root = match arch {
            Arch::X86 => dtb & 0xFFFF_F000,
            Arch::X86Pae => dtb & 0xFFFF_FFE0,
            Arch::X64 => dtb & 0x000F_FFFF_FFFF_F000,
            Arch::Arm64 => dtb & 0x0003_FFFF_FFFF_F000,
        };
        Paging { arch, root }
    }

    /// The masked table root.
    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    pub(crate) fn translate(&self, mem: &dyn PhysRead, va: u64) -> Result<u64, Miss> {
        match self.arch {
            Arch::X86 => self.x86(mem, va),
            Arch::X86Pae => self.pae(mem, va),
            Arch::X64 => self.x64(mem, va),
            Arch::Arm64 => self.arm64(mem, va),
        }
    }

    fn x86(&self, mem: &dyn PhysRead, va: u64) -> Result<u64, Miss> {
        let va = va & 0xFFFF_FFFF;
        let pde_pa = self.root + (va >> 22) * 4;
        let pde = u64::from(mem.phys_u32(pde_pa).ok_or(Miss::NotInDump { pa: pde_pa })?);
        if pde & 1 == 0 {
            return Err(Miss::NotPresent {
                level: "PDE",
                entry: pde,
            });
        }
        if pde & 0x80 != 0 {
            // 4 MB page, with the PSE-36 high bits 13..16 of the PDE giving PA bits 32..35.
            return Ok((pde & 0xFFC0_0000) | ((pde & 0x1E000) << 19) | (va & 0x3F_FFFF));
        }
        let pte_pa = (pde & 0xFFFF_F000) + ((va >> 12) & 0x3FF) * 4;
        let pte = u64::from(mem.phys_u32(pte_pa).ok_or(Miss::NotInDump { pa: pte_pa })?);
        if pte & 1 == 0 && !transition(pte) {
            return Err(Miss::NotPresent {
                level: "PTE",
                entry: pte,
            });
        }
        Ok((pte & 0xFFFF_F000) | (va & 0xFFF))
    }

    fn pae(&self, mem: &dyn PhysRead, va: u64) -> Result<u64, Miss> {
        const MASK: u64 = 0x0000_FFFF_FFFF_F000;
        let va = va & 0xFFFF_FFFF;
        let pdpte_pa = self.root + (va >> 30) * 8;
        let pdpte = mem
            .phys_u64(pdpte_pa)
            .ok_or(Miss::NotInDump { pa: pdpte_pa })?;
        if pdpte & 1 == 0 {
            return Err(Miss::NotPresent {
                level: "PDPTE",
                entry: pdpte,
            });
        }
        let pde_pa = (pdpte & MASK) + ((va >> 21) & 0x1FF) * 8;
        let pde = mem.phys_u64(pde_pa).ok_or(Miss::NotInDump { pa: pde_pa })?;
        if pde & 1 == 0 {
            return Err(Miss::NotPresent {
                level: "PDE",
                entry: pde,
            });
        }
        if pde & 0x80 != 0 {
            return Ok((pde & 0x000F_FFFF_FFE0_0000) | (va & 0x1F_FFFF));
        }
        let pte_pa = (pde & MASK) + ((va >> 12) & 0x1FF) * 8;
        let pte = mem.phys_u64(pte_pa).ok_or(Miss::NotInDump { pa: pte_pa })?;
        if pte & 1 == 0 && !transition(pte) {
            return Err(Miss::NotPresent {
                level: "PTE",
                entry: pte,
            });
        }
        Ok((pte & MASK) | (va & 0xFFF))
    }

    fn x64(&self, mem: &dyn PhysRead, va: u64) -> Result<u64, Miss> {
        const MASK: u64 = 0x000F_FFFF_FFFF_F000;
        if !canonical48(va) {
            return Err(Miss::NotCanonical);
        }
        let mut table = self.root;
        for (level, shift) in [("PML4E", 39u32), ("PDPTE", 30), ("PDE", 21), ("PTE", 12)] {
            let e_pa = table + ((va >> shift) & 0x1FF) * 8;
            let e = mem.phys_u64(e_pa).ok_or(Miss::NotInDump { pa: e_pa })?;
            let last = shift == 12;
            if e & 1 == 0 && !(last && transition(e)) {
                return Err(Miss::NotPresent { level, entry: e });
            }
            // PS (bit 7) in a PDPTE is a 1 GB page, in a PDE a 2 MB page.
            if !last && shift != 39 && e & 0x80 != 0 {
                let size_mask = (1u64 << shift) - 1;
                return Ok((e & MASK & !size_mask) | (va & size_mask));
            }
            if last {
                return Ok((e & MASK) | (va & 0xFFF));
            }
            table = e & MASK;
        }
        unreachable_walk()
    }

    fn arm64(&self, mem: &dyn PhysRead, va: u64) -> Result<u64, Miss> {
        const MASK: u64 = 0x0003_FFFF_FFFF_F000;
        if !canonical48(va) {
            return Err(Miss::NotCanonical);
        }
        let mut table = self.root;
        for (level, shift) in [("L0", 39u32), ("L1", 30), ("L2", 21), ("L3", 12)] {
            let e_pa = table + ((va >> shift) & 0x1FF) * 8;
            let e = mem.phys_u64(e_pa).ok_or(Miss::NotInDump { pa: e_pa })?;
            let last = shift == 12;
            match e & 3 {
                // 0b11: table descriptor at levels 0-2, page descriptor at level 3.
                3 if last => return Ok((e & MASK) | (va & 0xFFF)),
                3 => table = e & MASK,
                // 0b01: block descriptor, valid at level 1 (1 GB) and level 2 (2 MB) only.
                1 if shift == 30 || shift == 21 => {
                    let size_mask = (1u64 << shift) - 1;
                    return Ok((e & MASK & !size_mask) | (va & size_mask));
                }
                _ if last && transition(e) => return Ok((e & MASK) | (va & 0xFFF)),
                _ => return Err(Miss::NotPresent { level, entry: e }),
            }
        }
        unreachable_walk()
    }
}

/// The four-level loops above always return at the last level; this keeps the compiler happy
/// without a panic path.
fn unreachable_walk() -> Result<u64, Miss> {
    Err(Miss::NotPresent {
        level: "walk",
        entry: 0,
    })
}

/// Bits 63..47 all equal: a valid address under four-level paging.
pub(crate) fn canonical48(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_FFFF
}
