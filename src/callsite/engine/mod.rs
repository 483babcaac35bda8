//! The dataflow engine both architectures share: the value lattice ([`value`]), the abstract
//! state with its merge and widening ([`state`]), the control-flow graph ([`cfg`]), the
//! worklist solver ([`solve`]), and, here, the per-image driver: functions decoded and solved
//! on demand, the pool call sites found in them, wrapper parameters resolved at each caller
//! (with the wrapper solved again for a caller's constant arguments when it branches on its
//! parameters), and the search for every value a writable global can hold.
//!
//! An architecture supplies only what is its own ([`Arch`]): decoding, the control flow of
//! one instruction, the transfer function, the condition a branch tests, the calling
//! convention (where arguments are at a call, which registers a call preserves, how it moves
//! the stack), how a call site reaches a pool API, how the code is searched for references to
//! import slots, and function extents. One set of bounds holds for both ([`bounds`]).
//!
//! Invariants: nothing is guessed. A value survives a merge of paths only when every path
//! carries it (a set of constants when they differ, bounded); a branch that cannot be taken
//! from a state does not contribute it; a call clobbers what the ABI lets the callee clobber.
//! Hostile bytes never panic: every read is bounds-checked and every bound is in [`bounds`].

pub(crate) mod bounds;
pub(crate) mod cfg;
pub(crate) mod flow;
pub(crate) mod image;
pub(crate) mod pool;
pub(crate) mod solve;
pub(crate) mod state;
pub(crate) mod value;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::pe::{Image, Section};
use crate::pool::apis::{ApiSpec, Role};

use super::site::{ArgDetail, ArgValue, CallSite, Provenance, Reach};
use bounds::{MAX_CALLERS, MAX_RUNTIME_GLOBALS, MAX_SPECIALISATIONS, MAX_SPECIALISED_INSNS};
use cfg::{Cfg, Edge};
pub(crate) use flow::{Cc, Cond, Extent, Flow, GlobalEffect};
use image::{Imports, Relocs};
use solve::{Refined, Solution};
use state::{FlagOp, JoinCtx, State};
use value::{How, ParamLoc, Sets, Val, NO_GLOBAL};

/// What an architecture supplies. Every function takes the image's [`Engine`], whose `arch`
/// field holds the architecture's own per-image data.
pub(crate) trait Arch: Sized {
    /// A decoded instruction.
    type Insn: Copy + pool::Pooled;

    /// The stack pointer's register number.
    fn sp(e: &Engine<'_, Self>) -> usize;
    /// Pointer size in bytes.
    fn ptr(e: &Engine<'_, Self>) -> u8;
    /// Lowest entry-frame offset holding a stack parameter (`i32::MAX`: none).
    fn param_base(e: &Engine<'_, Self>) -> i32;
    /// Registers holding parameters at a function's entry.
    fn param_regs(e: &Engine<'_, Self>) -> &'static [u8];

    /// Decodes `[start, end)` into `out` (cleared first), at most [`bounds::MAX_INSNS`].
    fn decode(e: &Engine<'_, Self>, start: u32, end: u32, out: &mut Vec<Self::Insn>);
    fn rva(i: &Self::Insn) -> u32;
    fn flow(e: &Engine<'_, Self>, i: &Self::Insn) -> Flow;
    /// What a [`Flow::Branch`] (or a conditional select) tests.
    fn cond(i: &Self::Insn) -> Option<Cond>;
    /// The transfer function; `k` is the instruction's index in its function (naming stack
    /// epochs). Returns false when the path ends at `i` (a call that does not return).
    fn step(e: &Engine<'_, Self>, st: &mut State, i: &Self::Insn, k: u32) -> bool;

    /// The targets of the jump table `insns[k]` jumps through ([`Flow::Table`]), when they can
    /// be read without running the code (the instructions before it may say where the table is
    /// and how long); `None` leaves the function's graph with unknown edges.
    fn table_targets(_e: &Engine<'_, Self>, _insns: &[Self::Insn], _k: usize) -> Option<Vec<u32>> {
        None
    }

    /// Whether `i` may transfer control to a pool API in some state (a cheap pre-filter).
    fn may_transfer(e: &Engine<'_, Self>, i: &Self::Insn) -> bool;
    /// Whether what [`Arch::transfer`] finds at `i` does not depend on the state (a call
    /// through a fixed import slot, a direct call of a thunk).
    fn fixed_transfer(i: &Self::Insn) -> bool;
    /// The pool API `i` transfers control to in state `st`, and how; `first_of_root`: `i`
    /// opens a block nothing reaches (an import thunk's own jump is not a site).
    fn transfer(
        e: &Engine<'_, Self>,
        st: &State,
        i: &Self::Insn,
        first_of_root: bool,
    ) -> Option<(&'static ApiSpec, Reach)>;
    /// Argument `index` (1-based) of `spec` at a transfer in state `st` (`tail`: a jump).
    fn arg(e: &Engine<'_, Self>, st: &State, spec: &ApiSpec, index: usize, tail: bool) -> Val;
    /// The value a callee receives in parameter `p`, given the caller's state `st` just
    /// before its call (`is_call`: a call, not a tail jump).
    fn caller_value(e: &Engine<'_, Self>, st: &State, p: ParamLoc, is_call: bool) -> Val;

    /// What `i`, in straight-line state `st`, does to the 4-byte global at `global`.
    fn global_effect(e: &Engine<'_, Self>, st: &State, i: &Self::Insn, global: u32)
        -> GlobalEffect;

    /// The functions to search for call sites.
    fn discover(e: &Engine<'_, Self>) -> Vec<Extent>;
    /// The function (or region) holding `rva`.
    fn extent_of(e: &Engine<'_, Self>, rva: u32) -> Option<Extent>;
    /// The direct calls and jumps to each of `targets` (sorted): target → (RVA of the
    /// instruction, is a call). Asked once per image, for every wrapper at once.
    fn callers(e: &Engine<'_, Self>, targets: &[u32]) -> HashMap<u32, Vec<(u32, bool)>>;
}

/// One decoded function with its graph and the entry states solved so far.
pub(crate) struct Func<I: pool::Pooled> {
    pub ext: Extent,
    pub insns: Vec<I>,
    pub rvas: Vec<u32>,
    pub cfg: Cfg,
    /// Blocks holding an instruction [`Arch::may_transfer`] accepts.
    cand: Vec<bool>,
    /// Candidate blocks whose sites need the solved entry state (the others are settled by
    /// their own code: [`Engine::quick_sites`]).
    need: RefCell<Vec<bool>>,
    sol: RefCell<Option<Sol>>,
    solves: Cell<u32>,
    /// A branch, select or table index of the function depends on one of its parameters,
    /// and which ones (found while solving it).
    params_used: RefCell<Vec<ParamLoc>>,
    /// Sites found when the function is solved with some parameters constant.
    specialised: RefCell<HashMap<SpecKey, Rc<Vec<FoundSite>>>>,
    /// Built on the first [`Engine::function_of`] call: the entries sorted, and for each
    /// instruction the first one after the nearest end of flow before it.
    starts: std::cell::OnceCell<(Vec<u32>, Vec<u32>)>,
}

/// Parameters fixed to constants for a specialised solve.
type SpecKey = Vec<(ParamLoc, u64)>;

/// The functions decoded so far, by start (`None`: nothing decodes there).
type Funcs<I> = RefCell<HashMap<u32, Option<Rc<Func<I>>>>>;

struct Sol {
    ins: Vec<Option<State>>,
    solved: Vec<bool>,
    wanted: Vec<bool>,
}

impl<I: pool::Pooled> Func<I> {
    pub(crate) fn index_of(&self, rva: u32) -> Option<usize> {
        self.rvas.binary_search(&rva).ok()
    }
}

impl<I: pool::Pooled> Drop for Func<I> {
    /// The large buffers go back to the thread's pool for the next image.
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.insns));
        pool::give(std::mem::take(&mut self.rvas));
        if let Some(s) = self.sol.get_mut().take() {
            pool::give(s.ins);
            pool::give(s.solved);
            pool::give(s.wanted);
        }
    }
}

/// Where [`Engine::step_to`] stands: the state before instruction `at` of block `block` of
/// the function whose extent begins at `func`, stepped from `entry` at the block's start
/// (`None`: the path ended before `at`).
struct BlockCursor {
    func: u32,
    block: usize,
    at: usize,
    entry: Option<State>,
    state: Option<State>,
}

#[cfg(test)]
thread_local! {
    /// Instructions interpreted on this thread (the work of an analysis), for tests that bound
    /// it.
    pub(crate) static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A pool-API transfer found in a function, with its arguments as abstract values.
#[derive(Debug, Clone)]
pub(crate) struct FoundSite {
    rva: u32,
    api: &'static ApiSpec,
    reach: Reach,
    function: Option<u32>,
    args: Vec<(Role, Val)>,
}

/// The analysis of one image.
pub(crate) struct Engine<'a, A: Arch> {
    pub image: &'a Image,
    pub data: &'a [u8],
    pub imports: Imports,
    pub relocs: Relocs,
    pub code: Vec<(&'a Section, &'a [u8])>,
    pub sets: RefCell<Sets>,
    pub arch: A,
    funcs: Funcs<A::Insn>,
    /// Functions searched for sites (their candidate blocks are always solved).
    site_starts: RefCell<Vec<u32>>,
    /// Parameters a branch, select or table index depended on in the solve running now.
    param_uses: RefCell<Vec<ParamLoc>>,
    /// Direct call targets already checked for being a thunk of a function that does not
    /// return.
    no_return_at: RefCell<HashMap<u32, bool>>,
    /// Jump-table entries (and index bytes) this image may still read
    /// ([`bounds::MAX_TABLE_READS`]).
    table_reads_left: Cell<u32>,
    shortcut: bool,
}

impl<'a, A: Arch> Engine<'a, A> {
    pub(crate) fn new(image: &'a Image, data: &'a [u8], arch: A, shortcut: bool) -> Self {
        Engine {
            image,
            data,
            imports: Imports::new(image),
            relocs: Relocs::new(image, data),
            code: image::code_sections(image, data),
            sets: RefCell::new(Sets::default()),
            arch,
            funcs: RefCell::new(HashMap::new()),
            site_starts: RefCell::new(Vec::new()),
            param_uses: RefCell::new(Vec::new()),
            no_return_at: RefCell::new(HashMap::new()),
            table_reads_left: Cell::new(bounds::MAX_TABLE_READS),
            shortcut,
        }
    }

    /// Takes `n` reads from the image's jump-table budget ([`bounds::MAX_TABLE_READS`]);
    /// `None` once it is spent (the table is then left unknown).
    pub(crate) fn take_table_reads(&self, n: u32) -> Option<()> {
        let left = self.table_reads_left.get().checked_sub(n)?;
        self.table_reads_left.set(left);
        Some(())
    }

    /// RVA of a virtual address in the image.
    pub(crate) fn rva_of(&self, va: u64) -> Option<u32> {
        let r = va.checked_sub(self.image.image_base)?;
        (r < u64::from(self.image.size_of_image.max(1))).then_some(r as u32)
    }

    /// Whether a direct call to `target` never returns (`check`: the architecture's test for
    /// a thunk of such an import), remembered per target.
    pub(crate) fn no_return_call(&self, target: u32, check: impl FnOnce(u32) -> bool) -> bool {
        if !self.imports.any_no_return {
            return false;
        }
        if let Some(&v) = self.no_return_at.borrow().get(&target) {
            return v;
        }
        let v = check(target);
        self.no_return_at.borrow_mut().insert(target, v);
        v
    }

    /// Notes that a branch, select or index depends on `v` (when it is a parameter).
    pub(crate) fn note_param(&self, v: Val) {
        if let Val::Param(p, _) = v {
            let mut u = self.param_uses.borrow_mut();
            if !u.contains(&p) && u.len() < 16 {
                u.push(p);
            }
        }
    }

    /// The value a load of `size` bytes from global `rva` yields (an import slot gives the
    /// loader's pointer).
    pub(crate) fn load_global(&self, rva: u32, size: u8) -> Val {
        if size == A::ptr(self) {
            if let Some(i) = self.imports.at(rva) {
                return Val::Import(i);
            }
        }
        image::global_value(
            self.image,
            self.data,
            &self.imports,
            &self.relocs,
            rva,
            size,
        )
    }

    /// Applies one instruction to `st` (the architecture's transfer); false when the path
    /// ends there. Every instruction the analysis interprets goes through here, so tests can
    /// bound the work of an analysis ([`STEPS`]).
    fn step(&self, st: &mut State, i: &A::Insn, k: u32) -> bool {
        #[cfg(test)]
        STEPS.set(STEPS.get() + 1);
        A::step(self, st, i, k)
    }

    fn join_ctx(&self, f: &Func<A::Insn>) -> JoinCtx {
        JoinCtx {
            sp: A::sp(self),
            param_base: A::param_base(self),
            ptr: A::ptr(self),
            consts: !f.cfg.unknown_edges,
        }
    }

    /// Runs the analysis: every site, with wrapper callers resolved and the values of tags
    /// read at run time.
    pub(crate) fn run(&self) -> Vec<CallSite> {
        if self.imports.no_pool_api() {
            return Vec::new();
        }
        let mut extents = A::discover(self);
        extents.sort_by_key(|x| x.begin);
        extents.dedup_by_key(|x| x.begin);
        *self.site_starts.borrow_mut() = extents.iter().map(|x| x.begin).collect();
        let mut found: Vec<(Rc<Func<A::Insn>>, FoundSite)> = Vec::new();
        for ext in &extents {
            // The input's time limit, checked once per function (see `util::deadline`).
            crate::util::deadline::check();
            let Some(f) = self.function(ext) else {
                continue;
            };
            if self.shortcut {
                let quick = self.quick_sites(&f);
                found.extend(quick.into_iter().map(|s| (f.clone(), s)));
            }
            if f.need.borrow().iter().any(|&n| n) {
                self.ensure_solved(&f, None);
                let sites = {
                    let sol = f.sol.borrow();
                    self.sites_in(&f, &sol.as_ref().expect("solution present").ins)
                };
                found.extend(sites.into_iter().map(|s| (f.clone(), s)));
            }
        }
        // The callers of every wrapper, found in one pass over the code.
        let mut targets: Vec<u32> = found
            .iter()
            .filter(|(f, s)| self.wants_callers(f, s).is_some())
            .filter_map(|(_, s)| s.function)
            .collect();
        targets.sort_unstable();
        targets.dedup();
        let callers = if targets.is_empty() {
            HashMap::new()
        } else {
            A::callers(self, &targets)
        };
        let mut out = Vec::new();
        for (f, site) in found {
            crate::util::deadline::check();
            self.emit(&f, site, &callers, &mut out);
        }
        self.fill_tag_values(&mut out);
        out
    }

    /// Whether a site's arguments depend on its function's parameters: `Some(specialise)`,
    /// where `specialise` says the function is to be solved again with a caller's constants
    /// (it branches on a parameter and some argument is not one value); `None` when the
    /// callers add nothing.
    fn wants_callers(&self, f: &Func<A::Insn>, site: &FoundSite) -> Option<bool> {
        let has_param = site.args.iter().any(|(_, v)| matches!(v, Val::Param(..)));
        let open = site
            .args
            .iter()
            .any(|(_, v)| matches!(v, Val::Set(..) | Val::Unknown));
        let specialise =
            open && !f.params_used.borrow().is_empty() && f.insns.len() <= MAX_SPECIALISED_INSNS;
        (has_param || specialise).then_some(specialise)
    }

    // ----- functions ------------------------------------------------------------------------

    /// The function of `ext`, decoded and its graph built (cached by start).
    pub(crate) fn function(&self, ext: &Extent) -> Option<Rc<Func<A::Insn>>> {
        if let Some(f) = self.funcs.borrow().get(&ext.begin) {
            return f.clone();
        }
        let f = self.build(ext).map(Rc::new);
        self.funcs.borrow_mut().insert(ext.begin, f.clone());
        f
    }

    fn build(&self, ext: &Extent) -> Option<Func<A::Insn>> {
        let mut insns = pool::take();
        A::decode(self, ext.begin, ext.end, &mut insns);
        if insns.is_empty() {
            pool::give(insns);
            return None;
        }
        let mut rvas: Vec<u32> = pool::take_with(insns.len());
        rvas.extend(insns.iter().map(A::rva));
        let (begin, end) = (ext.begin, ext.end);
        let cfg = Cfg::build(
            &rvas,
            |k| A::flow(self, &insns[k]),
            |t| t >= begin && t < end,
            |k| A::table_targets(self, &insns, k),
            &ext.entries,
        );
        let cand: Vec<bool> = cfg
            .blocks
            .iter()
            .map(|b| (b.start..b.end).any(|k| A::may_transfer(self, &insns[k as usize])))
            .collect();
        Some(Func {
            ext: ext.clone(),
            insns,
            rvas,
            cfg,
            need: RefCell::new(cand.clone()),
            cand,
            // Filled by the first solve (many functions are never solved).
            sol: RefCell::new(Some(Sol {
                ins: Vec::new(),
                solved: Vec::new(),
                wanted: Vec::new(),
            })),
            solves: Cell::new(0),
            params_used: RefCell::new(Vec::new()),
            specialised: RefCell::new(HashMap::new()),
            starts: std::cell::OnceCell::new(),
        })
    }

    /// Solves the entry states of `f` at least where they are needed: its candidate blocks
    /// when it is searched for sites, and the block of `at` (a caller's call).
    fn ensure_solved(&self, f: &Func<A::Insn>, at: Option<usize>) {
        let nb = f.cfg.len();
        let sites = at.is_none()
            || self
                .site_starts
                .borrow()
                .binary_search(&f.ext.begin)
                .is_ok();
        let at_block = at.map(|k| f.cfg.block_of(k));
        let mut sol = f.sol.borrow_mut();
        let s = sol.as_mut().expect("solution present");
        let need = f.need.borrow();
        let solved = |b: usize| s.solved.get(b).copied().unwrap_or(false);
        let missing = (sites && (0..nb).any(|b| need[b] && !solved(b)))
            || at_block.is_some_and(|b| !solved(b));
        if missing {
            let mut want = if s.wanted.is_empty() {
                vec![false; nb]
            } else {
                s.wanted.clone()
            };
            if sites {
                for (w, &c) in want.iter_mut().zip(need.iter()) {
                    *w |= c;
                }
            }
            if let Some(b) = at_block {
                want[b] = true;
            }
            if f.solves.get() >= 1 {
                // Asked again (a caller of several wrappers, a wrapper's caller that is also
                // searched for sites): solve it all once rather than piece by piece.
                want = vec![true; nb];
            }
            f.solves.set(f.solves.get() + 1);
            let entry = State::entry(A::sp(self), A::param_regs(self));
            self.param_uses.borrow_mut().clear();
            let solution = self.solve(f, &want, &entry, true);
            let mut used = f.params_used.borrow_mut();
            for p in self.param_uses.borrow_mut().drain(..) {
                if !used.contains(&p) {
                    used.push(p);
                }
            }
            pool::give(std::mem::replace(&mut s.ins, solution.ins));
            pool::give(std::mem::replace(&mut s.solved, solution.active));
            s.wanted = want;
        }
    }

    /// Solves `f` from `entry` for the ancestors of `want` (`seed`: see [`solve::solve`]).
    fn solve(&self, f: &Func<A::Insn>, want: &[bool], entry: &State, seed: bool) -> Solution {
        crate::util::deadline::check();
        let cx = self.join_ctx(f);
        solve::solve(
            &f.cfg,
            want,
            entry,
            &cx,
            &self.sets,
            seed,
            |st, b| {
                let blk = f.cfg.blocks[b];
                for k in blk.start..blk.end {
                    if !self.step(st, &f.insns[k as usize], k) {
                        return false;
                    }
                }
                true
            },
            |st, p, e| {
                let last = f.cfg.blocks[p].end as usize - 1;
                match A::cond(&f.insns[last]) {
                    Some(c) if matches!(A::flow(self, &f.insns[last]), Flow::Branch { .. }) => {
                        self.refine(st, c, e == Edge::Taken)
                    }
                    _ => Refined::Same,
                }
            },
        )
    }

    /// The function entry a site at instruction `k` belongs to: the nearest entry at or
    /// before it, else the instruction after the nearest preceding end of flow (a leaf that
    /// nothing calls directly), else the region's start.
    fn function_of(&self, f: &Func<A::Insn>, k: usize) -> Option<u32> {
        // Computed once per function: asked per site, a walk of the entries and a scan back
        // to the last end of flow were quadratic in a region of thousands of sites and no
        // entry before them (a pe_file fuzz find: 3.7 s in release).
        let (entries, after_end) = f.starts.get_or_init(|| {
            let mut entries = f.ext.entries.clone();
            entries.sort_unstable();
            let mut after_end = Vec::with_capacity(f.insns.len());
            let mut start = 0u32;
            for (j, i) in f.insns.iter().enumerate() {
                after_end.push(start);
                if matches!(
                    A::flow(self, i),
                    Flow::Return | Flow::Stop | Flow::Table | Flow::Jump { .. }
                ) {
                    start = j as u32 + 1;
                }
            }
            (entries, after_end)
        });
        let rva = f.rvas[k];
        let i = entries.partition_point(|&e| e <= rva);
        if i > 0 {
            return Some(entries[i - 1]);
        }
        f.rvas.get(after_end[k] as usize).copied()
    }

    // ----- conditions -----------------------------------------------------------------------

    /// The truth of a condition in state `st`: `Some` when it is decided by constants of the
    /// image (a writable global's initial content decides nothing: the driver may change it).
    pub(crate) fn eval(&self, st: &State, c: Cond) -> Option<bool> {
        self.eval_with(st, c, false)
    }

    /// [`Engine::eval`]; `initial`: a writable global's content counts as its initial value.
    fn eval_with(&self, st: &State, c: Cond, initial: bool) -> Option<bool> {
        let num = |v: Val| match v {
            Val::Const(x, _) => Some(x),
            Val::Runtime(x, _) if initial => Some(x),
            _ => None,
        };
        match c {
            Cond::Flags(cc) => self.eval_flags(st.flags, cc, None, initial),
            Cond::Zero { reg, bytes, zero } => {
                let v = st.get(usize::from(reg));
                self.note_param(v);
                num(v).map(|x| (x & value::mask(bytes) == 0) == zero)
            }
            Cond::Bit { reg, bit, set } => {
                let v = st.get(usize::from(reg));
                self.note_param(v);
                num(v).map(|x| ((x >> (bit & 63)) & 1 == 1) == set)
            }
        }
    }

    /// Evaluates `cc` on flags `f`, with `a` replaced by `a_val` when given (`initial`: see
    /// [`Engine::eval_with`]).
    fn eval_flags(
        &self,
        f: state::Flags,
        cc: Cc,
        a_val: Option<u64>,
        initial: bool,
    ) -> Option<bool> {
        if cc == Cc::Always {
            return Some(true);
        }
        if f.op == FlagOp::None || cc == Cc::Opaque {
            return None;
        }
        self.note_param(f.a);
        self.note_param(f.b);
        let num = |v: Val| match v {
            Val::Const(x, _) => Some(x),
            Val::Runtime(x, _) if initial => Some(x),
            _ => None,
        };
        let a = a_val.or_else(|| num(f.a))?;
        let b = num(f.b)?;
        let bytes = f.bytes.clamp(1, 8);
        let m = value::mask(bytes);
        let (a, b) = (a & m, b & m);
        let sign = 1u64 << (8 * u32::from(bytes) - 1);
        let (r, c, v) = match f.op {
            FlagOp::Sub => {
                let r = a.wrapping_sub(b) & m;
                let borrow = a < b;
                let v = ((a ^ b) & (a ^ r) & sign) != 0;
                (r, if f.carry_is_borrow { borrow } else { !borrow }, v)
            }
            FlagOp::Add => {
                let full = u128::from(a) + u128::from(b);
                let r = (full as u64) & m;
                let carry = full > u128::from(m);
                let v = ((!(a ^ b)) & (a ^ r) & sign) != 0;
                (r, carry, v)
            }
            FlagOp::And => (a & b, false, false),
            FlagOp::None => return None,
        };
        let z = r == 0;
        let n = r & sign != 0;
        Some(match cc {
            Cc::Z => z,
            Cc::Nz => !z,
            Cc::C => c,
            Cc::Nc => !c,
            Cc::CorZ => c || z,
            Cc::NcNz => !c && !z,
            Cc::CNz => c && !z,
            Cc::NcOrZ => !c || z,
            Cc::N => n,
            Cc::Nn => !n,
            Cc::V => v,
            Cc::Nv => !v,
            Cc::Lt => n != v,
            Cc::Ge => n == v,
            Cc::Le => z || n != v,
            Cc::Gt => !z && n == v,
            Cc::Always => true,
            Cc::Opaque => return None,
        })
    }

    /// The state along the edge of a branch testing `c` (`taken`: the branch goes).
    fn refine(&self, st: &State, c: Cond, taken: bool) -> Refined {
        if let Some(t) = self.eval(st, c) {
            return if t == taken {
                Refined::Same
            } else {
                Refined::Infeasible
            };
        }
        match c {
            Cond::Flags(cc) => {
                let f = st.flags;
                let r = usize::from(f.reg);
                // A 32-bit compare of a parameter (`cmp ecx, 3`, `cmp w0, #3`) tests its low
                // half, the view the code then indexes with (`mov ecx, ecx`, `uxtw`): the
                // register still holds that parameter, so it is narrowed too.
                let held = st.get(r);
                let same = held == f.a
                    || matches!((held, f.a), (Val::Param(p, _), Val::Param(q, true)) if p == q);
                if f.reg == state::NO_REG || !same {
                    return Refined::Same;
                }
                let keep = |x: u64| self.eval_flags(f, cc, Some(x), false).map(|t| t == taken);
                let a = f.a;
                let narrowed = match a {
                    Val::Set(id, how) => {
                        let members: Vec<u64> = self.sets.borrow().get(id).to_vec();
                        let mut kept = Vec::new();
                        for m in members {
                            match keep(m) {
                                Some(true) => kept.push(m),
                                Some(false) => {}
                                None => return Refined::Same,
                            }
                        }
                        if kept.is_empty() {
                            return Refined::Infeasible;
                        }
                        self.sets.borrow_mut().make(kept, how)
                    }
                    Val::Unknown | Val::Param(..) => {
                        let b = match f.b {
                            Val::Const(b, _) => b & value::mask(f.bytes.clamp(1, 8)),
                            _ if f.op == FlagOp::And && f.same => 0,
                            _ => return Refined::Same,
                        };
                        match self.range_of(f.op, cc, taken, b, f.carry_is_borrow, f.same) {
                            Some(vals) => self.sets.borrow_mut().make(vals, How::Propagated),
                            None => return Refined::Same,
                        }
                    }
                    _ => return Refined::Same,
                };
                if narrowed == a || narrowed == Val::Unknown {
                    return Refined::Same;
                }
                let mut s = st.clone();
                s.regs[r] = narrowed;
                s.flags.a = narrowed;
                Refined::Changed(Box::new(s))
            }
            Cond::Zero { reg, zero, .. } => {
                let r = usize::from(reg);
                // The zero edge knows the register; the other edge learns nothing.
                if taken == zero && matches!(st.get(r), Val::Unknown | Val::Param(..)) {
                    let mut s = st.clone();
                    s.set(r, Val::Const(0, How::Propagated));
                    Refined::Changed(Box::new(s))
                } else {
                    Refined::Same
                }
            }
            Cond::Bit { .. } => Refined::Same,
        }
    }

    /// The values an unknown operand `a` can have on an edge where `cc` over `a - b` (or
    /// `a & a`, `same`) is `taken`, when they are few: equality and small unsigned ranges.
    fn range_of(
        &self,
        op: FlagOp,
        cc: Cc,
        taken: bool,
        b: u64,
        borrow: bool,
        same: bool,
    ) -> Option<Vec<u64>> {
        // The condition that holds on this edge, as a relation of `a` to `b`.
        let holds = |yes: Cc, no: Cc| (cc == yes && taken) || (cc == no && !taken);
        match op {
            FlagOp::Sub => {
                if holds(Cc::Z, Cc::Nz) {
                    return Some(vec![b]);
                }
                // a <= b unsigned: x86 `be` (CF|ZF), ARM64 `ls` (!C|Z); a < b: x86 `b` (CF),
                // ARM64 `lo` (!C).
                let (le, gt, lt, ge) = if borrow {
                    (Cc::CorZ, Cc::NcNz, Cc::C, Cc::Nc)
                } else {
                    (Cc::NcOrZ, Cc::CNz, Cc::Nc, Cc::C)
                };
                let bound = if holds(le, gt) {
                    b.checked_add(1)?
                } else if holds(lt, ge) {
                    b
                } else {
                    return None;
                };
                (bound as usize <= bounds::MAX_SET && bound > 0).then(|| (0..bound).collect())
            }
            FlagOp::And if same && holds(Cc::Z, Cc::Nz) => Some(vec![0]),
            _ => None,
        }
    }

    /// A conditional select (`cmov`, `csel`, `setcc`): the value chosen between `yes` (the
    /// condition holds) and `no`. A decided condition picks one. The override idiom — a
    /// writable global compared with zero, then "the global if it is set, else the other" —
    /// is decided with the image's initial content (System Informer replaces the caller's tag
    /// by `KphpRandomPoolTag` when that global, zero in the image, is set: the value passed in
    /// the image's initial state is the caller's). Anything else gives both values (a set of
    /// two constants, or unknown).
    ///
    /// When one value is the function's parameter and the other is not a constant of the image
    /// (the same override seen from the other side), the parameter is what the caller
    /// controls: it is kept, and resolved at callers.
    pub(crate) fn select(&self, st: &State, c: Cond, yes: Val, no: Val) -> Val {
        if yes == no {
            return yes;
        }
        if let Some(t) = self.eval(st, c) {
            return if t { yes } else { no };
        }
        let f = st.flags;
        let override_idiom = matches!(c, Cond::Flags(_))
            && matches!(f.a, Val::Runtime(..))
            && (f.same || matches!(f.b, Val::Const(0, _)))
            && (yes == f.a || no == f.a);
        if override_idiom {
            if let Some(t) = self.eval_with(st, c, true) {
                return if t { yes } else { no };
            }
        }
        match (yes, no) {
            (Val::Param(..), other) | (other, Val::Param(..)) if !other.is_constant() => {
                if matches!(yes, Val::Param(..)) {
                    yes
                } else {
                    no
                }
            }
            _ => self.sets.borrow_mut().join(yes, no, true),
        }
    }

    // ----- sites ----------------------------------------------------------------------------

    /// The sites of the candidate blocks that settle themselves: every transfer in them is
    /// fixed ([`Arch::fixed_transfer`]) and every argument of each is a constant computed
    /// from the block's own code, stepped from nothing known. Such a constant does not depend
    /// on how the block is entered, so it is what solving the function gives there, and the
    /// block needs no solving (the others stay in `need`).
    fn quick_sites(&self, f: &Func<A::Insn>) -> Vec<FoundSite> {
        let mut out = Vec::new();
        let mut need = f.need.borrow_mut();
        'blocks: for (b, blk) in f.cfg.blocks.iter().enumerate() {
            if !f.cand[b] {
                continue;
            }
            let (start, end) = (blk.start as usize, blk.end as usize);
            let Some(last) = (start..end)
                .rev()
                .find(|&k| A::may_transfer(self, &f.insns[k]))
            else {
                continue;
            };
            let mut st = State::unknown(A::sp(self), solve::EPOCH_BLOCK + b as u32);
            st.escaped_all = true;
            let mut found = Vec::new();
            for k in start..=last {
                let insn = &f.insns[k];
                if A::may_transfer(self, insn) && !A::fixed_transfer(insn) {
                    continue 'blocks;
                }
                let first_of_root = k == start
                    && (f.cfg.is_root[b] || f.cfg.is_entry[b])
                    && f.cfg.preds(b).is_empty();
                if let Some((api, reach)) = A::transfer(self, &st, insn, first_of_root) {
                    let tail = reach == Reach::TailJump;
                    let mut args = Vec::with_capacity(api.params.len());
                    for (i, p) in api.params.iter().enumerate() {
                        if p.role == Role::Other {
                            continue;
                        }
                        let v = A::arg(self, &st, api, i + 1, tail);
                        if !matches!(v, Val::Const(..) | Val::Runtime(..)) {
                            continue 'blocks;
                        }
                        args.push((p.role, v));
                    }
                    found.push(FoundSite {
                        rva: f.rvas[k],
                        api,
                        reach,
                        function: self.function_of(f, k),
                        args,
                    });
                }
                if !self.step(&mut st, insn, k as u32) {
                    continue 'blocks;
                }
            }
            need[b] = false;
            out.extend(found);
        }
        out
    }

    /// Every pool-API transfer in the candidate blocks of `f` that need a solved state, with
    /// entry states `ins`.
    fn sites_in(&self, f: &Func<A::Insn>, ins: &[Option<State>]) -> Vec<FoundSite> {
        let mut out = Vec::new();
        let need = f.need.borrow();
        for (b, blk) in f.cfg.blocks.iter().enumerate() {
            if !need[b] {
                continue;
            }
            let Some(Some(entry)) = ins.get(b) else {
                continue;
            };
            let (start, end) = (blk.start as usize, blk.end as usize);
            let Some(last) = (start..end)
                .rev()
                .find(|&k| A::may_transfer(self, &f.insns[k]))
            else {
                continue;
            };
            let mut st = entry.clone();
            for k in start..=last {
                let insn = &f.insns[k];
                // Nothing branches to it: an entry or a root without predecessors.
                let first_of_root = k == start
                    && (f.cfg.is_root[b] || f.cfg.is_entry[b])
                    && f.cfg.preds(b).is_empty();
                if let Some((api, reach)) = A::transfer(self, &st, insn, first_of_root) {
                    let tail = reach == Reach::TailJump;
                    let args = api
                        .params
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.role != Role::Other)
                        .map(|(i, p)| (p.role, A::arg(self, &st, api, i + 1, tail)))
                        .collect();
                    out.push(FoundSite {
                        rva: f.rvas[k],
                        api,
                        reach,
                        function: self.function_of(f, k),
                        args,
                    });
                }
                if !self.step(&mut st, insn, k as u32) {
                    break;
                }
            }
        }
        out
    }

    /// Adds the site and, when an argument depends on the enclosing function's parameters,
    /// one site per caller with the caller's values.
    fn emit(
        &self,
        f: &Rc<Func<A::Insn>>,
        site: FoundSite,
        callers: &HashMap<u32, Vec<(u32, bool)>>,
        out: &mut Vec<CallSite>,
    ) {
        let own = self.call_site(&site, None, &site.args);
        if let (Some(specialise), Some(func)) = (self.wants_callers(f, &site), site.function) {
            let has_param = site.args.iter().any(|(_, v)| matches!(v, Val::Param(..)));
            let list = callers.get(&func).map_or(&[][..], |v| v.as_slice());
            self.resolve_callers(f, &site, func, list, has_param, specialise, out);
        }
        out.push(own);
    }

    /// The parameters whose values at a caller decide `site`: those it passes on, and (when it
    /// is to be specialised) those a branch of its function depended on.
    fn needed_params(
        &self,
        f: &Func<A::Insn>,
        site: &FoundSite,
        specialise: bool,
    ) -> Vec<ParamLoc> {
        let mut need: Vec<ParamLoc> = site
            .args
            .iter()
            .filter_map(|(_, v)| match v {
                Val::Param(p, _) => Some(*p),
                _ => None,
            })
            .collect();
        if specialise {
            need.extend(f.params_used.borrow().iter().copied());
        }
        need.sort_unstable();
        need.dedup();
        need
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_callers(
        &self,
        f: &Rc<Func<A::Insn>>,
        site: &FoundSite,
        func: u32,
        callers: &[(u32, bool)],
        has_param: bool,
        specialise: bool,
        out: &mut Vec<CallSite>,
    ) {
        let need = self.needed_params(f, site, specialise);
        let mut quick: Option<BlockCursor> = None;
        let mut solved: Option<BlockCursor> = None;
        for &(src, is_call) in callers.iter().take(MAX_CALLERS) {
            let Some(cext) = A::extent_of(self, src) else {
                continue;
            };
            let Some(cf) = self.function(&cext) else {
                continue;
            };
            let Some(idx) = cf.index_of(src) else {
                continue;
            };
            if !matches!(
                A::flow(self, &cf.insns[idx]),
                Flow::Call { target: Some(_) } | Flow::Jump { target: Some(_) }
            ) {
                continue;
            }
            if self.function_of(&cf, idx) == Some(func) {
                continue; // recursion
            }
            // Usually the caller sets the arguments right before the call: stepped from an
            // unknown state, the call's own block already gives them. A constant found that
            // way does not depend on the block's entry, so it is what solving the caller would
            // give; only when one is missing is the caller solved.
            //
            // Callers come in address order; several in one block (straight-line code calling
            // the wrapper thousands of times) are stepped to one after the other from the state
            // at the previous one, not each from the block's start, which was quadratic in the
            // block's length (testdata/regress/pe_file/wrapper-callers.sys and
            // arm64-wrapper-callers.sys). Stepping is deterministic: the states are the same.
            let b = cf.cfg.block_of(idx);
            let mut st = self
                .step_to(&mut quick, &cf, b, idx, || {
                    let mut st = State::unknown(A::sp(self), solve::EPOCH_BLOCK + b as u32);
                    // Anything may have escaped before the block: every call forgets the slots.
                    st.escaped_all = true;
                    Some(st)
                })
                .cloned();
            let reached = st.is_some();
            let settled = reached
                && self.shortcut
                && need.iter().all(|&p| {
                    matches!(
                        st.as_ref().map(|st| A::caller_value(self, st, p, is_call)),
                        Some(Val::Const(..) | Val::Runtime(..))
                    )
                });
            if !settled {
                self.ensure_solved(&cf, Some(idx));
                let entry = {
                    let sol = cf.sol.borrow();
                    sol.as_ref()
                        .expect("solution present")
                        .ins
                        .get(b)
                        .cloned()
                        .flatten()
                };
                // A cursor over another solution of this block (the function was solved again
                // in between) is not continued.
                if solved
                    .as_ref()
                    .is_some_and(|c| c.func == cf.ext.begin && c.block == b && c.entry != entry)
                {
                    solved = None;
                }
                match self.step_to(&mut solved, &cf, b, idx, || entry.clone()) {
                    Some(s) => st = Some(s.clone()),
                    None => continue,
                }
            }
            let Some(st) = st else {
                continue; // the call is not reached from the block's start
            };
            let at = |p: ParamLoc| A::caller_value(self, &st, p, is_call);
            let mut found = site.args.clone();
            if specialise {
                let key: Vec<(ParamLoc, u64)> = need
                    .iter()
                    .filter_map(|&p| match at(p) {
                        Val::Const(v, _) => Some((p, v)),
                        _ => None,
                    })
                    .collect();
                if let Some(sites) = (!key.is_empty())
                    .then(|| self.specialised(f, key))
                    .flatten()
                {
                    match sites
                        .iter()
                        .find(|s| s.rva == site.rva && s.api.name == site.api.name)
                    {
                        Some(s) => found = s.args.clone(),
                        // With these arguments the caller never reaches the site.
                        None => continue,
                    }
                }
            }
            let args: Vec<(Role, Val)> = found
                .iter()
                .map(|&(role, v)| {
                    // An argument the site passes on from a parameter is the caller's value
                    // as the caller made it, specialised or not (the same value, either way).
                    let passed = site.args.iter().find(|(r, _)| *r == role).map(|(_, o)| *o);
                    let v = match passed {
                        Some(p @ Val::Param(..)) => p,
                        _ => v,
                    };
                    let v = match v {
                        Val::Param(p, narrow) => {
                            // Through the wrapper: an immediate of the caller's is propagated
                            // at the API; a loaded value keeps its origin.
                            let outer = at(p).copied();
                            if narrow {
                                outer.view(4, &mut self.sets.borrow_mut())
                            } else {
                                outer
                            }
                        }
                        v => v,
                    };
                    (role, v)
                })
                .collect();
            let same_values = args
                .iter()
                .zip(&site.args)
                .all(|(a, b)| self.same_value(a.1, b.1));
            if !has_param && same_values {
                continue; // nothing the caller adds
            }
            out.push(self.call_site(site, Some(src), &args));
        }
    }

    /// The state just before instruction `idx` of block `b` of `f`, stepped from `entry()` at
    /// the block's start, or on from `cursor`'s state when it stands at or before `idx` in the
    /// same block (the same state: stepping is deterministic). `None`: the path ends before
    /// `idx`. `cursor` is left at `idx`.
    fn step_to<'c>(
        &self,
        cursor: &'c mut Option<BlockCursor>,
        f: &Func<A::Insn>,
        b: usize,
        idx: usize,
        entry: impl FnOnce() -> Option<State>,
    ) -> Option<&'c State> {
        let reusable = cursor
            .as_ref()
            .is_some_and(|c| c.func == f.ext.begin && c.block == b && c.at <= idx);
        if !reusable {
            let first = entry();
            *cursor = Some(BlockCursor {
                func: f.ext.begin,
                block: b,
                at: f.cfg.blocks[b].start as usize,
                entry: first.clone(),
                state: first,
            });
        }
        let c = cursor.as_mut()?;
        if let Some(st) = c.state.as_mut() {
            for k in c.at..idx {
                if !self.step(st, &f.insns[k], k as u32) {
                    c.state = None;
                    break;
                }
            }
        }
        c.at = idx;
        c.state.as_ref()
    }

    /// Whether two values are the same fact, whatever their provenance.
    fn same_value(&self, a: Val, b: Val) -> bool {
        match (a, b) {
            (Val::Const(x, _), Val::Const(y, _)) => x == y,
            (Val::Set(x, _), Val::Set(y, _)) => x == y,
            (a, b) => a == b,
        }
    }

    /// The sites of `f` when it is entered with the parameters of `key` constant (cached;
    /// `None` past the bound).
    fn specialised(
        &self,
        f: &Func<A::Insn>,
        key: Vec<(ParamLoc, u64)>,
    ) -> Option<Rc<Vec<FoundSite>>> {
        if let Some(s) = f.specialised.borrow().get(&key) {
            return Some(s.clone());
        }
        if f.specialised.borrow().len() >= MAX_SPECIALISATIONS {
            return None;
        }
        let sp = A::sp(self);
        let mut entry = State::entry(sp, A::param_regs(self));
        for &(p, v) in &key {
            match p {
                ParamLoc::Reg(r) => entry.set(usize::from(r), Val::Const(v, How::Propagated)),
                ParamLoc::Stack(o) => entry.store(0, o, 4, Val::Const(v, How::Propagated)),
            }
        }
        let want = f.cand.clone();
        let saved = std::mem::take(&mut *self.param_uses.borrow_mut());
        let solution = self.solve(f, &want, &entry, false);
        *self.param_uses.borrow_mut() = saved;
        let sites = Rc::new(self.sites_in(f, &solution.ins));
        pool::give(solution.ins);
        pool::give(solution.active);
        f.specialised.borrow_mut().insert(key, sites.clone());
        Some(sites)
    }

    // ----- results --------------------------------------------------------------------------

    /// The [`CallSite`] for `site` with arguments `args` (`via`: the caller's call).
    fn call_site(&self, site: &FoundSite, via: Option<u32>, args: &[(Role, Val)]) -> CallSite {
        let mut out_args = Vec::with_capacity(args.len());
        let mut details = Vec::new();
        for &(role, v) in args {
            let (a, d) = self.to_arg(role, v);
            out_args.push((role, a));
            if let Some(d) = d {
                details.push((role, d));
            }
        }
        CallSite {
            rva: site.rva,
            api: site.api.name,
            reach: site.reach,
            function: site.function,
            via,
            args: out_args,
            tag_values: Vec::new(),
            details,
        }
    }

    /// The reported value of an argument with `role` (32-bit roles truncated), and what more
    /// is known about it.
    fn to_arg(&self, role: Role, v: Val) -> (ArgValue, Option<ArgDetail>) {
        let wide = matches!(role, Role::PoolFlags | Role::Size | Role::Other);
        let cut = |x: u64| if wide { x } else { x & 0xffff_ffff };
        let how = |h: How| match h {
            How::Immediate => Provenance::Immediate,
            How::Propagated => Provenance::Propagated,
            How::Global => Provenance::Global,
        };
        match v {
            Val::Const(x, h) => (
                ArgValue {
                    value: Some(cut(x)),
                    how: how(h),
                },
                None,
            ),
            Val::Runtime(x, g) => (
                ArgValue {
                    value: Some(cut(x)),
                    how: Provenance::Runtime,
                },
                (g != NO_GLOBAL).then_some(ArgDetail::SetAtRunTime {
                    global: g,
                    initial: cut(x),
                }),
            ),
            Val::Set(id, _) => {
                let mut m: Vec<u64> = self.sets.borrow().get(id).iter().map(|&x| cut(x)).collect();
                m.sort_unstable();
                m.dedup();
                (ArgValue::UNKNOWN, Some(ArgDetail::OneOf(m)))
            }
            Val::Addr(a) => match u32::try_from(a) {
                Ok(rva) if rva < self.image.size_of_image => (
                    ArgValue {
                        value: None,
                        how: Provenance::Address,
                    },
                    Some(ArgDetail::AddressOf {
                        global: rva,
                        holds: self.constant_at(rva),
                    }),
                ),
                _ => (ArgValue::UNKNOWN, None),
            },
            _ => (ArgValue::UNKNOWN, None),
        }
    }

    /// The 4-byte content of the global at `rva` when it is a constant nothing writes: in a
    /// read-only section, or in a writable one that the code never stores to.
    fn constant_at(&self, rva: u32) -> Option<u64> {
        match self.load_global(rva, 4) {
            Val::Const(v, _) => Some(v),
            Val::Runtime(v, g) if g != NO_GLOBAL => {
                let values = self.values_of_globals(&[g]);
                match values.get(&g) {
                    Some(Some(vs)) if vs.len() == 1 && u64::from(vs[0]) == v => Some(v),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Fills [`CallSite::tag_values`]: for a tag read at run time from a writable global,
    /// every value the global can hold (none when it is written otherwise or its address is
    /// taken); for a tag that is one of several constants, those constants.
    fn fill_tag_values(&self, sites: &mut [CallSite]) {
        let mut globals: Vec<u32> = sites
            .iter()
            .flat_map(|s| s.details.iter())
            .filter_map(|(r, d)| match d {
                ArgDetail::SetAtRunTime { global, .. } if *r == Role::Tag => Some(*global),
                _ => None,
            })
            .collect();
        globals.sort_unstable();
        globals.dedup();
        globals.truncate(MAX_RUNTIME_GLOBALS);
        let values = if globals.is_empty() {
            HashMap::new()
        } else {
            self.values_of_globals(&globals)
        };
        for site in sites.iter_mut() {
            for (role, d) in &site.details {
                if *role != Role::Tag {
                    continue;
                }
                match d {
                    ArgDetail::SetAtRunTime { global, .. } => {
                        if let Some(Some(v)) = values.get(global) {
                            site.tag_values = v.clone();
                        }
                    }
                    ArgDetail::OneOf(v) => {
                        site.tag_values = v.iter().map(|&x| x as u32).collect();
                    }
                    ArgDetail::AddressOf { .. } => {}
                }
            }
        }
    }

    /// The values each 4-byte global of `globals` can hold: its initial content and every
    /// constant an instruction of the image's code stores into it, found by decoding every
    /// executable section and following registers along straight-line code (all is forgotten
    /// at branch and call targets, function starts, and after transfers that do not fall
    /// through). `None` for a global some other instruction writes or whose address it forms,
    /// or whose address the image holds as data ([`image::address_held_in_image`]): its
    /// values are then unknown. A zero initial value (a zero-initialised global) is left out
    /// when the code stores others: the driver sets it before use, and a zero tag is invalid.
    pub(crate) fn values_of_globals(&self, globals: &[u32]) -> HashMap<u32, Option<Vec<u32>>> {
        let mut res: HashMap<u32, Option<Vec<u32>>> = HashMap::new();
        let mut live: Vec<u32> = Vec::new();
        for &g in globals {
            if image::address_held_in_image(self.image, self.data, g) {
                res.insert(g, None);
            } else {
                res.insert(g, Some(Vec::new()));
                live.push(g);
            }
        }
        if !live.is_empty() {
            self.search_stores(&live, &mut res);
        }
        for &g in globals {
            if let Some(Some(v)) = res.get_mut(&g) {
                let initial = match self.load_global(g, 4) {
                    Val::Runtime(x, _) | Val::Const(x, _) => Some(x as u32),
                    _ => None,
                };
                if let Some(i) = initial {
                    if i != 0 || v.is_empty() {
                        v.push(i);
                    }
                }
                v.sort_unstable();
                v.dedup();
            }
        }
        res
    }

    fn search_stores(&self, live: &[u32], res: &mut HashMap<u32, Option<Vec<u32>>>) {
        const CHUNK: u32 = 0x1_0000;
        let sp = A::sp(self);
        let mut buf: Vec<A::Insn> = Vec::new();
        for &(sec, bytes) in &self.code {
            let sec_end = sec.rva.saturating_add(bytes.len() as u32);
            // Every way in: branch and call targets and `.pdata` function starts.
            let mut targets: Vec<u32> = self.image.functions.iter().map(|f| f.begin).collect();
            let mut at = sec.rva;
            while at < sec_end {
                let stop = at.saturating_add(CHUNK).min(sec_end);
                A::decode(self, at, stop.saturating_add(16).min(sec_end), &mut buf);
                let mut next = stop;
                for i in &buf {
                    let r = A::rva(i);
                    if r >= stop {
                        next = r;
                        break;
                    }
                    match A::flow(self, i) {
                        Flow::Branch { target }
                        | Flow::Jump {
                            target: Some(target),
                        }
                        | Flow::Call {
                            target: Some(target),
                        } => targets.push(target),
                        _ => {}
                    }
                }
                if buf.is_empty() {
                    break;
                }
                at = next.max(at + 1);
            }
            targets.sort_unstable();
            targets.dedup();
            let mut st = State::unknown(sp, solve::EPOCH_BLOCK);
            let mut at = sec.rva;
            while at < sec_end {
                let stop = at.saturating_add(CHUNK).min(sec_end);
                A::decode(self, at, stop.saturating_add(16).min(sec_end), &mut buf);
                let mut next = stop;
                for (k, i) in buf.iter().enumerate() {
                    let r = A::rva(i);
                    if r >= stop {
                        next = r;
                        break;
                    }
                    if targets.binary_search(&r).is_ok() {
                        st = State::unknown(sp, solve::EPOCH_BLOCK);
                    }
                    for &g in live {
                        let Some(Some(values)) = res.get_mut(&g) else {
                            continue;
                        };
                        match A::global_effect(self, &st, i, g) {
                            GlobalEffect::None => {}
                            GlobalEffect::Store(v) => values.push(v as u32),
                            GlobalEffect::Clobber => {
                                res.insert(g, None);
                            }
                        }
                    }
                    let flow = A::flow(self, i);
                    if !self.step(&mut st, i, k as u32)
                        || matches!(
                            flow,
                            Flow::Jump { .. } | Flow::Return | Flow::Stop | Flow::Table
                        )
                    {
                        st = State::unknown(sp, solve::EPOCH_BLOCK);
                    }
                }
                if buf.is_empty() {
                    break;
                }
                at = next.max(at + 1);
            }
        }
    }
}
