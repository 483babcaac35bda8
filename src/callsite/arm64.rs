//! ARM64 (A64): what the shared engine needs from this architecture.
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
//! * the import pointer hoisted into a callee-saved register and called repeatedly (clang -O2,
//!   MSVC keeping `ExAllocatePoolWithTag` in x26 across a loop with calls);
//! * the pointer spilled to the stack and reloaded before `blr` (clang -O0);
//! * tail calls `br xN` ([`Reach::TailJump`]);
//! * `bl` to an import thunk `adrp x16; ldr x16, [x16, #off]; br x16` ([`Reach::Thunk`]); lld
//!   emits one thunk per import, so a thunk only yields sites where something branches to it.
//!   `b` to a pool thunk is a tail call.
//!
//! # Values
//!
//! `movz`/`movn`/`movk` chains and `orr wN, wzr, #imm` are immediates; `ldr` from a literal
//! pool or from read-only data via `adrp` is a global; from a writable section a run-time
//! value. The stack pointer is tracked exactly (`sub sp`, pre- and post-indexed `stp`/`ldp`,
//! `mov x29, sp`), so `[sp, #k]` and `[x29, #k]` name the same slots. `cmp`/`cmn`/`tst` set the
//! flags the engine evaluates for `b.cond`, `csel`, `csinc`, `cset`; `cbz`/`cbnz`/`tbz`/`tbnz`
//! test a register directly. A switch's `br` gets an edge to each case when the bound check
//! before it says how many there are (`table_targets`, which runs the table code once per
//! index value); otherwise its function keeps no constants across merges.
//!
//! # Calls (AAPCS64 as Windows uses it, Microsoft Learn "Overview of ARM64 ABI conventions")
//!
//! Arguments in x0–x7; x0–x18 and x30 are not preserved across a call (x18 is reserved by
//! Windows but a callee may still be entered with anything there), x19–x29 and sp are. A
//! stack address passed to a callee lets it write the frame from there up.
//!
//! # Extents
//!
//! Function extents come from `.pdata`. ARM64 leaf functions that neither save registers nor
//! move `sp` need no unwind data, and MSVC and clang (without unwind tables) omit them, so code
//! between `.pdata` functions is analysed too: its function entries are the targets of calls
//! from elsewhere, the image entry point and exports. Only functions that reference a pool
//! import slot (an `adrp` to its page followed by a 64-bit `ldr` of the slot) or branch to a
//! pool import thunk are decoded, plus the callers of wrappers; the rest of the image is only
//! scanned as raw words for `adrp` and `bl`/`b`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand, ShiftStyle, SizeCode};

use super::engine::bounds::{MAX_FUNCTION, MAX_INSNS, MAX_TABLE_ENTRIES};
use super::engine::state::{FlagOp, Flags, State, NO_REG};
use super::engine::value::{mask, sign_extend, How, ParamLoc, Val, NO_GLOBAL};
use super::engine::{Arch, Cc, Cond, Engine, Extent, Flow, GlobalEffect};
use super::site::{arg_location, ArgLocation, CallSite, Reach};
use crate::pe::{FunctionRange, Image, Machine};
use crate::pool::apis::ApiSpec;

/// Instructions looked at after an `adrp` to a pool import page when searching for the `ldr`
/// of the slot. Compilers schedule the pair apart; MSVC keeps it within a handful of them.
const PAIR_WINDOW: usize = 32;

/// The stack pointer's register number in the state (x0..x30 are 0..30).
const SP: usize = 31;
const PARAMS: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7];
/// Stack epochs named after instructions: 1 + the instruction's index in its function.
const EPOCH_INSN: u32 = 1;

/// Finds pool-API call sites in ARM64 code.
pub(super) fn analyze(image: &Image, data: &[u8], shortcut: bool) -> Vec<CallSite> {
    let arch = Arm64 {
        decoder: InstDecoder::default(),
        gaps: Vec::new(),
        scan: std::cell::OnceCell::new(),
        gap_entries: RefCell::new(HashMap::new()),
        branch_targets: RefCell::new((u32::MAX, 0, Vec::new())),
    };
    let mut e = Engine::new(image, data, arch, shortcut);
    let code: Vec<(u32, &[u8])> = e.code.iter().map(|(s, b)| (s.rva, *b)).collect();
    e.arch.gaps = gaps(&image.functions, &code);
    e.run()
}

/// The architecture's per-image data.
pub(crate) struct Arm64 {
    decoder: InstDecoder,
    /// Executable code outside every `.pdata` function, sorted.
    gaps: Vec<Region>,
    scan: std::cell::OnceCell<Scan>,
    /// The entries of each gap region, found once (see [`extent`]).
    gap_entries: RefCell<HashMap<(u32, u32), Vec<u32>>>,
    /// The direct branch targets, sorted, of the function [`branched_into`] last looked at,
    /// keyed by its first RVA and length: the graph builder asks for one function's tables in
    /// turn, so its branches are collected once, not once per table (which hostile code with
    /// thousands of tables would make quadratic).
    branch_targets: RefCell<(u32, usize, Vec<u32>)>,
}

/// A decoded word.
#[derive(Clone, Copy)]
pub(crate) struct Insn {
    rva: u32,
    inst: Option<Instruction>,
    /// A `br` whose block loads a jump-table entry (register offset or `adr`): a table jump.
    table: bool,
}

super::engine::pool::pooled!(Insn);

type E<'a, 'b> = &'a Engine<'b, Arm64>;

impl Arch for Arm64 {
    type Insn = Insn;

    fn sp(_: E) -> usize {
        SP
    }

    fn ptr(_: E) -> u8 {
        8
    }

    fn param_base(_: E) -> i32 {
        i32::MAX
    }

    fn param_regs(_: E) -> &'static [u8] {
        PARAMS
    }

    fn decode(e: E, start: u32, end: u32, out: &mut Vec<Insn>) {
        out.clear();
        let Some(bytes) = region_bytes(e, start, end) else {
            return;
        };
        out.reserve((bytes.len() / 4).min(MAX_INSNS));
        for (i, w) in bytes.chunks_exact(4).enumerate().take(MAX_INSNS) {
            out.push(Insn {
                rva: start.wrapping_add(4 * i as u32),
                inst: e.arch.decoder.decode(&mut U8Reader::new(w)).ok(),
                table: false,
            });
        }
        // A jump table loads its entry with a register offset (or forms the table's base
        // with `adr`) before its `br`; a tail call does not.
        for k in 0..out.len() {
            if !out[k].inst.is_some_and(|x| x.opcode == Opcode::BR) {
                continue;
            }
            let mut j = k;
            while j > 0 {
                j -= 1;
                let Some(x) = out[j].inst else { break };
                if ends_block(&x) {
                    break;
                }
                if x.operands
                    .iter()
                    .any(|o| matches!(o, Operand::RegRegOffset(..)))
                    || x.opcode == Opcode::ADR
                {
                    out[k].table = true;
                    break;
                }
            }
        }
    }

    fn rva(i: &Insn) -> u32 {
        i.rva
    }

    fn flow(e: E, i: &Insn) -> Flow {
        let Some(x) = i.inst else {
            return Flow::Stop;
        };
        let rel = |op: &Operand| match *op {
            Operand::PCOffset(o) => u32::try_from(i64::from(i.rva) + o).ok(),
            _ => None,
        };
        match x.opcode {
            Opcode::B => Flow::Jump {
                target: rel(&x.operands[0]),
            },
            Opcode::Bcc(_) => branch(rel(&x.operands[0])),
            Opcode::CBZ | Opcode::CBNZ => branch(rel(&x.operands[1])),
            Opcode::TBZ | Opcode::TBNZ => branch(rel(&x.operands[2])),
            Opcode::BL => {
                let t = rel(&x.operands[0]);
                if t.is_some_and(|t| e.no_return_call(t, |t| thunk_no_return(e, t))) {
                    Flow::Stop
                } else {
                    Flow::Call { target: t }
                }
            }
            Opcode::BLR => Flow::Call { target: None },
            Opcode::BR if i.table => Flow::Table,
            Opcode::BR => Flow::Jump { target: None },
            Opcode::RET | Opcode::ERET => Flow::Return,
            Opcode::BRK | Opcode::UDF | Opcode::HLT | Opcode::Invalid => Flow::Stop,
            _ => Flow::Next,
        }
    }

    fn table_targets(e: E, insns: &[Insn], k: usize) -> Option<Vec<u32>> {
        table_targets(e, insns, k)
    }

    fn cond(i: &Insn) -> Option<Cond> {
        let x = i.inst?;
        match x.opcode {
            Opcode::Bcc(c) => Some(Cond::Flags(cc(c))),
            Opcode::CBZ | Opcode::CBNZ => match x.operands[0] {
                Operand::Register(sz, r) if r < 31 => Some(Cond::Zero {
                    reg: r as u8,
                    bytes: if sz == SizeCode::W { 4 } else { 8 },
                    zero: x.opcode == Opcode::CBZ,
                }),
                _ => None,
            },
            Opcode::TBZ | Opcode::TBNZ => match (x.operands[0], x.operands[1]) {
                (Operand::Register(_, r), Operand::Imm16(b)) if r < 31 => Some(Cond::Bit {
                    reg: r as u8,
                    bit: b as u8,
                    set: x.opcode == Opcode::TBNZ,
                }),
                (Operand::Register(_, r), Operand::Immediate(b)) if r < 31 => Some(Cond::Bit {
                    reg: r as u8,
                    bit: b as u8,
                    set: x.opcode == Opcode::TBNZ,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    fn step(e: E, st: &mut State, i: &Insn, k: u32) -> bool {
        let Some(inst) = i.inst else {
            *st = State::unknown(SP, EPOCH_INSN + k);
            return true;
        };
        let go = step_inst(e, st, &inst, i.rva, k);
        if !matches!(st.regs[SP], Val::Stack(..)) {
            // Keep the stack pointer a stack address: a new epoch.
            st.regs[SP] = Val::Stack(EPOCH_INSN + k, 0);
        }
        go
    }

    fn may_transfer(_: E, i: &Insn) -> bool {
        i.inst.is_some_and(|x| {
            matches!(
                (x.opcode, x.operands[0]),
                (Opcode::BLR | Opcode::BR, Operand::Register(..))
                    | (Opcode::BL | Opcode::B, Operand::PCOffset(_))
            )
        })
    }

    fn fixed_transfer(i: &Insn) -> bool {
        i.inst
            .is_some_and(|x| matches!(x.opcode, Opcode::BL | Opcode::B))
    }

    fn transfer(
        e: E,
        st: &State,
        i: &Insn,
        _first_of_root: bool,
    ) -> Option<(&'static ApiSpec, Reach)> {
        let x = i.inst?;
        let scan = scan(e);
        match (x.opcode, x.operands[0]) {
            (Opcode::BLR, Operand::Register(_, r)) => match st.get(usize::from(r)) {
                Val::Import(s) => e.imports.get(s)?.api.map(|a| (a, Reach::RegisterCall)),
                _ => None,
            },
            // A recorded thunk's own `br` is not a site (no-`.pdata` images decode thunks).
            (Opcode::BR, Operand::Register(_, r)) => match st.get(usize::from(r)) {
                Val::Import(s) if !scan.thunks.contains_key(&i.rva.wrapping_sub(8)) => {
                    e.imports.get(s)?.api.map(|a| (a, Reach::TailJump))
                }
                _ => None,
            },
            (Opcode::BL | Opcode::B, Operand::PCOffset(off)) => {
                let target = (i64::from(i.rva) + off) as u32;
                scan.thunks.get(&target).map(|&spec| {
                    let reach = if x.opcode == Opcode::BL {
                        Reach::Thunk
                    } else {
                        Reach::TailJump
                    };
                    (spec, reach)
                })
            }
            _ => None,
        }
    }

    fn arg(_: E, st: &State, spec: &ApiSpec, index: usize, _tail: bool) -> Val {
        match arg_location(Machine::Arm64, spec, index) {
            Some(ArgLocation::Register(r)) => st.get(usize::from(r)),
            _ => Val::Unknown,
        }
    }

    fn caller_value(_: E, st: &State, p: ParamLoc, _is_call: bool) -> Val {
        match p {
            ParamLoc::Reg(r) if r < 8 => st.get(usize::from(r)),
            _ => Val::Unknown,
        }
    }

    fn global_effect(_: E, st: &State, i: &Insn, global: u32) -> GlobalEffect {
        let Some(inst) = i.inst else {
            return GlobalEffect::None;
        };
        let ops = &inst.operands;
        // The global's address formed in a register: it may be written through it.
        let formed = match inst.opcode {
            Opcode::ADR => matches!(ops[1], Operand::PCOffset(off)
                if overlaps(global, i64::from(i.rva) + off, 1)),
            Opcode::ADD => match (read(st, &ops[1]), ops[2]) {
                (Val::Addr(p), Operand::Immediate(imm)) => overlaps(global, p + i64::from(imm), 1),
                _ => false,
            },
            _ => false,
        };
        if formed {
            return GlobalEffect::Clobber;
        }
        match store_to(st, &inst, global) {
            None => GlobalEffect::None,
            Some(Some(v)) => GlobalEffect::Store(u64::from(v)),
            Some(None) => GlobalEffect::Clobber,
        }
    }

    fn discover(e: E) -> Vec<Extent> {
        let scan = scan(e);
        let mut regions: Vec<Region> = scan.candidates.iter().copied().collect();
        regions.sort_by_key(|r| r.begin);
        regions.into_iter().map(|r| extent(e, r)).collect()
    }

    fn extent_of(e: E, rva: u32) -> Option<Extent> {
        region_of(e, rva).map(|r| extent(e, r))
    }

    fn callers(e: E, targets: &[u32]) -> HashMap<u32, Vec<(u32, bool)>> {
        let scan = scan(e);
        targets
            .iter()
            .map(|&t| {
                let v = callers_of(&scan.calls_to, t)
                    .into_iter()
                    .map(|c| (c, scan.bl.binary_search(&c).is_ok()))
                    .collect();
                (t, v)
            })
            .collect()
    }
}

fn branch(t: Option<u32>) -> Flow {
    match t {
        Some(target) => Flow::Branch { target },
        None => Flow::Next,
    }
}

/// Whether an instruction ends a basic block (any branch, return or trap).
fn ends_block(x: &Instruction) -> bool {
    matches!(
        x.opcode,
        Opcode::B
            | Opcode::Bcc(_)
            | Opcode::CBZ
            | Opcode::CBNZ
            | Opcode::TBZ
            | Opcode::TBNZ
            | Opcode::BR
            | Opcode::RET
            | Opcode::ERET
            | Opcode::BRK
            | Opcode::UDF
            | Opcode::HLT
    )
}

/// A64 condition codes (Arm ARM C1.2.4) in the engine's flag terms (C is "no borrow").
fn cc(c: u8) -> Cc {
    match c & 15 {
        0 => Cc::Z,
        1 => Cc::Nz,
        2 => Cc::C,
        3 => Cc::Nc,
        4 => Cc::N,
        5 => Cc::Nn,
        6 => Cc::V,
        7 => Cc::Nv,
        8 => Cc::CNz,
        9 => Cc::NcOrZ,
        10 => Cc::Ge,
        11 => Cc::Lt,
        12 => Cc::Gt,
        13 => Cc::Le,
        _ => Cc::Always,
    }
}

/// How far back from a table's `br` the bound check is looked for.
const TABLE_WINDOW: usize = 16;

/// The targets of the switch whose `br xT` is `insns[k]`, computed rather than matched: the
/// compilers' forms differ in entry size, signedness and base —
///
/// - MSVC: `adr x10, table; ldrsw x9, [x10, w8, uxtw #2]; adr x10, base; add x9, x10, x9, lsl
///   #2`, or for a small switch `ldrsb x9, [x10, w8, uxtw]; add x9, x10, x9, lsl #2` (entries
///   count instructions from the table);
/// - clang: `adrp`/`add` of a table in `.rdata`, `adr` of the base, `ldrb`/`ldrh`/`ldr` of an
///   unsigned entry, `add xT, xBase, xE, lsl #2`;
/// - gcc: `ldrb`/`ldrh` of the entry, `add xT, xBase, wE, sxtb #2` (or `sxth`);
///
/// — but each is straight-line code after a bound check `cmp wI, #N` directly followed by
/// `b.hi` (N + 1 entries) or `b.hs` (N). On the fall-through path the index is at most N, so
/// for each index value the instructions from the bound check to the `br` are run through this
/// module's transfer function from an otherwise unknown state; the jump register must then
/// hold an address of the image, which is that entry's target. Anything the transfer function
/// does not know — another register, the stack, a writable table — gives no address, and the
/// table stays unknown. Also unknown: a compare of `wI` whose index is then read as the whole
/// `xI` (its upper half is not bounded), and a table block that another branch enters (its
/// index would not be bounded there). Every index counts against the image's table budget.
fn table_targets(e: E, insns: &[Insn], k: usize) -> Option<Vec<u32>> {
    let Operand::Register(SizeCode::X, t) = insns[k].inst?.operands[0] else {
        return None;
    };
    let lo = k.saturating_sub(TABLE_WINDOW);
    // The guard: the nearest block end before the `br`, a `b.hi`/`b.hs` right after a compare.
    let g = (lo..k)
        .rev()
        .find(|&m| insns[m].inst.is_none_or(|x| ends_block(&x)))?;
    let (guard, cmp) = (insns[g].inst?, insns[g.checked_sub(1)?].inst?);
    let Opcode::Bcc(c) = guard.opcode else {
        return None;
    };
    if cmp.opcode != Opcode::SUBS || !matches!(cmp.operands[0], Operand::Register(_, 31)) {
        return None;
    }
    // `cmp wI, #N` is `subs wzr, wI, #N`, whose first source may name `sp` (the immediate form).
    let (Operand::Register(width, idx) | Operand::RegisterOrSP(width, idx)) = cmp.operands[1]
    else {
        return None;
    };
    let n = imm(&cmp.operands[2])?;
    let count = match c & 15 {
        8 => n.checked_add(1)?, // HI: taken when above N
        2 => n,                 // HS: taken when N or above
        _ => return None,
    };
    if idx >= 31 || count == 0 || count > u64::from(MAX_TABLE_ENTRIES) {
        return None;
    }
    if branched_into(e, insns, insns[g + 1].rva..=insns[k].rva) {
        return None;
    }
    e.take_table_reads(count as u32)?;
    let mut targets = Vec::with_capacity(count as usize);
    for j in 0..count {
        let mut st = State::unknown(SP, EPOCH_INSN + g as u32);
        st.set(usize::from(idx), Val::Const(j, How::Immediate));
        // Whether the index still holds the compared value (only its low half, after a `w`
        // compare, until something writes it).
        let mut bounded_half = width == SizeCode::W;
        for (m, i) in insns.iter().enumerate().take(k).skip(g + 1) {
            let x = i.inst?;
            let before = st.get(usize::from(idx));
            if !Arm64::step(e, &mut st, i, m as u32) {
                return None;
            }
            // An instruction that wrote the index had it as its destination, not a source.
            let wrote = st.get(usize::from(idx)) != before;
            if bounded_half && reads_whole(&x.operands[usize::from(wrote)..], idx) {
                return None;
            }
            bounded_half &= !wrote;
        }
        match st.get(usize::from(t)) {
            Val::Addr(p) => targets.push(u32::try_from(p).ok()?),
            _ => return None,
        }
    }
    Some(targets)
}

/// Whether a direct branch of the function `insns` lands in `span`. Its branch targets are
/// collected once per function ([`Arm64::branch_targets`]) and searched by bisection.
fn branched_into(e: E, insns: &[Insn], span: std::ops::RangeInclusive<u32>) -> bool {
    let mut known = e.arch.branch_targets.borrow_mut();
    let (first_rva, len, targets) = &mut *known;
    if (*first_rva, *len) != (insns[0].rva, insns.len()) {
        targets.clear();
        targets.extend(insns.iter().filter_map(|i| match Arm64::flow(e, i) {
            Flow::Branch { target }
            | Flow::Jump {
                target: Some(target),
            } => Some(target),
            _ => None,
        }));
        targets.sort_unstable();
        (*first_rva, *len) = (insns[0].rva, insns.len());
    }
    let at = targets.partition_point(|t| t < span.start());
    targets.get(at).is_some_and(|t| span.contains(t))
}

/// Whether operands `ops` name register `r` as a whole 64-bit register (`xR`, a shifted `xR`,
/// a base or a 64-bit index of a memory operand).
fn reads_whole(ops: &[Operand], r: u16) -> bool {
    ops.iter().any(|op| match *op {
        Operand::Register(SizeCode::X, n)
        | Operand::RegisterOrSP(SizeCode::X, n)
        | Operand::RegShift(_, _, SizeCode::X, n)
        | Operand::RegPreIndex(n, ..)
        | Operand::RegPostIndex(n, _) => n == r,
        Operand::RegRegOffset(b, i, sz, ..) => b == r || (i == r && sz == SizeCode::X),
        Operand::RegPostIndexReg(b, i) => b == r || i == r,
        Operand::RegisterPair(_, n) => n == r || n + 1 == r,
        _ => false,
    })
}

/// Whether `target` is an import thunk (`adrp; ldr; br`) of a function that does not return.
fn thunk_no_return(e: E, target: u32) -> bool {
    let Some(b) = e.image.bytes_at(e.data, target).and_then(|b| b.get(..12)) else {
        return false;
    };
    let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let (adrp, ldr, br) = (w(0), w(1), w(2));
    if adrp & 0x9f00_0000 != 0x9000_0000 || ldr & 0xffc0_0000 != 0xf940_0000 {
        return false;
    }
    let rd = adrp & 31;
    if br != 0xd61f_0000 | (rd << 5) || (ldr >> 5) & 31 != rd {
        return false;
    }
    let imm = (((adrp >> 5) & 0x7ffff) << 2 | (adrp >> 29) & 3) as i32;
    let imm = (imm << 11) >> 11;
    let page = i64::from(target & !0xfff) + (i64::from(imm) << 12);
    let Ok(page) = u32::try_from(page) else {
        return false;
    };
    let slot = page.wrapping_add(((ldr >> 10) & 0xfff) * 8);
    e.imports
        .at(slot)
        .and_then(|i| e.imports.get(i))
        .is_some_and(|s| s.no_return)
}

// ----- the transfer function -----------------------------------------------------------------

/// The value of a source register operand (the zero register reads as the immediate 0).
fn read(st: &State, op: &Operand) -> Val {
    match *op {
        Operand::Register(_, 31) => Val::Const(0, How::Immediate),
        Operand::Register(SizeCode::W, r) => narrow(st.get(usize::from(r))),
        Operand::Register(SizeCode::X, r) => st.get(usize::from(r)),
        Operand::RegisterOrSP(_, 31) => st.get(SP),
        Operand::RegisterOrSP(SizeCode::W, r) => narrow(st.get(usize::from(r))),
        Operand::RegisterOrSP(SizeCode::X, r) => st.get(usize::from(r)),
        _ => Val::Unknown,
    }
}

/// A register's value read through its 32-bit (`w`) view.
fn narrow(v: Val) -> Val {
    match v {
        Val::Const(x, h) => Val::Const(x & 0xffff_ffff, h),
        Val::Runtime(x, g) => Val::Runtime(x & 0xffff_ffff, g),
        Val::Param(p, _) => Val::Param(p, true),
        Val::Set(..) => v, // narrowed where it is used (sets of tags are 32-bit already)
        _ => Val::Unknown,
    }
}

/// The destination register of an operand (never the zero register; `sp` as 31).
fn dst(op: &Operand) -> Option<(SizeCode, usize)> {
    match *op {
        Operand::Register(sz, r) if r < 31 => Some((sz, usize::from(r))),
        Operand::RegisterOrSP(sz, r) => Some((sz, usize::from(r.min(31)))),
        _ => None,
    }
}

/// Writes `v` to the destination register, zero-extending a 32-bit write.
fn write(e: E, st: &mut State, op: &Operand, v: Val) {
    if let Some((sz, r)) = dst(op) {
        let v = if sz == SizeCode::W {
            match v {
                Val::Set(..) => e.sets.borrow_mut().map(v, |x| x & 0xffff_ffff),
                v => narrow(v),
            }
        } else {
            v
        };
        st.set(r, v);
    }
}

/// The immediate of an operand (`#imm`, `#imm, lsl #s`).
fn imm(op: &Operand) -> Option<u64> {
    match *op {
        Operand::Immediate(i) => Some(u64::from(i)),
        Operand::Imm64(i) => Some(i),
        Operand::Imm16(i) => Some(u64::from(i)),
        Operand::ImmShift(i, sh) => u64::from(i).checked_shl(u32::from(sh)),
        _ => None,
    }
}

/// A second operand: an immediate or a (shifted) register.
fn operand(e: E, st: &State, op: &Operand) -> Val {
    if let Some(i) = imm(op) {
        return Val::Const(i, How::Immediate);
    }
    match *op {
        Operand::RegShift(style, amount, sz, r) => {
            let v = if r == 31 {
                Val::Const(0, How::Immediate)
            } else if sz == SizeCode::W {
                narrow(st.get(usize::from(r)))
            } else {
                st.get(usize::from(r))
            };
            if amount == 0 && matches!(style, ShiftStyle::LSL) {
                return v;
            }
            let bits = if sz == SizeCode::W { 32 } else { 64 };
            let a = u32::from(amount);
            e.sets.borrow_mut().map(v, |x| match style {
                ShiftStyle::LSL => {
                    x.wrapping_shl(a) & if bits == 32 { 0xffff_ffff } else { u64::MAX }
                }
                ShiftStyle::LSR => x.wrapping_shr(a),
                ShiftStyle::ASR => (sign_extend(x, bits as u8 / 8) as i64 >> a.min(63)) as u64,
                ShiftStyle::UXTB => (x & 0xff) << a,
                ShiftStyle::UXTH => (x & 0xffff) << a,
                ShiftStyle::UXTW => (x & 0xffff_ffff) << a,
                ShiftStyle::SXTB => sign_extend(x & 0xff, 1) << a,
                ShiftStyle::SXTH => sign_extend(x & 0xffff, 2) << a,
                ShiftStyle::SXTW => sign_extend(x & 0xffff_ffff, 4) << a,
                _ => x,
            })
        }
        Operand::Register(..) | Operand::RegisterOrSP(..) => read(st, op),
        _ => Val::Unknown,
    }
}

/// The address a memory operand names, before any writeback; `None` when it is not one.
enum Mem {
    /// A stack slot.
    Stack(u32, i32),
    /// One address in the image, or several (a table indexed by a set).
    Image(Vec<i64>),
    /// Somewhere unknown.
    Unknown,
}

fn mem_of(e: E, st: &State, op: &Operand, rva: u32) -> Option<Mem> {
    let base_val = |b: u16| {
        if b == 31 {
            st.get(SP)
        } else {
            st.get(usize::from(b))
        }
    };
    let at = |v: Val, off: i64| match v {
        Val::Stack(ep, o) => match i32::try_from(i64::from(o) + off) {
            Ok(o) => Mem::Stack(ep, o),
            Err(_) => Mem::Unknown,
        },
        Val::Addr(p) => Mem::Image(vec![p + off]),
        _ => Mem::Unknown,
    };
    Some(match *op {
        Operand::PCOffset(off) => Mem::Image(vec![i64::from(rva) + off]),
        Operand::RegPreIndex(b, off, _) => at(base_val(b), i64::from(off)),
        Operand::RegPostIndex(b, _) | Operand::RegPostIndexReg(b, _) => at(base_val(b), 0),
        Operand::RegRegOffset(b, r, sz, style, amount) => {
            let idx = if r == 31 {
                Val::Const(0, How::Immediate)
            } else {
                st.get(usize::from(r))
            };
            e.note_param(idx);
            let Some((members, _)) = e.sets.borrow().constants(idx) else {
                return Some(Mem::Unknown);
            };
            let a = u32::from(amount);
            let offs: Vec<i64> = members
                .iter()
                .map(|&x| {
                    let x = match (style, sz) {
                        (ShiftStyle::SXTW, _) => sign_extend(x & 0xffff_ffff, 4),
                        (ShiftStyle::UXTW, _) => x & 0xffff_ffff,
                        (_, SizeCode::W) => x & 0xffff_ffff,
                        _ => x,
                    };
                    (x.wrapping_shl(a)) as i64
                })
                .collect();
            match base_val(b) {
                Val::Addr(p) => Mem::Image(offs.iter().map(|o| p.wrapping_add(*o)).collect()),
                v @ Val::Stack(..) if offs.len() == 1 => at(v, offs[0]),
                _ => Mem::Unknown,
            }
        }
        _ => return None,
    })
}

/// A load of `size` bytes (sign-extended when `signed`) from `m`.
fn load_mem(e: E, st: &State, m: &Mem, size: u8, signed: bool) -> Val {
    let extend = |v: Val| {
        if !signed {
            return v;
        }
        e.sets.borrow_mut().map(v, |x| sign_extend(x, size))
    };
    match m {
        Mem::Stack(ep, o) => {
            let mut sets = e.sets.borrow_mut();
            let v = st.load(*ep, *o, size, i32::MAX, 8, &mut sets);
            drop(sets);
            extend(v)
        }
        Mem::Image(addrs) => {
            let mut vals = Vec::with_capacity(addrs.len());
            let mut last = Val::Unknown;
            for &a in addrs {
                let v = match u32::try_from(a) {
                    Ok(r) => e.load_global(r, size),
                    Err(_) => Val::Unknown,
                };
                if addrs.len() == 1 {
                    return extend(v);
                }
                match v {
                    Val::Const(x, _) => vals.push(x),
                    _ => return Val::Unknown,
                }
                last = v;
            }
            let _ = last;
            let v = e.sets.borrow_mut().make(vals, How::Global);
            extend(v)
        }
        Mem::Unknown => Val::Unknown,
    }
}

/// A store of `size`-byte registers `vals` (consecutive) to `m`.
fn store_mem(e: E, st: &mut State, m: &Mem, size: u8, vals: &[Val]) {
    match m {
        Mem::Stack(ep, o) => {
            for (k, &v) in vals.iter().enumerate() {
                let off = o.wrapping_add(k as i32 * i32::from(size));
                if size == 0 {
                    st.forget(*ep, i64::from(*o), i64::from(*o) + 16 * vals.len() as i64);
                } else {
                    let v = super::engine::state::view(v, size, 8, &mut e.sets.borrow_mut());
                    st.store(*ep, off, size, v);
                }
            }
        }
        Mem::Image(_) => {
            for &v in vals {
                st.escape(v);
            }
        }
        Mem::Unknown => {
            for &v in vals {
                st.escape(v);
            }
            st.clobber_escaped();
        }
    }
}

/// Base-register writeback of pre- and post-indexed addressing.
fn writeback(st: &mut State, op: &Operand, k: u32) {
    let (b, delta) = match *op {
        Operand::RegPreIndex(b, off, true) | Operand::RegPostIndex(b, off) => (b, Some(off)),
        Operand::RegPostIndexReg(b, _) => (b, None),
        _ => return,
    };
    let r = if b == 31 { SP } else { usize::from(b) };
    let v = match (st.get(r), delta) {
        (Val::Stack(ep, o), Some(d)) => Val::Stack(ep, o.wrapping_add(d)),
        (Val::Addr(p), Some(d)) => Val::Addr(p + i64::from(d)),
        _ if r == SP => Val::Stack(EPOCH_INSN + k, 0),
        _ => Val::Unknown,
    };
    st.set(r, v);
}

/// Records the flags of a compare (`subs`/`adds`/`ands` and their aliases).
fn flags(st: &mut State, op: FlagOp, a: Val, b: Val, bytes: u8, reg: u8, same: bool) {
    st.flags = Flags {
        op,
        a,
        b,
        bytes,
        reg,
        same,
        carry_is_borrow: false,
    };
}

/// The register an operand reads as a whole (for refining it on the edges of a branch).
fn src_reg(op: &Operand) -> u8 {
    match *op {
        Operand::Register(_, r) | Operand::RegisterOrSP(_, r) if r < 31 => r as u8,
        _ => NO_REG,
    }
}

fn op_bytes(op: &Operand) -> u8 {
    match *op {
        Operand::Register(SizeCode::W, _) | Operand::RegisterOrSP(SizeCode::W, _) => 4,
        _ => 8,
    }
}

/// The transfer function of one instruction; false when the path ends.
fn step_inst(e: E, st: &mut State, inst: &Instruction, rva: u32, k: u32) -> bool {
    let ops = &inst.operands;
    match inst.opcode {
        Opcode::MOVZ | Opcode::MOVN => {
            let v = match ops[1] {
                Operand::ImmShift(i, sh) => {
                    let v = u64::from(i).checked_shl(u32::from(sh)).unwrap_or(0);
                    Val::Const(
                        if inst.opcode == Opcode::MOVN { !v } else { v },
                        How::Immediate,
                    )
                }
                _ => Val::Unknown,
            };
            write(e, st, &ops[0], v);
        }
        Opcode::MOVK => {
            // `movz; movk` is how A64 spells a wide immediate, so it stays an immediate.
            let v = match (dst(&ops[0]).map(|(_, r)| st.get(r)), ops[1]) {
                (Some(Val::Const(old, how)), Operand::ImmShift(i, sh)) if sh < 64 => {
                    let m = 0xffffu64 << sh;
                    Val::Const(old & !m | u64::from(i) << sh, how)
                }
                _ => Val::Unknown,
            };
            write(e, st, &ops[0], v);
        }
        Opcode::ORR if matches!(ops[1], Operand::Register(_, 31)) => {
            // `mov` aliases: `orr wd, wzr, #imm` and `orr wd, wzr, wm`.
            let v = match ops[2] {
                Operand::Immediate(i) => Val::Const(u64::from(i), How::Immediate),
                Operand::Imm64(i) => Val::Const(i, How::Immediate),
                Operand::RegShift(_, 0, _, 31) => Val::Const(0, How::Immediate),
                Operand::RegShift(_, 0, sz, r) => {
                    let v = st.get(usize::from(r));
                    if sz == SizeCode::W { narrow(v) } else { v }.copied()
                }
                _ => Val::Unknown,
            };
            write(e, st, &ops[0], v);
        }
        Opcode::ADRP | Opcode::ADR => {
            let v = match (inst.opcode, ops[1]) {
                (Opcode::ADRP, Operand::PCOffset(off)) => Val::Addr(i64::from(rva & !0xfff) + off),
                (_, Operand::PCOffset(off)) => Val::Addr(i64::from(rva) + off),
                _ => Val::Unknown,
            };
            write(e, st, &ops[0], v);
        }
        Opcode::ADD
        | Opcode::SUB
        | Opcode::ADDS
        | Opcode::SUBS
        | Opcode::ORR
        | Opcode::EOR
        | Opcode::AND
        | Opcode::ANDS => {
            let a = read(st, &ops[1]);
            let b = operand(e, st, &ops[2]);
            let bytes = op_bytes(&ops[1]).min(op_bytes(&ops[0]));
            let v = match (inst.opcode, a, b) {
                (Opcode::ADD | Opcode::ADDS, Val::Addr(p), Val::Const(i, _)) => {
                    Val::Addr(p.wrapping_add(i as i64))
                }
                (Opcode::SUB | Opcode::SUBS, Val::Addr(p), Val::Const(i, _)) => {
                    Val::Addr(p.wrapping_sub(i as i64))
                }
                (Opcode::ADD | Opcode::ADDS, Val::Stack(ep, o), Val::Const(i, _)) => {
                    Val::Stack(ep, o.wrapping_add(i as i32))
                }
                (Opcode::SUB | Opcode::SUBS, Val::Stack(ep, o), Val::Const(i, _)) => {
                    Val::Stack(ep, o.wrapping_sub(i as i32))
                }
                (op, Val::Runtime(x, _), Val::Const(y, _)) => {
                    Val::Runtime(alu(op, x, y) & mask(bytes), NO_GLOBAL)
                }
                (op, Val::Const(..) | Val::Set(..), Val::Const(..) | Val::Set(..)) => e
                    .sets
                    .borrow_mut()
                    .map2(a, b, |x, y| alu(op, x, y) & mask(bytes)),
                // `mov x29, sp` and friends: a copy.
                (Opcode::ADD, v, Val::Const(0, _)) => v,
                _ => Val::Unknown,
            };
            let sets_flags = matches!(inst.opcode, Opcode::ADDS | Opcode::SUBS | Opcode::ANDS);
            let to_zr = matches!(ops[0], Operand::Register(_, 31));
            if !to_zr {
                write(e, st, &ops[0], v);
            }
            if sets_flags {
                let op = match inst.opcode {
                    Opcode::SUBS => FlagOp::Sub,
                    Opcode::ADDS => FlagOp::Add,
                    _ => FlagOp::And,
                };
                let same = matches!(
                    (ops[1], ops[2]),
                    (Operand::Register(_, x), Operand::RegShift(ShiftStyle::LSL, 0, _, y)) if x == y
                );
                let reg = if to_zr { src_reg(&ops[1]) } else { NO_REG };
                flags(st, op, a, b, bytes, reg, same);
            }
            return true;
        }
        Opcode::CSEL | Opcode::CSINC | Opcode::CSINV | Opcode::CSNEG => {
            let (Operand::ConditionCode(c), Some(_)) = (ops[3], dst(&ops[0])) else {
                write(e, st, &ops[0], Val::Unknown);
                return true;
            };
            let bytes = op_bytes(&ops[0]);
            let yes = read(st, &ops[1]);
            let raw = read(st, &ops[2]);
            let no = match inst.opcode {
                Opcode::CSEL => raw,
                op => e.sets.borrow_mut().map(raw, |x| {
                    let y = match op {
                        Opcode::CSINC => x.wrapping_add(1),
                        Opcode::CSINV => !x,
                        _ => x.wrapping_neg(),
                    };
                    y & mask(bytes)
                }),
            };
            let no = if inst.opcode == Opcode::CSEL {
                no
            } else {
                no.copied()
            };
            let v = e.select(st, Cond::Flags(cc(c)), yes.copied(), no);
            write(e, st, &ops[0], v);
        }
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
        | Opcode::LDURSW => {
            let size = match (inst.opcode, ops[0]) {
                (Opcode::LDRB | Opcode::LDURB | Opcode::LDRSB | Opcode::LDURSB, _) => 1,
                (Opcode::LDRH | Opcode::LDURH | Opcode::LDRSH | Opcode::LDURSH, _) => 2,
                (Opcode::LDRSW | Opcode::LDURSW, _) => 4,
                (_, Operand::Register(SizeCode::X, _)) => 8,
                (_, Operand::Register(SizeCode::W, _)) => 4,
                _ => 0,
            };
            let signed = matches!(
                inst.opcode,
                Opcode::LDRSB
                    | Opcode::LDRSH
                    | Opcode::LDRSW
                    | Opcode::LDURSB
                    | Opcode::LDURSH
                    | Opcode::LDURSW
            );
            let v = match (size, mem_of(e, st, &ops[1], rva)) {
                (0, _) | (_, None) => Val::Unknown,
                (size, Some(m)) => load_mem(e, st, &m, size, signed),
            };
            writeback(st, &ops[1], k);
            if size != 0 {
                write(e, st, &ops[0], v);
            }
        }
        Opcode::LDP | Opcode::LDPSW => {
            let size = if inst.opcode == Opcode::LDPSW {
                4
            } else {
                match ops[0] {
                    Operand::Register(SizeCode::X, _) => 8,
                    Operand::Register(SizeCode::W, _) => 4,
                    _ => 0,
                }
            };
            let (v0, v1) = match (size, mem_of(e, st, &ops[2], rva)) {
                (0, _) | (_, None) => (Val::Unknown, Val::Unknown),
                (size, Some(Mem::Stack(ep, o))) => {
                    let m1 = Mem::Stack(ep, o.wrapping_add(i32::from(size)));
                    (
                        load_mem(
                            e,
                            st,
                            &Mem::Stack(ep, o),
                            size,
                            inst.opcode == Opcode::LDPSW,
                        ),
                        load_mem(e, st, &m1, size, inst.opcode == Opcode::LDPSW),
                    )
                }
                _ => (Val::Unknown, Val::Unknown),
            };
            writeback(st, &ops[2], k);
            if size != 0 {
                write(e, st, &ops[0], v0);
                write(e, st, &ops[1], v1);
            } else {
                kill(st, &ops[0]);
                kill(st, &ops[1]);
            }
        }
        Opcode::STR
        | Opcode::STUR
        | Opcode::STP
        | Opcode::STRB
        | Opcode::STRH
        | Opcode::STURB
        | Opcode::STURH => {
            let pair = inst.opcode == Opcode::STP;
            let (regs, mem): (&[Operand], &Operand) = if pair {
                (&ops[..2], &ops[2])
            } else {
                (&ops[..1], &ops[1])
            };
            let size = match (inst.opcode, regs[0]) {
                (Opcode::STRB | Opcode::STURB, _) => 1,
                (Opcode::STRH | Opcode::STURH, _) => 2,
                (_, Operand::Register(SizeCode::X, _)) => 8,
                (_, Operand::Register(SizeCode::W, _)) => 4,
                _ => 0, // SIMD registers: the bytes are overwritten with unknown values.
            };
            let vals: Vec<Val> = regs
                .iter()
                .map(|r| if size == 0 { Val::Unknown } else { read(st, r) })
                .collect();
            if let Some(m) = mem_of(e, st, mem, rva) {
                store_mem(e, st, &m, size, &vals);
            }
            writeback(st, mem, k);
        }
        Opcode::BL | Opcode::BLR => return after_call(e, st, inst, rva),
        Opcode::B
        | Opcode::Bcc(_)
        | Opcode::CBZ
        | Opcode::CBNZ
        | Opcode::TBZ
        | Opcode::TBNZ
        | Opcode::BR
        | Opcode::RET
        | Opcode::HINT
        | Opcode::ISB
        | Opcode::DSB(_)
        | Opcode::DMB(_)
        | Opcode::CLREX
        | Opcode::CCMP
        | Opcode::CCMN
        | Opcode::MSR
        | Opcode::SYS(_) => {
            if matches!(inst.opcode, Opcode::CCMP | Opcode::CCMN | Opcode::MSR) {
                st.flags = Flags::NONE;
            }
            return true;
        }
        _ => clobber(e, st, inst, rva, k),
    }
    if flags_written(inst.opcode) {
        st.flags = Flags::NONE;
    }
    true
}

/// Whether an instruction not interpreted as a compare may set the flags.
fn flags_written(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::ADCS
            | Opcode::SBCS
            | Opcode::BICS
            | Opcode::FCMP
            | Opcode::FCMPE
            | Opcode::FCCMP
            | Opcode::FCCMPE
    )
}

fn alu(op: Opcode, x: u64, y: u64) -> u64 {
    match op {
        Opcode::ADD | Opcode::ADDS => x.wrapping_add(y),
        Opcode::SUB | Opcode::SUBS => x.wrapping_sub(y),
        Opcode::ORR => x | y,
        Opcode::EOR => x ^ y,
        _ => x & y,
    }
}

/// The effect of `bl`/`blr` on the caller (AAPCS64); false when the callee does not return.
fn after_call(e: E, st: &mut State, inst: &Instruction, rva: u32) -> bool {
    let no_return = match (inst.opcode, inst.operands[0]) {
        (Opcode::BLR, Operand::Register(_, r)) => match st.get(usize::from(r)) {
            Val::Import(s) => e.imports.get(s).is_some_and(|s| s.no_return),
            _ => false,
        },
        (Opcode::BL, Operand::PCOffset(off)) => u32::try_from(i64::from(rva) + off)
            .is_ok_and(|t| e.no_return_call(t, |t| thunk_no_return(e, t))),
        _ => false,
    };
    if no_return {
        return false;
    }
    for r in 0..8 {
        let v = st.regs[r];
        st.escape(v);
    }
    st.clobber_escaped();
    for r in (0..=18).chain([30]) {
        st.set(r, Val::Unknown);
    }
    st.flags = Flags::NONE;
    // The callee's frame lies below the stack pointer.
    if let Val::Stack(ep, o) = st.regs[SP] {
        st.forget(ep, i64::MIN, i64::from(o));
    }
    true
}

fn kill(st: &mut State, op: &Operand) {
    if let Some((_, r)) = dst(op) {
        st.set(r, Val::Unknown);
    }
}

/// Any instruction not interpreted above: every general-purpose register it may write
/// becomes unknown (over-approximated: a wrong "unknown" costs a value, a missed write would
/// cost correctness), and a store through it may change escaped stack slots.
fn clobber(e: E, st: &mut State, inst: &Instruction, rva: u32, k: u32) {
    let ops = &inst.operands;
    match inst.opcode {
        // Stores read their register operands; exclusive stores write a status register.
        Opcode::STNP
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
        | Opcode::STZGM => {
            for op in ops.iter() {
                store_unknown(e, st, op, rva);
                writeback(st, op, k);
            }
        }
        Opcode::LDNP | Opcode::LDXP | Opcode::LDAXP => {
            kill(st, &ops[0]);
            kill(st, &ops[1]);
            for op in ops.iter() {
                writeback(st, op, k);
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
                kill(st, op);
                if let Operand::RegPreIndex(base, ..) = op {
                    store_unknown(e, st, op, rva);
                    if *base != 31 {
                        st.set(usize::from(*base), Val::Unknown);
                    }
                }
            }
        }
        _ => {
            kill(st, &ops[0]);
            // Exclusive stores land here (they write a status register); any memory operand
            // is treated as a possible store.
            for op in ops.iter() {
                store_unknown(e, st, op, rva);
                writeback(st, op, k);
            }
            if is_other_atomic(inst.opcode) {
                kill(st, &ops[1]);
            }
        }
    }
}

/// A store of unknown bytes through memory operand `op` (if it is one).
fn store_unknown(e: E, st: &mut State, op: &Operand, rva: u32) {
    if let Some(m) = mem_of(e, st, op, rva) {
        match m {
            Mem::Stack(ep, o) => st.forget(ep, i64::from(o), i64::from(o) + 32),
            Mem::Image(_) => {}
            Mem::Unknown => st.clobber_escaped(),
        }
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
    let page = match s.get(usize::from(base)) {
        Val::Addr(p) if base != 31 => p,
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
    match read(s, &ops[0]) {
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

// ----- discovery ------------------------------------------------------------------------------

/// A stretch of code analysed as a unit: a `.pdata` function, or code between them (which may
/// hold several leaf functions, or be a whole section when the image has no `.pdata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Region {
    begin: u32,
    end: u32,
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

#[derive(Default)]
struct Scan {
    candidates: HashSet<Region>,
    thunks: HashMap<u32, &'static ApiSpec>,
    /// (function start or thunk, RVA of a `bl`/`b` that reaches it), sorted.
    calls_to: Vec<(u32, u32)>,
    /// The RVAs of every `bl` (sorted): a caller's instruction is a call, not a tail jump.
    bl: Vec<u32>,
}

/// The stretches of executable code not covered by `functions`.
fn gaps(functions: &[FunctionRange], code: &[(u32, &[u8])]) -> Vec<Region> {
    let mut out = Vec::new();
    for &(start, bytes) in code {
        let end = start.saturating_add((bytes.len() & !3) as u32);
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

/// The `.pdata` function containing `rva`, else the stretch of code between them.
fn region_of(e: E, rva: u32) -> Option<Region> {
    if let Some(f) = e.image.function_of(rva) {
        return Some(Region::function(f));
    }
    let gaps = &e.arch.gaps;
    let i = gaps.partition_point(|g| g.begin <= rva);
    let g = *gaps.get(i.checked_sub(1)?)?;
    (rva < g.end).then_some(g)
}

/// The bytes of `[start, end)` (cut at the end of its section, a multiple of four).
fn region_bytes<'a>(e: &Engine<'a, Arm64>, start: u32, end: u32) -> Option<&'a [u8]> {
    e.code.iter().find_map(|(s, b)| {
        let off = start.checked_sub(s.rva)? as usize;
        let len = (end.saturating_sub(start).min(MAX_FUNCTION) as usize) & !3;
        let b: &'a [u8] = b;
        b.get(off..off.checked_add(len)?.min(b.len() & !3))
    })
}

/// The extent of a region: its entries are a `.pdata` function's start, or in a gap the
/// targets of calls from elsewhere, the entry point and exports (a gap's first word may be the
/// previous function's literal pool).
fn extent(e: E, r: Region) -> Extent {
    let cached = (!r.is_function)
        .then(|| e.arch.gap_entries.borrow().get(&(r.begin, r.end)).cloned())
        .flatten();
    let entries = if r.is_function {
        vec![r.begin]
    } else if let Some(v) = cached {
        v
    } else {
        // Cached per gap: the region of every wrapper caller in it is asked for, and each
        // time the calls into the gap were collected and sorted again (quadratic: a pe_file
        // fuzz find with 32,763 calls of one target in one gap spent 1.2 s there).
        let scan = scan(e);
        let mut v: Vec<u32> = calls_in(&scan.calls_to, r.begin..r.end)
            .iter()
            .map(|c| c.0)
            .chain(
                std::iter::once(e.image.entry_point)
                    .chain(e.image.exports.iter().map(|x| x.rva))
                    .filter(|&t| r.contains(t)),
            )
            .filter(|t| t % 4 == 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        e.arch
            .gap_entries
            .borrow_mut()
            .insert((r.begin, r.end), v.clone());
        v
    };
    Extent {
        begin: r.begin,
        end: r.end,
        entries,
    }
}

fn scan<'a>(e: &'a Engine<'_, Arm64>) -> &'a Scan {
    e.arch.scan.get_or_init(|| scan_words(e))
}

/// Passes over the raw words of every executable section: every `bl`/`b`; import thunks; the
/// functions that pair an `adrp` to a pool import page with a 64-bit `ldr` of a pool slot; and
/// the `bl`/`b` instructions that call a function entry or a thunk.
fn scan_words(e: E) -> Scan {
    let mut scan = Scan::default();
    let code: Vec<(u32, &[u8])> = e
        .code
        .iter()
        .map(|(s, b)| (s.rva, &b[..b.len() & !3]))
        .collect();
    let pages: HashSet<u32> = e
        .image
        .imports
        .iter()
        .filter(|i| e.imports.pool_api_at(i.iat_rva).is_some())
        .map(|i| i.iat_rva >> 12)
        .collect();
    // BL (100101) and B (000101) carry a signed 26-bit word offset.
    let mut branches = Vec::new();
    let mut bl_targets = Vec::new();
    for &(start, bytes) in &code {
        for (i, w) in bytes.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if w & 0x7c00_0000 != 0x1400_0000 {
                continue;
            }
            let rva = start.wrapping_add(4 * i as u32);
            let target = rva.wrapping_add(b_offset(w) as u32);
            let is_bl = w & 0x8000_0000 != 0;
            if is_bl {
                bl_targets.push(target);
                scan.bl.push(rva);
            }
            branches.push((rva, target, is_bl));
        }
    }
    scan.bl.sort_unstable();
    bl_targets.sort_unstable();
    bl_targets.dedup();
    let mut targets: Vec<u32> = branches.iter().map(|b| b.1).collect();
    targets.sort_unstable();
    targets.dedup();
    if !pages.is_empty() {
        for &(start, bytes) in &code {
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
                if page < 0 || page > i64::from(u32::MAX) || !pages.contains(&((page as u32) >> 12))
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
                        (ldr || add) && (l >> 5) & 31 == rd && e.imports.pool_api_at(slot).is_some()
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
                    && e.image
                        .function_of(rva)
                        .is_none_or(|f| f.begin == rva && f.end - f.begin <= 16);
                if is_thunk {
                    if let Some(api) = e.imports.pool_api_at(slot_of(l)) {
                        scan.thunks.insert(rva, api);
                    }
                } else if let Some(r) = region_of(e, rva) {
                    scan.candidates.insert(r);
                }
            }
        }
    }
    let entry_point = e.image.entry_point;
    for (rva, target, is_bl) in branches {
        let from = region_of(e, rva);
        if scan.thunks.contains_key(&target) {
            if let Some(r) = from {
                scan.candidates.insert(r);
            }
        } else {
            // `bl` lands on a function entry. `b` is a tail call when it lands on a `.pdata`
            // function start from elsewhere, leaves its own stretch of code, or lands on a
            // known entry (a `bl` target, the image entry point).
            let entry = match region_of(e, target) {
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

#[cfg(test)]
mod tests;
