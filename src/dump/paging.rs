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
        /// Physical address (its page frame number is `pa >> 12`).
        pa: u64,
    },
    /// The dump's page-walk budget is spent (see `budget`): the address was not translated.
    WalkBudget,
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
            Miss::NotInDump { pa } => write!(
                f,
                "physical address {pa:#x} (page frame {:#x}) is not in the dump",
                pa >> 12
            ),
            Miss::WalkBudget => write!(f, "the dump's page-walk budget is spent"),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Sparse physical memory of u64 words.
    struct Mem(HashMap<u64, u64>);

    impl PhysRead for Mem {
        fn phys_u64(&self, pa: u64) -> Option<u64> {
            Some(self.0.get(&pa).copied().unwrap_or(0))
        }
        fn phys_u32(&self, pa: u64) -> Option<u32> {
            let w = self.phys_u64(pa & !7)?;
            Some(if pa & 4 == 0 {
                w as u32
            } else {
                (w >> 32) as u32
            })
        }
    }

    #[test]
    fn x86_4mb_page_uses_the_pse36_bits() {
        // PDE for 0x80400000 (index 0x201) at 0x1000 + 0x804: PS, present, PA bits 32..35 = 0x3.
        let pde = 0x0040_0000u64 | (0x3 << 13) | 0x83;
        let m = Mem([(0x1800, pde << 32)].into_iter().collect());
        let p = Paging::new(Arch::X86, 0x1000);
        assert_eq!(p.translate(&m, 0x8041_2345), Ok(0x3_0041_2345));
    }

    #[test]
    fn pae_root_keeps_32_byte_alignment_and_maps_2mb_pages() {
        let p = Paging::new(Arch::X86Pae, 0xbf62_f2e0);
        assert_eq!(p.root(), 0xbf62_f2e0);
        // PDPTE[2] at 0xbf62f2f0 → PD at 0x5000; PDE[1] (va 0x80200000) is a 2 MB page.
        let m = Mem([(0xbf62_f2f0, 0x5001), (0x5008, 0x1_2340_0000 | 0x83)]
            .into_iter()
            .collect());
        assert_eq!(p.translate(&m, 0x8021_0004), Ok(0x1_2341_0004));
    }

    #[test]
    fn x64_masks_pcid_maps_1gb_pages_reads_transition_ptes() {
        let p = Paging::new(Arch::X64, 0x1000 | 0x2);
        assert_eq!(p.root(), 0x1000);
        let va = 0xFFFF_F800_4000_1234u64;
        let (i4, i3) = ((va >> 39) & 0x1FF, (va >> 30) & 0x1FF);
        let mut m = Mem([
            (0x1000 + i4 * 8, 0x2003),
            (0x2000 + i3 * 8, 0x8000_0000 | 0x83),
        ]
        .into_iter()
        .collect());
        assert_eq!(p.translate(&m, va), Ok(0x8000_1234));
        // A 4 KB page through a transition PTE (valid bit clear, bit 11 set).
        let va2 = 0xFFFF_F800_0020_3000u64;
        let (a, b, c, d) = (
            (va2 >> 39) & 0x1FF,
            (va2 >> 30) & 0x1FF,
            (va2 >> 21) & 0x1FF,
            (va2 >> 12) & 0x1FF,
        );
        m.0.insert(0x1000 + a * 8, 0x2003);
        m.0.insert(0x2000 + b * 8, 0x3003);
        m.0.insert(0x3000 + c * 8, 0x4003);
        m.0.insert(0x4000 + d * 8, 0x77000 | 0x800);
        assert_eq!(p.translate(&m, va2 + 8), Ok(0x77008));
        m.0.insert(0x4000 + d * 8, 0x1234_0080);
        assert_eq!(
            p.translate(&m, va2),
            Err(Miss::NotPresent {
                level: "PTE",
                entry: 0x1234_0080
            })
        );
        assert_eq!(
            p.translate(&m, 0x00F0_0000_0000_0000),
            Err(Miss::NotCanonical)
        );
    }

    #[test]
    fn arm64_block_descriptors_are_not_tables() {
        let p = Paging::new(Arch::Arm64, 0x946a_a000);
        let va = 0xFFFF_F803_F2E0_1000u64;
        let (a, b, c) = ((va >> 39) & 0x1FF, (va >> 30) & 0x1FF, (va >> 21) & 0x1FF);
        // Bit 7 (AP[2]) set in the block descriptor must not matter.
        let m = Mem([
            (0x946a_a000 + a * 8, 0x2003),
            (0x2000 + b * 8, 0x3003),
            (0x3000 + c * 8, 0x4000_0000 | 0x481),
        ]
        .into_iter()
        .collect());
        assert_eq!(p.translate(&m, va), Ok(0x4000_1000));
    }
}
