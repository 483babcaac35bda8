//! Hand-assembled A64 sequences for the patterns of `toolchains-and-patterns.md` §2, run through
//! a synthetic image in the loaded layout: `.text` at 0x1000, the IAT in read-only `.rdata` at
//! 0x2000, writable `.data` at 0x3000.

use super::*;
use crate::callsite::{ArgValue, Provenance};
use crate::pe::{Import, ImportOrigin, Layout, Section, SCN_MEM_EXECUTE, SCN_MEM_WRITE};
use crate::pool::apis::Role;

const TEXT: u32 = 0x1000;
const IAT: u32 = 0x2000;
const DATA: u32 = 0x3000;
/// IAT slots: 0 ExAllocatePoolWithTag, 1 ExFreePoolWithTag, 2 KeBugCheck (not a pool API).
const ALLOC: u32 = IAT;
const FREE: u32 = IAT + 8;
const OTHER: u32 = IAT + 16;

// Encoders for the handful of instructions the tests need (Arm ARM, A64 base encodings).
fn movz_w(rd: u32, imm: u32, hw: u32) -> u32 {
    0x5280_0000 | hw << 21 | (imm & 0xffff) << 5 | rd
}
fn movk_w(rd: u32, imm: u32, hw: u32) -> u32 {
    0x7280_0000 | hw << 21 | (imm & 0xffff) << 5 | rd
}
fn mov_w(rd: u32, rm: u32) -> u32 {
    0x2a00_03e0 | rm << 16 | rd
}
fn adrp(rd: u32, at: u32, target: u32) -> u32 {
    let imm = ((target >> 12) as i32 - (at >> 12) as i32) as u32;
    0x9000_0000 | (imm & 3) << 29 | ((imm >> 2) & 0x7ffff) << 5 | rd
}
fn ldr_x(rt: u32, rn: u32, off: u32) -> u32 {
    0xf940_0000 | (off / 8) << 10 | rn << 5 | rt
}
fn ldr_w(rt: u32, rn: u32, off: u32) -> u32 {
    0xb940_0000 | (off / 4) << 10 | rn << 5 | rt
}
fn str_x(rt: u32, rn: u32, off: u32) -> u32 {
    0xf900_0000 | (off / 8) << 10 | rn << 5 | rt
}
fn ldr_w_lit(rt: u32, at: u32, target: u32) -> u32 {
    0x1800_0000 | (((target.wrapping_sub(at)) / 4) & 0x7ffff) << 5 | rt
}
fn blr(rn: u32) -> u32 {
    0xd63f_0000 | rn << 5
}
fn br(rn: u32) -> u32 {
    0xd61f_0000 | rn << 5
}
const RET: u32 = 0xd65f_03c0;
fn bl(at: u32, target: u32) -> u32 {
    0x9400_0000 | (target.wrapping_sub(at) / 4) & 0x03ff_ffff
}
fn b(at: u32, target: u32) -> u32 {
    0x1400_0000 | (target.wrapping_sub(at) / 4) & 0x03ff_ffff
}
fn cbz_w(rt: u32, at: u32, target: u32) -> u32 {
    0x3400_0000 | ((target.wrapping_sub(at) / 4) & 0x7ffff) << 5 | rt
}
fn csel_w(rd: u32, rn: u32, rm: u32, cond: u32) -> u32 {
    0x1a80_0000 | rm << 16 | cond << 12 | rn << 5 | rd
}
fn cmp_w0(rn: u32) -> u32 {
    0x7100_001f | rn << 5
}
fn sub_sp(imm: u32) -> u32 {
    0xd100_03ff | imm << 10
}
fn add_x_sp(rd: u32, imm: u32) -> u32 {
    0x9100_03e0 | imm << 10 | rd
}

/// A `.text` under construction: instructions placed at known RVAs.
struct Code(Vec<u32>);

impl Code {
    fn new() -> Code {
        Code(Vec::new())
    }
    fn at(&self) -> u32 {
        TEXT + 4 * self.0.len() as u32
    }
    fn put(&mut self, w: u32) -> u32 {
        let at = self.at();
        self.0.push(w);
        at
    }
    /// `adrp x8, IAT; ldr x8, [x8, #slot]` and returns the RVA after them.
    fn load_iat(&mut self, reg: u32, slot: u32) {
        let at = self.at();
        self.put(adrp(reg, at, slot & !0xfff));
        self.put(ldr_x(reg, reg, slot & 0xfff));
    }
}

/// Builds the image; `functions` are `.pdata` ranges; `data` is the initial `.data`.
fn build(code: &Code, functions: &[(u32, u32)], data_init: &[u8]) -> (Image, Vec<u8>) {
    let size = 0x4000u32;
    let mut bytes = vec![0u8; size as usize];
    for (i, w) in code.0.iter().enumerate() {
        let o = TEXT as usize + 4 * i;
        bytes[o..o + 4].copy_from_slice(&w.to_le_bytes());
    }
    bytes[DATA as usize..DATA as usize + data_init.len()].copy_from_slice(data_init);
    let section = |name: &str, rva: u32, ch: u32| Section {
        name: name.into(),
        rva,
        virtual_size: 0x1000,
        raw_offset: rva,
        raw_size: 0x1000,
        characteristics: ch,
        header_offset: 0,
    };
    let import = |name: &str, iat_rva: u32| Import {
        dll: "ntoskrnl.exe".into(),
        name: Some(name.into()),
        ordinal: None,
        iat_rva,
        delay: false,
        origin: ImportOrigin::Directory,
    };
    let image = Image {
        machine: Machine::Arm64,
        layout: Layout::Loaded,
        len: u64::from(size),
        sha256: String::new(),
        image_base: 0x1_4000_0000,
        size_of_image: size,
        entry_point: TEXT,
        subsystem: 1,
        characteristics: 0,
        dll_characteristics: 0,
        timestamp: 0,
        checksum: 0,
        section_alignment: 0x1000,
        file_alignment: 0x1000,
        sections: vec![
            section(".text", TEXT, SCN_MEM_EXECUTE | 0x6000_0020),
            section(".rdata", IAT, 0x4000_0040),
            section(".data", DATA, SCN_MEM_WRITE | 0x4000_0040),
        ],
        imports: vec![
            import("ExAllocatePoolWithTag", ALLOC),
            import("ExFreePoolWithTag", FREE),
            import("KeBugCheck", OTHER),
        ],
        exports: Vec::new(),
        exports_by_rva: Vec::new(),
        codeview: None,
        signed: false,
        guard_flags: None,
        functions: functions
            .iter()
            .map(|&(begin, end)| FunctionRange { begin, end })
            .collect(),
        holes: Vec::new(),
        anomalies: Vec::new(),
    };
    (image, bytes)
}

fn sites(code: &Code, functions: &[(u32, u32)], data: &[u8]) -> Vec<CallSite> {
    let (image, bytes) = build(code, functions, data);
    super::super::analyze(&image, &bytes)
}

fn arg(s: &CallSite, role: Role) -> ArgValue {
    s.arg(role).expect("role present")
}

fn imm(v: u64) -> ArgValue {
    ArgValue {
        value: Some(v),
        how: Provenance::Immediate,
    }
}

const TAG: u32 = 0x3174_7354; // 'Tst1', shown as "Tst1"

#[test]
fn direct_call_with_immediates() {
    let mut c = Code::new();
    c.put(movz_w(0, 0x200, 0));
    c.put(movz_w(1, 64, 0));
    c.put(movz_w(2, TAG & 0xffff, 0));
    c.put(movk_w(2, TAG >> 16, 1));
    c.load_iat(8, ALLOC);
    let call = c.put(blr(8));
    c.put(RET);
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].rva, call);
    assert_eq!(s[0].reach, Reach::RegisterCall);
    assert_eq!(s[0].function, Some(TEXT));
    assert_eq!(arg(&s[0], Role::PoolType), imm(0x200));
    assert_eq!(arg(&s[0], Role::Size), imm(64));
    assert_eq!(arg(&s[0], Role::Tag), imm(u64::from(TAG)));
    assert_eq!(s[0].effective_tag(), Some(TAG));
}

#[test]
fn values_survive_a_merge_only_when_every_path_agrees() {
    let mut c = Code::new();
    // if (w3) { w2 = 'A'; w1 = 8 } else { w2 = 'B'; w1 = 8 }; w0 = 1; call
    let cbz = c.put(0); // patched below
    c.put(movz_w(2, 0x41, 0));
    c.put(movz_w(1, 8, 0));
    let jump = c.put(0);
    let else_at = c.put(movz_w(2, 0x42, 0));
    c.put(movz_w(1, 8, 0));
    let join = c.put(movz_w(0, 1, 0));
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    c.put(RET);
    c.0[((cbz - TEXT) / 4) as usize] = cbz_w(3, cbz, else_at);
    c.0[((jump - TEXT) / 4) as usize] = b(jump, join);
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(s.len(), 1);
    assert_eq!(arg(&s[0], Role::Tag), ArgValue::UNKNOWN);
    assert_eq!(arg(&s[0], Role::Size), imm(8));
    assert_eq!(arg(&s[0], Role::PoolType), imm(1));
}

#[test]
fn conditional_select_is_unknown() {
    let mut c = Code::new();
    c.put(movz_w(9, 0x41, 0));
    c.put(movz_w(10, 0x42, 0));
    c.put(cmp_w0(3));
    c.put(csel_w(2, 9, 10, 0));
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    c.put(RET);
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(arg(&s[0], Role::Tag), ArgValue::UNKNOWN);
}

#[test]
fn spilled_pointer_and_literal_pool_tag() {
    let mut c = Code::new();
    c.put(sub_sp(64));
    c.load_iat(8, ALLOC);
    c.put(str_x(8, 31, 48));
    c.put(bl(c.at(), TEXT + 0x200)); // clobbers x8, not the slot
    c.put(movz_w(0, 1, 0));
    c.put(mov_w(1, 0)); // w1 = w0: propagated
    let lit = c.at() + 16;
    c.put(ldr_w_lit(2, c.at(), lit));
    c.put(ldr_x(8, 31, 48));
    let call = c.put(blr(8));
    c.put(RET);
    c.put(TAG); // the literal pool
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].rva, call);
    assert_eq!(
        arg(&s[0], Role::Size),
        ArgValue {
            value: Some(1),
            how: Provenance::Propagated
        }
    );
    assert_eq!(
        arg(&s[0], Role::Tag),
        ArgValue {
            value: Some(u64::from(TAG)),
            how: Provenance::Global
        }
    );
}

#[test]
fn escaped_stack_slots_are_forgotten_at_calls() {
    let mut c = Code::new();
    c.put(sub_sp(64));
    c.load_iat(8, ALLOC);
    c.put(str_x(8, 31, 48));
    c.put(add_x_sp(0, 48)); // &slot escapes to the callee
    c.put(bl(c.at(), TEXT + 0x200));
    c.put(ldr_x(8, 31, 48));
    c.put(blr(8));
    c.put(RET);
    assert!(sites(&c, &[(TEXT, c.at())], &[]).is_empty());
}

#[test]
fn writable_global_is_runtime_and_readonly_global_is_global() {
    let mut c = Code::new();
    c.put(adrp(9, c.at(), DATA));
    c.put(ldr_w(0, 9, 4)); // pool type from .data+4 (initial 0)
    c.put(adrp(10, c.at(), IAT));
    c.put(ldr_w(2, 10, 0x100)); // tag from .rdata+0x100
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    c.put(RET);
    let (image, mut bytes) = build(&c, &[(TEXT, c.at())], &[0; 8]);
    bytes[IAT as usize + 0x100..IAT as usize + 0x104].copy_from_slice(&TAG.to_le_bytes());
    let s = super::super::analyze(&image, &bytes);
    assert_eq!(
        arg(&s[0], Role::PoolType),
        ArgValue {
            value: Some(0),
            how: Provenance::Runtime
        }
    );
    assert_eq!(arg(&s[0], Role::PoolType).constant(), None);
    assert_eq!(
        arg(&s[0], Role::Tag),
        ArgValue {
            value: Some(u64::from(TAG)),
            how: Provenance::Global
        }
    );
}

#[test]
fn hoisted_pointer_called_twice_and_tail_jump() {
    let mut c = Code::new();
    c.load_iat(19, FREE);
    c.put(movz_w(1, 0, 0));
    let first = c.put(blr(19));
    c.put(movz_w(1, TAG & 0xffff, 0));
    let second = c.put(blr(19));
    c.put(movz_w(1, 7, 0));
    let tail = c.put(br(19));
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    let got: Vec<(u32, Reach, ArgValue)> = s
        .iter()
        .map(|s| (s.rva, s.reach, arg(s, Role::Tag)))
        .collect();
    assert_eq!(
        got,
        vec![
            (first, Reach::RegisterCall, imm(0)),
            (second, Reach::RegisterCall, imm(u64::from(TAG & 0xffff))),
            (tail, Reach::TailJump, imm(7)),
        ]
    );
}

#[test]
fn non_pool_imports_are_ignored() {
    let mut c = Code::new();
    c.load_iat(8, OTHER);
    c.put(blr(8));
    c.put(RET);
    assert!(sites(&c, &[(TEXT, c.at())], &[]).is_empty());
}

#[test]
fn thunks_count_only_where_called_and_wrappers_resolve_at_callers() {
    // 0x1000 wrapper(size x0, tag w1): w2 = w1; w1 = x0; w0 = 0x200; bl thunk; ret
    // 0x1100 caller: x0 = 100; w1 = TAG; bl wrapper; ret
    // 0x1200 thunk for ExAllocatePoolWithTag; 0x1210 thunk for ExFreePoolWithTag (unused)
    let mut c = Code::new();
    c.put(mov_w(2, 1));
    c.put(0xaa00_03e1); // mov x1, x0
    c.put(movz_w(0, 0x200, 0));
    let inner = c.put(bl(c.at(), TEXT + 0x200));
    c.put(RET);
    while c.at() < TEXT + 0x100 {
        c.put(0);
    }
    c.put(0xd280_0c80); // mov x0, #100
    c.put(movz_w(1, TAG & 0xffff, 0));
    c.put(movk_w(1, TAG >> 16, 1));
    let outer = c.put(bl(c.at(), TEXT));
    c.put(RET);
    while c.at() < TEXT + 0x200 {
        c.put(0);
    }
    c.load_iat(16, ALLOC);
    c.put(br(16));
    c.put(0);
    c.load_iat(16, FREE);
    c.put(br(16));
    let end = c.at();
    // Only the two real functions have `.pdata`; thunks have none, as with lld.
    let s = sites(
        &c,
        &[(TEXT, TEXT + 0x14), (TEXT + 0x100, TEXT + 0x114)],
        &[],
    );
    let _ = end;
    assert_eq!(s.len(), 2, "{s:#?}");
    assert!(s.iter().all(|s| s.rva == inner && s.reach == Reach::Thunk));
    assert_eq!(s[0].via, None);
    assert_eq!(arg(&s[0], Role::Tag), ArgValue::UNKNOWN);
    assert_eq!(s[1].via, Some(outer));
    assert_eq!(s[1].function, Some(TEXT));
    assert_eq!(s[1].report_rva(), outer);
    assert_eq!(
        arg(&s[1], Role::Tag),
        ArgValue {
            value: Some(u64::from(TAG)),
            how: Provenance::Propagated
        }
    );
    assert_eq!(
        arg(&s[1], Role::Size),
        ArgValue {
            value: Some(100),
            how: Provenance::Propagated
        }
    );
    assert_eq!(arg(&s[1], Role::PoolType), imm(0x200));
}

#[test]
fn random_override_idiom_keeps_the_callers_tag() {
    // System Informer: `ldr w8, [KphpRandomPoolTag]; cmp w8, #0; csel w2, w8, w1, ne`.
    let mut c = Code::new();
    c.put(adrp(8, c.at(), DATA));
    c.put(ldr_w(8, 8, 0));
    c.put(cmp_w0(8));
    c.put(csel_w(2, 8, 1, 1));
    c.put(movz_w(0, 0x200, 0));
    c.load_iat(8, ALLOC);
    let inner = c.put(blr(8));
    c.put(RET);
    let caller = TEXT + 0x100;
    while c.at() < caller {
        c.put(0);
    }
    let lit = caller + 12;
    c.put(ldr_w_lit(1, c.at(), lit));
    let outer = c.put(bl(c.at(), TEXT));
    c.put(RET);
    c.put(TAG);
    let s = sites(&c, &[(TEXT, TEXT + 0x24), (caller, caller + 12)], &[0; 4]);
    assert_eq!(s.len(), 2);
    assert_eq!((s[1].rva, s[1].via), (inner, Some(outer)));
    assert_eq!(s[1].effective_tag(), Some(TAG));
    // A non-zero initial value would be the tag at run time: then nothing is claimed.
    let s = sites(
        &c,
        &[(TEXT, TEXT + 0x24), (caller, caller + 12)],
        &[1, 0, 0, 0],
    );
    assert_eq!(s[1].effective_tag(), None);
}

#[test]
fn hostile_bytes_do_not_panic() {
    // Every word pattern class, garbage `.pdata` ranges, branches out of the image.
    let mut x: u32 = 0x1234_5678;
    let mut c = Code::new();
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c.put(x);
    }
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    c.put(b(c.at(), 0xffff_fff0));
    c.put(bl(c.at(), TEXT));
    let n = c.at();
    for functions in [
        vec![],
        vec![(TEXT, n)],
        vec![(TEXT + 2, TEXT + 0x40), (TEXT + 0x20, u32::MAX)],
    ] {
        let _ = sites(&c, &functions, &[]);
    }
}

#[test]
fn slot_address_formed_with_add() {
    // `adrp x9, slot@PAGE; add x9, x9, slot@PAGEOFF; ldr x8, [x9]; blr x8`
    let mut c = Code::new();
    c.put(adrp(9, c.at(), FREE & !0xfff));
    c.put(0x9100_0000 | (FREE & 0xfff) << 10 | 9 << 5 | 9);
    c.put(ldr_x(8, 9, 0));
    c.put(movz_w(1, 5, 0));
    let call = c.put(blr(8));
    c.put(RET);
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].rva, s[0].api), (call, "ExFreePoolWithTag"));
    assert_eq!(arg(&s[0], Role::Tag), imm(5));
}

#[test]
fn wrapper_called_through_a_branch_stub() {
    // 0x1000 wrapper(tag w1): w2 = w1; w0 = 1; w1 = 16; call; ret
    // 0x1100 stub: b 0x1000 (MSVC `fothk`); 0x1200 caller: w1 = TAG; bl 0x1100; ret
    let mut c = Code::new();
    c.put(mov_w(2, 1));
    c.put(movz_w(0, 1, 0));
    c.put(movz_w(1, 16, 0));
    c.load_iat(8, ALLOC);
    let inner = c.put(blr(8));
    c.put(RET);
    while c.at() < TEXT + 0x100 {
        c.put(0);
    }
    c.put(b(c.at(), TEXT));
    while c.at() < TEXT + 0x200 {
        c.put(0);
    }
    c.put(movz_w(1, TAG & 0xffff, 0));
    c.put(movk_w(1, TAG >> 16, 1));
    let outer = c.put(bl(c.at(), TEXT + 0x100));
    c.put(RET);
    let s = sites(
        &c,
        &[(TEXT, TEXT + 0x1c), (TEXT + 0x200, TEXT + 0x210)],
        &[],
    );
    assert_eq!(s.len(), 2, "{s:#?}");
    assert_eq!((s[1].rva, s[1].via), (inner, Some(outer)));
    assert_eq!(s[1].effective_tag(), Some(TAG));
}

fn str_w(rt: u32, rn: u32, off: u32) -> u32 {
    0xb900_0000 | (off / 4) << 10 | rn << 5 | rt
}
fn add_x(rd: u32, rn: u32, imm: u32) -> u32 {
    0x9100_0000 | imm << 10 | rn << 5 | rd
}

/// A function allocating with the tag read from `.data+0`.
fn allocates_with_tag_from_data() -> Code {
    let mut c = Code::new();
    c.put(adrp(9, c.at(), DATA));
    c.put(ldr_w(2, 9, 0));
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    c.put(RET);
    c
}

/// The tag values of an allocation whose tag is read from `.data+0` (initially [`TAG`]), in an
/// image whose second function runs `writer` with `adrp x9, .data` done.
fn runtime_tag_values(writer: &[u32]) -> Vec<u32> {
    let mut c = allocates_with_tag_from_data();
    let second = c.at();
    c.put(adrp(9, c.at(), DATA));
    for &w in writer {
        c.put(w);
    }
    c.put(RET);
    let s = sites(&c, &[(TEXT, second), (second, c.at())], &TAG.to_le_bytes());
    assert_eq!(arg(&s[0], Role::Tag).how, Provenance::Runtime);
    s[0].tag_values.clone()
}

/// A tag in a writable global can hold its initial value and every constant the code stores
/// into it with `str w, [adrp page, #off]` (`wzr` is 0); a store of anything else, or the
/// global's address formed with `adrp; add`, leaves its values unknown (none listed). Stores to
/// a neighbouring global change nothing.
#[test]
fn tags_in_writable_globals_take_every_constant_stored_there() {
    const NEW: u32 = 0x6E75_5253; // 'SRun'
    let (lo, hi) = (NEW & 0xffff, NEW >> 16);
    assert_eq!(runtime_tag_values(&[]), vec![TAG]);
    assert_eq!(
        runtime_tag_values(&[movz_w(10, lo, 0), movk_w(10, hi, 1), str_w(10, 9, 0)]),
        vec![TAG, NEW]
    );
    assert_eq!(runtime_tag_values(&[str_w(31, 9, 0)]), vec![0, TAG]);
    assert_eq!(runtime_tag_values(&[str_w(0, 9, 0)]), Vec::<u32>::new());
    assert_eq!(runtime_tag_values(&[str_x(10, 9, 0)]), Vec::<u32>::new());
    assert_eq!(runtime_tag_values(&[add_x(9, 9, 0)]), Vec::<u32>::new());
    assert_eq!(runtime_tag_values(&[str_w(0, 9, 4)]), vec![TAG]);
}

/// A pointer to the tag's global in initialised data (a registry query table's `EntryContext`,
/// say) lets anything write it: its values are unknown even with no store in the code.
#[test]
fn a_pointer_to_the_tag_global_in_data_makes_its_values_unknown() {
    let c = allocates_with_tag_from_data();
    let mut data = TAG.to_le_bytes().to_vec();
    data.extend_from_slice(&[0; 4]);
    data.extend_from_slice(&(0x1_4000_0000u64 + u64::from(DATA)).to_le_bytes());
    let s = sites(&c, &[(TEXT, c.at())], &data);
    assert_eq!(arg(&s[0], Role::Tag).how, Provenance::Runtime);
    assert!(s[0].tag_values.is_empty());
    // The same image without the pointer: the initial value is all it holds.
    let s = sites(&c, &[(TEXT, c.at())], &data[..8]);
    assert_eq!(s[0].tag_values, vec![TAG]);
}

/// 32,763 `movz w2, #imm; bl wrapper` pairs in one 256 KiB function (built by
/// testdata/regress/make_hostile.py): every call is a site through the wrapper with its own
/// tag, and the stretch is interpreted once for all of them, not once per call after a scan
/// of the whole function (quadratic: 60 s before, 0.4 s after in a release build). The
/// engine's step count ([`crate::callsite::engine::STEPS`]) bounds the work.
#[test]
fn wrapper_callers_in_one_stretch_are_interpreted_once() {
    use crate::callsite::engine::STEPS;
    let bytes = include_bytes!("../../../testdata/regress/pe_file/arm64-wrapper-callers.sys");
    let image = Image::parse(bytes, Layout::File).unwrap();
    STEPS.set(0);
    let sites = analyze(&image, bytes, true);
    let steps = STEPS.get();
    let callers = sites.iter().filter(|s| s.via.is_some()).count();
    assert_eq!(callers, 32_763);
    let tags: HashSet<String> = sites
        .iter()
        .filter_map(|s| s.args.iter().find(|(r, _)| *r == Role::Tag))
        .map(|(_, a)| format!("{a:?}"))
        .collect();
    // The 16-bit immediates wrap after 65,536 callers; these are all distinct, and the
    // wrapper's own site has an unknown tag.
    assert_eq!(tags.len(), 32_763 + 1);
    assert!(steps < 8 * 2 * 32_763, "{steps} instructions interpreted");
}

fn cmp_w_imm(rn: u32, imm: u32) -> u32 {
    0x7100_001f | imm << 10 | rn << 5
}
fn b_cond(at: u32, target: u32, cond: u32) -> u32 {
    0x5400_0000 | ((target.wrapping_sub(at) / 4) & 0x7ffff) << 5 | cond
}
fn adr(rd: u32, at: u32, target: u32) -> u32 {
    let imm = target.wrapping_sub(at);
    0x1000_0000 | (imm & 3) << 29 | ((imm >> 2) & 0x7ffff) << 5 | rd
}
/// `ldrsw xT, [xN, wM, uxtw #2]`, or with `wide` `ldrsw xT, [xN, xM, lsl #2]`.
fn ldrsw_index(rt: u32, rn: u32, rm: u32, wide: bool) -> u32 {
    0xb8a0_5800 | u32::from(wide) << 13 | rm << 16 | rn << 5 | rt
}
/// `add xD, xN, xM, lsl #2`.
fn add_lsl2(rd: u32, rn: u32, rm: u32) -> u32 {
    0x8b00_0800 | rm << 16 | rn << 5 | rd
}

/// MSVC's switch: `mov w12, #1` (the pool type) before `cmp wI, #2; b.hi; adr x10, table;
/// ldrsw x9, [x10, w0, uxtw #2]; adr x10, base; add x9, x10, x9, lsl #2; br x9`, three cases
/// that write only w13, then the call with `mov w0, w12`. The table holds instruction counts
/// from the base (0, 2, 4). Returns the pool type the site gets, with the bound checked on
/// `bound_reg` and the table indexed by w0 (`wide`: by x0).
fn switch_pool_type(bound_reg: u32, wide: bool) -> ArgValue {
    let mut c = Code::new();
    c.put(movz_w(12, 1, 0));
    c.put(cmp_w_imm(bound_reg, 2));
    let guard = c.put(0);
    let table_adr = c.put(0);
    c.put(ldrsw_index(9, 10, 0, wide));
    let base_adr = c.put(0);
    c.put(add_lsl2(9, 10, 9));
    c.put(br(9));
    let base = c.put(movz_w(13, 1, 0));
    let j1 = c.put(0);
    c.put(movz_w(13, 2, 0));
    let j2 = c.put(0);
    c.put(movz_w(13, 3, 0));
    let join = c.put(mov_w(0, 12));
    c.put(movz_w(1, 0x40, 0));
    c.put(movz_w(2, TAG & 0xffff, 0));
    c.put(movk_w(2, TAG >> 16, 1));
    c.load_iat(8, ALLOC);
    c.put(blr(8));
    let end = c.put(RET);
    let table = c.put(0);
    c.put(2);
    c.put(4);
    let patch = |c: &mut Code, at: u32, w: u32| c.0[((at - TEXT) / 4) as usize] = w;
    patch(&mut c, guard, b_cond(guard, end, 8)); // b.hi
    patch(&mut c, table_adr, adr(10, table_adr, table));
    patch(&mut c, base_adr, adr(10, base_adr, base));
    patch(&mut c, j1, b(j1, join));
    patch(&mut c, j2, b(j2, join));
    let s = sites(&c, &[(TEXT, c.at())], &[]);
    assert_eq!(s.len(), 1);
    assert_eq!(arg(&s[0], Role::Tag), imm(u64::from(TAG)));
    arg(&s[0], Role::PoolType)
}

#[test]
fn a_switch_table_bounded_by_its_compare_gives_each_case_its_edge() {
    // Every case's path carries w12 = 1 to the call (copied there by `mov w0, w12`).
    let propagated = ArgValue {
        value: Some(1),
        how: Provenance::Propagated,
    };
    assert_eq!(switch_pool_type(0, false), propagated);
}

#[test]
fn a_switch_table_is_not_read_when_its_index_is_not_the_compared_register() {
    // Bound on w1, index w0: the table's length is unknown, so the merge keeps no constant.
    assert_eq!(switch_pool_type(1, false), ArgValue::UNKNOWN);
}

#[test]
fn a_switch_table_is_not_read_through_the_unbounded_half_of_its_index() {
    // `cmp w0` bounds only the low half of x0; `[x10, x0, lsl #2]` reads all of it.
    assert_eq!(switch_pool_type(0, true), ArgValue::UNKNOWN);
}
