//! Call-site analysis for ARM64 (A64) code.
//!
//! # Decoder
//!
//! Instructions are decoded with `yaxpeax-arm` (A64 part of its `armv8` module): it is pure Rust
//! (no C toolchain in the build, unlike Capstone bindings), maintained, and decodes the complete
//! A64 instruction set, so every instruction of a function, including the ones this module does
//! not interpret, is recognised well enough to know which general-purpose registers it writes.
//! A64 instructions are a fixed four bytes, so a function is decoded as a plain array of words.
//!
//! # What is recognised
//!
//! The call forms listed in `toolchains-and-patterns.md` §2.1 for ARM64:
//! * `adrp xN, page; ldr xN, [xN, #off]; blr xN` (clang, MSVC; xN is usually x8 or x16);
//! * the IAT pointer hoisted into a callee-saved register and called repeatedly (clang -O2);
//! * the pointer spilled to the stack and reloaded before `blr` (clang -O0);
//! * tail calls `br xN` ([`Reach::TailJump`]);
//! * `bl` to an import thunk `adrp x16; ldr x16, [x16, #off]; br x16` ([`Reach::Thunk`]); lld
//!   emits one thunk per import, so a thunk only yields sites where something branches to it.
//!
//! Argument values come from a forward must-analysis over the function's control-flow graph:
//! at a merge of paths a register keeps its value only when every incoming path agrees, so no
//! value is ever guessed from one path (`mod.rs`: a wrong tag is worse than an unknown one).
//! Functions containing a jump table (an indirect `br` whose targets are not visible) fall back
//! to plain per-basic-block propagation.
//!
//! `b` to a pool thunk is reported as [`Reach::TailJump`] (it is a tail call that happens to go
//! through a thunk).
//!
//! Values: `movz`/`movn`/`movk` chains and `orr wN, wzr, #imm` are `Immediate` (that is how A64
//! writes a constant); register copies and arithmetic on constants are `Propagated`; `ldr` from a
//! literal pool or from read-only data via `adrp` is `Global`; from a writable section it is
//! `Runtime` with the initial value, and a tag read that way also gets every constant the code
//! stores into the global (`Ctx::values_of_global`). A conditional select is `Unknown`, with
//! one exception: `cmp wG, #0; csel wD, wG, wP, ne` where wG holds zero in the image (System
//! Informer's `KphpRandomPoolTag` override, zero-initialised) yields wP, the value the code
//! passes in the image's initial state; if wG is non-zero or not known, the result is
//! `Unknown`.
//!
//! Wrappers: an argument that is an unmodified incoming parameter of its function (through
//! copies, 32-bit views and stack spills) is resolved one level up, at each `bl` (or tail `b`)
//! to the function's start, giving one [`CallSite`] per caller with `via` set. A value the caller
//! wrote as an immediate is `Propagated` at the API.
//!
//! Function extents come from `.pdata`. ARM64 leaf functions that neither save registers nor
//! move `sp` need no unwind data, and MSVC and clang (without unwind tables) omit them, so code
//! between `.pdata` functions is analysed too: its function entries are the targets of calls
//! from elsewhere, the image entry point and exports.
//!
//! Only functions that reference a pool IAT slot (an `adrp` to its page followed by a 64-bit
//! `ldr` of the slot) or branch to a pool import thunk are decoded, plus, one level up, the
//! callers of functions that pass one of their own parameters to a pool API (wrappers). The
//! rest of the image is only scanned as raw words for `adrp` and `bl`/`b`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand, SizeCode};

use super::common;
use super::site::{arg_location, ArgLocation, ArgValue, CallSite, Provenance, Reach};
use crate::pe::{FunctionRange, Image, Machine};
use crate::pool::apis::{self, ApiSpec, Role};

/// Instructions looked at after an `adrp` to a pool IAT page when searching for the `ldr` of the
/// slot. Compilers schedule the pair apart; MSVC keeps it within a handful of instructions.
const PAIR_WINDOW: usize = 32;

/// Largest function (bytes) decoded; a `.pdata` entry claiming more is treated as corrupt.
const MAX_FUNCTION: u32 = 4 << 20;

/// Finds pool-API call sites in arm64 code.
/// `shortcut`: take a wrapper's arguments from the code just before its caller's call when that
/// code gives them all (see `Ctx::straight_line_regs`); off only in the test that checks it
/// changes nothing.
pub(super) fn analyze(image: &Image, data: &[u8], shortcut: bool) -> Vec<CallSite> {
    let Some(ctx) = Ctx::new(image, data) else {
        return Vec::new();
    };
    ctx.run(shortcut)
}

/// What a register (or a stack slot) holds at a program point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    /// Nothing known.
    Unknown,
    /// A constant and how it was obtained (never [`Provenance::Unknown`]).
    Const(u64, Provenance),
    /// The enclosing function's incoming argument register `reg`, unmodified; `narrow` when
    /// only its low 32 bits were kept (a `w` copy).
    Param { reg: u8, narrow: bool },
    /// An `adrp` result: the RVA of a 4 KiB page (may be out of the image for hostile code).
    Page(i64),
    /// A page plus a low offset (`adrp; add`): an RVA.
    Addr(i64),
    /// The pointer read from the pool IAT slot at this RVA.
    Iat(u32),
}

impl Val {
    /// The value read through a 32-bit (`w`) view of the register.
    fn narrow(self) -> Val {
        match self {
            Val::Const(v, how) => Val::Const(v & 0xffff_ffff, how),
            Val::Param { reg, .. } => Val::Param { reg, narrow: true },
            _ => Val::Unknown,
        }
    }

    /// The value copied into another register: an immediate becomes propagated, the origin of
    /// loaded values (global, runtime) is kept.
    fn copied(self) -> Val {
        match self {
            Val::Const(v, Provenance::Immediate) => Val::Const(v, Provenance::Propagated),
            other => other,
        }
    }
}

/// One stack slot written by `str`/`stp` through `sp` or `x29`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// 31 for `sp`, 29 for the frame pointer.
    base: u16,
    offset: i64,
    size: u8,
    val: Val,
}

/// The abstract machine state: x0..x30, the tracked stack slots and the last compare with zero.
#[derive(Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 31],
    slots: Vec<Slot>,
    /// `cmp wN/xN, #0` that set the flags, with the register and its value then.
    cmp_zero: Option<(u16, Val)>,
}

impl Clone for State {
    fn clone(&self) -> State {
        State {
            regs: self.regs,
            slots: self.slots.clone(),
            cmp_zero: self.cmp_zero,
        }
    }

    /// Reuses the slot buffer (the solver copies block states into one scratch state).
    fn clone_from(&mut self, source: &State) {
        self.regs = source.regs;
        self.slots.clone_from(&source.slots);
        self.cmp_zero = source.cmp_zero;
    }
}

impl State {
    fn unknown() -> State {
        State {
            regs: [Val::Unknown; 31],
            slots: Vec::new(),
            cmp_zero: None,
        }
    }

    /// The state at a function's entry: x0..x7 are its (possible) parameters.
    fn entry() -> State {
        let mut s = State::unknown();
        for r in 0..8u8 {
            s.regs[r as usize] = Val::Param {
                reg: r,
                narrow: false,
            };
        }
        s
    }

    /// Meets `other` into `self` (values survive only where both agree); true if `self` changed.
    fn meet(&mut self, other: &State) -> bool {
        let mut changed = false;
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            if a != b && *a != Val::Unknown {
                *a = Val::Unknown;
                changed = true;
            }
        }
        let before = self.slots.len();
        self.slots.retain(|s| other.slots.contains(s));
        changed |= self.slots.len() != before;
        if self.cmp_zero.is_some() && self.cmp_zero != other.cmp_zero {
            self.cmp_zero = None;
            changed = true;
        }
        changed
    }

    fn get(&self, r: u16) -> Val {
        self.regs.get(r as usize).copied().unwrap_or(Val::Unknown)
    }

    fn set(&mut self, r: u16, v: Val) {
        if let Some(slot) = self.regs.get_mut(r as usize) {
            *slot = v;
        }
        // The compare's register is no longer what was compared.
        if matches!(self.cmp_zero, Some((c, _)) if c == r) {
            self.cmp_zero = None;
        }
    }

    /// The value of a source register operand (zero register reads as the immediate 0).
    fn read(&self, op: &Operand) -> Val {
        match *op {
            Operand::Register(_, 31) => Val::Const(0, Provenance::Immediate),
            Operand::Register(SizeCode::W, r) => self.get(r).narrow(),
            Operand::Register(SizeCode::X, r) => self.get(r),
            Operand::RegisterOrSP(_, 31) => Val::Unknown,
            Operand::RegisterOrSP(SizeCode::W, r) => self.get(r).narrow(),
            Operand::RegisterOrSP(SizeCode::X, r) => self.get(r),
            _ => Val::Unknown,
        }
    }

    fn forget_slots_of(&mut self, base: u16) {
        self.slots.retain(|s| s.base != base);
    }
}

/// A decoded instruction of a function.
struct Insn {
    rva: u32,
    inst: Option<Instruction>,
}

/// A direct site before wrapper resolution: the argument values as the callee sees them.
struct RawSite {
    rva: u32,
    spec: &'static ApiSpec,
    reach: Reach,
    function: Option<u32>,
    args: Vec<(Role, Val, bool)>,
}

/// Everything known about the image that the per-function analysis needs.
struct Ctx<'a> {
    image: &'a Image,
    data: &'a [u8],
    /// Pool IAT slot RVA → API.
    slots: HashMap<u32, &'static ApiSpec>,
    /// Pages (RVA >> 12) holding pool IAT slots.
    pages: HashSet<u32>,
    /// Executable regions (RVA, bytes).
    code: Vec<(u32, &'a [u8])>,
    /// Executable code outside every `.pdata` function, sorted. ARM64 leaf functions that
    /// neither save registers nor move `sp` need no unwind data ("ARM64 exception handling",
    /// Microsoft Learn), and MSVC omits them: System Informer's lookaside initialisers are
    /// such leaves ending in a tail call.
    gaps: Vec<Region>,
    /// Every import's IAT slot, sorted (`Image::import_at` without its linear search).
    import_slots: Vec<u32>,
    decoder: InstDecoder,
    /// (global, initial value) of every 4-byte load from a writable section: how a tag read at
    /// run time is traced back to its global (see [`common::fill_tag_values`]).
    runtime_loads: RefCell<Vec<(u32, u32)>>,
    /// [`Ctx::stretch_opens`] of each function asked about, by its start.
    opens: RefCell<HashMap<u32, Option<Rc<Vec<usize>>>>>,
    /// Where [`Ctx::straight_line_regs`] stopped stepping last.
    stretch: RefCell<Option<StretchCursor>>,
}

/// The state stepped from the start (word `open`) of a straight-line stretch of the function
/// at `region` up to word `at`.
struct StretchCursor {
    region: u32,
    open: usize,
    at: usize,
    state: State,
}

impl<'a> Ctx<'a> {
    fn new(image: &'a Image, data: &'a [u8]) -> Option<Ctx<'a>> {
        let mut slots = HashMap::new();
        for imp in &image.imports {
            let Some(name) = imp.name.as_deref() else {
                continue;
            };
            if let Some(spec) = apis::for_import(&imp.dll, name) {
                slots.insert(imp.iat_rva, spec);
            }
        }
        if slots.is_empty() {
            return None;
        }
        let pages = slots.keys().map(|&r| r >> 12).collect();
        let code: Vec<(u32, &[u8])> = image
            .sections
            .iter()
            .filter(|s| s.is_executable())
            .filter_map(|s| {
                let b = image.bytes_at(data, s.rva)?;
                let len = (s.mapped_size() as usize).min(b.len()) & !3;
                Some((s.rva, &b[..len]))
            })
            .collect();
        let gaps = gaps(&image.functions, &code);
        let mut import_slots: Vec<u32> = image.imports.iter().map(|i| i.iat_rva).collect();
        import_slots.sort_unstable();
        import_slots.dedup();
        Some(Ctx {
            image,
            data,
            slots,
            pages,
            code,
            gaps,
            import_slots,
            decoder: InstDecoder::default(),
            runtime_loads: RefCell::new(Vec::new()),
            opens: RefCell::new(HashMap::new()),
            stretch: RefCell::new(None),
        })
    }

    fn run(&self, shortcut: bool) -> Vec<CallSite> {
        let scan = self.scan();
        let mut cache: HashMap<u32, FnResult> = HashMap::new();
        let mut raw = Vec::new();
        let mut regions: Vec<Region> = scan.candidates.iter().copied().collect();
        regions.sort_by_key(|r| r.begin);
        for region in regions {
            let res = self.analyze_region(region, &scan);
            raw.extend(res.sites.iter().map(|s| RawSite {
                rva: s.rva,
                spec: s.spec,
                reach: s.reach,
                function: s.function,
                args: s.args.clone(),
            }));
            cache.insert(region.begin, res);
        }
        let mut out = Vec::new();
        for site in &raw {
            out.push(CallSite {
                rva: site.rva,
                api: site.spec.name,
                reach: site.reach,
                function: site.function,
                via: None,
                args: site
                    .args
                    .iter()
                    .map(|&(role, v, wide)| (role, arg_value(v, wide)))
                    .collect(),
                tag_values: Vec::new(),
            });
            // Wrappers: a parameter passed straight through is resolved at each caller.
            let Some(func) = site.function else { continue };
            if !site
                .args
                .iter()
                .any(|(_, v, _)| matches!(v, Val::Param { .. }))
            {
                continue;
            }
            for caller in callers_of(&scan.calls_to, func) {
                let Some(f) = self.region_of(caller) else {
                    continue;
                };
                // The caller is analysed whole only when the code just before the call does
                // not settle every parameter the site needs (see `straight_line_regs`).
                let settled = shortcut.then(|| self.straight_line_regs(f, caller));
                let settled = settled.flatten().filter(|regs| {
                    site.args.iter().all(|(_, v, _)| match v {
                        Val::Param { reg, .. } => {
                            matches!(regs.get(*reg as usize), Some(Val::Const(..)))
                        }
                        _ => true,
                    })
                });
                let regs = match settled {
                    Some(regs) => regs,
                    None => {
                        let res = cache
                            .entry(f.begin)
                            .or_insert_with(|| self.analyze_region(f, &scan));
                        match res.at_call(caller) {
                            Some(regs) => *regs,
                            None => continue,
                        }
                    }
                };
                let args = site
                    .args
                    .iter()
                    .map(|&(role, v, wide)| {
                        let v = match v {
                            // The caller's value reached the API through the wrapper, so an
                            // immediate there is `Propagated` here; loaded values keep their
                            // origin (`Global`, `Runtime`).
                            Val::Param { reg, narrow } => {
                                let outer = regs.get(reg as usize).copied().unwrap_or(Val::Unknown);
                                if narrow { outer.narrow() } else { outer }.copied()
                            }
                            other => other,
                        };
                        (role, arg_value(v, wide))
                    })
                    .collect();
                out.push(CallSite {
                    rva: site.rva,
                    api: site.spec.name,
                    reach: site.reach,
                    function: site.function,
                    via: Some(caller),
                    args,
                    tag_values: Vec::new(),
                });
            }
        }
        // Taken out first: the search for stores steps through code that loads globals too.
        let loads = std::mem::take(&mut *self.runtime_loads.borrow_mut());
        common::fill_tag_values(&mut out, loads, |global, initial| {
            self.values_of_global(global, initial)
        });
        out
    }

    /// The values the 4-byte global at `global` can hold: `initial` and every constant that an
    /// instruction of the image's code stores into it — `str wN, [xB, #off]` (or `stur`) where
    /// xB holds the global's `adrp` page and wN a constant (`wzr` included) — found by decoding
    /// every executable section, word by word, and following registers along straight-line
    /// code (all is forgotten at branch and call targets, function starts, and after transfers
    /// that do not fall through). `None` when any other instruction writes its bytes (another
    /// size, a pair, an atomic, a store through a base whose offset is not known, a value that
    /// is not constant) or when its address is formed (`adrp; add`, `adr`) or held in the image
    /// (a pointer in data or a literal pool: [`common::address_held_in_image`]): the values are
    /// then unknown. A pointer to it computed at run time some other way is not seen.
    fn values_of_global(&self, global: u32, initial: u32) -> Option<Vec<u32>> {
        if common::address_held_in_image(self.image, self.data, global) {
            return None;
        }
        let mut values = vec![initial];
        for &(begin, bytes) in &self.code {
            // Every way in: branch targets, call targets and `.pdata` function starts (a
            // function may follow a literal pool, whose words decode as anything). A first
            // pass finds them, so the section's instructions are never all held at once.
            let mut targets: HashSet<i64> = self
                .image
                .functions
                .iter()
                .map(|f| i64::from(f.begin))
                .collect();
            for insn in self.decode_words(begin, bytes) {
                let call = match insn.inst.as_ref() {
                    Some(x) if x.opcode == Opcode::BL => match x.operands[0] {
                        Operand::PCOffset(off) => Some(i64::from(insn.rva) + off),
                        _ => None,
                    },
                    _ => None,
                };
                targets.extend(branch_target(&insn).and_then(|t| t.0).or(call));
            }
            let mut s = State::unknown();
            for insn in self.decode_words(begin, bytes) {
                if targets.contains(&i64::from(insn.rva)) {
                    s = State::unknown();
                }
                let Some(inst) = &insn.inst else {
                    s = State::unknown();
                    continue;
                };
                let ops = &inst.operands;
                // The global's address formed in a register: it may be written through it.
                let formed = match inst.opcode {
                    Opcode::ADR => matches!(ops[1], Operand::PCOffset(off)
                        if overlaps(global, i64::from(insn.rva) + off, 1)),
                    Opcode::ADD => match (s.read(&ops[1]), ops[2]) {
                        (Val::Page(p) | Val::Addr(p), Operand::Immediate(i)) => {
                            overlaps(global, p + i64::from(i), 1)
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if formed {
                    return None;
                }
                if let Some(written) = store_to(&s, inst, global) {
                    values.push(written?);
                }
                self.step(&mut s, &insn, true);
                if branch_target(&insn).is_some_and(|(_, falls)| !falls) {
                    s = State::unknown();
                }
            }
        }
        values.sort_unstable();
        values.dedup();
        Some(values)
    }

    /// The `.pdata` function containing `rva`, else the stretch of executable code between
    /// `.pdata` functions that contains it.
    fn region_of(&self, rva: u32) -> Option<Region> {
        if let Some(f) = self.image.function_of(rva) {
            return Some(Region::function(f));
        }
        let i = self.gaps.partition_point(|g| g.begin <= rva);
        let g = *self.gaps.get(i.checked_sub(1)?)?;
        (rva < g.end).then_some(g)
    }

    /// Passes over the raw words of every executable section: every `bl`/`b`; import thunks;
    /// the functions that pair an `adrp` to a pool IAT page with a 64-bit `ldr` of a pool slot;
    /// and the `bl`/`b` instructions that call a function entry or a thunk.
    fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        // BL (100101) and B (000101) carry a signed 26-bit word offset.
        let mut branches = Vec::new();
        let mut bl_targets = Vec::new();
        for &(start, bytes) in &self.code {
            for (i, w) in bytes.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if w & 0x7c00_0000 != 0x1400_0000 {
                    continue;
                }
                let rva = start.wrapping_add(4 * i as u32);
                let off = b_offset(w);
                let target = rva.wrapping_add(off as u32);
                let is_bl = w & 0x8000_0000 != 0;
                if is_bl {
                    bl_targets.push(target);
                }
                branches.push((rva, target, is_bl));
            }
        }
        bl_targets.sort_unstable();
        bl_targets.dedup();
        let mut targets: Vec<u32> = branches.iter().map(|b| b.1).collect();
        targets.sort_unstable();
        targets.dedup();
        for &(start, bytes) in &self.code {
            let words: Vec<u32> = bytes
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect();
            for (i, &w) in words.iter().enumerate() {
                if w & 0x9f00_0000 != 0x9000_0000 {
                    continue;
                }
                let rva = start.wrapping_add(4 * i as u32);
                // ADRP: immhi (23:5) and immlo (30:29) form a signed 21-bit page count.
                let imm = (((w >> 5) & 0x7ffff) << 2 | (w >> 29) & 3) as i32;
                let imm = (imm << 11) >> 11;
                let page = i64::from(rva & !0xfff) + (i64::from(imm) << 12);
                if page < 0
                    || page > i64::from(u32::MAX)
                    || !self.pages.contains(&((page as u32) >> 12))
                {
                    continue;
                }
                let rd = w & 31;
                let slot_of = |l: u32| (page as u32).wrapping_add(((l >> 10) & 0xfff) * 8);
                let hit = words[i + 1..words.len().min(i + 1 + PAIR_WINDOW)]
                    .iter()
                    .position(|&l| {
                        // LDR (immediate, unsigned offset), 64-bit: 1111 1001 01; or the
                        // address formed first, ADD (immediate, 64-bit, unshifted).
                        let ldr = l & 0xffc0_0000 == 0xf940_0000;
                        let add = l & 0xffc0_0000 == 0x9100_0000;
                        let slot = if add {
                            (page as u32).wrapping_add((l >> 10) & 0xfff)
                        } else {
                            slot_of(l)
                        };
                        (ldr || add) && (l >> 5) & 31 == rd && self.slots.contains_key(&slot)
                    });
                let Some(k) = hit else { continue };
                let l = words[i + 1 + k];
                // Thunk: `adrp xN; ldr xN, [xN, #o]; br xN` standing alone: not the tail of a
                // larger `.pdata` function, and either branched to or not reachable by falling
                // through from the word before it. Unused thunks (lld emits one per import)
                // then yield no site, while a function's own tail call `...; adrp; ldr; br`
                // stays a tail-call site.
                let alone =
                    targets.binary_search(&rva).is_ok() || i == 0 || !falls_through(words[i - 1]);
                let is_thunk = k == 0
                    && l & 0xffc0_0000 == 0xf940_0000
                    && l & 31 == rd
                    && words.get(i + 2) == Some(&(0xd61f_0000 | (rd << 5)))
                    && alone
                    && self
                        .image
                        .function_of(rva)
                        .is_none_or(|f| f.begin == rva && f.end - f.begin <= 16);
                if is_thunk {
                    scan.thunks.insert(rva, self.slots[&slot_of(l)]);
                } else if let Some(r) = self.region_of(rva) {
                    scan.candidates.insert(r);
                }
            }
        }
        let entry_point = self.image.entry_point;
        for (rva, target, is_bl) in branches {
            let from = self.region_of(rva);
            if scan.thunks.contains_key(&target) {
                if let Some(r) = from {
                    scan.candidates.insert(r);
                }
            } else {
                // `bl` lands on a function entry. `b` is a tail call when it lands on a
                // `.pdata` function start from elsewhere, leaves its own stretch of code, or
                // lands on a known entry (a `bl` target, the image entry point).
                let entry = match self.region_of(target) {
                    Some(t) if t.is_function => t.begin == target && (is_bl || from != Some(t)),
                    Some(t) => {
                        is_bl
                            || from != Some(t)
                            || bl_targets.binary_search(&target).is_ok()
                            || target == entry_point
                    }
                    None => false,
                };
                if !entry {
                    continue;
                }
            }
            scan.calls_to.push((target, rva));
        }
        scan.calls_to.sort_unstable();
        scan
    }

    /// The bytes of region `r` (cut at the end of its section).
    fn region_bytes(&self, r: Region) -> Option<&'a [u8]> {
        self.code.iter().find_map(|(start, b)| {
            let off = r.begin.checked_sub(*start)? as usize;
            let len = (r.end - r.begin) as usize;
            b.get(off..off.checked_add(len)?.min(b.len()))
        })
    }

    fn decode_region(&self, r: Region) -> Vec<Insn> {
        match self.region_bytes(r) {
            Some(bytes) => self.decode_words(r.begin, bytes).collect(),
            None => Vec::new(),
        }
    }

    /// The instructions of `bytes` (code at `begin`), decoded one word at a time as they are
    /// asked for.
    fn decode_words<'b>(&'b self, begin: u32, bytes: &'b [u8]) -> impl Iterator<Item = Insn> + 'b {
        bytes.chunks_exact(4).enumerate().map(move |(i, w)| Insn {
            rva: begin.wrapping_add(4 * i as u32),
            inst: self.decoder.decode(&mut U8Reader::new(w)).ok(),
        })
    }

    /// x0..x7 just before the `bl`/`b` at `call`, computed from the straight-line code that
    /// leads to it with nothing known where that code starts; `None` when `region` is not one
    /// `.pdata` function, has a jump table (`br`), or the stretch holds a word that does not
    /// decode.
    ///
    /// The stretch starts after the last instruction before `call` that does not fall through
    /// (`b`, `ret`, `brk`, …) and at the last branch target, so every path to `call` runs all
    /// of it (a conditional branch inside only leaves it): a constant it computes does not
    /// depend on what came before, and is what solving the whole function would give there.
    /// Callers of a wrapper usually set its arguments right before the call, so most are
    /// resolved without decoding and solving the whole caller. The branches are recognised
    /// from their encodings (Arm ARM C4.1, "Branches, Exception Generating and System
    /// instructions").
    fn straight_line_regs(&self, region: Region, call: u32) -> Option<[Val; 8]> {
        if !region.is_function || !region.contains(call) || call % 4 != region.begin % 4 {
            return None;
        }
        let bytes = self.region_bytes(region)?;
        let at = ((call - region.begin) / 4) as usize;
        bytes.get(4 * at..4 * at + 4)?;
        let opens = self.stretch_opens(region, bytes)?;
        let open = opens[..opens.partition_point(|&o| o <= at)]
            .last()
            .copied()
            .unwrap_or(0);
        // Callers come in address order: one in the same stretch as the previous is stepped
        // to from the previous one's state, which is the state stepping from the stretch's
        // start gives (stepping is deterministic). Stepping each from the start again, and
        // scanning the whole function for branches each time, was quadratic: 11 s for a
        // 128 KiB function of `movz w2; bl wrapper` pairs, 0.1 s now (tests/it/regress.rs,
        // testdata/regress/pe_file/arm64-wrapper-callers.sys).
        let mut cursor = self.stretch.borrow_mut();
        let reuse = cursor
            .as_ref()
            .is_some_and(|c| c.region == region.begin && c.open == open && c.at <= at);
        if !reuse {
            *cursor = Some(StretchCursor {
                region: region.begin,
                open,
                at: open,
                state: State::unknown(),
            });
        }
        let c = cursor.as_mut().expect("set above");
        for i in c.at..at {
            let rva = region.begin + 4 * i as u32;
            let w = bytes.get(4 * i..4 * i + 4);
            let Some(inst) = w.and_then(|w| self.decoder.decode(&mut U8Reader::new(w)).ok()) else {
                *cursor = None;
                return None;
            };
            // Whether the function takes a stack slot's address is not known without decoding
            // all of it: assume it does (the less precise choice).
            self.step(
                &mut c.state,
                &Insn {
                    rva,
                    inst: Some(inst),
                },
                true,
            );
        }
        c.at = at;
        let mut regs = [Val::Unknown; 8];
        regs.copy_from_slice(&c.state.regs[..8]);
        Some(regs)
    }

    /// Where the straight-line stretches of a `.pdata` function open, as sorted word indices:
    /// after each transfer that does not fall through (`bl`/`blr` return to the next word and
    /// conditional branches fall through) and at each branch target (another way in); `None`
    /// when the function has a jump table (`br`). One pass over the function, kept for all its
    /// callers.
    fn stretch_opens(&self, region: Region, bytes: &[u8]) -> Option<Rc<Vec<usize>>> {
        if let Some(known) = self.opens.borrow().get(&region.begin) {
            return known.clone();
        }
        let plan = Self::scan_stretches(region, bytes).map(Rc::new);
        self.opens.borrow_mut().insert(region.begin, plan.clone());
        plan
    }

    fn scan_stretches(region: Region, bytes: &[u8]) -> Option<Vec<usize>> {
        let mut opens = Vec::new();
        for (i, w) in bytes.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let rva = i64::from(region.begin) + 4 * i as i64;
            let (ends, target) = match w {
                // B / BL imm26
                w if w & 0x7c00_0000 == 0x1400_0000 => {
                    let off = i64::from(b_offset(w));
                    (w & 0x8000_0000 == 0, Some(rva + off))
                }
                // B.cond / BC.cond imm19, CBZ / CBNZ imm19: they fall through too, so only
                // their targets matter.
                w if w & 0xff00_0000 == 0x5400_0000 || w & 0x7e00_0000 == 0x3400_0000 => {
                    let off = i64::from((((w >> 5) & 0x7ffff) << 13) as i32 >> 11);
                    (false, Some(rva + off))
                }
                // TBZ / TBNZ imm14
                w if w & 0x7e00_0000 == 0x3600_0000 => {
                    let off = i64::from((((w >> 5) & 0x3fff) << 18) as i32 >> 16);
                    (false, Some(rva + off))
                }
                // Branches to a register: BLR (with or without pointer authentication) is a
                // call; any other BR may be a jump table whose targets are unknown.
                w if w & 0xfe00_0000 == 0xd600_0000 => {
                    let opc = (w >> 21) & 0xf;
                    if opc == 0b0001 {
                        (false, None)
                    } else if opc == 0b0000 || opc == 0b1000 {
                        return None;
                    } else {
                        (true, None)
                    }
                }
                // Exception generation (BRK, HLT, SVC, …) and UDF: no fall-through that
                // `branch_target` would follow either.
                w if w & 0xff00_0000 == 0xd400_0000 || w & 0xffff_0000 == 0 => (true, None),
                _ => (false, None),
            };
            if ends {
                opens.push(i + 1);
            }
            if let Some(t) = target {
                let off = t - i64::from(region.begin);
                if off > 0 && off % 4 == 0 {
                    opens.push((off / 4) as usize);
                }
            }
        }
        opens.sort_unstable();
        opens.dedup();
        Some(opens)
    }

    /// Analyses one function: its pool call sites and the argument registers at every
    /// `bl`/`b` (for resolving wrapper parameters at callers).
    fn analyze_region(&self, region: Region, scan: &Scan) -> FnResult {
        let insns = self.decode_region(region);
        let mut res = FnResult::default();
        if insns.is_empty() {
            return res;
        }
        // Function entries: a `.pdata` function's start; in a gap, the targets of calls from
        // elsewhere (a gap's first word may be the previous function's literal pool).
        let entries: Vec<u32> = if region.is_function {
            vec![region.begin]
        } else {
            let mut e: Vec<u32> = calls_in(&scan.calls_to, region.begin..region.end)
                .iter()
                .map(|c| c.0)
                .chain(
                    std::iter::once(self.image.entry_point)
                        .chain(self.image.exports.iter().map(|x| x.rva))
                        .filter(|&t| region.contains(t)),
                )
                .filter(|t| t % 4 == 0)
                .collect();
            e.sort_unstable();
            e.dedup();
            e
        };
        // Index of the function (segment between entries) an RVA belongs to.
        let segment = |rva: u32| entries.partition_point(|&e| e <= rva);
        let cfg = Cfg::build(&insns, region, &entries);
        // Per function: whether it computes the address of one of its stack slots.
        let mut escapes = vec![false; entries.len() + 1];
        for i in &insns {
            if i.inst.as_ref().is_some_and(takes_stack_address) {
                escapes[segment(i.rva)] = true;
            }
        }
        let step = |s: &mut State, insn: &Insn| self.step(s, insn, escapes[segment(insn.rva)]);
        let states = cfg.solve(&insns, step);
        for (b, block) in cfg.blocks.iter().enumerate() {
            // `observe` only looks at `bl`, `b`, `blr` and `br`: a block without one records
            // nothing, and nothing after its last one matters.
            let Some(last) = insns[block.start..block.end]
                .iter()
                .rposition(|i| i.inst.as_ref().is_some_and(observed))
            else {
                continue;
            };
            let mut s = states[b].clone();
            for (k, insn) in insns[block.start..=block.start + last].iter().enumerate() {
                let function = segment(insn.rva)
                    .checked_sub(1)
                    .map(|i| entries[i])
                    .or_else(|| leaf_start(&insns, block.start + k));
                let site = Observed {
                    region,
                    function,
                    entries: &entries,
                };
                self.observe(&s, insn, &site, &scan.thunks, &mut res);
                step(&mut s, insn);
            }
        }
        // Already in address order (blocks and their instructions are); kept sorted for
        // `at_call` whatever the block order.
        res.at_calls.sort_by_key(|c| c.0);
        res
    }

    /// Records a site or a call's argument registers at `insn`, before it executes.
    fn observe(
        &self,
        s: &State,
        insn: &Insn,
        at: &Observed,
        thunks: &HashMap<u32, &'static ApiSpec>,
        res: &mut FnResult,
    ) {
        let Some(inst) = &insn.inst else { return };
        let call = match (inst.opcode, inst.operands[0]) {
            (Opcode::BLR, Operand::Register(_, r)) => match s.get(r) {
                Val::Iat(slot) => Some((self.slots[&slot], Reach::RegisterCall)),
                _ => None,
            },
            // A recorded thunk's own `br` is not a site (no-`.pdata` images decode thunks).
            (Opcode::BR, Operand::Register(_, r)) => match s.get(r) {
                Val::Iat(slot) if !thunks.contains_key(&insn.rva.wrapping_sub(8)) => {
                    Some((self.slots[&slot], Reach::TailJump))
                }
                _ => None,
            },
            (Opcode::BL | Opcode::B, Operand::PCOffset(off)) => {
                let target = (i64::from(insn.rva) + off) as u32;
                if inst.opcode == Opcode::BL
                    || !at.region.contains(target)
                    || at.entries.binary_search(&target).is_ok()
                {
                    let mut regs = [Val::Unknown; 8];
                    regs.copy_from_slice(&s.regs[..8]);
                    res.at_calls.push((insn.rva, regs));
                }
                thunks.get(&target).map(|&spec| {
                    let reach = if inst.opcode == Opcode::BL {
                        Reach::Thunk
                    } else {
                        Reach::TailJump
                    };
                    (spec, reach)
                })
            }
            _ => None,
        };
        let Some((spec, reach)) = call else { return };
        let args = spec
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.role != Role::Other)
            .map(|(i, p)| {
                let v = match arg_location(Machine::Arm64, spec, i + 1) {
                    Some(ArgLocation::Register(r)) => s.get(u16::from(r)),
                    _ => Val::Unknown,
                };
                (p.role, v, p.wide)
            })
            .collect();
        res.sites.push(RawSite {
            rva: insn.rva,
            spec,
            reach,
            function: at.function,
            args,
        });
    }

    /// Reads `size` bytes of a global at `rva` for a load: a pool IAT slot gives the import's
    /// pointer, read-only data a [`Provenance::Global`] constant, a writable section its initial
    /// value as [`Provenance::Runtime`].
    fn load_global(&self, rva: i64, size: u8, signed: bool) -> Val {
        let Ok(rva) = u32::try_from(rva) else {
            return Val::Unknown;
        };
        if size == 8 && self.slots.contains_key(&rva) {
            return Val::Iat(rva);
        }
        let Some(sec) = self.image.section_of(rva) else {
            return Val::Unknown;
        };
        if self.import_slots.binary_search(&rva).is_ok() {
            return Val::Unknown;
        }
        // Past the raw data the loader zero-fills (`.bss` tail of a section).
        let raw = match size {
            8 => self.image.read_u64(self.data, rva),
            4 => self.image.read_u32(self.data, rva).map(u64::from),
            2 | 1 => self
                .image
                .bytes_at(self.data, rva)
                .and_then(|b| b.get(..size as usize))
                .map(|b| b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x))),
            _ => None,
        };
        let raw = match raw {
            Some(v) => v,
            None if sec.contains(rva.saturating_add(u32::from(size) - 1)) => 0,
            None => return Val::Unknown,
        };
        let v = if signed {
            let bits = 64 - 8 * u32::from(size);
            (((raw << bits) as i64) >> bits) as u64
        } else {
            raw
        };
        let how = if sec.is_writable() {
            if size == 4 {
                self.runtime_loads.borrow_mut().push((rva, raw as u32));
            }
            Provenance::Runtime
        } else {
            Provenance::Global
        };
        Val::Const(v, how)
    }

    /// The transfer function of one instruction.
    fn step(&self, s: &mut State, insn: &Insn, escapes: bool) {
        #[cfg(test)]
        tests::STEPS.set(tests::STEPS.get() + 1);
        let Some(inst) = &insn.inst else {
            *s = State::unknown();
            return;
        };
        let ops = &inst.operands;
        let mut keep_cmp = false;
        let dst = |op: &Operand| match *op {
            Operand::Register(sz, r) | Operand::RegisterOrSP(sz, r) if r < 31 => Some((sz, r)),
            _ => None,
        };
        // Writes `v` to the destination register, zero-extending a 32-bit write.
        let write = |s: &mut State, op: &Operand, v: Val| {
            if let Some((sz, r)) = dst(op) {
                let v = if sz == SizeCode::W { v.narrow() } else { v };
                s.set(r, v);
            }
        };
        match inst.opcode {
            Opcode::MOVZ | Opcode::MOVN => {
                if let Operand::ImmShift(imm, sh) = ops[1] {
                    let v = u64::from(imm).checked_shl(u32::from(sh)).unwrap_or(0);
                    let v = if inst.opcode == Opcode::MOVN { !v } else { v };
                    write(s, &ops[0], Val::Const(v, Provenance::Immediate));
                } else {
                    write(s, &ops[0], Val::Unknown);
                }
                keep_cmp = true;
            }
            Opcode::MOVK => {
                // `movz; movk` is how A64 spells a wide immediate, so it stays `Immediate`.
                let v = match (dst(&ops[0]).map(|(_, r)| s.get(r)), ops[1]) {
                    (Some(Val::Const(old, how)), Operand::ImmShift(imm, sh)) if sh < 64 => {
                        let mask = 0xffffu64 << sh;
                        Val::Const(old & !mask | u64::from(imm) << sh, how)
                    }
                    _ => Val::Unknown,
                };
                write(s, &ops[0], v);
                keep_cmp = true;
            }
            Opcode::ORR if matches!(ops[1], Operand::Register(_, 31)) => {
                // `mov` aliases: `orr wd, wzr, #imm` and `orr wd, wzr, wm`.
                let v = match ops[2] {
                    Operand::Immediate(i) => Val::Const(u64::from(i), Provenance::Immediate),
                    Operand::Imm64(i) => Val::Const(i, Provenance::Immediate),
                    Operand::RegShift(_, 0, _, 31) => Val::Const(0, Provenance::Immediate),
                    Operand::RegShift(_, 0, sz, r) => {
                        let v = s.get(r);
                        if sz == SizeCode::W { v.narrow() } else { v }.copied()
                    }
                    _ => Val::Unknown,
                };
                write(s, &ops[0], v);
                keep_cmp = true;
            }
            Opcode::ADRP | Opcode::ADR => {
                let v = match (inst.opcode, ops[1]) {
                    (Opcode::ADRP, Operand::PCOffset(off)) => {
                        Val::Page(i64::from(insn.rva & !0xfff) + off)
                    }
                    (_, Operand::PCOffset(off)) => Val::Addr(i64::from(insn.rva) + off),
                    _ => Val::Unknown,
                };
                write(s, &ops[0], v);
                keep_cmp = true;
            }
            Opcode::ADD | Opcode::SUB | Opcode::ORR | Opcode::EOR | Opcode::AND
                if dst(&ops[0]).is_some() =>
            {
                let imm = match ops[2] {
                    Operand::Immediate(i) => Some(u64::from(i)),
                    Operand::Imm64(i) => Some(i),
                    Operand::ImmShift(i, sh) => u64::from(i).checked_shl(u32::from(sh)),
                    _ => None,
                };
                let src = s.read(&ops[1]);
                let v = match (inst.opcode, src, imm) {
                    (Opcode::ADD, Val::Page(p), Some(i)) => Val::Addr(p + i as i64),
                    (Opcode::ADD, Val::Addr(p), Some(i)) => Val::Addr(p + i as i64),
                    (op, Val::Const(c, how), Some(i)) => {
                        let v = match op {
                            Opcode::ADD => c.wrapping_add(i),
                            Opcode::SUB => c.wrapping_sub(i),
                            Opcode::ORR => c | i,
                            Opcode::EOR => c ^ i,
                            _ => c & i,
                        };
                        let how = match how {
                            Provenance::Immediate => Provenance::Propagated,
                            other => other,
                        };
                        Val::Const(v, how)
                    }
                    _ => Val::Unknown,
                };
                write(s, &ops[0], v);
                if dst(&ops[0]).is_some_and(|(_, r)| r == 29) {
                    s.forget_slots_of(29);
                }
                keep_cmp = true;
            }
            Opcode::SUBS
                if matches!(ops[0], Operand::Register(_, 31))
                    && matches!(ops[2], Operand::Immediate(0)) =>
            {
                // `cmp wN, #0`: remembered for the `csel` override idiom below.
                if let Operand::RegisterOrSP(sz, r) = ops[1] {
                    if r < 31 {
                        let v = if sz == SizeCode::W {
                            s.get(r).narrow()
                        } else {
                            s.get(r)
                        };
                        s.cmp_zero = Some((r, v));
                        keep_cmp = true;
                    }
                }
            }
            Opcode::CSEL => {
                let v = self.csel_override(s, ops);
                write(s, &ops[0], v);
                keep_cmp = true;
            }
            Opcode::LDR
            | Opcode::LDRB
            | Opcode::LDRH
            | Opcode::LDRSW
            | Opcode::LDUR
            | Opcode::LDURB
            | Opcode::LDURH
            | Opcode::LDURSW => {
                let size = match (inst.opcode, ops[0]) {
                    (Opcode::LDRB | Opcode::LDURB, _) => 1,
                    (Opcode::LDRH | Opcode::LDURH, _) => 2,
                    (Opcode::LDRSW | Opcode::LDURSW, _) => 4,
                    (_, Operand::Register(SizeCode::X, _)) => 8,
                    _ => 4,
                };
                let signed = matches!(inst.opcode, Opcode::LDRSW | Opcode::LDURSW);
                let v = match ops[1] {
                    Operand::PCOffset(off) => {
                        self.load_global(i64::from(insn.rva) + off, size, signed)
                    }
                    Operand::RegPreIndex(base, off, false) => match (base, s.get(base)) {
                        (29 | 31, _) => s
                            .slots
                            .iter()
                            .find(|sl| {
                                sl.base == base && sl.offset == i64::from(off) && sl.size >= size
                            })
                            .map_or(Val::Unknown, |sl| match (size, signed) {
                                (8, _) => sl.val,
                                (4, false) => sl.val.narrow(),
                                _ => Val::Unknown,
                            }),
                        (_, Val::Page(p) | Val::Addr(p)) => {
                            self.load_global(p + i64::from(off), size, signed)
                        }
                        _ => Val::Unknown,
                    },
                    _ => Val::Unknown,
                };
                self.writeback(s, &ops[1]);
                write(s, &ops[0], v);
                keep_cmp = true;
            }
            Opcode::STR | Opcode::STUR | Opcode::STP => {
                let (regs, mem): (&[Operand], &Operand) = if inst.opcode == Opcode::STP {
                    (&ops[..2], &ops[2])
                } else {
                    (&ops[..1], &ops[1])
                };
                let size = match regs[0] {
                    Operand::Register(SizeCode::X, _) => 8,
                    Operand::Register(SizeCode::W, _) => 4,
                    _ => 0, // SIMD registers: the slot is overwritten with an unknown value.
                };
                match *mem {
                    Operand::RegPreIndex(base @ (29 | 31), off, wb) => {
                        let start = i64::from(off);
                        let len = if size == 0 { 16 } else { i64::from(size) } * regs.len() as i64;
                        s.slots.retain(|sl| {
                            sl.base != base
                                || sl.offset + i64::from(sl.size) <= start
                                || sl.offset >= start + len
                        });
                        if !wb && size != 0 {
                            for (k, r) in regs.iter().enumerate() {
                                s.slots.push(Slot {
                                    base,
                                    offset: start + k as i64 * i64::from(size),
                                    size,
                                    val: s.read(r),
                                });
                            }
                        }
                    }
                    _ => store_elsewhere(s, mem, escapes),
                }
                self.writeback(s, mem);
                keep_cmp = true;
            }
            Opcode::BL | Opcode::BLR => {
                // AAPCS64: x0..x18 and x30 are not preserved across a call; x19..x29 are.
                for r in (0..=18).chain([30]) {
                    s.set(r, Val::Unknown);
                }
                if escapes {
                    s.slots.clear();
                }
            }
            _ => self.clobber(s, inst, escapes),
        }
        if !keep_cmp {
            s.cmp_zero = None;
        }
    }

    /// `cmp wG, #0; csel wD, wG, wP, ne` (or `csel wD, wP, wG, eq`): "use the global's value when
    /// it is non-zero, else wP". System Informer's `KphAllocateNPaged`/`KphAllocatePaged` and its
    /// lookaside initialisers replace the caller's tag with `KphpRandomPoolTag` this way; the
    /// global is zero in the image, so the value the code passes in its initial state is wP.
    /// Any other conditional select is unknown.
    fn csel_override(&self, s: &State, ops: &[Operand; 4]) -> Val {
        let Some((g, gv)) = s.cmp_zero else {
            return Val::Unknown;
        };
        let (Operand::Register(sz, a), Operand::Register(_, b), Operand::ConditionCode(cc)) =
            (ops[1], ops[2], ops[3])
        else {
            return Val::Unknown;
        };
        // Condition codes: 0 = eq, 1 = ne.
        let other = match cc {
            1 if a == g => b,
            0 if b == g => a,
            _ => return Val::Unknown,
        };
        let current = if sz == SizeCode::W {
            s.get(g).narrow()
        } else {
            s.get(g)
        };
        if current != gv {
            return Val::Unknown;
        }
        match gv {
            Val::Const(0, _) => {
                let v = if other == 31 {
                    Val::Const(0, Provenance::Immediate)
                } else {
                    s.get(other)
                };
                v.copied()
            }
            _ => Val::Unknown,
        }
    }

    /// Base-register writeback of pre/post-indexed addressing.
    fn writeback(&self, s: &mut State, mem: &Operand) {
        match *mem {
            Operand::RegPreIndex(base, _, true)
            | Operand::RegPostIndex(base, _)
            | Operand::RegPostIndexReg(base, _) => {
                if base == 31 {
                    s.forget_slots_of(31);
                } else {
                    s.set(base, Val::Unknown);
                    if base == 29 {
                        s.forget_slots_of(29);
                    }
                }
            }
            _ => {}
        }
    }

    /// Any instruction not interpreted above: every general-purpose register it may write
    /// becomes unknown (over-approximated: a wrong "unknown" costs a value, a missed write
    /// would cost correctness).
    fn clobber(&self, s: &mut State, inst: &Instruction, escapes: bool) {
        let ops = &inst.operands;
        let kill = |s: &mut State, op: &Operand| match *op {
            Operand::Register(_, 31) => {}
            Operand::RegisterOrSP(_, 31) => s.forget_slots_of(31),
            Operand::Register(_, r) | Operand::RegisterOrSP(_, r) => {
                s.set(r, Val::Unknown);
                if r == 29 {
                    s.forget_slots_of(29);
                }
            }
            _ => {}
        };
        match inst.opcode {
            // Stores, compares and branches read their register operands. Exclusive stores
            // write a status register and are handled by the default arm.
            Opcode::STRB
            | Opcode::STRH
            | Opcode::STNP
            | Opcode::STLR
            | Opcode::STLLR
            | Opcode::STLRB
            | Opcode::STLLRB
            | Opcode::STLRH
            | Opcode::STLLRH
            | Opcode::STTR
            | Opcode::STTRB
            | Opcode::STTRH
            | Opcode::STRW
            | Opcode::STURB
            | Opcode::STURH
            | Opcode::STLUR
            | Opcode::STLURB
            | Opcode::STLURH
            | Opcode::ST1
            | Opcode::ST2
            | Opcode::ST3
            | Opcode::ST4
            | Opcode::STG
            | Opcode::STZG
            | Opcode::ST2G
            | Opcode::STZ2G
            | Opcode::STGM
            | Opcode::STZGM
            | Opcode::CBZ
            | Opcode::CBNZ
            | Opcode::TBZ
            | Opcode::TBNZ
            | Opcode::B
            | Opcode::Bcc(_)
            | Opcode::BR
            | Opcode::RET
            | Opcode::CCMP
            | Opcode::CCMN
            | Opcode::MSR
            | Opcode::SYS(_)
            | Opcode::HINT
            | Opcode::ISB
            | Opcode::DSB(_)
            | Opcode::DMB(_)
            | Opcode::CLREX => {
                // A store may still write back its base, or hit a stack slot.
                for op in ops.iter() {
                    store_elsewhere(s, op, escapes);
                    self.writeback(s, op);
                }
            }
            Opcode::LDP | Opcode::LDPSW | Opcode::LDNP | Opcode::LDXP | Opcode::LDAXP => {
                kill(s, &ops[0]);
                kill(s, &ops[1]);
                for op in ops.iter() {
                    self.writeback(s, op);
                }
            }
            // Atomics write one of their registers depending on the form: forget them all.
            Opcode::CAS(_)
            | Opcode::CASB(_)
            | Opcode::CASH(_)
            | Opcode::CASP(_)
            | Opcode::SWP(_)
            | Opcode::SWPB(_)
            | Opcode::SWPH(_)
            | Opcode::LDADD(_)
            | Opcode::LDADDB(_)
            | Opcode::LDADDH(_) => {
                for op in ops.iter() {
                    kill(s, op);
                    if let Operand::RegPreIndex(base, ..) = op {
                        kill(s, &Operand::Register(SizeCode::X, *base));
                    }
                }
                s.slots.clear();
            }
            _ => {
                kill(s, &ops[0]);
                // Exclusive stores land here (they write a status register); any memory
                // operand is treated as a possible store.
                for op in ops.iter() {
                    store_elsewhere(s, op, escapes);
                    self.writeback(s, op);
                }
                // Other atomic read-modify-write families (LDCLR, LDEOR, LDSET, ...) write
                // their second register; yaxpeax names them separately, so be safe.
                if is_other_atomic(inst.opcode) {
                    kill(s, &ops[1]);
                    s.slots.clear();
                }
            }
        }
    }
}

/// The calls of `func`, looking through one-instruction stubs: a call that is itself the first
/// instruction of a called function (MSVC's `fothk` and incremental-link thunks are a lone
/// `b func`) sees that function's incoming arguments, so its own callers are used instead.
fn callers_of(calls_to: &[(u32, u32)], func: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for &(_, c) in calls_in(calls_to, func..func.saturating_add(1)) {
        match calls_in(calls_to, c..c.saturating_add(1)) {
            outer if c != func && !outer.is_empty() => {
                out.extend(outer.iter().map(|o| o.1).filter(|&o| o != c))
            }
            _ => out.push(c),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The (target, call) pairs of the sorted `calls_to` whose target lies in `targets`.
fn calls_in(calls_to: &[(u32, u32)], targets: std::ops::Range<u32>) -> &[(u32, u32)] {
    let lo = calls_to.partition_point(|c| c.0 < targets.start);
    let hi = calls_to.partition_point(|c| c.0 < targets.end);
    &calls_to[lo..hi.max(lo)]
}

/// A store to memory operand `mem` that is not an exactly tracked stack slot: slots of its base
/// (`sp`, `x29`) may be overwritten; through any other pointer, any slot whose address escaped.
fn store_elsewhere(s: &mut State, mem: &Operand, escapes: bool) {
    match *mem {
        Operand::RegPreIndex(base @ (29 | 31), ..)
        | Operand::RegPostIndex(base @ (29 | 31), _)
        | Operand::RegPostIndexReg(base @ (29 | 31), _)
        | Operand::RegRegOffset(base @ (29 | 31), ..) => s.forget_slots_of(base),
        Operand::RegPreIndex(..)
        | Operand::RegPostIndex(..)
        | Operand::RegPostIndexReg(..)
        | Operand::RegRegOffset(..)
            if escapes =>
        {
            s.slots.clear()
        }
        _ => {}
    }
}

/// For an instruction that may write memory overlapping the 4-byte `global`: `Some(Some(v))`
/// when it is a plain 32-bit store of the constant `v` at exactly its address, `Some(None)`
/// when it may write it otherwise; `None` when it cannot write it (not a store, or a store
/// elsewhere).
fn store_to(s: &State, inst: &Instruction, global: u32) -> Option<Option<u32>> {
    let ops = &inst.operands;
    let mem_at = ops.iter().position(|op| {
        matches!(
            op,
            Operand::RegPreIndex(..)
                | Operand::RegPostIndex(..)
                | Operand::RegPostIndexReg(..)
                | Operand::RegRegOffset(..)
        )
    })?;
    if reads_memory_only(inst.opcode) {
        return None;
    }
    // The global's page in the base register, with a known offset or not.
    let (base, off) = match ops[mem_at] {
        Operand::RegPreIndex(b, off, _) => (b, Some(i64::from(off))),
        Operand::RegPostIndex(b, _) => (b, Some(0)),
        Operand::RegPostIndexReg(b, _) | Operand::RegRegOffset(b, ..) => (b, None),
        _ => return None,
    };
    let page = match s.get(base) {
        Val::Page(p) | Val::Addr(p) if base != 31 => p,
        _ => return None,
    };
    let Some(off) = off else {
        // An unknown offset from the global's page may reach it.
        return overlaps(global, page & !0xfff, 0x1000).then_some(None);
    };
    let at = page + off;
    if !overlaps(global, at, 16) {
        return None;
    }
    let plain = matches!(inst.opcode, Opcode::STR | Opcode::STUR)
        && matches!(ops[0], Operand::Register(SizeCode::W, _))
        && matches!(ops[mem_at], Operand::RegPreIndex(_, _, false))
        && at == i64::from(global);
    if !plain {
        // Another access size or form: is its span really over the global?
        let len = match (inst.opcode, ops[0]) {
            (Opcode::STRB | Opcode::STURB, _) => 1,
            (Opcode::STRH | Opcode::STURH, _) => 2,
            (Opcode::STR | Opcode::STUR, Operand::Register(SizeCode::W, _)) => 4,
            (Opcode::STR | Opcode::STUR, Operand::Register(SizeCode::X, _)) => 8,
            _ => 16,
        };
        return overlaps(global, at, len).then_some(None);
    }
    match s.read(&ops[0]) {
        Val::Const(v, _) => Some(Some(v as u32)),
        _ => Some(None),
    }
}

/// Whether `len` bytes at RVA `at` overlap the 4-byte global at RVA `global`.
fn overlaps(global: u32, at: i64, len: i64) -> bool {
    let g = i64::from(global);
    at < g + 4 && at + len > g
}

/// Whether an instruction with a memory operand only reads memory (loads and prefetches):
/// anything else (stores, exclusives, atomics, cache maintenance) is taken as a write.
fn reads_memory_only(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::LDR
            | Opcode::LDRB
            | Opcode::LDRH
            | Opcode::LDRSB
            | Opcode::LDRSH
            | Opcode::LDRSW
            | Opcode::LDUR
            | Opcode::LDURB
            | Opcode::LDURH
            | Opcode::LDURSB
            | Opcode::LDURSH
            | Opcode::LDURSW
            | Opcode::LDP
            | Opcode::LDPSW
            | Opcode::LDNP
            | Opcode::LDAR
            | Opcode::LDARB
            | Opcode::LDARH
            | Opcode::LDAXR
            | Opcode::LDXR
            | Opcode::PRFM
            | Opcode::PRFUM
    )
}

/// LSE atomic read-modify-write opcodes not matched by name in `clobber`.
fn is_other_atomic(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::LDCLRB(_)
            | Opcode::LDEORB(_)
            | Opcode::LDSETB(_)
            | Opcode::LDSMAXB(_)
            | Opcode::LDSMINB(_)
            | Opcode::LDUMAXB(_)
            | Opcode::LDUMINB(_)
            | Opcode::LDCLRH(_)
            | Opcode::LDEORH(_)
            | Opcode::LDSETH(_)
            | Opcode::LDSMAXH(_)
            | Opcode::LDSMINH(_)
            | Opcode::LDUMAXH(_)
            | Opcode::LDUMINH(_)
            | Opcode::LDCLR(_)
            | Opcode::LDEOR(_)
            | Opcode::LDSET(_)
            | Opcode::LDSMAX(_)
            | Opcode::LDSMIN(_)
            | Opcode::LDUMAX(_)
            | Opcode::LDUMIN(_)
    )
}

/// Whether [`Ctx::observe`] records anything at `inst` (in some state).
fn observed(inst: &Instruction) -> bool {
    matches!(
        (inst.opcode, inst.operands[0]),
        (Opcode::BLR | Opcode::BR, Operand::Register(..))
            | (Opcode::BL | Opcode::B, Operand::PCOffset(_))
    )
}

/// The byte offset of `B`/`BL`: imm26 (bits 25:0), in words, sign-extended.
fn b_offset(w: u32) -> i32 {
    (((w & 0x03ff_ffff) << 6) as i32) >> 4
}

/// Whether execution can continue from the A64 word `w` to the next one: false for `ret`,
/// `br`, `b`, `brk` and `udf #0` (zero padding between functions).
fn falls_through(w: u32) -> bool {
    let ret_or_br = w & 0xffbf_fc1f == 0xd61f_0000; // BR (op 00) and RET (op 10)
    let b = w & 0xfc00_0000 == 0x1400_0000;
    let brk = w & 0xffe0_001f == 0xd420_0000;
    !(ret_or_br || b || brk || w == 0)
}

/// The start of a function no call reaches directly (a leaf called through a pointer, in code
/// without `.pdata`), for labelling only: the instruction after the nearest preceding `ret`,
/// `br`, `b`, padding (`udf #0`) or undecodable word, else the start of the gap (which follows
/// a `.pdata` function or starts a section).
fn leaf_start(insns: &[Insn], at: usize) -> Option<u32> {
    let ends_flow = |i: &Insn| {
        i.inst.as_ref().is_none_or(|x| {
            matches!(
                x.opcode,
                Opcode::RET | Opcode::BR | Opcode::B | Opcode::UDF | Opcode::BRK | Opcode::Invalid
            )
        })
    };
    let k = insns[..at].iter().rposition(ends_flow).map_or(0, |k| k + 1);
    insns.get(k).map(|i| i.rva)
}

/// Whether `inst` computes an address inside the stack frame into another register
/// (`add x0, sp, #16`, `sub x0, x29, #8`): then a callee or a store through a pointer may
/// change a stack slot, and slots are forgotten at calls and such stores.
fn takes_stack_address(inst: &Instruction) -> bool {
    matches!(inst.opcode, Opcode::ADD | Opcode::SUB)
        && matches!(inst.operands[1], Operand::RegisterOrSP(_, 29 | 31))
        && !matches!(inst.operands[0], Operand::RegisterOrSP(_, 29 | 31))
}

/// Converts a tracked value into a reported argument value.
fn arg_value(v: Val, wide: bool) -> ArgValue {
    match v {
        Val::Const(c, how) => ArgValue {
            value: Some(if wide { c } else { c & 0xffff_ffff }),
            how,
        },
        _ => ArgValue::UNKNOWN,
    }
}

/// The stretches of executable code not covered by `functions`.
fn gaps(functions: &[FunctionRange], code: &[(u32, &[u8])]) -> Vec<Region> {
    let mut out = Vec::new();
    for &(start, bytes) in code {
        let end = start.saturating_add(bytes.len() as u32);
        let mut cursor = start;
        let first = functions.partition_point(|f| f.end <= start);
        for f in functions[first..].iter().take_while(|f| f.begin < end) {
            if f.begin > cursor {
                out.push(Region::gap(cursor, f.begin));
            }
            cursor = cursor.max(f.end.min(end));
        }
        if cursor < end {
            out.push(Region::gap(cursor, end));
        }
    }
    out.sort_by_key(|r| r.begin);
    out
}

/// A stretch of code analysed as a unit: a `.pdata` function, or code between them (which may
/// hold several leaf functions, or be a whole section when the image has no `.pdata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Region {
    begin: u32,
    end: u32,
    /// Whether this is one `.pdata` function (else a gap between them).
    is_function: bool,
}

impl Region {
    fn function(f: FunctionRange) -> Region {
        Region {
            begin: f.begin,
            end: f.end.min(f.begin.saturating_add(MAX_FUNCTION)),
            is_function: true,
        }
    }

    fn gap(begin: u32, end: u32) -> Region {
        Region {
            begin,
            end: end.min(begin.saturating_add(MAX_FUNCTION)),
            is_function: false,
        }
    }

    fn contains(&self, rva: u32) -> bool {
        rva >= self.begin && rva < self.end
    }
}

/// Where an instruction sits, for [`Ctx::observe`].
struct Observed<'e> {
    region: Region,
    /// The entry of the function it belongs to.
    function: Option<u32>,
    /// Sorted function entries of the region.
    entries: &'e [u32],
}

#[derive(Default)]
struct Scan {
    candidates: HashSet<Region>,
    thunks: HashMap<u32, &'static ApiSpec>,
    /// (function start or thunk, RVA of a `bl`/`b` that reaches it), sorted: a flat list
    /// rather than a map, since it is built once from thousands of calls and only searched.
    calls_to: Vec<(u32, u32)>,
}

#[derive(Default)]
struct FnResult {
    sites: Vec<RawSite>,
    /// x0..x7 just before each `bl`/`b` of the function, by RVA (recorded in address order).
    at_calls: Vec<(u32, [Val; 8])>,
}

impl FnResult {
    /// x0..x7 just before the `bl`/`b` at `rva`.
    fn at_call(&self, rva: u32) -> Option<&[Val; 8]> {
        self.at_calls
            .binary_search_by_key(&rva, |c| c.0)
            .ok()
            .map(|i| &self.at_calls[i].1)
    }
}

struct Block {
    start: usize,
    end: usize,
    succs: Vec<usize>,
}

struct Cfg {
    blocks: Vec<Block>,
    /// A jump table makes some predecessors invisible: then no state crosses a block boundary.
    strict: bool,
    /// Blocks that are function entries (x0..x7 hold parameters there).
    entries: Vec<usize>,
}

/// The in-function target of a direct branch, and whether execution may also fall through.
fn branch_target(insn: &Insn) -> Option<(Option<i64>, bool)> {
    let inst = insn.inst.as_ref()?;
    let rel = |op: &Operand| match *op {
        Operand::PCOffset(o) => Some(i64::from(insn.rva) + o),
        _ => None,
    };
    match inst.opcode {
        Opcode::B => Some((rel(&inst.operands[0]), false)),
        Opcode::Bcc(_) => Some((rel(&inst.operands[0]), true)),
        Opcode::CBZ | Opcode::CBNZ => Some((rel(&inst.operands[1]), true)),
        Opcode::TBZ | Opcode::TBNZ => Some((rel(&inst.operands[2]), true)),
        Opcode::BR | Opcode::RET | Opcode::ERET | Opcode::BRK | Opcode::UDF | Opcode::HLT => {
            Some((None, false))
        }
        Opcode::Invalid => Some((None, false)),
        _ => None,
    }
}

impl Cfg {
    fn build(insns: &[Insn], region: Region, entries: &[u32]) -> Cfg {
        let n = insns.len();
        let index = |rva: i64| -> Option<usize> {
            let off = rva.checked_sub(i64::from(region.begin))?;
            (off >= 0 && off % 4 == 0 && (off / 4) < n as i64).then_some((off / 4) as usize)
        };
        let mut leader = vec![false; n];
        leader[0] = true;
        // Sorted, as `entries` is.
        let entry_insns: Vec<usize> = entries
            .iter()
            .filter_map(|&e| index(i64::from(e)))
            .collect();
        for &e in &entry_insns {
            leader[e] = true;
        }
        let mut strict = false;
        for (i, insn) in insns.iter().enumerate() {
            let Some(t) = branch_target(insn) else {
                if insn.inst.is_none() && i + 1 < n {
                    leader[i + 1] = true;
                }
                continue;
            };
            if let Some(j) = t.0.and_then(index) {
                leader[j] = true;
            }
            if i + 1 < n {
                leader[i + 1] = true;
            }
            if insn.inst.as_ref().is_some_and(|x| x.opcode == Opcode::BR) {
                // A jump table loads its entry with a register offset in the block before
                // `br`; tail calls do not.
                let mut k = i;
                while k > 0 && !leader[k] {
                    k -= 1;
                    if insns[k].inst.as_ref().is_some_and(|x| {
                        x.operands
                            .iter()
                            .any(|o| matches!(o, Operand::RegRegOffset(..)))
                            || x.opcode == Opcode::ADR
                    }) {
                        strict = true;
                    }
                }
            }
        }
        let starts: Vec<usize> = (0..n).filter(|&i| leader[i]).collect();
        // Block index by first instruction (only leaders are looked up).
        let mut block_of = vec![usize::MAX; n];
        for (b, &i) in starts.iter().enumerate() {
            block_of[i] = b;
        }
        let mut blocks = Vec::with_capacity(starts.len());
        for (b, &start) in starts.iter().enumerate() {
            let end = starts.get(b + 1).copied().unwrap_or(n);
            let last = &insns[end - 1];
            let mut succs = Vec::new();
            match branch_target(last) {
                Some((target, falls)) => {
                    // An unconditional branch onto another function's entry is a tail call.
                    let seg = |i: usize| entry_insns.partition_point(|&e| e <= i);
                    let tail = |j: usize| {
                        !falls && entry_insns.binary_search(&j).is_ok() && seg(j) != seg(end - 1)
                    };
                    if let Some(j) = target.and_then(index).filter(|&j| !tail(j)) {
                        succs.push(block_of[j]);
                    }
                    if falls && end < n {
                        succs.push(b + 1);
                    }
                }
                None if last.inst.is_none() => {}
                None if end < n => succs.push(b + 1),
                None => {}
            }
            blocks.push(Block { start, end, succs });
        }
        let entries = entry_insns.iter().map(|&i| block_of[i]).collect();
        Cfg {
            blocks,
            strict,
            entries,
        }
    }

    /// The state at the start of every block: a must-analysis from the entry, then from
    /// blocks no direct edge reaches (jump-table targets, exception handlers), which start
    /// with nothing known.
    fn solve(&self, insns: &[Insn], step: impl Fn(&mut State, &Insn)) -> Vec<State> {
        let nb = self.blocks.len();
        let mut ins: Vec<Option<State>> = vec![None; nb];
        let mut work: Vec<usize> = Vec::new();
        for &e in &self.entries {
            ins[e] = Some(State::entry());
            work.push(e);
        }
        if self.strict {
            return ins
                .into_iter()
                .map(|s| s.unwrap_or_else(State::unknown))
                .collect();
        }
        let mut next_seed = 0;
        // Each meet only lowers a state, so this terminates; the bound guards hostile input.
        let mut budget = nb.saturating_mul(64).max(1024);
        let mut s = State::unknown();
        loop {
            while let Some(b) = work.pop() {
                if budget == 0 {
                    return vec![State::unknown(); nb];
                }
                budget -= 1;
                match &ins[b] {
                    Some(i) => s.clone_from(i),
                    None => continue,
                }
                let block = &self.blocks[b];
                for insn in &insns[block.start..block.end] {
                    step(&mut s, insn);
                }
                for &succ in &block.succs {
                    let changed = match &mut ins[succ] {
                        Some(existing) => existing.meet(&s),
                        slot @ None => {
                            *slot = Some(s.clone());
                            true
                        }
                    };
                    if changed {
                        work.push(succ);
                    }
                }
            }
            while next_seed < nb && ins[next_seed].is_some() {
                next_seed += 1;
            }
            if next_seed >= nb {
                break;
            }
            ins[next_seed] = Some(State::unknown());
            work.push(next_seed);
        }
        ins.into_iter()
            .map(|s| s.unwrap_or_else(State::unknown))
            .collect()
    }
}

#[cfg(test)]
mod tests;
