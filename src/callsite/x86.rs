//! Call-site analysis for x86 and x64 code.
//!
//! Strategy (chosen for speed; a benchmark runs thousands of drivers):
//!
//! 1. **Byte scan, no blind decoding.** Every executable section is scanned once for the
//!    operands that name a pool IAT slot: on x64 a RIP-relative `disp32` resolving to the slot,
//!    on x86 the slot's absolute address (`image_base + rva`). A second cheap scan indexes
//!    `E8`/`E9` `rel32` targets (thunk callers, wrapper callers, x86 function starts). Only the
//!    functions holding a hit, or calling a pool thunk, are decoded — typically a few percent
//!    of `.text`.
//! 2. **Function bounds.** x64: `.pdata`. Otherwise (x86, x64 leaf functions without unwind
//!    data) the nearest preceding known start (call target, export, entry point, `.pdata`
//!    begin), refined by decoding forward and cutting at code that follows a `ret`/`jmp`/`int3`
//!    and is not a branch target.
//! 3. **Constant propagation** over the function's basic blocks, iterated to a fixpoint. A
//!    block with one predecessor continues its predecessor's straight-line state. At a merge
//!    of paths a value survives only if every incoming path carries exactly that value; the
//!    if/else case of `toolchains-and-patterns.md` §3 (paths disagree) gives `Unknown`, never
//!    one branch's value. Agreement is what lets x86 MSVC's pool type, kept in a callee-saved
//!    register set once at the top (`xor ebx,ebx`), reach calls in later blocks. When the
//!    function has a jump table (edges we cannot see), constants never cross a merge and no
//!    block trusts having a single predecessor. A wrong tag is worse than an unknown one.
//! 4. **Wrappers**, one level: an argument that is still an incoming parameter at the call is
//!    resolved at each `call rel32`/`jmp rel32` caller of the function.
//!
//! Nothing here panics on hostile bytes: all reads are bounds-checked, all arithmetic wraps.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::common::{self, api_by_index, api_index, PoolSlots};
use super::site::{arg_location, ArgLocation, ArgValue, CallSite, Provenance, Reach};
use crate::pe::{Image, Machine, Section};
use crate::pool::apis::ApiSpec;
use crate::pool::apis::Role;

/// Register numbers (iced's `full_register` order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15).
const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RSP: usize = 4;
const RBP: usize = 5;
const R8: usize = 8;
const R9: usize = 9;
/// x64 argument registers in order (`pool-apis-and-rules.md` §1).
const X64_ARGS: [usize; 4] = [RCX, RDX, R8, R9];
/// Registers a call may clobber: x64 volatile rax rcx rdx r8–r11; x86 eax ecx edx.
const X64_VOLATILE: [usize; 7] = [RAX, RCX, RDX, R8, R9, 10, 11];
const X86_VOLATILE: [usize; 3] = [RAX, RCX, RDX];

/// Largest function (or heuristic region) decoded, in bytes; bounds the cost of hostile input.
const MAX_FUNCTION: u32 = 0x4_0000;
/// Epoch numbers: 0 is the function's entry stack pointer; calls and unknown block entries get
/// their own, derived from the instruction/block index so reruns of the fixpoint agree.
const EPOCH_CALL: u32 = 1;
const EPOCH_BLOCK: u32 = 0x4000_0000;

/// Where a function's incoming parameter lives at its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Param {
    /// An argument register (x64 rcx/rdx/r8/r9), by register number.
    Reg(u8),
    /// `[entry_sp + off]` (the return address is at offset 0).
    Stack(i32),
}

/// An abstract value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Unknown,
    Const(u64, Provenance),
    /// Still the value the function received in this parameter.
    Param(Param),
    /// A stack address: (epoch, offset from the epoch's stack pointer).
    Stack(u32, i64),
    /// The IAT pointer of a pool API (index into `apis::APIS`).
    Iat(u8),
}

impl Val {
    fn is_const(self) -> bool {
        matches!(self, Val::Const(..))
    }
    /// A constant of the image itself (not a writable global's initial value).
    fn is_compile_time(self) -> bool {
        matches!(self, Val::Const(_, how) if how != Provenance::Runtime)
    }
    /// A register-to-register (or stack-to-register) copy of an immediate is "propagated".
    fn copied(self) -> Val {
        match self {
            Val::Const(v, Provenance::Immediate) => Val::Const(v, Provenance::Propagated),
            v => v,
        }
    }
}

fn mask(v: u64, size: usize) -> u64 {
    match size {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

/// Provenance of a value computed from two constants.
fn combine(a: Provenance, b: Provenance) -> Provenance {
    if a == Provenance::Runtime || b == Provenance::Runtime {
        Provenance::Runtime
    } else {
        Provenance::Propagated
    }
}

/// One tracked stack slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    epoch: u32,
    off: i64,
    size: u8,
    val: Val,
}

/// Offsets (and keys) below this magnitude never make slot arithmetic wrap.
const TAME_OFFSET: u64 = 1 << 40;

/// The value every incoming path agrees on (see [`State::merge`]); constants only when
/// `consts`.
#[inline]
fn agree(mut vals: impl Iterator<Item = Val>, consts: bool) -> Val {
    let Some(first) = vals.next() else {
        return Val::Unknown;
    };
    let mut v = first;
    for x in vals {
        v = match (v, x) {
            (a, b) if a == b => a,
            // The same constant reached by differently-derived paths.
            (Val::Const(a, h1), Val::Const(b, h2)) if a == b => Val::Const(a, combine(h1, h2)),
            _ => return Val::Unknown,
        };
    }
    if v.is_const() && !consts {
        Val::Unknown
    } else {
        v
    }
}

/// What [`State::load`] returns for a slot read with exactly its own offset and size.
#[inline]
fn exact_load(val: Val, size: u8) -> Val {
    match val {
        Val::Const(v, how) => Val::Const(mask(v, size as usize), how),
        v if size >= 4 => v,
        _ => Val::Unknown,
    }
}

/// [`State::load`] on a state's slots sorted by (epoch, offset), for tame offsets. The slots of
/// one epoch never overlap (every store first removes what it overlaps), so at most one slot
/// starts at `off`, and only its neighbours in the sorted order can overlap the range.
/// `cursor` is the partition point of the previous (smaller or equal) key: keys are read in
/// increasing order, so it only moves forward.
fn load_sorted(
    sorted: &[Slot],
    cursor: &mut usize,
    wiped: bool,
    epoch: u32,
    off: i64,
    size: u8,
    param_base: i64,
) -> Val {
    let end = off + i64::from(size);
    while sorted
        .get(*cursor)
        .is_some_and(|s| (s.epoch, s.off) < (epoch, off))
    {
        *cursor += 1;
    }
    let p = *cursor;
    let mut overlap = false;
    if let Some(s) = sorted.get(p) {
        if s.epoch == epoch && s.off == off {
            if s.size >= size {
                return match s.val {
                    Val::Const(v, how) => Val::Const(mask(v, size as usize), how),
                    v if size >= 4 => v,
                    _ => Val::Unknown,
                };
            }
            overlap = true;
        }
    }
    if !overlap && p > 0 {
        let s = &sorted[p - 1];
        if s.epoch == epoch && s.off + i64::from(s.size) > off {
            overlap = true;
        }
    }
    if !overlap {
        if let Some(s) = sorted.get(p) {
            if s.epoch == epoch && s.off < end && s.off + i64::from(s.size) > off {
                overlap = true;
            }
        }
    }
    if overlap || wiped || epoch != 0 || off < param_base || size < 4 {
        return Val::Unknown;
    }
    i32::try_from(off).map_or(Val::Unknown, |o| Val::Param(Param::Stack(o)))
}

/// The abstract machine state at one point.
#[derive(Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 16],
    slots: Vec<Slot>,
    /// Some write went to an unknown place on the stack: untracked slots are unknown, not the
    /// function's incoming parameters.
    wiped: bool,
}

impl Clone for State {
    fn clone(&self) -> State {
        State {
            regs: self.regs,
            slots: self.slots.clone(),
            wiped: self.wiped,
        }
    }

    /// Reuses the slot buffer (the fixpoint copies states into the same places many times).
    fn clone_from(&mut self, source: &State) {
        self.regs = source.regs;
        self.slots.clone_from(&source.slots);
        self.wiped = source.wiped;
    }
}

impl State {
    fn unknown(epoch: u32) -> State {
        let mut regs = [Val::Unknown; 16];
        regs[RSP] = Val::Stack(epoch, 0);
        State {
            regs,
            slots: Vec::new(),
            wiped: true,
        }
    }

    fn entry(x64: bool) -> State {
        let mut s = State::unknown(0);
        s.wiped = false;
        if x64 {
            for r in X64_ARGS {
                s.regs[r] = Val::Param(Param::Reg(r as u8));
            }
        }
        s
    }

    /// Keeps a slot, up to 256 per state (a bound on hostile code, far above real frames).
    fn push_slot(&mut self, slot: Slot) {
        if self.slots.len() < 256 {
            self.slots.push(slot);
        }
    }

    fn store(&mut self, epoch: u32, off: i64, size: u8, val: Val) {
        let end = off.wrapping_add(i64::from(size));
        self.slots.retain(|s| {
            s.epoch != epoch || s.off.wrapping_add(i64::from(s.size)) <= off || s.off >= end
        });
        self.push_slot(Slot {
            epoch,
            off,
            size,
            val,
        });
    }

    /// Value of `size` bytes at (`epoch`, `off`); `param_base` is the lowest entry-frame
    /// offset that holds an incoming stack parameter.
    fn load(&self, epoch: u32, off: i64, size: u8, param_base: i64) -> Val {
        let end = off.wrapping_add(i64::from(size));
        let mut overlap = false;
        for s in &self.slots {
            if s.epoch != epoch {
                continue;
            }
            if s.off == off && s.size >= size {
                return match s.val {
                    Val::Const(v, how) => Val::Const(mask(v, size as usize), how),
                    v if size >= 4 => v,
                    _ => Val::Unknown,
                };
            }
            if s.off < end && s.off.wrapping_add(i64::from(s.size)) > off {
                overlap = true;
            }
        }
        if overlap || self.wiped || epoch != 0 || off < param_base || size < 4 {
            return Val::Unknown;
        }
        i32::try_from(off).map_or(Val::Unknown, |o| Val::Param(Param::Stack(o)))
    }

    /// The state at a merge of paths. A register or slot keeps its value only when every
    /// incoming path carries exactly that value: symbolic facts (stack pointer, parameter, IAT
    /// pointer) always, constants only when `consts` (the function's control flow is fully
    /// known: no jump table whose edges we cannot see). Two paths carrying different constants
    /// — the if/else pool type of `toolchains-and-patterns.md` §3 — give `Unknown`, never one
    /// of them.
    fn merge(states: &[&State], epoch: u32, param_base: i64, consts: bool) -> State {
        let first = states[0];
        if consts && states.iter().all(|s| *s == first) {
            return first.clone();
        }
        let mut out = State::unknown(epoch);
        out.wiped = states.iter().any(|s| s.wiped);
        for r in 0..16 {
            out.regs[r] = agree(states.iter().map(|s| s.regs[r]), consts);
        }
        if !states.iter().all(|s| s.regs[RSP] == first.regs[RSP]) {
            out.regs[RSP] = Val::Stack(epoch, 0);
        }
        // Common case: every state tracks the same slots (same keys, same order) at tame
        // offsets. The slots of one epoch never overlap (every store removes what it overlaps),
        // so each key loads exactly its own slot and storing the keys in sorted order removes
        // nothing: the result is the keys, sorted, with the agreed values.
        let same_keys = first
            .slots
            .iter()
            .all(|sl| sl.off.unsigned_abs() < TAME_OFFSET)
            && states[1..].iter().all(|s| {
                s.slots.len() == first.slots.len()
                    && s.slots
                        .iter()
                        .zip(&first.slots)
                        .all(|(a, b)| a.epoch == b.epoch && a.off == b.off && a.size == b.size)
            });
        if same_keys {
            out.slots.reserve(first.slots.len().min(256));
            for (i, sl) in first.slots.iter().enumerate() {
                let v = agree(
                    states.iter().map(|s| exact_load(s.slots[i].val, sl.size)),
                    consts,
                );
                out.slots.push(Slot { val: v, ..*sl });
            }
            out.slots.sort_unstable_by_key(|sl| (sl.epoch, sl.off));
            out.slots.truncate(256);
            out.collect_garbage();
            return out;
        }
        // Offsets far from zero could make the overlap tests wrap: then the general (slow)
        // path, which is the definition; otherwise the indexed path computes the same result.
        let tame = states
            .iter()
            .all(|s| s.slots.iter().all(|sl| sl.off.unsigned_abs() < TAME_OFFSET));
        if tame {
            // Every state's slots, sorted by key, one after the other.
            let mut flat: Vec<Slot> =
                Vec::with_capacity(states.iter().map(|s| s.slots.len()).sum());
            let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(states.len());
            for s in states {
                let a = flat.len();
                flat.extend_from_slice(&s.slots);
                flat[a..].sort_unstable_by_key(|sl| (sl.epoch, sl.off));
                bounds.push((a, flat.len()));
            }
            // The keys (epoch, offset, size) of all states in increasing order, each once: a
            // merge of the sorted lists (a state's offsets within an epoch are distinct).
            let mut heads: Vec<usize> = bounds.iter().map(|&(a, _)| a).collect();
            let key = |sl: &Slot| (sl.epoch, sl.off, sl.size);
            let mut cursors = vec![0usize; states.len()];
            loop {
                let mut next: Option<(u32, i64, u8)> = None;
                for (&h, &(_, b)) in heads.iter().zip(&bounds) {
                    if h < b {
                        let k = key(&flat[h]);
                        if next.is_none_or(|n| k < n) {
                            next = Some(k);
                        }
                    }
                }
                let Some((e, o, z)) = next else {
                    break;
                };
                for (h, &(_, b)) in heads.iter_mut().zip(&bounds) {
                    while *h < b && key(&flat[*h]) == (e, o, z) {
                        *h += 1;
                    }
                }
                let v =
                    agree(
                        states.iter().zip(&bounds).zip(cursors.iter_mut()).map(
                            |((s, &(a, b)), c)| {
                                load_sorted(&flat[a..b], c, s.wiped, e, o, z, param_base)
                            },
                        ),
                        consts,
                    );
                out.store_sorted(e, o, z, v);
            }
        } else {
            let mut keys: Vec<(u32, i64, u8)> = states
                .iter()
                .flat_map(|s| s.slots.iter().map(|sl| (sl.epoch, sl.off, sl.size)))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for (e, o, z) in keys {
                let v = agree(states.iter().map(|s| s.load(e, o, z, param_base)), consts);
                out.store(e, o, z, v);
            }
        }
        out.collect_garbage();
        out
    }

    /// [`State::store`] when every slot already stored has a key (epoch, offset) no greater
    /// than the new one and the stored slots of an epoch do not overlap (slots are stored in
    /// key order, offsets tame): only the last slot can overlap the new one.
    fn store_sorted(&mut self, epoch: u32, off: i64, size: u8, val: Val) {
        let end = off + i64::from(size);
        if let Some(l) = self.slots.last() {
            if l.epoch == epoch && l.off + i64::from(l.size) > off && l.off < end {
                self.slots.pop();
            }
        }
        self.push_slot(Slot {
            epoch,
            off,
            size,
            val,
        });
    }

    /// Drops slots no register or slot can address any more (x86 starts a new stack epoch
    /// after each call): they cost time at every merge and can never be read.
    fn collect_garbage(&mut self) {
        // Usually every slot's epoch is the entry's or a register's: nothing to drop.
        let regs = &self.regs;
        let held = |e: u32| {
            e == 0
                || regs
                    .iter()
                    .any(|v| matches!(v, Val::Stack(x, _) if *x == e))
        };
        if self.slots.iter().all(|s| held(s.epoch)) {
            return;
        }
        let mut live: Vec<u32> = vec![0];
        for v in self.regs.iter().chain(self.slots.iter().map(|s| &s.val)) {
            if let Val::Stack(e, _) = v {
                live.push(*e);
            }
        }
        self.slots.retain(|s| live.contains(&s.epoch));
    }
}

/// Which part of a full register an operand names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Full,
    Low(usize),
    High8,
}

fn reg_part(r: Register) -> Option<(usize, Part)> {
    let full = r.full_register();
    let n = full.number().checked_sub(Register::RAX.number())?;
    if n >= 16 {
        return None;
    }
    let part = match r {
        Register::AH | Register::BH | Register::CH | Register::DH => Part::High8,
        _ if r.size() >= 8 => Part::Full,
        _ => Part::Low(r.size()),
    };
    Some((n, part))
}

/// A memory operand's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    /// A virtual address in the image (RIP-relative, absolute, or from a known pointer).
    Abs(u64),
    Stack(u32, i64),
    Unknown,
}

/// A pool-API transfer found in a function.
struct FoundSite {
    rva: u32,
    api: &'static ApiSpec,
    reach: Reach,
    args: Vec<(Role, Val)>,
}

/// One decoded function with its CFG and the entry states of the blocks solved so far.
struct Func {
    start: u32,
    insns: Vec<Instruction>,
    /// First instruction index of each block; blocks are contiguous.
    block_starts: Vec<usize>,
    /// Successors of each block (fall-through first, then the branch target: at most two).
    succs: Vec<([usize; 2], usize)>,
    /// Predecessors of block `b`, in increasing order: `plist[pstart[b]..pstart[b + 1]]`.
    pstart: Vec<usize>,
    plist: Vec<usize>,
    /// The register each predecessor edge (same order as `plist`) proves zero.
    edge_zero: Vec<Option<usize>>,
    /// Roots of the reachability walk: the entry and blocks no earlier root reaches.
    root: Vec<bool>,
    /// A jump table: no block may trust having one predecessor.
    indirect: bool,
    /// Blocks holding a transfer [`Ctx::may_transfer`] accepts: where `sites_in` looks.
    cand: Vec<bool>,
    /// Entry state of each block, meaningful where `solved` is set.
    in_states: RefCell<Vec<State>>,
    /// Blocks solved: the ancestors of the blocks asked for (`wanted`), or more.
    solved: RefCell<Vec<bool>>,
    wanted: RefCell<Vec<bool>>,
    /// How many times the fixpoint ran for this function.
    solves: Cell<u32>,
    /// Blocks no edge reaches (the entry, code after a `ret`, handlers, thunks).
    roots: Vec<bool>,
}

impl Func {
    fn index_of(&self, rva: u32, base: u64) -> Option<usize> {
        let ip = base.wrapping_add(u64::from(rva));
        self.insns.binary_search_by_key(&ip, |i| i.ip()).ok()
    }
    fn block_of(&self, idx: usize) -> usize {
        self.block_starts.partition_point(|&s| s <= idx) - 1
    }
}

/// Where [`Ctx::step_to`] stands: the state before instruction `at` of block `block` of the
/// function starting at `func`, stepped from `entry` at the block's start.
struct BlockCursor {
    func: u32,
    block: usize,
    at: usize,
    entry: State,
    state: State,
}

/// See `Ctx::rel32`.
struct Rel32 {
    rel: Vec<(u32, u32, bool)>,
    starts: Vec<u32>,
}

struct Ctx<'a> {
    image: &'a Image,
    data: &'a [u8],
    slots: PoolSlots,
    x64: bool,
    machine: Machine,
    base: u64,
    ptr: u32,
    code: Vec<(&'a Section, &'a [u8])>,
    /// `E8`/`E9` rel32 (target, source, is_call) sorted by target, and the known function
    /// starts (sorted: `.pdata` begins, call targets, exports, entry point). Built on first use:
    /// an image whose sites need no thunk, wrapper caller or heuristic function bounds (an x64
    /// driver calling its imports directly) never scans its code for them.
    rel32: std::cell::OnceCell<Rel32>,
    /// Import thunks of pool APIs: thunk RVA → API index.
    thunks: HashMap<u32, u8>,
    funcs: HashMap<u32, Option<Rc<Func>>>,
    /// Starts of the functions searched for sites (sorted).
    site_starts: Vec<u32>,
    /// Function starts of heuristic regions (`function_bounds`), by region.
    cuts: HashMap<(u32, u32), Vec<u32>>,
    info: InstructionInfoFactory,
    /// Try settling a wrapper's caller from the call's own block first (see `emit`).
    shortcut: bool,
    /// (RVA, value) of every 4-byte load from a writable global the analysis stepped through:
    /// how a tag read at run time is traced back to its global (see `fill_tag_values`).
    runtime_loads: RefCell<Vec<(u32, u32)>>,
}

/// Finds pool-API call sites in x86 and x64 code.
/// `shortcut`: settle a wrapper's caller from the call's own block when that block gives every
/// argument (see `Ctx::emit`); off only in the test that checks it changes nothing.
pub(super) fn analyze(image: &Image, data: &[u8], shortcut: bool) -> Vec<CallSite> {
    let slots = PoolSlots::new(image);
    if slots.is_empty() {
        return Vec::new();
    }
    let mut ctx = Ctx {
        image,
        data,
        slots,
        x64: image.machine == Machine::X64,
        machine: image.machine,
        base: image.image_base,
        ptr: image.machine.pointer_size(),
        code: common::code_sections(image, data),
        rel32: std::cell::OnceCell::new(),
        thunks: HashMap::new(),
        funcs: HashMap::new(),
        site_starts: Vec::new(),
        cuts: HashMap::new(),
        info: InstructionInfoFactory::new(),
        shortcut,
        runtime_loads: RefCell::new(Vec::new()),
    };
    let refs = ctx.scan_slot_refs();
    if refs.is_empty() {
        return Vec::new();
    }

    // Classify `jmp [slot]`: a thunk if some rel32 reaches it; an unused thunk if it stands
    // alone (lld emits a thunk per import, used or not: `toolchains-and-patterns.md` §1.5);
    // otherwise a tail call inside a function.
    let mut roots: Vec<u32> = Vec::new();
    for &(pos, jmp_at, api) in &refs {
        if let Some(t) = jmp_at {
            if let Some(t) = [t, t.wrapping_sub(1)]
                .into_iter()
                .find(|&t| t != u32::MAX && ctx.has_rel_callers(t))
            {
                ctx.thunks.insert(t, api_index(api));
                continue;
            }
            if ctx.standalone_jump(t) {
                continue;
            }
        }
        roots.push(pos);
    }
    let thunk_list: Vec<u32> = ctx.thunks.keys().copied().collect();
    for t in thunk_list {
        for (src, _) in ctx.rel_callers(t) {
            roots.push(src);
        }
    }
    let mut fstarts: Vec<(u32, u32)> = roots
        .into_iter()
        .filter_map(|p| ctx.function_bounds(p))
        .collect();
    fstarts.sort_unstable();
    fstarts.dedup();
    ctx.site_starts = fstarts.iter().map(|&(s, _)| s).collect();
    ctx.site_starts.dedup();

    let mut out = Vec::new();
    for (start, end) in fstarts {
        let Some(f) = ctx.function(start, end, None) else {
            continue;
        };
        for site in ctx.sites_in(&f) {
            ctx.emit(&f, site, &mut out);
        }
    }
    ctx.fill_tag_values(&mut out);
    out
}

impl<'a> Ctx<'a> {
    fn bitness(&self) -> u32 {
        if self.x64 {
            64
        } else {
            32
        }
    }

    /// Lowest entry-frame offset holding a stack parameter: x86 `[esp+4]`, x64 `[rsp+28h]`
    /// (after the return address and the 32-byte home area).
    fn param_base(&self) -> i64 {
        if self.x64 {
            0x28
        } else {
            4
        }
    }

    fn rva_of(&self, va: u64) -> Option<u32> {
        let r = va.checked_sub(self.base)?;
        (r < u64::from(self.image.size_of_image.max(1))).then_some(r as u32)
    }

    /// Byte scan of executable sections for operands naming a pool IAT slot. Returns
    /// (operand position, RVA of a `jmp [slot]` if the bytes before it are `FF 25`, API).
    fn scan_slot_refs(&self) -> Vec<(u32, Option<u32>, &'static ApiSpec)> {
        let mut out = Vec::new();
        let (lo, hi) = self.slots.bounds();
        let span = hi.wrapping_sub(lo);
        // The low 32 bits of the slot address an x86 operand would hold (filter only: the exact
        // test follows).
        let base32 = self.base as u32;
        for &(sec, bytes) in &self.code {
            if bytes.len() < 4 {
                continue;
            }
            let mut at = |i: usize| {
                let d = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
                let pos = sec.rva.wrapping_add(i as u32);
                let guess = if self.x64 {
                    pos.wrapping_add(4).wrapping_add(d)
                } else {
                    d.wrapping_sub(base32)
                };
                if guess.wrapping_sub(lo) > span {
                    return;
                }
                let slot = if self.x64 {
                    // RIP-relative: the slot is relative to the end of the disp32 (none of the
                    // instructions that use a slot carry an immediate after it).
                    pos.wrapping_add(4).wrapping_add(d)
                } else {
                    match (u64::from(d)).checked_sub(self.base) {
                        Some(r) if r <= u64::from(u32::MAX) => r as u32,
                        _ => return,
                    }
                };
                let Some(api) = self.slots.api_at(slot) else {
                    return;
                };
                let jmp = (i >= 2 && bytes[i - 2] == 0xff && bytes[i - 1] == 0x25)
                    .then(|| pos.wrapping_sub(2));
                out.push((pos, jmp, api));
            };
            // The range test of `at` on 32 positions at a time, without branches (the guess is
            // the operand plus a per-position addend): only a block with a hit is looked at
            // position by position.
            let n = bytes.len() - 3;
            let mut i = 0;
            while i + 32 <= n {
                let chunk = &bytes[i..i + 35];
                let add0 = if self.x64 {
                    sec.rva.wrapping_add(i as u32).wrapping_add(4)
                } else {
                    base32.wrapping_neg()
                };
                let step = u32::from(self.x64);
                let mut hit = false;
                for j in 0..32 {
                    let d =
                        u32::from_le_bytes([chunk[j], chunk[j + 1], chunk[j + 2], chunk[j + 3]]);
                    let guess = d.wrapping_add(add0).wrapping_add(step * j as u32);
                    hit |= guess.wrapping_sub(lo) <= span;
                }
                if hit {
                    for j in i..i + 32 {
                        at(j);
                    }
                }
                i += 32;
            }
            for j in i..n {
                at(j);
            }
        }
        out
    }

    /// Indexes every `E8`/`E9` rel32 whose target lies in an executable section. Byte-level,
    /// so some entries are not real instructions; every use is confirmed by decoding.
    fn rel32(&self) -> &Rel32 {
        self.rel32.get_or_init(|| self.index_rel32())
    }

    fn index_rel32(&self) -> Rel32 {
        let mut rel = Vec::new();
        for &(sec, bytes) in &self.code {
            if bytes.len() < 5 {
                continue;
            }
            let code = &self.code;
            // Opcode bytes found with memchr's vectorised search: E8/E9 are common in code,
            // but far rarer than the bytes between them.
            for i in memchr::memchr2_iter(0xe8, 0xe9, &bytes[..bytes.len() - 4]) {
                let d =
                    u32::from_le_bytes([bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4]]);
                let src = sec.rva.wrapping_add(i as u32);
                let target = src.wrapping_add(5).wrapping_add(d);
                if code
                    .iter()
                    .any(|(s, b)| target >= s.rva && target - s.rva < b.len() as u32)
                {
                    rel.push((target, src, bytes[i] == 0xe8));
                }
            }
        }
        rel.sort_unstable();
        let mut starts: Vec<u32> = rel.iter().filter(|r| r.2).map(|r| r.0).collect();
        starts.extend(self.image.functions.iter().map(|f| f.begin));
        starts.extend(self.image.exports.iter().map(|e| e.rva));
        starts.push(self.image.entry_point);
        starts.sort_unstable();
        starts.dedup();
        Rel32 { rel, starts }
    }

    fn rel_callers(&self, target: u32) -> Vec<(u32, bool)> {
        let rel = &self.rel32().rel;
        let i = rel.partition_point(|r| r.0 < target);
        rel[i..]
            .iter()
            .take_while(|r| r.0 == target)
            .map(|r| (r.1, r.2))
            .collect()
    }

    fn has_rel_callers(&self, target: u32) -> bool {
        !self.rel_callers(target).is_empty()
    }

    /// Whether a `jmp [slot]` at `t` nobody calls is an unused import thunk rather than a tail
    /// call inside a function: it starts a `.pdata` function of its own, or has no function
    /// around it and is preceded by padding, another thunk, or the section start.
    fn standalone_jump(&self, t: u32) -> bool {
        if let Some(f) = self.image.function_of(t) {
            return f.begin == t;
        }
        let Some(&(sec, bytes)) = self
            .code
            .iter()
            .find(|(s, b)| t >= s.rva && t - s.rva < b.len() as u32)
        else {
            return true;
        };
        let i = (t - sec.rva) as usize;
        if i == 0 || matches!(bytes[i - 1], 0xcc | 0x90 | 0xc3) {
            return true;
        }
        // A run of thunks: `FF 25 disp32` (6 bytes), possibly padded to 8 with two `nop`s.
        let thunk_at = |j: usize| bytes.get(j..j + 2) == Some(&[0xff, 0x25][..]);
        (i >= 6 && thunk_at(i - 6)) || (i >= 8 && thunk_at(i - 8))
    }

    /// The bounds of the function containing `rva`: `.pdata`, else the heuristic of the module
    /// documentation.
    fn function_bounds(&mut self, rva: u32) -> Option<(u32, u32)> {
        if let Some(f) = self.image.function_of(rva) {
            return Some((f.begin, f.end));
        }
        let &(sec, bytes) = self
            .code
            .iter()
            .find(|(s, b)| rva >= s.rva && rva - s.rva < b.len() as u32)?;
        let sec_end = sec.rva.wrapping_add(bytes.len() as u32);
        let starts = &self.rel32().starts;
        let i = starts.partition_point(|&s| s <= rva);
        let mut lo = i
            .checked_sub(1)
            .map(|j| starts[j])
            .filter(|&s| s >= sec.rva)
            .unwrap_or(sec.rva);
        if rva - lo > MAX_FUNCTION {
            lo = rva - MAX_FUNCTION;
        }
        let hi = starts
            .get(i)
            .copied()
            .filter(|&s| s <= sec_end)
            .unwrap_or(sec_end)
            .min(rva.saturating_add(MAX_FUNCTION));
        if !self.cuts.contains_key(&(lo, hi)) {
            let cuts = self.region_cuts(lo, hi);
            self.cuts.insert((lo, hi), cuts);
        }
        let cuts = &self.cuts[&(lo, hi)];
        let j = cuts.partition_point(|&c| c <= rva);
        let start = cuts[j.checked_sub(1)?];
        let end = cuts.get(j).copied().unwrap_or(hi);
        Some((start, end))
    }

    /// The function starts in the heuristic region [`lo`, `hi`) (see [`Ctx::function_bounds`]),
    /// beginning with `lo`.
    fn region_cuts(&self, lo: u32, hi: u32) -> Vec<u32> {
        // Decode the region and cut it at code that follows an unconditional transfer (or
        // int3/nop padding) and that no branch in the region targets.
        let insns = self.decode(lo, hi);
        let mut targets: Vec<u64> = insns
            .iter()
            .filter(|i| {
                matches!(
                    i.flow_control(),
                    FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
                )
            })
            .map(|i| i.near_branch_target())
            .collect();
        targets.sort_unstable();
        // A cut needs more than "follows a `ret`": MSVC places SEH filters and handlers
        // (`xor eax,eax; inc eax; ret` then `mov esp,[ebp-18h]`) straight after their function's
        // code. So the code must also follow padding, be a known start, or open with a
        // prologue (`mov edi,edi`, `push ebp`).
        let mut cuts = vec![lo];
        let mut after_end = false;
        let mut padded = false;
        for ins in &insns {
            let pad = matches!(ins.mnemonic(), Mnemonic::Int3 | Mnemonic::Nop);
            let r = (ins.ip().wrapping_sub(self.base)) as u32;
            if after_end && pad {
                padded = true;
                continue;
            }
            if after_end && targets.binary_search(&ins.ip()).is_err() && r != lo {
                let prologue = (ins.mnemonic() == Mnemonic::Mov
                    && ins.op0_kind() == OpKind::Register
                    && ins.op1_kind() == OpKind::Register
                    && ins.op0_register() == Register::EDI
                    && ins.op1_register() == Register::EDI)
                    || (ins.mnemonic() == Mnemonic::Push
                        && ins.op0_kind() == OpKind::Register
                        && matches!(ins.op0_register(), Register::EBP | Register::RBP));
                if padded || prologue || self.rel32().starts.binary_search(&r).is_ok() {
                    cuts.push(r);
                }
            }
            padded = ins.mnemonic() == Mnemonic::Int3;
            after_end = matches!(
                ins.flow_control(),
                FlowControl::Return
                    | FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
            ) || ins.mnemonic() == Mnemonic::Int3
                || ins.is_invalid();
        }
        cuts
    }

    fn decode(&self, start: u32, end: u32) -> Vec<Instruction> {
        let Some(bytes) = self.image.bytes_at(self.data, start) else {
            return Vec::new();
        };
        let n = (end.saturating_sub(start).min(MAX_FUNCTION) as usize).min(bytes.len());
        let mut dec = Decoder::with_ip(
            self.bitness(),
            &bytes[..n],
            self.base.wrapping_add(u64::from(start)),
            DecoderOptions::NONE,
        );
        let mut out = Vec::with_capacity(n / 3 + 1);
        let mut ins = Instruction::default();
        while dec.can_decode() {
            dec.decode_out(&mut ins);
            out.push(ins);
        }
        out
    }

    /// Decodes the function [`start`, `end`) (cached by start: the first end asked for
    /// stays), with the entry states solved at least where they are needed: the blocks
    /// `sites_in` reads when `start` is one of the functions searched for sites, and the block
    /// holding `at` (the call whose state a wrapper's site needs).
    fn function(&mut self, start: u32, end: u32, at: Option<u32>) -> Option<Rc<Func>> {
        let f = self.built(start, end)?;
        let nb = f.block_starts.len();
        let sites = at.is_none() || self.site_starts.binary_search(&start).is_ok();
        let at_block = at
            .and_then(|rva| f.index_of(rva, self.base))
            .map(|i| f.block_of(i));
        let missing = {
            let solved = f.solved.borrow();
            (sites && (0..nb).any(|b| f.cand[b] && !solved[b]))
                || at_block.is_some_and(|b| !solved[b])
        };
        if missing {
            let mut want = f.wanted.borrow().clone();
            if sites {
                for (w, &c) in want.iter_mut().zip(&f.cand) {
                    *w |= c;
                }
            }
            if let Some(b) = at_block {
                want[b] = true;
            }
            if f.solves.get() >= 2 {
                // Asked again and again (a caller of several wrappers): solve it all.
                want = vec![true; nb];
            }
            f.solves.set(f.solves.get() + 1);
            let (states, solved) = self.solve(&f, &want);
            *f.in_states.borrow_mut() = states;
            *f.solved.borrow_mut() = solved;
            *f.wanted.borrow_mut() = want;
        }
        Some(f)
    }

    /// The function [`start`, `end`) decoded and its blocks found, nothing solved (cached by
    /// start, like [`Ctx::function`]).
    fn built(&mut self, start: u32, end: u32) -> Option<Rc<Func>> {
        if let Some(f) = self.funcs.get(&start) {
            return f.clone();
        }
        let f = self.build(start, end).map(Rc::new);
        self.funcs.insert(start, f.clone());
        f
    }

    fn build(&mut self, start: u32, end: u32) -> Option<Func> {
        let insns = self.decode(start, end);
        if insns.is_empty() {
            return None;
        }
        let ip_index = |ip: u64| insns.binary_search_by_key(&ip, |i| i.ip()).ok();
        // Leaders.
        let mut leader = vec![false; insns.len()];
        leader[0] = true;
        let mut indirect = false;
        for (k, ins) in insns.iter().enumerate() {
            let fc = ins.flow_control();
            match fc {
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => {
                    if let Some(t) = ip_index(ins.near_branch_target()) {
                        leader[t] = true;
                    }
                }
                // A jump table (indexed memory, or a computed register): its targets are
                // unknown predecessors of some blocks, so no block may trust having one
                // predecessor. A `jmp [slot]` tail call is not a jump table.
                FlowControl::IndirectBranch
                    if ins.op0_kind() == OpKind::Register
                        || ins.memory_index() != Register::None =>
                {
                    indirect = true;
                }
                _ => {}
            }
            let ends = !matches!(
                fc,
                FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall
            ) || ins.is_invalid();
            if ends && k + 1 < insns.len() {
                leader[k + 1] = true;
            }
        }
        let block_starts: Vec<usize> = (0..insns.len()).filter(|&k| leader[k]).collect();
        let nb = block_starts.len();
        let block_end = |b: usize| block_starts.get(b + 1).copied().unwrap_or(insns.len());
        let block_of = |k: usize| block_starts.partition_point(|&s| s <= k) - 1;
        // Successors (fall-through first, then the branch target: at most two) and, in one
        // flat array, predecessors in increasing block order.
        let mut succs: Vec<([usize; 2], usize)> = vec![([0; 2], 0); nb];
        for b in 0..nb {
            let last = &insns[block_end(b) - 1];
            let fc = last.flow_control();
            let fall = matches!(
                fc,
                FlowControl::Next
                    | FlowControl::Call
                    | FlowControl::IndirectCall
                    | FlowControl::ConditionalBranch
            ) && !last.is_invalid();
            if fall && b + 1 < nb {
                succs[b] = ([b + 1, 0], 1);
            }
            if matches!(
                fc,
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            ) {
                if let Some(t) = ip_index(last.near_branch_target()) {
                    let tb = block_of(t);
                    let (v, n) = &mut succs[b];
                    if !v[..*n].contains(&tb) {
                        v[*n] = tb;
                        *n += 1;
                    }
                }
            }
        }
        let succ = |b: usize| &succs[b].0[..succs[b].1];
        let mut pstart = vec![0usize; nb + 1];
        for b in 0..nb {
            for &s in succ(b) {
                pstart[s + 1] += 1;
            }
        }
        for b in 0..nb {
            pstart[b + 1] += pstart[b];
        }
        let mut plist = vec![0usize; pstart[nb]];
        let mut fill = pstart.clone();
        for b in 0..nb {
            for &s in succ(b) {
                plist[fill[s]] = b;
                fill[s] += 1;
            }
        }
        let preds = |b: usize| &plist[pstart[b]..pstart[b + 1]];
        // Roots: the entry, then any block no root reaches (code only a jump table or an
        // exception handler reaches), in address order, with an unknown state.
        let mut root = vec![false; nb];
        let mut seen = vec![false; nb];
        root[0] = true;
        let mut stack = Vec::new();
        for b in 0..nb {
            if seen[b] {
                continue;
            }
            root[b] = true;
            stack.push(b);
            seen[b] = true;
            while let Some(x) = stack.pop() {
                for &s in succ(x) {
                    if !seen[s] {
                        seen[s] = true;
                        stack.push(s);
                    }
                }
            }
        }
        // The edge of `test r,r; jne` that falls through (or of `je` that is taken) knows
        // r = 0: MSVC's `test rax,rax; jne ok; lea ecx,[rax+1]` in an allocation-failure retry
        // path (BlackBone) materialises PagedPool that way. Only whole registers (64-bit on
        // x64, 32-bit on x86) are refined.
        let x64 = self.x64;
        let zero_on_edge = |p: usize, b: usize| -> Option<usize> {
            let last = block_end(p).checked_sub(1)?;
            if last <= block_starts[p] {
                return None;
            }
            let (t, j) = (&insns[last - 1], &insns[last]);
            let target = || ip_index(j.near_branch_target()).map(block_of);
            let on_zero_edge = match j.mnemonic() {
                Mnemonic::Jne => b == p + 1 && target() != Some(b),
                Mnemonic::Je => b != p + 1 && target() == Some(b),
                _ => false,
            };
            if !on_zero_edge || t.op0_kind() != OpKind::Register {
                return None;
            }
            let r = t.op0_register();
            let zero_test = match t.mnemonic() {
                Mnemonic::Test => t.op1_kind() == OpKind::Register && t.op1_register() == r,
                Mnemonic::Cmp => {
                    matches!(
                        t.op1_kind(),
                        OpKind::Immediate8to32
                            | OpKind::Immediate8to64
                            | OpKind::Immediate32
                            | OpKind::Immediate32to64
                            | OpKind::Immediate8
                    ) && t.immediate(1) == 0
                }
                _ => false,
            };
            let (n, part) = reg_part(r)?;
            let whole = part == Part::Full || (!x64 && part == Part::Low(4));
            (zero_test && whole && n != RSP).then_some(n)
        };
        // The refinement of each incoming edge, computed once.
        let mut edge_zero: Vec<Option<usize>> = vec![None; plist.len()];
        for b in 0..nb {
            for i in pstart[b]..pstart[b + 1] {
                edge_zero[i] = zero_on_edge(plist[i], b);
            }
        }
        let cand = (0..nb)
            .map(|b| (block_starts[b]..block_end(b)).any(|k| self.may_transfer(&insns[k])))
            .collect();
        let roots = (0..nb).map(|b| root[b] && preds(b).is_empty()).collect();
        Some(Func {
            start,
            insns,
            block_starts,
            succs,
            pstart,
            plist,
            edge_zero,
            root,
            indirect,
            cand,
            in_states: RefCell::new(Vec::new()),
            solved: RefCell::new(vec![false; nb]),
            wanted: RefCell::new(vec![false; nb]),
            solves: Cell::new(0),
            roots,
        })
    }

    /// Solves the entry states of the blocks that can reach a block in `want`; returns the
    /// entry states and which blocks hold one. Those states are exactly the ones a fixpoint
    /// over the whole function finds: the blocks solved include all their predecessors, and
    /// the blocks left out are checked to settle within the pass limit too (else everything is
    /// solved), since a whole-function fixpoint that does not settle trusts no block.
    fn solve(&mut self, f: &Func, want: &[bool]) -> (Vec<State>, Vec<bool>) {
        self.solve_with(f, want, true)
    }

    /// [`Ctx::solve`]; `sinks`: skip stepping through the wanted blocks no solved block
    /// follows.
    fn solve_with(&mut self, f: &Func, want: &[bool], sinks: bool) -> (Vec<State>, Vec<bool>) {
        let nb = f.block_starts.len();
        let block_starts = &f.block_starts;
        let block_end = |b: usize| block_starts.get(b + 1).copied().unwrap_or(f.insns.len());
        let succ = |b: usize| &f.succs[b].0[..f.succs[b].1];
        let preds = |b: usize| &f.plist[f.pstart[b]..f.pstart[b + 1]];
        let edge_zero = |b: usize| &f.edge_zero[f.pstart[b]..f.pstart[b + 1]];
        let close = |active: &mut Vec<bool>, stack: &mut Vec<usize>| {
            while let Some(x) = stack.pop() {
                for &p in preds(x) {
                    if !active[p] {
                        active[p] = true;
                        stack.push(p);
                    }
                }
            }
        };
        let mut active = want.to_vec();
        let mut stack: Vec<usize> = (0..nb).filter(|&b| active[b]).collect();
        close(&mut active, &mut stack);
        // The rest (closed under successors) in topological order; blocks on a cycle of it, or
        // after one, are solved too, so the rest is acyclic.
        let mut order: Vec<usize> = Vec::new();
        let rest = active.iter().filter(|&&a| !a).count();
        if rest > 0 {
            let mut indeg = vec![0u32; nb];
            for b in (0..nb).filter(|&b| !active[b]) {
                for &s in succ(b) {
                    indeg[s] += 1;
                }
            }
            order.extend((0..nb).filter(|&b| !active[b] && indeg[b] == 0));
            let mut i = 0;
            while i < order.len() {
                for &s in succ(order[i]) {
                    indeg[s] -= 1;
                    if indeg[s] == 0 {
                        order.push(s);
                    }
                }
                i += 1;
            }
            if order.len() < rest {
                let mut ordered = vec![false; nb];
                for &b in &order {
                    ordered[b] = true;
                }
                for b in 0..nb {
                    if !active[b] && !ordered[b] {
                        active[b] = true;
                        stack.push(b);
                    }
                }
                close(&mut active, &mut stack);
                order.retain(|&b| !active[b]);
            }
        }
        // Wanted blocks no solved block follows: only their entry states matter, so they are
        // not stepped through (their exit states would feed only blocks left out).
        let sink: Vec<bool> = (0..nb)
            .map(|b| sinks && want[b] && succ(b).iter().all(|&s| !active[s]))
            .collect();
        let pb = self.param_base();
        let mut ins_st: Vec<Option<State>> = vec![None; nb];
        let mut outs: Vec<Option<State>> = vec![None; nb];
        let mut refined: Vec<State> = Vec::new();
        let mut out = State::unknown(0);
        let entry = State::entry(self.x64);
        // Worklist in address order: a block is recomputed only when a predecessor's exit
        // state changed.
        let mut dirty = active.clone();
        let mut last = vec![0u32; nb];
        let mut reset = false;
        for pass in 0..64u32 {
            let mut changed = false;
            for b in 0..nb {
                if !std::mem::take(&mut dirty[b]) || !active[b] {
                    continue;
                }
                let epoch = EPOCH_BLOCK + b as u32;
                let merged;
                let st: &State = if b != 0 && f.root[b] {
                    merged = State::unknown(epoch);
                    &merged
                } else {
                    // Predecessor exit states, copied only where the edge refines a register.
                    let mut n_ref = 0;
                    for (&p, z) in preds(b).iter().zip(edge_zero(b)) {
                        if let (Some(o), Some(n)) = (outs[p].as_ref(), *z) {
                            if refined.len() <= n_ref {
                                refined.push(State::unknown(0));
                            }
                            refined[n_ref].clone_from(o);
                            refined[n_ref].regs[n] = Val::Const(0, Provenance::Propagated);
                            n_ref += 1;
                        }
                    }
                    if b != 0 && preds(b).len() == 1 && !f.indirect {
                        // One predecessor: its exit state, as is.
                        match outs[preds(b)[0]].as_ref() {
                            None => continue,
                            Some(_) if edge_zero(b)[0].is_some() => &refined[0],
                            Some(o) => o,
                        }
                    } else {
                        let mut known: Vec<&State> = Vec::with_capacity(preds(b).len() + 1);
                        let mut r = 0;
                        for (&p, z) in preds(b).iter().zip(edge_zero(b)) {
                            if let Some(o) = outs[p].as_ref() {
                                if z.is_some() {
                                    known.push(&refined[r]);
                                    r += 1;
                                } else {
                                    known.push(o);
                                }
                            }
                        }
                        if b == 0 {
                            if known.is_empty() {
                                &entry
                            } else {
                                known.push(&entry);
                                merged = State::merge(&known, epoch, pb, !f.indirect);
                                &merged
                            }
                        } else if known.is_empty() {
                            continue;
                        } else {
                            merged = State::merge(&known, epoch, pb, !f.indirect);
                            &merged
                        }
                    }
                };
                if sink[b] {
                    // Its exit state could change only now: the pass bounds it below.
                    match ins_st[b].as_mut() {
                        Some(i) => i.clone_from(st),
                        None => ins_st[b] = Some(st.clone()),
                    }
                    last[b] = pass;
                    continue;
                }
                if ins_st[b].as_ref() == Some(st) && outs[b].is_some() {
                    continue;
                }
                if out.slots.capacity() < st.slots.len() + 4 {
                    // Room for the block's own stores without regrowing.
                    out.slots = Vec::with_capacity(st.slots.len() + 8);
                }
                out.clone_from(st);
                for (k, ins) in f
                    .insns
                    .iter()
                    .enumerate()
                    .take(block_end(b))
                    .skip(block_starts[b])
                {
                    self.step(&mut out, ins, k);
                }
                match ins_st[b].as_mut() {
                    Some(i) => i.clone_from(st),
                    None => ins_st[b] = Some(st.clone()),
                }
                if outs[b].as_ref() != Some(&out) {
                    match outs[b].as_mut() {
                        Some(o) => std::mem::swap(o, &mut out),
                        None => outs[b] = Some(std::mem::replace(&mut out, State::unknown(0))),
                    }
                    changed = true;
                    last[b] = pass;
                    for &s in succ(b) {
                        dirty[s] = true;
                    }
                }
            }
            if !changed {
                break;
            }
            if pass == 63 {
                reset = true;
                // No fixpoint: trust nothing that crossed a block boundary.
                for (b, s) in ins_st.iter_mut().enumerate() {
                    if b != 0 {
                        *s = Some(State::unknown(EPOCH_BLOCK + b as u32));
                    }
                }
            }
        }
        let any_sink = sink.iter().any(|&k| k);
        if !reset && (any_sink || !order.is_empty()) {
            // The last pass each left-out block could change in: one after an earlier-placed
            // successor's, the same as a later-placed one's (a sink's: the last pass it was
            // reached in). A whole-function fixpoint settles if all are before the last pass.
            let mut bound = vec![0u32; nb];
            let mut worst = (0..nb)
                .filter(|&b| sink[b] && ins_st[b].is_some())
                .map(|b| last[b])
                .max()
                .unwrap_or(0);
            for &r in &order {
                let mut m = 0;
                if r == 0 || !f.root[r] {
                    for &p in preds(r) {
                        let lp = if !active[p] {
                            bound[p]
                        } else if outs[p].is_some() || (sink[p] && ins_st[p].is_some()) {
                            last[p]
                        } else {
                            continue;
                        };
                        m = m.max(lp + u32::from(p > r));
                    }
                }
                bound[r] = m;
                worst = worst.max(m);
            }
            if worst >= 63 {
                return self.solve_with(f, &vec![true; nb], false);
            }
        }
        let states = ins_st
            .into_iter()
            .enumerate()
            .map(|(b, s)| s.unwrap_or_else(|| State::unknown(EPOCH_BLOCK + b as u32)))
            .collect();
        (states, active)
    }

    // ----- the abstract interpreter -------------------------------------------------------

    fn get_reg(&self, st: &State, r: Register) -> Val {
        let Some((n, part)) = reg_part(r) else {
            return Val::Unknown;
        };
        let v = st.regs[n];
        match (part, v) {
            (Part::Full, v) => v,
            (Part::Low(z), Val::Const(x, how)) => Val::Const(mask(x, z), how),
            (Part::Low(4), v) => v,
            (Part::High8, Val::Const(x, how)) => Val::Const((x >> 8) & 0xff, how),
            _ => Val::Unknown,
        }
    }

    fn set_reg(&self, st: &mut State, r: Register, v: Val) {
        let Some((n, part)) = reg_part(r) else {
            return;
        };
        st.regs[n] = match (part, v) {
            (Part::Full, Val::Const(x, how)) if !self.x64 => Val::Const(mask(x, 4), how),
            (Part::Full, v) => v,
            // A 32-bit write zero-extends on x64.
            (Part::Low(4), Val::Const(x, how)) => Val::Const(mask(x, 4), how),
            (Part::Low(4), v) => v,
            (Part::Low(z), Val::Const(x, how)) => match st.regs[n] {
                Val::Const(old, h0) => {
                    let m = mask(u64::MAX, z);
                    Val::Const((old & !m) | (x & m), combine(how, h0))
                }
                _ => Val::Unknown,
            },
            (Part::High8, Val::Const(x, how)) => match st.regs[n] {
                Val::Const(old, h0) => {
                    Val::Const((old & !0xff00) | ((x & 0xff) << 8), combine(how, h0))
                }
                _ => Val::Unknown,
            },
            _ => Val::Unknown,
        };
    }

    fn displacement(&self, ins: &Instruction) -> i64 {
        if self.x64 {
            ins.memory_displacement64() as i64
        } else {
            i64::from(ins.memory_displacement32() as i32)
        }
    }

    fn mem_addr(&self, st: &State, ins: &Instruction) -> Addr {
        let seg = ins.memory_segment();
        if seg == Register::FS || seg == Register::GS {
            return Addr::Unknown;
        }
        let base = ins.memory_base();
        let index = ins.memory_index();
        if base.is_ip() {
            return Addr::Abs(ins.memory_displacement64());
        }
        let idx = if index == Register::None {
            0
        } else {
            match self.get_reg(st, index) {
                Val::Const(v, _) => v.wrapping_mul(u64::from(ins.memory_index_scale())),
                _ => return Addr::Unknown,
            }
        };
        let disp = self.displacement(ins);
        if base == Register::None {
            let va = if self.x64 {
                (disp as u64).wrapping_add(idx)
            } else {
                u64::from(ins.memory_displacement32()).wrapping_add(idx) & 0xffff_ffff
            };
            return Addr::Abs(va);
        }
        match self.get_reg(st, base) {
            Val::Stack(e, o) => Addr::Stack(e, o.wrapping_add(disp).wrapping_add(idx as i64)),
            Val::Const(b, _) => {
                let va = b.wrapping_add(disp as u64).wrapping_add(idx);
                Addr::Abs(if self.x64 { va } else { va & 0xffff_ffff })
            }
            _ => Addr::Unknown,
        }
    }

    fn load(&self, st: &State, addr: Addr, size: usize) -> Val {
        match addr {
            Addr::Stack(e, o) => st.load(e, o, size.min(8) as u8, self.param_base()).copied(),
            Addr::Abs(va) => {
                let Some(rva) = self.rva_of(va) else {
                    return Val::Unknown;
                };
                if let Some(api) = self.slots.api_at(rva) {
                    return if size == self.ptr as usize {
                        Val::Iat(api_index(api))
                    } else {
                        Val::Unknown
                    };
                }
                match common::global_value(self.image, self.data, &self.slots, rva, size as u32) {
                    Some(ArgValue {
                        value: Some(v),
                        how,
                    }) => {
                        if how == Provenance::Runtime && size == 4 {
                            self.runtime_loads.borrow_mut().push((rva, v as u32));
                        }
                        Val::Const(v, how)
                    }
                    _ => Val::Unknown,
                }
            }
            Addr::Unknown => Val::Unknown,
        }
    }

    fn store(&self, st: &mut State, addr: Addr, size: usize, v: Val) {
        if let Addr::Stack(e, o) = addr {
            let v = match v {
                Val::Const(x, how) => Val::Const(mask(x, size), how),
                v if size >= 4 => v,
                _ => Val::Unknown,
            };
            st.store(e, o, size.clamp(1, 8) as u8, v);
        }
    }

    fn op_size(&self, ins: &Instruction, op: u32) -> usize {
        match ins.op_kind(op) {
            OpKind::Register => ins.op_register(op).size(),
            OpKind::Memory => ins.memory_size().size(),
            _ => self.ptr as usize,
        }
    }

    fn read_op(&self, st: &State, ins: &Instruction, op: u32) -> Val {
        match ins.op_kind(op) {
            OpKind::Register => self.get_reg(st, ins.op_register(op)).copied(),
            OpKind::Memory => {
                let a = self.mem_addr(st, ins);
                self.load(st, a, ins.memory_size().size())
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => Val::Const(ins.immediate(op), Provenance::Immediate),
            _ => Val::Unknown,
        }
    }

    fn write_op0(&self, st: &mut State, ins: &Instruction, v: Val) {
        match ins.op0_kind() {
            OpKind::Register => {
                let r = ins.op0_register();
                let v = match v {
                    Val::Const(x, how) => Val::Const(mask(x, r.size()), how),
                    v => v,
                };
                self.set_reg(st, r, v);
            }
            OpKind::Memory => {
                let a = self.mem_addr(st, ins);
                self.store(st, a, ins.memory_size().size(), v);
            }
            _ => {}
        }
    }

    fn adjust_sp(&self, st: &mut State, delta: i64) {
        if let Val::Stack(e, o) = st.regs[RSP] {
            st.regs[RSP] = Val::Stack(e, o.wrapping_add(delta));
        }
    }

    /// Applies one instruction to the state. `k` is its index (used to name stack epochs).
    fn step(&mut self, st: &mut State, ins: &Instruction, k: usize) {
        #[cfg(test)]
        tests::STEPS.set(tests::STEPS.get() + 1);
        self.step_inner(st, ins, k);
        if !matches!(st.regs[RSP], Val::Stack(..)) {
            // Keep the stack pointer a stack address (e.g. after `and esp, -8` or `mov esp,
            // ebp` with an unknown ebp): a new epoch, so later pushes are still tracked.
            st.regs[RSP] = Val::Stack(EPOCH_CALL + k as u32, 0);
        }
    }

    fn step_inner(&mut self, st: &mut State, ins: &Instruction, k: usize) {
        let ptr = i64::from(self.ptr);
        match ins.mnemonic() {
            Mnemonic::Nop | Mnemonic::Int3 | Mnemonic::Cmp | Mnemonic::Test => {}
            Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Retf => {}
            m if ins.flow_control() == FlowControl::ConditionalBranch && m != Mnemonic::Loop => {}
            Mnemonic::Mov if ins.op_count() == 2 => {
                let v = self.read_op(st, ins, 1);
                if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
                    return;
                }
                if ins.op1_kind() == OpKind::Register && ins.op1_register().is_segment_register() {
                    self.write_op0(st, ins, Val::Unknown);
                    return;
                }
                self.write_op0(st, ins, v);
            }
            Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
                let src_size = self.op_size(ins, 1);
                let v = match self.read_op(st, ins, 1) {
                    Val::Const(x, how) => {
                        let x = mask(x, src_size);
                        let x = if ins.mnemonic() != Mnemonic::Movzx && src_size < 8 {
                            let sh = 64 - 8 * src_size as u32;
                            (((x << sh) as i64) >> sh) as u64
                        } else {
                            x
                        };
                        Val::Const(
                            x,
                            if how == Provenance::Immediate {
                                Provenance::Propagated
                            } else {
                                how
                            },
                        )
                    }
                    Val::Param(p) if src_size >= 4 => Val::Param(p),
                    _ => Val::Unknown,
                };
                self.write_op0(st, ins, v);
            }
            Mnemonic::Lea => {
                let v = match self.mem_addr(st, ins) {
                    Addr::Stack(e, o) => Val::Stack(e, o),
                    Addr::Abs(va) => Val::Const(va, Provenance::Propagated),
                    Addr::Unknown => {
                        // `lea reg, [param]` keeps the parameter.
                        let b = ins.memory_base();
                        match self.get_reg(st, b) {
                            Val::Param(p)
                                if ins.memory_index() == Register::None
                                    && self.displacement(ins) == 0 =>
                            {
                                Val::Param(p)
                            }
                            _ => Val::Unknown,
                        }
                    }
                };
                self.write_op0(st, ins, v);
            }
            Mnemonic::Xor | Mnemonic::Sub
                if ins.op_count() == 2
                    && ins.op0_kind() == OpKind::Register
                    && ins.op1_kind() == OpKind::Register
                    && ins.op0_register() == ins.op1_register() =>
            {
                self.write_op0(st, ins, Val::Const(0, Provenance::Immediate));
            }
            Mnemonic::Add
            | Mnemonic::Sub
            | Mnemonic::Or
            | Mnemonic::And
            | Mnemonic::Xor
            | Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Bts
            | Mnemonic::Btr
            | Mnemonic::Btc
            | Mnemonic::Imul
                if ins.op_count() == 2 =>
            {
                let size = self.op_size(ins, 0);
                let a = self.read_op(st, ins, 0);
                let b = self.read_op(st, ins, 1);
                let m = ins.mnemonic();
                let r = match (a, b) {
                    (Val::Stack(e, o), Val::Const(c, _)) if m == Mnemonic::Add => {
                        Val::Stack(e, o.wrapping_add(c as i64))
                    }
                    (Val::Stack(e, o), Val::Const(c, _)) if m == Mnemonic::Sub => {
                        Val::Stack(e, o.wrapping_sub(c as i64))
                    }
                    (_, Val::Const(0, how)) if m == Mnemonic::And => Val::Const(0, how),
                    (Val::Const(x, h1), Val::Const(y, h2)) => {
                        let bits = (size * 8) as u32;
                        let sh = (y as u32) & if size == 8 { 63 } else { 31 };
                        let v = match m {
                            Mnemonic::Add => x.wrapping_add(y),
                            Mnemonic::Sub => x.wrapping_sub(y),
                            Mnemonic::Or => x | y,
                            Mnemonic::And => x & y,
                            Mnemonic::Xor => x ^ y,
                            Mnemonic::Shl => x.wrapping_shl(sh),
                            Mnemonic::Shr => mask(x, size).wrapping_shr(sh),
                            Mnemonic::Sar => {
                                let s = 64 - bits;
                                ((((x << s) as i64) >> s) >> sh) as u64
                            }
                            Mnemonic::Rol => {
                                let x = mask(x, size);
                                let sh = sh % bits;
                                if sh == 0 {
                                    x
                                } else {
                                    (x << sh) | (x >> (bits - sh))
                                }
                            }
                            Mnemonic::Ror => {
                                let x = mask(x, size);
                                let sh = sh % bits;
                                if sh == 0 {
                                    x
                                } else {
                                    (x >> sh) | (x << (bits - sh))
                                }
                            }
                            Mnemonic::Bts => x | (1u64 << (y as u32 % bits)),
                            Mnemonic::Btr => x & !(1u64 << (y as u32 % bits)),
                            Mnemonic::Btc => x ^ (1u64 << (y as u32 % bits)),
                            _ => x.wrapping_mul(y),
                        };
                        Val::Const(mask(v, size), combine(h1, h2))
                    }
                    _ => Val::Unknown,
                };
                self.write_op0(st, ins, r);
            }
            Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Not | Mnemonic::Neg => {
                let size = self.op_size(ins, 0);
                let r = match self.read_op(st, ins, 0) {
                    Val::Const(x, how) => {
                        let v = match ins.mnemonic() {
                            Mnemonic::Inc => x.wrapping_add(1),
                            Mnemonic::Dec => x.wrapping_sub(1),
                            Mnemonic::Not => !x,
                            _ => x.wrapping_neg(),
                        };
                        Val::Const(mask(v, size), combine(how, Provenance::Propagated))
                    }
                    _ => Val::Unknown,
                };
                self.write_op0(st, ins, r);
            }
            Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns => {
                let old = self.get_reg(st, ins.op0_register());
                let new = self.read_op(st, ins, 1);
                // Either value may result. When one is the function's parameter and the other
                // is not a constant (System Informer's randomised tag, `cmovne edx, eax` in
                // KphAllocate*, read from a writable global), the parameter is what the caller controls, so it is kept and
                // resolved at callers; two different constants are a choice we cannot make.
                let v = match (old, new) {
                    (a, b) if a == b => a,
                    (Val::Param(p), b) | (b, Val::Param(p)) if !b.is_compile_time() => {
                        Val::Param(p)
                    }
                    _ => Val::Unknown,
                };
                self.set_reg(st, ins.op0_register(), v);
            }
            Mnemonic::Xchg
                if ins.op0_kind() == OpKind::Register && ins.op1_kind() == OpKind::Register =>
            {
                let a = self.get_reg(st, ins.op0_register());
                let b = self.get_reg(st, ins.op1_register());
                self.set_reg(st, ins.op0_register(), b);
                self.set_reg(st, ins.op1_register(), a);
            }
            Mnemonic::Push if ins.op_count() == 1 => {
                let v = self.read_op(st, ins, 0);
                let size = if ins.op0_kind() == OpKind::Register {
                    ins.op0_register().size()
                } else {
                    self.ptr as usize
                };
                let size = if size == 2 { 2 } else { self.ptr as usize };
                self.adjust_sp(st, -(size as i64));
                if let Val::Stack(e, o) = st.regs[RSP] {
                    let v = match v {
                        Val::Const(x, how) => Val::Const(mask(x, size), how),
                        v => v,
                    };
                    st.store(e, o, size as u8, v);
                }
            }
            Mnemonic::Pop if ins.op_count() == 1 => {
                let v = match st.regs[RSP] {
                    Val::Stack(e, o) => st.load(e, o, self.ptr as u8, self.param_base()).copied(),
                    _ => Val::Unknown,
                };
                self.adjust_sp(st, ptr);
                self.write_op0(st, ins, v);
            }
            Mnemonic::Leave => {
                st.regs[RSP] = st.regs[RBP];
                let v = match st.regs[RSP] {
                    Val::Stack(e, o) => st.load(e, o, self.ptr as u8, self.param_base()),
                    _ => Val::Unknown,
                };
                st.regs[RBP] = v;
                if matches!(st.regs[RSP], Val::Stack(..)) {
                    self.adjust_sp(st, ptr);
                } else {
                    st.regs[RSP] = Val::Stack(EPOCH_CALL + k as u32, 0);
                }
            }
            Mnemonic::Call => self.after_call(st, ins, k),
            _ => self.clobber(st, ins, k),
        }
    }

    /// The effect of a call on the caller's state.
    fn after_call(&mut self, st: &mut State, ins: &Instruction, k: usize) {
        let callee = self.transfer_target(st, ins).map(|(api, _)| api);
        if self.x64 {
            for r in X64_VOLATILE {
                st.regs[r] = Val::Unknown;
            }
            // The callee owns its home area and stack arguments.
            if let Val::Stack(e, o) = st.regs[RSP] {
                st.slots
                    .retain(|s| s.epoch != e || s.off < o || s.off >= o + 0x60);
            }
        } else {
            for r in X86_VOLATILE {
                st.regs[r] = Val::Unknown;
            }
            // stdcall callees pop their arguments, cdecl ones do not; a known API pops its
            // declared slots, anything else starts a new stack epoch (slots written after the
            // call are still tracked, gcc's `sub esp,4; mov [esp],tag` reuse included).
            match (callee, st.regs[RSP]) {
                (Some(api), Val::Stack(e, o)) => {
                    let slots: i64 = api.params.iter().map(|p| if p.wide { 8 } else { 4 }).sum();
                    st.regs[RSP] = Val::Stack(e, o + slots);
                }
                _ => st.regs[RSP] = Val::Stack(EPOCH_CALL + k as u32, 0),
            }
            st.collect_garbage();
        }
    }

    /// Any other instruction: every register it writes becomes unknown, and any stack slot it
    /// writes too.
    fn clobber(&mut self, st: &mut State, ins: &Instruction, k: usize) {
        let info = self.info.info(ins);
        let mut regs: Vec<Register> = Vec::new();
        let mut sp_written = false;
        for u in info.used_registers() {
            if writes(u.access()) {
                regs.push(u.register());
            }
        }
        let mut mem_write = false;
        let mut implicit_write = false;
        for m in info.used_memory() {
            if writes(m.access()) {
                mem_write = true;
                let explicit = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory);
                if !explicit {
                    implicit_write = true;
                }
            }
        }
        for r in regs {
            if let Some((n, _)) = reg_part(r) {
                if n == RSP {
                    sp_written = true;
                } else {
                    st.regs[n] = Val::Unknown;
                }
            }
        }
        if mem_write {
            if implicit_write {
                // `rep stos`, `movs` and friends into an unknown place: forget the stack.
                st.slots.clear();
                st.wiped = true;
            } else if let Addr::Stack(e, o) = self.mem_addr(st, ins) {
                st.store(
                    e,
                    o,
                    ins.memory_size().size().clamp(1, 8) as u8,
                    Val::Unknown,
                );
            }
        }
        if sp_written {
            st.regs[RSP] = Val::Stack(EPOCH_CALL + k as u32, 0);
        }
    }

    /// If `ins` transfers control to a pool API (directly, through a register or stack slot
    /// holding its IAT pointer, or through a thunk), the API and how.
    fn transfer_target(&self, st: &State, ins: &Instruction) -> Option<(&'static ApiSpec, Reach)> {
        let fc = ins.flow_control();
        let tail = match fc {
            FlowControl::IndirectCall | FlowControl::Call => false,
            FlowControl::IndirectBranch | FlowControl::UnconditionalBranch => true,
            _ => return None,
        };
        // A register or stack slot that holds an IAT pointer loaded earlier.
        let through = |v: Val| match v {
            Val::Iat(i) => Some((
                api_by_index(i),
                if tail {
                    Reach::TailJump
                } else {
                    Reach::RegisterCall
                },
            )),
            _ => None,
        };
        match ins.op0_kind() {
            OpKind::Memory => {
                let a = self.mem_addr(st, ins);
                let api = match a {
                    Addr::Abs(va) => self.rva_of(va).and_then(|r| self.slots.api_at(r)),
                    _ => None,
                };
                if let Some(api) = api {
                    let reach = if tail {
                        Reach::TailJump
                    } else {
                        Reach::IndirectCall
                    };
                    return Some((api, reach));
                }
                through(self.load(st, a, self.ptr as usize))
            }
            OpKind::Register => through(self.get_reg(st, ins.op0_register())),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                let t = self.rva_of(ins.near_branch_target())?;
                let i = *self.thunks.get(&t)?;
                Some((
                    api_by_index(i),
                    if tail { Reach::TailJump } else { Reach::Thunk },
                ))
            }
            _ => None,
        }
    }

    /// Whether [`Ctx::transfer_target`] can find a pool API at `ins` in some state: an
    /// indirect call or jump through a register or a computed address, one through a fixed
    /// address only when that is a pool API's IAT slot, and a direct one only to a pool import
    /// thunk.
    fn may_transfer(&self, ins: &Instruction) -> bool {
        match ins.flow_control() {
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                if ins.op0_kind() != OpKind::Memory {
                    return true;
                }
                // The address as `mem_addr` forms it, where no register value enters it: then
                // `transfer_target` finds an API exactly when the address is a pool slot (a
                // load from any other fixed address is never an IAT pointer).
                let seg = ins.memory_segment();
                if seg == Register::FS || seg == Register::GS {
                    return false;
                }
                let base = ins.memory_base();
                let va = if base.is_ip() {
                    ins.memory_displacement64()
                } else if base == Register::None && ins.memory_index() == Register::None {
                    if self.x64 {
                        self.displacement(ins) as u64
                    } else {
                        u64::from(ins.memory_displacement32()) & 0xffff_ffff
                    }
                } else {
                    return true;
                };
                self.rva_of(va).and_then(|r| self.slots.api_at(r)).is_some()
            }
            FlowControl::Call | FlowControl::UnconditionalBranch => match ins.op0_kind() {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => self
                    .rva_of(ins.near_branch_target())
                    .is_some_and(|t| self.thunks.contains_key(&t)),
                _ => true,
            },
            _ => false,
        }
    }

    /// The value of argument `index` (1-based) of `spec` in state `st` at a transfer; `tail`
    /// when the transfer is a jump (no return address pushed).
    fn arg_val(&self, st: &State, spec: &ApiSpec, index: usize, tail: bool) -> Val {
        let Some(loc) = arg_location(self.machine, spec, index) else {
            return Val::Unknown;
        };
        let p = spec.params[index - 1];
        let bias = if tail { i64::from(self.ptr) } else { 0 };
        match loc {
            ArgLocation::Register(r) => X64_ARGS
                .get(usize::from(r))
                .map_or(Val::Unknown, |&n| st.regs[n]),
            ArgLocation::Stack(off) => {
                let Val::Stack(e, o) = st.regs[RSP] else {
                    return Val::Unknown;
                };
                let at = o + i64::from(off) + bias;
                let pb = self.param_base();
                if p.wide && !self.x64 {
                    match (st.load(e, at, 4, pb), st.load(e, at + 4, 4, pb)) {
                        (Val::Const(lo, h1), Val::Const(hi, h2)) => {
                            // `push 0; push 40h` (gcc, `toolchains-and-patterns.md` §2.2): two
                            // immediates are still an immediate.
                            let how = if h1 == Provenance::Immediate && h2 == h1 {
                                h1
                            } else {
                                combine(h1, h2)
                            };
                            Val::Const((hi << 32) | mask(lo, 4), how)
                        }
                        _ => Val::Unknown,
                    }
                } else {
                    let size = if p.wide { 8 } else { 4 };
                    st.load(e, at, size, pb)
                }
            }
        }
    }

    /// Every pool-API transfer in `f`, with its arguments as abstract values.
    fn sites_in(&mut self, f: &Func) -> Vec<FoundSite> {
        let mut out = Vec::new();
        for b in 0..f.block_starts.len() {
            let end = f.block_starts.get(b + 1).copied().unwrap_or(f.insns.len());
            // Only a transfer `transfer_target` can resolve makes a site: a block without one
            // yields nothing, and nothing after its last one matters.
            let Some(last) = (f.block_starts[b]..end)
                .rev()
                .find(|&k| self.may_transfer(&f.insns[k]))
            else {
                continue;
            };
            let mut st = f.in_states.borrow()[b].clone();
            for k in f.block_starts[b]..=last {
                let ins = &f.insns[k];
                if matches!(
                    ins.flow_control(),
                    FlowControl::Call
                        | FlowControl::IndirectCall
                        | FlowControl::IndirectBranch
                        | FlowControl::UnconditionalBranch
                ) {
                    if let Some((api, reach)) = self.transfer_target(&st, ins) {
                        let rva = (ins.ip().wrapping_sub(self.base)) as u32;
                        // An import thunk's own `jmp [slot]` is not a call site (its callers
                        // are), even when a heuristic region swept over the thunk table.
                        let first_of_root = k == f.block_starts[b] && f.roots[b];
                        if ins.flow_control() == FlowControl::IndirectBranch
                            && ins.op0_kind() == OpKind::Memory
                            && (first_of_root
                                || self.thunks.contains_key(&rva)
                                || self.standalone_jump(rva))
                        {
                            self.step(&mut st, ins, k);
                            continue;
                        }
                        let tail = reach == Reach::TailJump;
                        let args = api
                            .params
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| p.role != Role::Other)
                            .map(|(i, p)| (p.role, self.arg_val(&st, api, i + 1, tail)))
                            .collect();
                        out.push(FoundSite {
                            rva,
                            api,
                            reach,
                            args,
                        });
                    }
                }
                self.step(&mut st, ins, k);
            }
        }
        out
    }

    /// Adds the site, and for every argument still holding a parameter of the enclosing
    /// function, one site per caller with the caller's values.
    fn emit(&mut self, f: &Func, site: FoundSite, out: &mut Vec<CallSite>) {
        let own = CallSite {
            rva: site.rva,
            api: site.api.name,
            reach: site.reach,
            function: Some(f.start),
            via: None,
            args: site
                .args
                .iter()
                .map(|&(role, v)| (role, to_arg(role, v)))
                .collect(),
            tag_values: Vec::new(),
        };
        let wrapped = site.args.iter().any(|(_, v)| matches!(v, Val::Param(_)));
        if wrapped {
            // Callers come in address order; several in one block (a caller calling the wrapper
            // thousands of times in straight-line code) are stepped to one after the other from
            // the state at the previous one, not each from the block's start: that was
            // quadratic in the block's length (4.4 s for a 256 KiB function of such calls,
            // 0.1 s now; tests/it/hostile_code.rs).
            let mut quick: Option<BlockCursor> = None;
            let mut solved: Option<BlockCursor> = None;
            for (src, is_call) in self.rel_callers(f.start) {
                let Some((cs, ce)) = self.function_bounds(src) else {
                    continue;
                };
                if cs == f.start {
                    continue; // recursion
                }
                let Some(cf) = self.built(cs, ce) else {
                    continue;
                };
                let Some(idx) = cf.index_of(src, self.base) else {
                    continue;
                };
                let ins = cf.insns[idx];
                let target_ok = matches!(
                    ins.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                ) && self.rva_of(ins.near_branch_target()) == Some(f.start);
                if !target_ok {
                    continue;
                }
                // Usually the caller sets the arguments right before the call: stepped from an
                // unknown state, the call's own block already gives them. A constant found that
                // way does not depend on the block's entry, so it is what solving the caller
                // would give; only when one is missing is the caller solved.
                let b = cf.block_of(idx);
                let st = self.step_to(&mut quick, &cf, b, idx, || {
                    State::unknown(EPOCH_BLOCK + b as u32)
                });
                let mut args = self.caller_args(&site, st, is_call);
                let settled = self.shortcut
                    && site
                        .args
                        .iter()
                        .zip(&args)
                        .all(|((_, v), (_, r))| !matches!(v, Val::Param(_)) || r.is_const());
                if !settled {
                    let Some(cf) = self.function(cs, ce, Some(src)) else {
                        continue;
                    };
                    let entry = cf.in_states.borrow()[b].clone();
                    // A cursor over another solution of this block (the function was solved
                    // again in between) is not continued.
                    if solved
                        .as_ref()
                        .is_some_and(|c| c.func == cs && c.block == b && c.entry != entry)
                    {
                        solved = None;
                    }
                    let st = self.step_to(&mut solved, &cf, b, idx, || entry.clone());
                    args = self.caller_args(&site, st, is_call);
                }
                let args = args
                    .into_iter()
                    .map(|(role, r)| (role, to_arg(role, r)))
                    .collect();
                out.push(common::site_via(&own, src, args));
            }
        }
        out.push(own);
    }

    /// The state just before instruction `idx` of block `b` of `f`, stepped from `entry()` at
    /// the block's start — or on from `cursor`'s state when it stands earlier in the same
    /// block, which gives the same state (stepping is deterministic). `cursor` is left at
    /// `idx`.
    fn step_to<'c>(
        &mut self,
        cursor: &'c mut Option<BlockCursor>,
        f: &Func,
        b: usize,
        idx: usize,
        entry: impl FnOnce() -> State,
    ) -> &'c State {
        let reusable = cursor
            .as_ref()
            .is_some_and(|c| c.func == f.start && c.block == b && c.at <= idx);
        if !reusable {
            let first = entry();
            *cursor = Some(BlockCursor {
                func: f.start,
                block: b,
                at: f.block_starts[b],
                entry: first.clone(),
                state: first,
            });
        }
        let c = cursor.as_mut().expect("set above");
        for k in c.at..idx {
            self.step(&mut c.state, &f.insns[k], k);
        }
        c.at = idx;
        &c.state
    }

    /// The values of `site`'s arguments at a call to its function, given the caller's state
    /// `st` before the call: a parameter takes the caller's value (one level up only: what is
    /// still a parameter of the caller becomes unknown in [`to_arg`]), anything else stays as
    /// the site found it.
    fn caller_args(&self, site: &FoundSite, st: &State, is_call: bool) -> Vec<(Role, Val)> {
        site.args
            .iter()
            .map(|&(role, v)| {
                let r = match v {
                    Val::Param(Param::Reg(n)) => st.regs[usize::from(n)],
                    Val::Param(Param::Stack(off)) => match st.regs[RSP] {
                        Val::Stack(e, o) => {
                            let at =
                                o + i64::from(off) - if is_call { i64::from(self.ptr) } else { 0 };
                            st.load(e, at, 4, self.param_base())
                        }
                        _ => Val::Unknown,
                    },
                    v => v,
                };
                (role, r)
            })
            .collect()
    }
}

impl Ctx<'_> {
    /// Fills [`CallSite::tag_values`] of every site whose tag is read at run time from a
    /// writable global ([`common::fill_tag_values`], with [`Ctx::values_of_global`]).
    fn fill_tag_values(&self, sites: &mut [CallSite]) {
        let loads = self.runtime_loads.borrow().clone();
        common::fill_tag_values(sites, loads, |global, initial| {
            self.values_of_global(global, initial)
        });
    }

    /// The values the 4-byte global at `global` can hold: `initial` and every immediate that an
    /// instruction of the image's code stores into it (`mov dword [global], imm32`), found by
    /// decoding every executable section once. `None` when some other instruction writes any of
    /// its bytes, or when its address is taken (`lea`, the address as an immediate, or as a
    /// pointer in data: [`common::address_held_in_image`]): the values are then unknown. A
    /// pointer to it computed at run time some other way is not seen.
    fn values_of_global(&self, global: u32, initial: u32) -> Option<Vec<u32>> {
        if common::address_held_in_image(self.image, self.data, global) {
            return None;
        }
        let mut values = vec![initial];
        let mut info = InstructionInfoFactory::new();
        let nothing_known = State::unknown(0);
        let va = self.base.wrapping_add(u64::from(global));
        for &(sec, bytes) in &self.code {
            let ip = self.base.wrapping_add(u64::from(sec.rva));
            let mut dec = Decoder::with_ip(self.bitness(), bytes, ip, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while dec.can_decode() {
                dec.decode_out(&mut ins);
                if ins.is_invalid() {
                    continue;
                }
                let immediate_address = (0..ins.op_count()).any(|i| {
                    matches!(
                        ins.op_kind(i),
                        OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64
                    ) && ins.immediate(i) == va
                });
                if immediate_address {
                    return None;
                }
                if !(0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory) {
                    continue;
                }
                // With nothing known about registers, only a RIP-relative or absolute operand
                // has an address.
                let Addr::Abs(at) = self.mem_addr(&nothing_known, &ins) else {
                    continue;
                };
                let Some(at) = self.rva_of(at) else {
                    continue;
                };
                let len = (ins.memory_size().size() as u32).max(1);
                if at >= global.wrapping_add(4) || at.wrapping_add(len) <= global {
                    continue;
                }
                if ins.mnemonic() == Mnemonic::Lea {
                    return None;
                }
                let written = info
                    .info(&ins)
                    .used_memory()
                    .iter()
                    .any(|m| writes(m.access()));
                if !written {
                    continue;
                }
                let constant = ins.mnemonic() == Mnemonic::Mov
                    && ins.op0_kind() == OpKind::Memory
                    && at == global
                    && len == 4
                    && ins.op1_kind() == OpKind::Immediate32;
                if !constant {
                    return None;
                }
                values.push(ins.immediate32());
            }
        }
        values.sort_unstable();
        values.dedup();
        Some(values)
    }
}

/// The recovered value of an argument with `role`; 32-bit roles are truncated.
fn to_arg(role: Role, v: Val) -> ArgValue {
    match v {
        Val::Const(x, how) => {
            let x = match role {
                Role::PoolFlags | Role::Size | Role::Other => x,
                _ => x & 0xffff_ffff,
            };
            ArgValue {
                value: Some(x),
                how,
            }
        }
        _ => ArgValue::UNKNOWN,
    }
}

/// Whether an operand access stores to its register or memory (possibly conditionally).
fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Instructions interpreted on this thread (the work of an analysis).
        pub(super) static STEPS: Cell<u64> = const { Cell::new(0) };
    }

    /// 23,829 calls of a wrapper in one basic block of one 256 KiB function (built by
    /// testdata/regress/make_hostile.py): every call is a site through the wrapper with its
    /// own tag, and the block is interpreted once for all of them, not once per call
    /// (quadratic: 4.4 s before, 0.3 s after in a release build).
    #[test]
    fn wrapper_callers_in_one_block_are_interpreted_once() {
        let bytes = include_bytes!("../../testdata/regress/pe_file/wrapper-callers.sys");
        let image = Image::parse(bytes, crate::pe::Layout::File).unwrap();
        STEPS.set(0);
        let sites = analyze(&image, bytes, true);
        let steps = STEPS.get();
        let callers = sites.iter().filter(|s| s.via.is_some()).count();
        assert_eq!(callers, 23_829);
        let tags: std::collections::HashSet<_> = sites
            .iter()
            .filter_map(|s| s.args.iter().find(|(r, _)| *r == Role::Tag))
            .map(|(_, a)| format!("{a:?}"))
            .collect();
        assert_eq!(
            tags.len(),
            23_829 + 1,
            "each caller its own tag, the wrapper's unknown"
        );
        // Two instructions per caller; each interpreted a small number of times.
        assert!(steps < 8 * 2 * 23_829, "{steps} instructions interpreted");
    }
}
