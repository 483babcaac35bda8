//! TEST-ONLY crash-dump writer, written from the documented formats (crash-dumps.md §1, §2.2,
//! §3.1, §4, §5; PE/COFF for the images), field by field. It shares no code with the reader:
//! a dump written here and read back checks the reader against the documents, not against
//! itself.
//!
//! Model: a kernel address space is a set of 4 KB virtual pages (present, paged out, or mapped
//! to a physical page the dump leaves out) plus large-page regions. `Kernel::build` allocates
//! physical pages, builds the page tables of the chosen architecture, and encodes the present
//! pages in the chosen DumpType.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};

pub const PAGE: u64 = 0x1000;

// ---------------------------------------------------------------------------------------------
// Little helpers

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn putp(b: &mut [u8], o: usize, v: u64, ps: usize) {
    if ps == 4 {
        put32(b, o, v as u32)
    } else {
        put64(b, o, v)
    }
}
fn get16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn get32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn getp(b: &[u8], o: usize, ps: usize) -> u64 {
    if ps == 4 {
        u64::from(get32(b, o))
    } else {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
}
fn cstr(b: &[u8], o: usize) -> String {
    let end = b[o..].iter().position(|&c| c == 0).unwrap();
    String::from_utf8(b[o..o + end].to_vec()).unwrap()
}
fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

// ---------------------------------------------------------------------------------------------
// PE images (PE/COFF: DOS header, PE signature, COFF header, optional header, section table)

pub const IMAGE_SCN_CNT_CODE: u32 = 0x20;
pub const IMAGE_SCN_CNT_INITIALIZED_DATA: u32 = 0x40;
pub const IMAGE_SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
pub const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
pub const IMAGE_SCN_MEM_READ: u32 = 0x4000_0000;
pub const IMAGE_SCN_MEM_WRITE: u32 = 0x8000_0000;
pub const CODE: u32 = IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ;
pub const RDATA: u32 = IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ;
pub const DATA: u32 = IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86,
    X64,
    Arm64,
}

impl Machine {
    fn id(self) -> u16 {
        match self {
            Machine::X86 => 0x14C,
            Machine::X64 => 0x8664,
            Machine::Arm64 => 0xAA64,
        }
    }
    fn ps(self) -> usize {
        if self == Machine::X86 {
            4
        } else {
            8
        }
    }
}

/// A section to lay out: contents are placed at the section's RVA (section alignment 0x1000).
pub struct SectionSpec {
    pub name: &'static str,
    pub characteristics: u32,
    pub pages: u32,
    pub data: Vec<u8>,
}

/// Builds a PE in FILE layout (file alignment 0x200). Sections get consecutive page-aligned
/// RVAs from 0x1000. `dirs` are (index, rva, size).
pub fn build_pe(
    machine: Machine,
    sections: &[SectionSpec],
    entry: u32,
    dirs: &[(usize, u32, u32)],
    timestamp: u32,
) -> Vec<u8> {
    let pe64 = machine != Machine::X86;
    let opt_size: usize = if pe64 { 0xF0 } else { 0xE0 };
    let e_lfanew = 0x80usize;
    let sec_table = e_lfanew + 24 + opt_size;
    let size_of_headers = align((sec_table + 40 * sections.len()) as u64, 0x200) as u32;
    let mut rva = 0x1000u32;
    let mut raw = size_of_headers;
    let mut placed = Vec::new();
    for s in sections {
        let raw_size = align(s.data.len() as u64, 0x200) as u32;
        placed.push((rva, raw, raw_size));
        rva += s.pages * 0x1000;
        raw += raw_size;
    }
    let size_of_image = rva;
    let mut f = vec![0u8; raw as usize];
    f[0..2].copy_from_slice(b"MZ");
    put32(&mut f, 0x3C, e_lfanew as u32);
    f[e_lfanew..e_lfanew + 4].copy_from_slice(b"PE\0\0");
    let c = e_lfanew + 4;
    put16(&mut f, c, machine.id());
    put16(&mut f, c + 2, sections.len() as u16);
    put32(&mut f, c + 4, timestamp);
    put16(&mut f, c + 16, opt_size as u16);
    put16(&mut f, c + 18, if pe64 { 0x0022 } else { 0x0102 });
    let o = c + 20;
    put16(&mut f, o, if pe64 { 0x20B } else { 0x10B });
    put32(&mut f, o + 16, entry);
    put32(&mut f, o + 20, 0x1000);
    if pe64 {
        put64(&mut f, o + 24, 0x1_4000_0000);
    } else {
        put32(&mut f, o + 28, 0x10000);
    }
    put32(&mut f, o + 32, 0x1000);
    put32(&mut f, o + 36, 0x200);
    put16(&mut f, o + 40, 10);
    put16(&mut f, o + 48, 10);
    put32(&mut f, o + 56, size_of_image);
    put32(&mut f, o + 60, size_of_headers);
    put16(&mut f, o + 68, 1); // IMAGE_SUBSYSTEM_NATIVE
    let (nd, dd) = if pe64 {
        (o + 108, o + 112)
    } else {
        (o + 92, o + 96)
    };
    put32(&mut f, nd, 16);
    for &(i, r, s) in dirs {
        put32(&mut f, dd + i * 8, r);
        put32(&mut f, dd + i * 8 + 4, s);
    }
    for (i, (s, &(r, p, rs))) in sections.iter().zip(&placed).enumerate() {
        let h = sec_table + i * 40;
        f[h..h + s.name.len()].copy_from_slice(s.name.as_bytes());
        put32(&mut f, h + 8, s.pages * 0x1000);
        put32(&mut f, h + 12, r);
        put32(&mut f, h + 16, rs);
        put32(&mut f, h + 20, if rs == 0 { 0 } else { p });
        put32(&mut f, h + 36, s.characteristics);
        f[p as usize..p as usize + s.data.len()].copy_from_slice(&s.data);
    }
    f
}

/// The functions the fake kernel exports, in name order (the export name table must be
/// sorted); ordinal = 1 + index.
pub const NT_EXPORTS: [&str; 6] = [
    "ExAllocatePool",
    "ExAllocatePoolWithTag",
    "ExFreePoolWithTag",
    "KeBugCheckEx",
    "KeInitializeEvent",
    "_wcsnicmp",
];

/// RVA of export `i` of the fake kernel: 16-byte stubs in .text.
pub fn nt_export_rva(i: usize) -> u32 {
    0x1000 + 0x10 * i as u32
}

/// A fake ntoskrnl.exe: .text with one stub per export, .rdata with the export directory,
/// .data.
pub fn fake_ntoskrnl(machine: Machine) -> Vec<u8> {
    let mut text = vec![0xCCu8; 0x100];
    for i in 0..NT_EXPORTS.len() {
        text[0x10 * i] = 0xC3;
    }
    // Export directory at .rdata (rva 0x2000): 40-byte header, then the three tables, then names.
    let base = 0x2000u32;
    let n = NT_EXPORTS.len();
    let mut e = vec![0u8; 0x400];
    let funcs = 40usize;
    let names = funcs + 4 * n;
    let ords = names + 4 * n;
    let mut strings = ords + 2 * n;
    let dll_name = strings;
    e[strings..strings + 12].copy_from_slice(b"ntoskrnl.exe");
    strings += 13;
    put32(&mut e, 12, base + dll_name as u32);
    put32(&mut e, 16, 1); // Base
    put32(&mut e, 20, n as u32);
    put32(&mut e, 24, n as u32);
    put32(&mut e, 28, base + funcs as u32);
    put32(&mut e, 32, base + names as u32);
    put32(&mut e, 36, base + ords as u32);
    for (i, name) in NT_EXPORTS.iter().enumerate() {
        put32(&mut e, funcs + 4 * i, nt_export_rva(i));
        put32(&mut e, names + 4 * i, base + strings as u32);
        put16(&mut e, ords + 2 * i, i as u16);
        e[strings..strings + name.len()].copy_from_slice(name.as_bytes());
        strings += name.len() + 1;
    }
    let sections = [
        SectionSpec {
            name: ".text",
            characteristics: CODE,
            pages: 1,
            data: text,
        },
        SectionSpec {
            name: ".rdata",
            characteristics: RDATA,
            pages: 1,
            data: e[..strings].to_vec(),
        },
        SectionSpec {
            name: ".data",
            characteristics: DATA,
            pages: 1,
            data: vec![0x11; 0x40],
        },
    ];
    build_pe(
        machine,
        &sections,
        0x1000,
        &[(0, base, strings as u32)],
        0x5E00_0001,
    )
}

/// The functions the GUID driver imports from ntoskrnl.exe, in IAT order.
pub const DRIVER_IMPORTS: [&str; 4] = [
    "ExAllocatePool",
    "_wcsnicmp",
    "ExFreePoolWithTag",
    "KeInitializeEvent",
];

/// Where the GUID driver keeps its import directory and IAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum ImportPlacement {
    /// Descriptors, INT and names in .rdata after the IAT: they survive load.
    InRdata,
    /// Descriptors, INT and names in INIT (discarded); IAT data directory kept.
    InInit,
    /// As `InInit`, and the IAT data directory is zeroed: only a scan can find the IAT.
    InInitNoIatDirectory,
}

/// Sections of the GUID driver: .text (0x1000), .rdata (0x2000, IAT first), .data (0x3000,
/// two pages), PAGE (0x5000), INIT (0x6000, discardable).
pub fn guid_driver(machine: Machine, placement: ImportPlacement) -> Vec<u8> {
    let ps = machine.ps();
    let iat = 0x2000u32;
    let n = DRIVER_IMPORTS.len();
    let dir_rva = if placement == ImportPlacement::InRdata {
        0x2100u32
    } else {
        0x6100
    };
    // Directory block: 2 descriptors (one + null), INT, hint/names, dll name.
    let mut d = vec![0u8; 0x300];
    let int = 40usize;
    let mut s = int + ps * (n + 1);
    let mut hint_names = Vec::new();
    for (i, name) in DRIVER_IMPORTS.iter().enumerate() {
        hint_names.push(dir_rva + s as u32);
        put16(&mut d, s, i as u16);
        d[s + 2..s + 2 + name.len()].copy_from_slice(name.as_bytes());
        s += align((2 + name.len() + 1) as u64, 2) as usize;
    }
    let dll = s;
    d[s..s + 12].copy_from_slice(b"ntoskrnl.exe");
    s += 13;
    put32(&mut d, 0, dir_rva + int as u32);
    put32(&mut d, 12, dir_rva + dll as u32);
    put32(&mut d, 16, iat);
    for (i, &hn) in hint_names.iter().enumerate() {
        putp(&mut d, int + ps * i, u64::from(hn), ps);
    }
    // The IAT on disk holds the same hint/name RVAs as the INT until the loader binds it.
    let mut rdata = vec![0u8; 0x100];
    for (i, &hn) in hint_names.iter().enumerate() {
        putp(&mut rdata, ps * i, u64::from(hn), ps);
    }
    let mut init = vec![0x90u8; 0x40];
    if placement == ImportPlacement::InRdata {
        rdata.extend_from_slice(&d[..s]);
    } else {
        init.resize(0x100, 0);
        init.extend_from_slice(&d[..s]);
    }
    let text: Vec<u8> = (0..0x200u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut data = vec![0u8; 0x1800];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let sections = [
        SectionSpec {
            name: ".text",
            characteristics: CODE,
            pages: 1,
            data: text,
        },
        SectionSpec {
            name: ".rdata",
            characteristics: RDATA,
            pages: 1,
            data: rdata,
        },
        SectionSpec {
            name: ".data",
            characteristics: DATA,
            pages: 2,
            data,
        },
        SectionSpec {
            name: "PAGE",
            characteristics: CODE,
            pages: 1,
            data: vec![0xAB; 0x80],
        },
        SectionSpec {
            name: "INIT",
            characteristics: CODE | IMAGE_SCN_MEM_DISCARDABLE,
            pages: 1,
            data: init,
        },
    ];
    let mut dirs = vec![(1usize, dir_rva, 40u32)];
    if placement != ImportPlacement::InInitNoIatDirectory {
        dirs.push((12, iat, (ps * (n + 1)) as u32));
    }
    build_pe(machine, &sections, 0x6000, &dirs, 0x5E5B_3A60)
}

/// A PE mapped the way the Windows loader maps it (loaded layout), with its IAT bound.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub bytes: Vec<u8>,
    /// (name, rva, virtual size, characteristics)
    pub sections: Vec<(String, u32, u32, u32)>,
    /// (slot rva, dll, function, value written)
    pub iat: Vec<(u32, String, String, u64)>,
    pub exports: Vec<(String, u32)>,
    /// The COFF header's TimeDateStamp and the optional header's CheckSum.
    pub timestamp: u32,
    pub checksum: u32,
}

/// Maps a FILE-layout PE: headers and sections to their RVAs, then binds every import by name
/// through `resolve(dll, name)` (writing the absolute address into the FirstThunk slot).
pub fn map_pe(file: &[u8], resolve: &dyn Fn(&str, &str) -> Option<u64>) -> Mapped {
    let pe = get32(file, 0x3C) as usize;
    let nsec = get16(file, pe + 6) as usize;
    let opt = pe + 24;
    let opt_size = get16(file, pe + 20) as usize;
    let pe64 = get16(file, opt) == 0x20B;
    let ps = if pe64 { 8 } else { 4 };
    let size_of_image = get32(file, opt + 56) as usize;
    let size_of_headers = get32(file, opt + 60) as usize;
    let dd = if pe64 { opt + 112 } else { opt + 96 };
    let mut img = vec![0u8; size_of_image];
    img[..size_of_headers.min(file.len())]
        .copy_from_slice(&file[..size_of_headers.min(file.len())]);
    let mut sections = Vec::new();
    for i in 0..nsec {
        let h = opt + opt_size + i * 40;
        let name = String::from_utf8_lossy(&file[h..h + 8])
            .trim_end_matches('\0')
            .to_string();
        let vsize = get32(file, h + 8);
        let rva = get32(file, h + 12);
        let raw_size = get32(file, h + 16) as usize;
        let raw_ptr = get32(file, h + 20) as usize;
        let n = raw_size
            .min(vsize as usize)
            .min(file.len().saturating_sub(raw_ptr));
        img[rva as usize..rva as usize + n].copy_from_slice(&file[raw_ptr..raw_ptr + n]);
        sections.push((name, rva, vsize, get32(file, h + 36)));
    }
    let mut exports = Vec::new();
    let (erva, esize) = (get32(file, dd), get32(file, dd + 4));
    if erva != 0 && esize != 0 {
        let e = erva as usize;
        let (nnames, funcs, names, ords) = (
            get32(&img, e + 24) as usize,
            get32(&img, e + 28) as usize,
            get32(&img, e + 32) as usize,
            get32(&img, e + 36) as usize,
        );
        for i in 0..nnames {
            let name = cstr(&img, get32(&img, names + 4 * i) as usize);
            let idx = get16(&img, ords + 2 * i) as usize;
            exports.push((name, get32(&img, funcs + 4 * idx)));
        }
    }
    let mut iat = Vec::new();
    let irva = get32(file, dd + 8) as usize;
    if irva != 0 {
        let mut d = irva;
        loop {
            let (oft, name, ft) = (
                get32(&img, d) as usize,
                get32(&img, d + 12) as usize,
                get32(&img, d + 16) as usize,
            );
            if oft == 0 && name == 0 && ft == 0 {
                break;
            }
            let dll = cstr(&img, name);
            let lookup = if oft != 0 { oft } else { ft };
            let mut i = 0;
            loop {
                let v = getp(&img, lookup + i * ps, ps);
                if v == 0 {
                    break;
                }
                let f = cstr(&img, v as usize + 2);
                let addr =
                    resolve(&dll, &f).unwrap_or_else(|| panic!("writer: cannot bind {dll}!{f}"));
                putp(&mut img, ft + i * ps, addr, ps);
                iat.push(((ft + i * ps) as u32, dll.clone(), f, addr));
                i += 1;
            }
            d += 20;
        }
    }
    Mapped {
        bytes: img,
        sections,
        iat,
        exports,
        timestamp: get32(file, pe + 8),
        checksum: get32(file, opt + 64),
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel address space

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86,
    X86Pae,
    X64,
    Arm64,
}

impl Arch {
    pub fn ps(self) -> usize {
        match self {
            Arch::X86 | Arch::X86Pae => 4,
            _ => 8,
        }
    }
    pub fn machine(self) -> Machine {
        match self {
            Arch::X86 | Arch::X86Pae => Machine::X86,
            Arch::X64 => Machine::X64,
            Arch::Arm64 => Machine::Arm64,
        }
    }
    /// Size of a large page (x86 without PAE maps 4 MB with a PDE; the others 2 MB).
    pub fn large(self) -> u64 {
        if self == Arch::X86 {
            4 << 20
        } else {
            2 << 20
        }
    }
}

/// How a 4 KB virtual page is backed.
#[derive(Clone)]
enum Backing {
    /// Valid PTE, physical page in the dump.
    Present(Vec<u8>),
    /// Valid PTE, but the dump leaves the physical page out.
    NotInDump,
    /// PTE not valid (paged out or discarded).
    PagedOut,
    /// Transition PTE (valid bit clear, bit 11 set): the page is still in RAM and in the dump.
    Transition(Vec<u8>),
}

/// A large-page region: pages not listed are left out of the dump.
struct Large {
    va: u64,
    pages: BTreeMap<u64, Vec<u8>>,
}

pub struct Kernel {
    pub arch: Arch,
    pages: BTreeMap<u64, Backing>,
    large: Vec<Large>,
    /// Self-referencing top-level entries to create ("page-table loops"), by VA.
    loops: Vec<u64>,
    /// 1 GB regions (x64) whose every 4 KB page maps the same physical page: (va, page).
    aliases: Vec<(u64, Vec<u8>)>,
    /// First PFN to allocate (the sparse benchmark puts its pages high).
    pub first_pfn: u64,
}

impl Kernel {
    pub fn new(arch: Arch) -> Kernel {
        Kernel {
            arch,
            pages: BTreeMap::new(),
            large: Vec::new(),
            loops: Vec::new(),
            aliases: Vec::new(),
            first_pfn: 0x10,
        }
    }

    /// Declares a large-page region at `va` (aligned to the large page size).
    pub fn large_region(&mut self, va: u64) {
        assert_eq!(va % self.arch.large(), 0);
        self.large.push(Large {
            va,
            pages: BTreeMap::new(),
        });
    }

    /// Writes bytes at `va`, creating present pages as needed.
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let cur = va + done as u64;
            let page = cur & !(PAGE - 1);
            let o = (cur - page) as usize;
            let n = (PAGE as usize - o).min(bytes.len() - done);
            let large_size = self.arch.large();
            let buf = if let Some(l) = self
                .large
                .iter_mut()
                .find(|l| cur >= l.va && cur < l.va + large_size)
            {
                l.pages
                    .entry(page)
                    .or_insert_with(|| vec![0; PAGE as usize])
            } else {
                let b = self
                    .pages
                    .entry(page)
                    .or_insert_with(|| Backing::Present(vec![0; PAGE as usize]));
                match b {
                    Backing::Present(v) | Backing::Transition(v) => v,
                    _ => panic!("writer: write to a page marked absent"),
                }
            };
            buf[o..o + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    pub fn write_ptr(&mut self, va: u64, v: u64) {
        let ps = self.arch.ps();
        self.write(va, &v.to_le_bytes()[..ps]);
    }

    /// The page at `va` is valid in the page tables but left out of the dump.
    pub fn not_in_dump(&mut self, va: u64) {
        self.pages.insert(va & !(PAGE - 1), Backing::NotInDump);
    }

    /// The page at `va` has a non-valid PTE (paged out, discarded).
    pub fn paged_out(&mut self, va: u64) {
        self.pages.insert(va & !(PAGE - 1), Backing::PagedOut);
    }

    /// The page at `va` (already written) is mapped through a transition PTE.
    pub fn make_transition(&mut self, va: u64) {
        let p = va & !(PAGE - 1);
        if let Some(Backing::Present(v)) = self.pages.remove(&p) {
            self.pages.insert(p, Backing::Transition(v));
        }
    }

    /// Makes the top-level entry covering `va` point at the top-level table itself.
    pub fn page_table_loop(&mut self, va: u64) {
        self.loops.push(va);
    }

    /// Maps the 1 GB at `va` (1 GB aligned, x64) onto ONE physical page holding `page`: one page
    /// directory whose 512 entries all point at one page table whose 512 entries all point at
    /// the page. Three physical pages describe 262,144 virtual ones.
    pub fn alias_gigabyte(&mut self, va: u64, page: Vec<u8>) {
        assert_eq!(self.arch, Arch::X64, "aliasing is built for x64 only");
        assert_eq!(va % (1 << 30), 0);
        assert_eq!(page.len(), PAGE as usize);
        self.aliases.push((va, page));
    }

    /// Places a mapped image at `base`: every page present, except the pages of discardable
    /// sections (paged out, as after DriverEntry) and the pages listed.
    pub fn place_image(
        &mut self,
        base: u64,
        m: &Mapped,
        paged_out_rvas: &[u32],
        not_in_dump_rvas: &[u32],
    ) {
        self.write(base, &m.bytes);
        for (_, rva, vsize, ch) in &m.sections {
            if ch & IMAGE_SCN_MEM_DISCARDABLE != 0 {
                let mut r = u64::from(*rva);
                while r < u64::from(*rva) + u64::from(*vsize) {
                    self.paged_out(base + r);
                    r += PAGE;
                }
            }
        }
        for &r in paged_out_rvas {
            self.paged_out(base + u64::from(r));
        }
        for &r in not_in_dump_rvas {
            self.not_in_dump(base + u64::from(r));
        }
    }
}

/// Physical memory being assembled.
struct Phys {
    pages: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl Phys {
    fn alloc(&mut self) -> u64 {
        let p = self.next;
        self.next += 1;
        self.pages.insert(p, vec![0; PAGE as usize]);
        p
    }
    fn rd(&self, pa: u64, ps: usize) -> u64 {
        let pg = &self.pages[&(pa / PAGE)];
        getp(pg, (pa % PAGE) as usize, ps)
    }
    fn wr(&mut self, pa: u64, v: u64, ps: usize) {
        let pg = self.pages.get_mut(&(pa / PAGE)).expect("page table page");
        putp(pg, (pa % PAGE) as usize, v, ps);
    }
}

/// Result of building: physical pages plus the directory table base for the header.
pub struct Built {
    pub pages: BTreeMap<u64, Vec<u8>>,
    pub dtb: u64,
}

impl Kernel {
    /// Allocates physical memory and writes the page tables (§5 layouts).
    pub fn build(&self) -> Built {
        let arch = self.arch;
        let mut ph = Phys {
            pages: BTreeMap::new(),
            next: self.first_pfn,
        };
        // Root: x86 one page directory; PAE a 32-byte aligned PDPT inside a page (at 0x2e0,
        // like the Win7 LiveKD header's 0x...2e0) plus its four page directories; x64/ARM64 a
        // top-level table.
        let root_pfn = ph.alloc();
        let dtb = match arch {
            Arch::X86Pae => {
                let pdpt = root_pfn * PAGE + 0x2E0;
                for i in 0..4 {
                    let pd = ph.alloc();
                    ph.wr(pdpt + i * 8, (pd * PAGE) | 1, 8);
                }
                pdpt
            }
            // A PCID in the low bits must be masked by the reader (§1.1).
            Arch::X64 => (root_pfn * PAGE) | 0x2,
            _ => root_pfn * PAGE,
        };
        let root = dtb & !0xFFF;
        // Table descriptors: present + writable on x86/x64, 0b11 (table) on ARM64.
        let table_flags: u64 = 3;
        // Walks to the table at `depth` levels below the root for `va`, creating tables.
        let levels: Vec<u32> = match arch {
            Arch::X86 => vec![22, 12],
            Arch::X86Pae => vec![30, 21, 12],
            _ => vec![39, 30, 21, 12],
        };
        let ps = if arch == Arch::X86 { 4 } else { 8 };
        let index = |va: u64, shift: u32| -> u64 {
            if arch == Arch::X86 {
                (va >> shift) & 0x3FF
            } else if arch == Arch::X86Pae && shift == 30 {
                (va >> 30) & 3
            } else {
                (va >> shift) & 0x1FF
            }
        };
        let entry_addr = |ph: &mut Phys, va: u64, stop_shift: u32| -> u64 {
            let mut table = if arch == Arch::X86Pae { dtb } else { root };
            for &shift in &levels {
                let e_pa = table + index(va, shift) * ps as u64;
                if shift == stop_shift {
                    return e_pa;
                }
                let mut e = ph.rd(e_pa, ps);
                if e & 1 == 0 {
                    let t = ph.alloc();
                    e = (t * PAGE) | table_flags;
                    ph.wr(e_pa, e, ps);
                }
                let mask = if ps == 4 {
                    0xFFFF_F000
                } else {
                    0x0000_FFFF_FFFF_F000
                };
                table = e & mask;
            }
            unreachable!()
        };
        for (&va, b) in &self.pages {
            let e_pa = entry_addr(&mut ph, va, 12);
            let pte = match b {
                Backing::Present(data) => {
                    let p = ph.alloc();
                    ph.pages.insert(p, data.clone());
                    (p * PAGE) | if arch == Arch::Arm64 { 0x403 } else { 0x3 }
                }
                Backing::NotInDump => {
                    let p = ph.alloc();
                    ph.pages.remove(&p);
                    (p * PAGE) | if arch == Arch::Arm64 { 0x403 } else { 0x3 }
                }
                // A pagefile PTE: valid bit, prototype and transition bits clear.
                Backing::PagedOut => {
                    0x0000_0000_1234_0000 & if ps == 4 { 0xFFFF_FFFF } else { u64::MAX } | 0x80
                }
                Backing::Transition(data) => {
                    let p = ph.alloc();
                    ph.pages.insert(p, data.clone());
                    (p * PAGE) | 0x800
                }
            };
            ph.wr(e_pa, pte, ps);
        }
        for l in &self.large {
            let pages_per = arch.large() / PAGE;
            let first = align(ph.next, pages_per);
            ph.next = first + pages_per;
            let stop = if arch == Arch::X86 { 22 } else { 21 };
            let e_pa = entry_addr(&mut ph, l.va, stop);
            let pa = first * PAGE;
            let e = match arch {
                Arch::Arm64 => pa | 0x401,
                _ => pa | 0x83,
            };
            ph.wr(e_pa, e, ps);
            for (&va, data) in &l.pages {
                ph.pages.insert(first + (va - l.va) / PAGE, data.clone());
            }
        }
        for (va, page) in &self.aliases {
            let data = ph.alloc();
            ph.pages.insert(data, page.clone());
            let pt = ph.alloc();
            let pd = ph.alloc();
            for i in 0..512 {
                ph.wr(pt * PAGE + i * 8, (data * PAGE) | 3, 8);
                ph.wr(pd * PAGE + i * 8, (pt * PAGE) | 3, 8);
            }
            let e_pa = entry_addr(&mut ph, *va, 30);
            ph.wr(e_pa, (pd * PAGE) | 3, 8);
        }
        for &va in &self.loops {
            let e_pa =
                (if arch == Arch::X86Pae { dtb } else { root }) + index(va, levels[0]) * ps as u64;
            ph.wr(e_pa, root | 3, ps);
        }
        Built {
            pages: ph.pages,
            dtb,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dump files (§1.1, §1.2, §1.4)

/// Header values the scenario chooses.
#[derive(Debug, Clone)]
pub struct HeaderSpec {
    pub arch: Arch,
    pub build: u32,
    pub processors: u32,
    pub ps_loaded_module_list: u64,
    /// `None` writes the `PAGE` fill (unset).
    pub kdbg: Option<u64>,
    pub bugcheck: (u32, [u64; 4]),
    pub dump_type: u32,
    /// SystemTime (FILETIME) and SystemUpTime (100 ns); `None` leaves the `PAGE` fill.
    pub system_time: Option<u64>,
    pub up_time: Option<u64>,
    /// The Comment; `None` writes "drvaudit test writer".
    pub comment: Option<String>,
}

const PAGE_FILL: [u8; 4] = *b"PAGE";

fn filled(len: usize) -> Vec<u8> {
    PAGE_FILL.iter().copied().cycle().take(len).collect()
}

/// The Comment, NUL-terminated, at most 127 characters.
fn comment_bytes(h: &HeaderSpec) -> Vec<u8> {
    let mut c = h
        .comment
        .clone()
        .unwrap_or_else(|| "drvaudit test writer".into())
        .into_bytes();
    c.truncate(127);
    c.push(0);
    c
}

/// The fixed header with every field the reader may look at (run descriptor left as fill).
fn header(h: &HeaderSpec, dtb: u64, required: u64) -> Vec<u8> {
    let wide = h.arch.ps() == 8;
    let mut b = filled(if wide { 0x2000 } else { 0x1000 });
    b[0..4].copy_from_slice(b"PAGE");
    if wide {
        b[4..8].copy_from_slice(b"DU64");
        put32(&mut b, 0x8, 0xF);
        put32(&mut b, 0xC, h.build);
        put64(&mut b, 0x10, dtb);
        put64(&mut b, 0x18, 0xFFFF_F800_0DEA_D000);
        put64(&mut b, 0x20, h.ps_loaded_module_list);
        put64(&mut b, 0x28, 0);
        put32(
            &mut b,
            0x30,
            if h.arch == Arch::Arm64 {
                0xAA64
            } else {
                0x8664
            },
        );
        put32(&mut b, 0x34, h.processors);
        put32(&mut b, 0x38, h.bugcheck.0);
        for (i, p) in h.bugcheck.1.iter().enumerate() {
            put64(&mut b, 0x40 + 8 * i, *p);
        }
        if let Some(k) = h.kdbg {
            put64(&mut b, 0x80, k);
        }
        put32(&mut b, 0xF98, h.dump_type);
        put64(&mut b, 0xFA0, required);
        let c = comment_bytes(h);
        b[0xFB0..0xFB0 + c.len()].copy_from_slice(&c);
        put32(&mut b, 0x1038, 0);
        if let Some(t) = h.system_time {
            put64(&mut b, 0xFA8, t);
        }
        if let Some(t) = h.up_time {
            put64(&mut b, 0x1030, t);
        }
    } else {
        b[4..8].copy_from_slice(b"DUMP");
        put32(&mut b, 0x8, 0xF);
        put32(&mut b, 0xC, h.build);
        put32(&mut b, 0x10, dtb as u32);
        put32(&mut b, 0x14, 0x8DEA_D000);
        put32(&mut b, 0x18, h.ps_loaded_module_list as u32);
        put32(&mut b, 0x1C, 0);
        put32(&mut b, 0x20, 0x14C);
        put32(&mut b, 0x24, h.processors);
        put32(&mut b, 0x28, h.bugcheck.0);
        for (i, p) in h.bugcheck.1.iter().enumerate() {
            put32(&mut b, 0x2C + 4 * i, *p as u32);
        }
        b[0x5C] = u8::from(h.arch == Arch::X86Pae);
        b[0x5D] = 0;
        if let Some(k) = h.kdbg {
            put32(&mut b, 0x60, k as u32);
        }
        let c = comment_bytes(h);
        b[0x820..0x820 + c.len()].copy_from_slice(&c);
        put32(&mut b, 0xF88, h.dump_type);
        // DUMP_HEADER32 keeps SystemUpTime (0xFB8) before SystemTime (0xFC0).
        if let Some(t) = h.up_time {
            put64(&mut b, 0xFB8, t);
        }
        if let Some(t) = h.system_time {
            put64(&mut b, 0xFC0, t);
        }
        put64(&mut b, 0xFA0, required);
    }
    b
}

/// Consecutive PFN runs of the present pages.
fn runs(pages: &BTreeMap<u64, Vec<u8>>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &p in pages.keys() {
        match out.last_mut() {
            Some((b, n)) if *b + *n == p => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

fn bitmap(pages: &BTreeMap<u64, Vec<u8>>, bits: u64) -> Vec<u8> {
    let mut bm = vec![0u8; bits.div_ceil(8) as usize];
    for &p in pages.keys() {
        bm[(p / 8) as usize] |= 1 << (p % 8);
    }
    bm
}

/// Encodes a dump file of `h.dump_type` from built physical memory.
pub fn encode(h: &HeaderSpec, built: &Built) -> Vec<u8> {
    let pages = &built.pages;
    let wide = h.arch.ps() == 8;
    let mut out = header(h, built.dtb, 0);
    let max_pfn = pages.keys().next_back().copied().unwrap_or(0);
    match h.dump_type {
        // DumpType 1: PHYSICAL_MEMORY_DESCRIPTOR in the header, pages packed in run order.
        1 => {
            let rs = runs(pages);
            let total: u64 = rs.iter().map(|r| r.1).sum();
            if wide {
                assert!(rs.len() <= 42);
                put32(&mut out, 0x88, rs.len() as u32);
                put32(&mut out, 0x8C, 0);
                put64(&mut out, 0x90, total);
                for (i, (b, n)) in rs.iter().enumerate() {
                    put64(&mut out, 0x98 + 16 * i, *b);
                    put64(&mut out, 0xA0 + 16 * i, *n);
                }
            } else {
                assert!(rs.len() <= 86);
                put32(&mut out, 0x64, rs.len() as u32);
                put32(&mut out, 0x68, total as u32);
                for (i, (b, n)) in rs.iter().enumerate() {
                    put32(&mut out, 0x6C + 8 * i, *b as u32);
                    put32(&mut out, 0x70 + 8 * i, *n as u32);
                }
            }
            for data in pages.values() {
                out.extend_from_slice(data);
            }
        }
        // DumpType 2 (x86): SUMMARY_DUMP32 at 0x1000, bitmap of ULONGs at 0x1020.
        2 => {
            assert!(!wide);
            let bits = max_pfn + 1;
            let bm = bitmap(pages, align(bits, 32));
            let header_size = align(0x1020 + bm.len() as u64, PAGE);
            let mut s = vec![0u8; (header_size - 0x1000) as usize];
            s[0..4].copy_from_slice(b"SDMP");
            s[4..8].copy_from_slice(b"DUMP");
            put32(&mut s, 0x8, 0);
            put32(&mut s, 0xC, header_size as u32);
            put32(&mut s, 0x10, bits as u32);
            put32(&mut s, 0x14, pages.len() as u32);
            put32(&mut s, 0x18, bits as u32);
            s[0x20..0x20 + bm.len()].copy_from_slice(&bm);
            out.extend_from_slice(&s);
            for data in pages.values() {
                out.extend_from_slice(data);
            }
        }
        // DumpType 5/6: BITMAP_DUMP after the header; FirstPage right after the bitmap, NOT
        // page aligned (as in the real bmp.dmp, §1.4.3).
        5 | 6 => {
            let at = out.len();
            let bits = max_pfn + 1;
            let bm = bitmap(pages, bits);
            let first = at as u64 + 0x38 + bm.len() as u64;
            let mut s = vec![0u8; 0x38];
            s[0..4].copy_from_slice(if h.dump_type == 5 { b"FDMP" } else { b"SDMP" });
            s[4..8].copy_from_slice(b"DUMP");
            put64(&mut s, 0x20, first);
            put64(&mut s, 0x28, pages.len() as u64);
            put64(&mut s, 0x30, bits);
            out.extend_from_slice(&s);
            out.extend_from_slice(&bm);
            for data in pages.values() {
                out.extend_from_slice(data);
            }
        }
        // DumpType 8/9/0xA: RDMP header at 0x2000, ranges at 0x2030, pages from FirstPageOffset.
        8..=0xA => {
            assert!(wide);
            let rs = runs(pages);
            let list_end = 0x2030 + 16 * (rs.len() as u64 + 1);
            let first = align(list_end, PAGE);
            let metadata = first - 0x2020;
            let mut s = vec![0u8; (first - 0x2000) as usize];
            put32(&mut s, 0, 0x40);
            s[4..8].copy_from_slice(b"RDMP");
            s[8..12].copy_from_slice(b"DUMP");
            put64(&mut s, 0x10, metadata);
            put64(&mut s, 0x18, first);
            if h.dump_type == 0xA {
                put32(&mut s, 0x20, rs.len() as u32);
                put64(&mut s, 0x28, pages.len() as u64);
            }
            for (i, (b, n)) in rs.iter().enumerate() {
                put64(&mut s, 0x30 + 16 * i, *b);
                put64(&mut s, 0x38 + 16 * i, *n);
            }
            out.extend_from_slice(&s);
            for data in pages.values() {
                out.extend_from_slice(data);
            }
        }
        other => panic!("writer: DumpType {other} not supported"),
    }
    let len = out.len() as u64;
    put64(&mut out, 0xFA0, len);
    out
}

/// Writes a SPARSE DumpType 5 file for the benchmark: every PFN below `total_pfns` is marked
/// present, the file is extended with `set_len` (holes read as zero), and only the built pages
/// are written at their packed offsets.
pub fn write_sparse_bitmap(
    path: &std::path::Path,
    h: &HeaderSpec,
    built: &Built,
    total_pfns: u64,
) -> std::io::Result<u64> {
    let mut head = header(h, built.dtb, 0);
    let bm = vec![0xFFu8; total_pfns.div_ceil(8) as usize];
    let first = head.len() as u64 + 0x38 + bm.len() as u64;
    let len = first + total_pfns * PAGE;
    put64(&mut head, 0xFA0, len);
    let mut s = vec![0u8; 0x38];
    s[0..4].copy_from_slice(b"FDMP");
    s[4..8].copy_from_slice(b"DUMP");
    put64(&mut s, 0x20, first);
    put64(&mut s, 0x28, total_pfns);
    put64(&mut s, 0x30, total_pfns);
    let mut f = std::fs::File::create(path)?;
    f.set_len(len)?;
    f.write_all(&head)?;
    f.write_all(&s)?;
    f.write_all(&bm)?;
    for (&pfn, data) in &built.pages {
        assert!(pfn < total_pfns);
        f.seek(SeekFrom::Start(first + pfn * PAGE))?;
        f.write_all(data)?;
    }
    Ok(len)
}

// ---------------------------------------------------------------------------------------------
// Kernel structures: LDR entries, KDBG, pool tracker tables

/// One module to put in PsLoadedModuleList.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    pub base: u64,
    pub size: u32,
    pub full: String,
    pub name: String,
    /// The image's TimeDateStamp and CheckSum, written into the loader entry.
    pub time_date_stamp: u32,
    pub checksum: u32,
}

/// Writes KLDR_DATA_TABLE_ENTRYs (§4) and their names at `entries_va` (one 0x100 slot each)
/// and `names_va` (0x200 per module), linked into a list whose head is at `head`.
pub fn write_module_list(
    k: &mut Kernel,
    head: u64,
    entries_va: u64,
    names_va: u64,
    mods: &[ModuleSpec],
) {
    let ps = k.arch.ps();
    let wide = ps == 8;
    let (base_o, size_o, full_o, name_o, len) = if wide {
        (0x30, 0x40, 0x48, 0x58, 0xA0)
    } else {
        (0x18, 0x20, 0x24, 0x2C, 0x5C)
    };
    // CheckSum and TimeDateStamp (§4): x64 0x78 and 0x9C (Win10/11); x86 0x40 and 0x58 (Win10)
    // or 0x44 (XP..8.1). The writer does not know the build, so x86 entries hold the stamp at
    // both places; the reader takes the one its build uses.
    let (sum_o, stamp_o): (usize, &[usize]) = if wide {
        (0x78, &[0x9C])
    } else {
        (0x40, &[0x44, 0x58])
    };
    let n = mods.len() as u64;
    let entry = |i: u64| entries_va + i * 0x100;
    k.write_ptr(head, if n == 0 { head } else { entry(0) });
    k.write_ptr(head + ps as u64, if n == 0 { head } else { entry(n - 1) });
    for (i, m) in mods.iter().enumerate() {
        let i = i as u64;
        let mut e = vec![0u8; len];
        putp(&mut e, 0, if i + 1 < n { entry(i + 1) } else { head }, ps);
        putp(&mut e, ps, if i == 0 { head } else { entry(i - 1) }, ps);
        putp(&mut e, base_o, m.base, ps);
        put32(&mut e, size_o, m.size);
        put32(&mut e, sum_o, m.checksum);
        for &o in stamp_o {
            put32(&mut e, o, m.time_date_stamp);
        }
        let full_va = names_va + i * 0x200;
        let name_va = full_va + 0x100;
        let full: Vec<u8> = m
            .full
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let name: Vec<u8> = m
            .name
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for (at, s, va) in [(full_o, &full, full_va), (name_o, &name, name_va)] {
            put16(&mut e, at, s.len() as u16);
            put16(&mut e, at + 2, s.len() as u16 + 2);
            putp(&mut e, at + if wide { 8 } else { 4 }, va, ps);
        }
        k.write(entry(i), &e);
        k.write(full_va, &full);
        k.write(name_va, &name);
    }
}

/// Patches the Flink of module entry `i` (for cycle tests).
pub fn set_flink(k: &mut Kernel, entries_va: u64, i: u64, to: u64) {
    k.write_ptr(entries_va + i * 0x100, to);
}

/// Writes a decoded KDDEBUGGER_DATA64 (§2.2) at `va`.
pub fn write_kdbg(
    k: &mut Kernel,
    va: u64,
    size: u32,
    kern_base: u64,
    ps_loaded: u64,
    pool_track_table_var: u64,
) {
    let mut b = vec![0u8; size as usize];
    b[0x10..0x14].copy_from_slice(b"KDBG");
    put32(&mut b, 0x14, size);
    put64(&mut b, 0x18, kern_base);
    put64(&mut b, 0x48, ps_loaded);
    put64(&mut b, 0x1B8, pool_track_table_var);
    if size >= 0x368 {
        put64(&mut b, 0x360, 0xFFFF_F680_0000_0000);
    }
    k.write(va, &b);
}

/// Tracker counters of one tag in one table.
#[derive(Debug, Clone, Copy)]
pub struct TagCounts {
    pub tag: u32,
    pub np: (u64, u64, u64),
    pub p: (u64, u64, u64),
}

/// Entry size and field offsets per layout (§3.1): (size, [np allocs, frees, bytes],
/// [p allocs, frees, bytes]) with the width of each.
pub type Fields = [(usize, usize); 3];

pub fn tracker_layout(arch: Arch, build: u32) -> (usize, Fields, Fields) {
    let x86 = arch.ps() == 4;
    if x86 && build < 16299 {
        (
            0x1C,
            [(4, 4), (8, 4), (0xC, 4)],
            [(0x10, 4), (0x14, 4), (0x18, 4)],
        )
    } else if x86 {
        (
            0x30,
            [(8, 8), (0x10, 8), (4, 4)],
            [(0x20, 8), (0x28, 8), (0x18, 4)],
        )
    } else if build < 16299 {
        (
            0x28,
            [(4, 4), (8, 4), (0x10, 8)],
            [(0x18, 4), (0x1C, 4), (0x20, 8)],
        )
    } else if build < 26100 {
        (
            0x38,
            [(0x10, 8), (0x18, 8), (8, 8)],
            [(0x28, 8), (0x30, 8), (0x20, 8)],
        )
    } else {
        (
            0x50,
            [(0x10, 8), (0x18, 8), (8, 8)],
            [(0x28, 8), (0x30, 8), (0x20, 8)],
        )
    }
}

/// The tracker hash (§3.2): 40543 × tag folded, masked, linear probing.
pub fn tracker_slot(tag: u32, mask: u64, taken: &[bool]) -> u64 {
    let t = u64::from(tag & 0x7FFF_FFFF).wrapping_mul(40543);
    let mut i = (t ^ (t >> 32)) & mask;
    while taken[i as usize] {
        i = (i + 1) & mask;
    }
    i
}

/// The slot of each tag when `tags` are inserted in order into an empty table of `entries`.
pub fn tracker_slots(entries: u64, tags: &[TagCounts]) -> Vec<u64> {
    let mask = entries - 2;
    let mut taken = vec![false; entries as usize];
    tags.iter()
        .map(|c| {
            let i = tracker_slot(c.tag, mask, &taken);
            taken[i as usize] = true;
            i
        })
        .collect()
}

/// Builds a tracker table of `entries` entries (2^n + 1) with `tags` at their hash slots (the
/// same slots in every table, as the kernel keeps them), followed by one garbage entry.
pub fn tracker_table(arch: Arch, build: u32, entries: u64, tags: &[TagCounts]) -> Vec<u8> {
    let slots = tracker_slots(entries, tags);
    tracker_table_at(arch, build, entries, &slots, tags, true)
}

/// A per-processor table: each tag the global table holds at the global table's slot (the
/// kernel checks an empty local slot against the global key there), the others inserted after.
pub fn tracker_table_like(
    arch: Arch,
    build: u32,
    entries: u64,
    global: &[TagCounts],
    local: &[TagCounts],
) -> Vec<u8> {
    let gslots = tracker_slots(entries, global);
    let mut taken = vec![false; entries as usize];
    for &i in &gslots {
        taken[i as usize] = true;
    }
    let slots: Vec<u64> = local
        .iter()
        .map(|c| match global.iter().position(|g| g.tag == c.tag) {
            Some(j) => gslots[j],
            None => {
                let i = tracker_slot(c.tag, entries - 2, &taken);
                taken[i as usize] = true;
                i
            }
        })
        .collect();
    tracker_table_at(arch, build, entries, &slots, local, true)
}

/// A tracker table with `tags[i]` at `slots[i]`, optionally followed by one garbage entry.
pub fn tracker_table_at(
    arch: Arch,
    build: u32,
    entries: u64,
    slots: &[u64],
    tags: &[TagCounts],
    garbage_after: bool,
) -> Vec<u8> {
    let (size, np, p) = tracker_layout(arch, build);
    let mut t = vec![0u8; size * (entries as usize + usize::from(garbage_after))];
    for (c, &i) in tags.iter().zip(slots) {
        let e = i as usize * size;
        put32(&mut t, e, c.tag);
        for (fields, vals) in [(np, c.np), (p, c.p)] {
            for ((at, w), v) in fields.iter().zip([vals.0, vals.1, vals.2]) {
                if *w == 4 {
                    put32(&mut t, e + at, v as u32);
                } else {
                    put64(&mut t, e + at, v);
                }
            }
        }
    }
    // After the last entry: bytes no tracker entry can hold (padding and counters all ones).
    if garbage_after {
        let end = t.len();
        t[end - size..].fill(0xFF);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Complete scenarios used by the tests and the benchmark

pub const GUID_DRIVER: &str = "{5E5B3A60-1C2D-4E8F-9A0B-7C6D5E4F3A21}.sys";
pub const GUID_DRIVER_PATH: &str =
    r"\??\C:\Windows\Temp\{5E5B3A60-1C2D-4E8F-9A0B-7C6D5E4F3A21}.sys";
pub const NT_PATH: &str = r"\SystemRoot\system32\ntoskrnl.exe";

/// Where the `i`-th extra driver of a scenario is loaded (2 MiB apart, clear of the rest).
pub fn extra_base(arch: Arch, i: usize) -> u64 {
    let first = if arch.ps() == 8 {
        0xFFFF_F800_2000_0000
    } else {
        0x8200_0000
    };
    first + 0x20_0000 * i as u64
}

/// Kernel addresses per pointer size: (ntoskrnl, driver, data page, pool large page).
pub fn layout_of(arch: Arch) -> (u64, u64, u64, u64) {
    if arch.ps() == 8 {
        (
            0xFFFF_F800_1000_0000,
            0xFFFF_F800_1020_0000,
            0xFFFF_F800_1040_0000,
            0xFFFF_F800_1060_0000,
        )
    } else {
        (0x8040_0000, 0x8060_0000, 0x8070_0000, 0x80C0_0000)
    }
}

pub const TAG_NONE: u32 = 0x656E_6F4E;
pub const TAG_DDK: u32 = 0x206B_6444;
pub const TAG_BONE: u32 = 0x656E_6F42;
pub const TAG_PROC: u32 = 0x636F_7250;

/// Tags in the global table (Bone carries the PROTECTED_POOL bit, which the reader strips).
pub fn global_tags() -> Vec<TagCounts> {
    vec![
        TagCounts {
            tag: TAG_NONE,
            np: (120, 20, 0x19000),
            p: (0, 0, 0),
        },
        TagCounts {
            tag: TAG_DDK,
            np: (5, 1, 0x400),
            p: (30, 10, 0x2800),
        },
        TagCounts {
            tag: TAG_BONE | 0x8000_0000,
            np: (0, 0, 0),
            p: (7, 2, 0x500),
        },
        TagCounts {
            tag: TAG_PROC,
            np: (50, 10, 0x8000),
            p: (0, 0, 0),
        },
    ]
}

/// Tags in the second processor's table.
pub fn cpu1_tags() -> Vec<TagCounts> {
    vec![
        TagCounts {
            tag: TAG_NONE,
            np: (30, 5, 0x6400),
            p: (0, 0, 0),
        },
        TagCounts {
            tag: TAG_DDK,
            np: (0, 0, 0),
            p: (3, 1, 0x100),
        },
    ]
}

pub const TRACKER_ENTRIES: u64 = 129;

/// What a scenario varies.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub arch: Arch,
    pub dump_type: u32,
    pub build: u32,
    pub processors: u32,
    pub placement: ImportPlacement,
    /// Point the KeInitializeEvent slot at ExFreePoolWithTag (an IAT hook).
    pub hook: bool,
    /// Leave the header's KdDebuggerDataBlock as `PAGE` fill (forces the signature scan).
    pub kdbg_unset: bool,
    /// Store PoolTrackTableSize before nt!PoolTrackTable (else 0 there, as on ARM64 22000).
    pub size_variable: bool,
    /// Replace the built-in images with fixture files (driver, kernel stub).
    pub images: Option<(Vec<u8>, Vec<u8>)>,
    /// Zero the driver's import descriptors in memory after binding (a wiped directory).
    pub wipe_import_directory: bool,
    /// Zero the driver's IAT data directory entry in its in-memory header.
    pub wipe_iat_directory: bool,
    /// Further ordinary drivers (module name, file bytes), loaded after the GUID driver; their
    /// imports from modules other than ntoskrnl are bound to addresses no module owns.
    pub extra_drivers: Vec<(String, Vec<u8>)>,
    /// The global tracker table's tags, instead of [`global_tags`].
    pub tags: Option<Vec<TagCounts>>,
    /// The second processor's tags, instead of [`cpu1_tags`] (placed at the global table's slots
    /// for the tags both hold, as the kernel keeps them).
    pub cpu1_tags: Option<Vec<TagCounts>>,
    /// Bugcheck code and parameters (default 0xE2 MANUALLY_INITIATED_CRASH, zeros).
    pub bugcheck: (u32, [u64; 4]),
    /// SystemTime and SystemUpTime written in the header (default: the `PAGE` fill).
    pub system_time: Option<u64>,
    pub up_time: Option<u64>,
    /// The header Comment (default "drvaudit test writer").
    pub comment: Option<String>,
}

/// Everything the tests compare against.
pub struct Written {
    pub kernel: Kernel,
    pub header: HeaderSpec,
    pub nt: Mapped,
    pub driver: Mapped,
    pub modules: Vec<ModuleSpec>,
    /// Pages of the driver that are missing from the dump (rva).
    pub driver_missing: Vec<u32>,
    pub entries_va: u64,
    pub data_va: u64,
}

impl Scenario {
    pub fn new(
        arch: Arch,
        dump_type: u32,
        build: u32,
        processors: u32,
        placement: ImportPlacement,
    ) -> Scenario {
        Scenario {
            arch,
            dump_type,
            build,
            processors,
            placement,
            hook: false,
            kdbg_unset: false,
            size_variable: true,
            images: None,
            wipe_import_directory: false,
            wipe_iat_directory: false,
            extra_drivers: Vec::new(),
            tags: None,
            cpu1_tags: None,
            bugcheck: (0xE2, [0, 0, 0, 0]),
            system_time: None,
            up_time: None,
            comment: None,
        }
    }

    /// Assembles the kernel address space of the scenario.
    pub fn kernel(&self) -> Written {
        let arch = self.arch;
        let ps = arch.ps() as u64;
        let (nt_base, drv_base, data, pool) = layout_of(arch);
        let (drv_file, nt_file) = match &self.images {
            Some((d, n)) => (d.clone(), n.clone()),
            None => (
                guid_driver(arch.machine(), self.placement),
                fake_ntoskrnl(arch.machine()),
            ),
        };
        let nt = map_pe(&nt_file, &|_, _| None);
        let nt_exports = nt.exports.clone();
        let mut driver = map_pe(&drv_file, &|dll, name| {
            assert!(
                dll.eq_ignore_ascii_case("ntoskrnl.exe"),
                "writer binds ntoskrnl imports only, not {dll}"
            );
            nt_exports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, rva)| nt_base + u64::from(*rva))
        });
        if self.hook {
            let target = nt_exports
                .iter()
                .find(|(n, _)| n == "ExFreePoolWithTag")
                .unwrap()
                .1;
            let slot = driver
                .iat
                .iter_mut()
                .find(|s| s.2 == "KeInitializeEvent")
                .unwrap();
            slot.3 = nt_base + u64::from(target);
            let at = slot.0 as usize;
            putp(&mut driver.bytes, at, slot.3, arch.ps());
        }
        // Data directories: after the optional header's fixed part (96 bytes PE32, 112 PE32+).
        let dd = {
            let b = &driver.bytes;
            let opt = get32(b, 0x3C) as usize + 24;
            opt + if get16(b, opt) == 0x20B { 112 } else { 96 }
        };
        if self.wipe_import_directory {
            // Zero the descriptors (up to and including the null one); the IAT, which gcc
            // places inside the directory's range, stays bound.
            let mut d = get32(&driver.bytes, dd + 8) as usize;
            loop {
                let last = driver.bytes[d..d + 20].iter().all(|&b| b == 0);
                driver.bytes[d..d + 20].fill(0);
                if last {
                    break;
                }
                d += 20;
            }
        }
        if self.wipe_iat_directory {
            driver.bytes[dd + 12 * 8..dd + 12 * 8 + 8].fill(0);
        }
        let mut k = Kernel::new(arch);
        k.large_region(pool);
        k.place_image(nt_base, &nt, &[], &[]);
        // Driver holes besides INIT: the first .data page is left out of the dump, PAGE is paged
        // out. On 64-bit the second .data page is reached through a transition PTE (readable).
        let section = |name: &str| driver.sections.iter().find(|s| s.0 == name).map(|s| s.1);
        let data_rva = section(".data").or_else(|| section(".bss"));
        let page_rva = section("PAGE");
        let not_in_dump: Vec<u32> = data_rva.into_iter().collect();
        let paged: Vec<u32> = page_rva.into_iter().collect();
        k.place_image(drv_base, &driver, &paged, &not_in_dump);
        if let (Some(d), true) = (data_rva, ps == 8) {
            let second = d + 0x1000;
            if driver
                .sections
                .iter()
                .any(|s| s.0 == ".data" && s.2 > 0x1000)
            {
                k.make_transition(drv_base + u64::from(second));
            }
        }
        let mut driver_missing: Vec<u32> = not_in_dump.iter().chain(&paged).copied().collect();
        for (_, rva, vsize, ch) in &driver.sections {
            if ch & IMAGE_SCN_MEM_DISCARDABLE != 0 {
                driver_missing.extend((0..vsize.div_ceil(0x1000)).map(|i| rva + i * 0x1000));
            }
        }
        driver_missing.sort();
        driver_missing.dedup();

        // Kernel variables (§3.2): PoolTrackTableSize right before nt!PoolTrackTable, then
        // ExPoolTagTables[] nearby.
        let var = data + 8;
        let global = pool + 0x1000;
        let cpu1 = pool + 0x8000;
        k.write_ptr(
            var - ps,
            if self.size_variable {
                TRACKER_ENTRIES
            } else {
                0
            },
        );
        k.write_ptr(var, global);
        let tags = self.tags.clone().unwrap_or_else(global_tags);
        k.write(
            global,
            &tracker_table(arch, self.build, TRACKER_ENTRIES, &tags),
        );
        k.write_ptr(data + 0x40, global);
        if self.processors > 1 {
            let local = self.cpu1_tags.clone().unwrap_or_else(cpu1_tags);
            k.write(
                cpu1,
                &tracker_table_like(arch, self.build, TRACKER_ENTRIES, &tags, &local),
            );
            k.write_ptr(data + 0x40 + ps, cpu1);
        }
        let head = data + 0x800;
        let kdbg_size = match (arch.ps(), self.build) {
            (4, b) if b < 9200 => 0x340,
            (_, b) if b < 17763 => 0x368,
            _ => 0x380,
        };
        write_kdbg(&mut k, data + 0x100, kdbg_size, nt_base, head, var);
        let mut modules = vec![
            ModuleSpec {
                base: nt_base,
                size: nt.bytes.len() as u32,
                full: NT_PATH.into(),
                name: "ntoskrnl.exe".into(),
                time_date_stamp: nt.timestamp,
                checksum: nt.checksum,
            },
            ModuleSpec {
                base: drv_base,
                size: driver.bytes.len() as u32,
                full: GUID_DRIVER_PATH.into(),
                name: GUID_DRIVER.into(),
                time_date_stamp: driver.timestamp,
                checksum: driver.checksum,
            },
        ];
        for (i, (name, file)) in self.extra_drivers.iter().enumerate() {
            let base = extra_base(arch, i);
            let mapped = map_pe(file, &|dll, f| {
                if dll.eq_ignore_ascii_case("ntoskrnl.exe") {
                    let rva = nt_exports.iter().find(|(n, _)| n == f)?.1;
                    Some(nt_base + u64::from(rva))
                } else {
                    // ndis.sys, fltmgr.sys, …: not loaded in these dumps.
                    Some(extra_base(arch, 15) + 0x10 * u64::from(f.len() as u32))
                }
            });
            k.place_image(base, &mapped, &[], &[]);
            modules.push(ModuleSpec {
                base,
                size: mapped.bytes.len() as u32,
                full: format!(r"\SystemRoot\system32\drivers\{name}"),
                name: name.clone(),
                time_date_stamp: mapped.timestamp,
                checksum: mapped.checksum,
            });
        }
        let entries_va = data + 0x1000;
        write_module_list(&mut k, head, entries_va, data + 0x2000, &modules);
        let header = HeaderSpec {
            arch,
            build: self.build,
            processors: self.processors,
            ps_loaded_module_list: head,
            kdbg: (!self.kdbg_unset).then_some(data + 0x100),
            bugcheck: self.bugcheck,
            dump_type: self.dump_type,
            system_time: self.system_time,
            up_time: self.up_time,
            comment: self.comment.clone(),
        };
        Written {
            kernel: k,
            header,
            nt,
            driver,
            modules,
            driver_missing,
            entries_va,
            data_va: data,
        }
    }

    /// The dump file bytes.
    pub fn bytes(&self) -> (Vec<u8>, Written) {
        let w = self.kernel();
        let built = w.kernel.build();
        (encode(&w.header, &built), w)
    }
}

impl Written {
    /// The driver image as a reader should carve it: missing pages zeroed.
    pub fn expected_driver_bytes(&self) -> Vec<u8> {
        let mut b = self.driver.bytes.clone();
        for &rva in &self.driver_missing {
            let r = rva as usize;
            let end = (r + 0x1000).min(b.len());
            b[r..end].fill(0);
        }
        b
    }

    /// The missing driver pages as coalesced (rva, len) ranges.
    pub fn expected_driver_holes(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &rva in &self.driver_missing {
            match out.last_mut() {
                Some((r, l)) if *r + *l == rva => *l += 0x1000,
                _ => out.push((rva, 0x1000)),
            }
        }
        out
    }
}

/// Writes bytes to a fresh file in a temp dir and returns the dir (kept alive) and path.
pub fn to_file(bytes: &[u8], name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

// ---------------------------------------------------------------------------------------------
// The hostile dumps of issue 19, built from the structures as an attacker would

/// A 1 GB-aligned kernel region clear of every scenario's layout, for aliased memory.
pub const ALIAS_VA: u64 = 0xFFFF_F800_4000_0000;
/// Where the hostile module list keeps its entries and names (clear of the pool region).
pub const HOSTILE_LIST_VA: u64 = 0xFFFF_F800_8000_0000;

/// One page of plausible Win10 x64 tracker entries (0x38 bytes, the 19041 layout): printable
/// keys, small consistent counters. Entries run on across the page end, as they would in an
/// aliased table.
pub fn plausible_tracker_page() -> Vec<u8> {
    let (size, np, p) = tracker_layout(Arch::X64, 19041);
    let mut page = vec![0u8; PAGE as usize];
    let mut i = 0usize;
    while i * size + size <= page.len() {
        let e = i * size;
        put32(&mut page, e, u32::from_le_bytes(*b"Evil") + i as u32);
        for (fields, vals) in [(np, (9u64, 4u64, 0x500u64)), (p, (3, 1, 0x80))] {
            for ((at, _), v) in fields.iter().zip([vals.0, vals.1, vals.2]) {
                put64(&mut page, e + at, v);
            }
        }
        i += 1;
    }
    page
}

/// Issue 19's pool file: an x64 bitmap dump claiming `processors` processors, whose
/// PoolTrackTableSize is `table_size` and whose ExPoolTagTables array (one slot per processor)
/// sits at nt!PoolTrackTable itself, slot 0 the global table, every slot pointing into 1 GB of
/// virtual memory mapped onto one page of plausible entries.
pub fn hostile_pool(processors: u32, table_size: u64) -> (Vec<u8>, Written) {
    let s = Scenario::new(Arch::X64, 5, 19041, processors, ImportPlacement::InInit);
    let mut w = s.kernel();
    let (_, _, data, _) = layout_of(Arch::X64);
    let var = data + 0x4008;
    w.kernel.write_ptr(var - 8, table_size);
    let n = u64::from(processors.max(1));
    let stride = ((1u64 << 30) / n) & !0xF;
    for i in 0..n {
        w.kernel.write_ptr(var + 8 * i, ALIAS_VA + i * stride);
    }
    // KDBG.PoolTrackTable (+0x1B8 of the block at data + 0x100) names the new variable.
    w.kernel.write(data + 0x100 + 0x1B8, &var.to_le_bytes());
    w.kernel.alias_gigabyte(ALIAS_VA, plausible_tracker_page());
    let bytes = encode(&w.header, &w.kernel.build());
    (bytes, w)
}

/// Issue 19's module file: an x64 bitmap dump whose module list holds `count` entries of
/// SizeOfImage `size_of_image`, all at ntoskrnl's base (`same_base`) or one after another from
/// [`ALIAS_VA`], where 1 GB maps onto one page that starts like a PE header.
pub fn hostile_modules(count: usize, size_of_image: u32, same_base: bool) -> (Vec<u8>, Written) {
    let s = Scenario::new(Arch::X64, 5, 19041, 1, ImportPlacement::InInit);
    let mut w = s.kernel();
    let (nt_base, _, data, _) = layout_of(Arch::X64);
    let mods: Vec<ModuleSpec> = (0..count)
        .map(|i| ModuleSpec {
            base: if same_base {
                nt_base
            } else {
                ALIAS_VA + i as u64 * u64::from(size_of_image)
            },
            size: size_of_image,
            full: NT_PATH.into(),
            name: "ntoskrnl.exe".into(),
            time_date_stamp: w.nt.timestamp,
            checksum: w.nt.checksum,
        })
        .collect();
    write_module_list(
        &mut w.kernel,
        data + 0x800,
        HOSTILE_LIST_VA,
        HOSTILE_LIST_VA + 0x20_0000,
        &mods,
    );
    if !same_base {
        let mut page = w.nt.bytes[..PAGE as usize].to_vec();
        page.resize(PAGE as usize, 0);
        w.kernel.alias_gigabyte(ALIAS_VA, page);
    }
    w.modules = mods;
    let bytes = encode(&w.header, &w.kernel.build());
    (bytes, w)
}
