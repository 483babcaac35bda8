//! The abstract machine state at one program point: registers, the stack slots written so far,
//! the last flag-setting comparison, and what is known about stack addresses that escaped.
//!
//! Stack slots are keyed by (epoch, offset). Epoch 0 is the function's entry stack pointer;
//! a new epoch starts where the stack pointer can no longer be related to an earlier one (an
//! `and esp, -8`, a call whose stack adjustment is unknown, a merge of paths that disagree).
//! The slots of one epoch never overlap: every store first removes what it overlaps, so a
//! load either finds exactly its slot, overlaps one partially (unknown), or finds none.

use super::value::{ParamLoc, Sets, Val};

/// Registers per state: x86/x64 use 0..16 (rax..r15), ARM64 0..32 (x0..x30, sp).
pub(crate) const NREGS: usize = 32;

/// No register (in [`Flags::reg`]).
pub(crate) const NO_REG: u8 = u8::MAX;

/// One tracked stack slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub epoch: u32,
    pub off: i32,
    pub size: u8,
    pub val: Val,
}

impl Slot {
    fn end(&self) -> i64 {
        i64::from(self.off) + i64::from(self.size)
    }
}

/// The operation that set the condition flags last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagOp {
    /// Nothing usable is known about the flags.
    None,
    /// `cmp a, b` / `sub` / ARM64 `subs`: flags of `a - b`.
    Sub,
    /// `cmn` / `adds`: flags of `a + b`.
    Add,
    /// `test a, b` / `and` / ARM64 `ands`/`tst`: flags of `a & b` (carry and overflow clear).
    And,
}

/// The last flag-setting comparison: its operation, operands (`bytes` wide) and, when `a` was
/// a register that has not been written since, that register (for refining it on the edges of
/// a conditional branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    pub op: FlagOp,
    pub a: Val,
    pub b: Val,
    pub bytes: u8,
    pub reg: u8,
    /// `a` and `b` are the same register (`test eax, eax`, ARM64 `tst w0, w0`).
    pub same: bool,
    /// The architecture's carry after a subtraction: `true` when it is the borrow (x86 CF),
    /// `false` when it is "no borrow" (ARM64 C).
    pub carry_is_borrow: bool,
}

impl Flags {
    pub(crate) const NONE: Flags = Flags {
        op: FlagOp::None,
        a: Val::Unknown,
        b: Val::Unknown,
        bytes: 0,
        reg: NO_REG,
        same: false,
        carry_is_borrow: true,
    };
}

/// The state at one program point.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub regs: [Val; NREGS],
    /// Sorted by (epoch, offset); never overlapping within an epoch.
    pub slots: Vec<Slot>,
    pub flags: Flags,
    /// Something unknown was written to an unknown place of the stack (or nothing is known
    /// about how this point was reached): untracked slots of the entry frame are unknown, not
    /// the function's incoming stack parameters.
    pub wiped: bool,
    /// Entry-frame offsets from this one up may have been written by code the analysis does
    /// not follow (a callee given a stack address, a store through an unknown pointer): an
    /// untracked slot there is unknown, not an incoming parameter. `i32::MAX`: none.
    pub unknown_from: i32,
    /// The lowest stack address (epoch, offset) that escaped to code the analysis does not
    /// follow (passed to a call, stored to memory); a callee or a store through an unknown
    /// pointer may write there and above. `escaped_all`: stack addresses of several epochs
    /// escaped, so any slot may be written.
    pub escaped: Option<(u32, i32)>,
    pub escaped_all: bool,
}

impl Clone for State {
    fn clone(&self) -> State {
        State {
            regs: self.regs,
            slots: self.slots.clone(),
            flags: self.flags,
            wiped: self.wiped,
            unknown_from: self.unknown_from,
            escaped: self.escaped,
            escaped_all: self.escaped_all,
        }
    }

    /// Reuses the slot buffer (the solver copies states into the same places many times).
    fn clone_from(&mut self, source: &State) {
        self.regs = source.regs;
        self.slots.clone_from(&source.slots);
        self.flags = source.flags;
        self.wiped = source.wiped;
        self.unknown_from = source.unknown_from;
        self.escaped = source.escaped;
        self.escaped_all = source.escaped_all;
    }
}

impl State {
    /// Nothing known; the stack pointer (`sp`) is the start of `epoch`.
    pub(crate) fn unknown(sp: usize, epoch: u32) -> State {
        let mut regs = [Val::Unknown; NREGS];
        regs[sp] = Val::Stack(epoch, 0);
        State {
            regs,
            slots: Vec::new(),
            flags: Flags::NONE,
            wiped: true,
            unknown_from: i32::MAX,
            escaped: None,
            escaped_all: false,
        }
    }

    /// A function's entry: the stack pointer is epoch 0, the `params` registers hold the
    /// function's parameters, and untracked entry-frame slots are its stack parameters.
    pub(crate) fn entry(sp: usize, params: &[u8]) -> State {
        let mut s = State::unknown(sp, 0);
        s.wiped = false;
        for &r in params {
            s.regs[usize::from(r)] = Val::Param(ParamLoc::Reg(r), false);
        }
        s
    }

    /// Writes register `r` (keeping the flags' record of which register was compared exact).
    #[inline]
    pub(crate) fn set(&mut self, r: usize, v: Val) {
        if let Some(slot) = self.regs.get_mut(r) {
            *slot = v;
        }
        if usize::from(self.flags.reg) == r {
            self.flags.reg = NO_REG;
        }
    }

    #[inline]
    pub(crate) fn get(&self, r: usize) -> Val {
        self.regs.get(r).copied().unwrap_or(Val::Unknown)
    }

    /// Stores `size` bytes at (`epoch`, `off`). An unknown value below the entry stack
    /// pointer (or in another epoch) is not kept as a slot: a load finds nothing there and
    /// reads unknown all the same, and states stay small. Above it (the caller's frame, where
    /// an untracked slot would read as an incoming parameter) it is kept.
    pub(crate) fn store(&mut self, epoch: u32, off: i32, size: u8, val: Val) {
        let size = size.clamp(1, 8);
        let start = i64::from(off);
        let end = start + i64::from(size);
        // The slots of the epoch overlapping [start, end) are contiguous in the sorted order.
        let first = self
            .slots
            .partition_point(|s| (s.epoch, s.end()) <= (epoch, start));
        let mut last = first;
        while last < self.slots.len()
            && self.slots[last].epoch == epoch
            && i64::from(self.slots[last].off) < end
        {
            last += 1;
        }
        let slot = Slot {
            epoch,
            off,
            size,
            val,
        };
        if val == Val::Unknown && (epoch != 0 || off < 0) {
            self.slots.drain(first..last);
        } else if last > first {
            self.slots.splice(first..last, std::iter::once(slot));
        } else if self.slots.len() < super::bounds::MAX_SLOTS {
            self.slots.insert(first, slot);
        }
    }

    /// Forgets what is stored at (`epoch`, [`lo`, `hi`)); in the entry frame's incoming part
    /// (offsets from 0 up) that makes untracked slots unknown too, not parameters.
    pub(crate) fn forget(&mut self, epoch: u32, lo: i64, hi: i64) {
        self.slots
            .retain(|s| s.epoch != epoch || s.end() <= lo || i64::from(s.off) >= hi);
        if epoch == 0 && hi > 0 {
            let from = lo.clamp(0, i64::from(i32::MAX)) as i32;
            self.unknown_from = self.unknown_from.min(from);
        }
    }

    /// The value of `size` bytes at (`epoch`, `off`); `param_base` is the lowest entry-frame
    /// offset that holds an incoming stack parameter, `ptr` the pointer size.
    pub(crate) fn load(
        &self,
        epoch: u32,
        off: i32,
        size: u8,
        param_base: i32,
        ptr: u8,
        sets: &mut Sets,
    ) -> Val {
        let start = i64::from(off);
        let i = self
            .slots
            .partition_point(|s| (s.epoch, s.end()) <= (epoch, start));
        self.value_at(i, epoch, off, size, param_base, ptr, sets)
    }

    /// [`State::load`] from position `*cursor` of the sorted slots on, for keys read in
    /// increasing order (the cursor is advanced past slots wholly before the key).
    #[allow(clippy::too_many_arguments)]
    fn load_from(
        &self,
        cursor: &mut usize,
        epoch: u32,
        off: i32,
        size: u8,
        param_base: i32,
        ptr: u8,
        sets: &mut Sets,
    ) -> Val {
        let start = i64::from(off);
        while self
            .slots
            .get(*cursor)
            .is_some_and(|s| (s.epoch, s.end()) <= (epoch, start))
        {
            *cursor += 1;
        }
        self.value_at(*cursor, epoch, off, size, param_base, ptr, sets)
    }

    /// What a load of (`epoch`, `off`, `size`) reads given `i`, the first slot not wholly
    /// before it: that slot's value when it starts there and covers the load, unknown when it
    /// overlaps otherwise, else the incoming parameter at that offset (or unknown).
    #[allow(clippy::too_many_arguments)]
    fn value_at(
        &self,
        i: usize,
        epoch: u32,
        off: i32,
        size: u8,
        param_base: i32,
        ptr: u8,
        sets: &mut Sets,
    ) -> Val {
        let end = i64::from(off) + i64::from(size);
        if let Some(s) = self.slots.get(i) {
            if s.epoch == epoch && i64::from(s.off) < end {
                if s.off == off && s.size >= size {
                    return view(s.val, size, ptr, sets);
                }
                return Val::Unknown;
            }
        }
        if self.wiped || epoch != 0 || off < param_base || off >= self.unknown_from || size < 4 {
            return Val::Unknown;
        }
        Val::Param(ParamLoc::Stack(off), size < ptr)
    }

    /// A stack address `v` escaped (was passed on or stored where the analysis does not look).
    pub(crate) fn escape(&mut self, v: Val) {
        if let Val::Stack(e, o) = v {
            match self.escaped {
                None => self.escaped = Some((e, o)),
                Some((e0, o0)) if e0 == e => self.escaped = Some((e, o0.min(o))),
                Some(_) => self.escaped_all = true,
            }
        }
    }

    /// A write of unknown content to an unknown address: the slots at or above an escaped
    /// stack address may change.
    pub(crate) fn clobber_escaped(&mut self) {
        if self.escaped_all {
            self.slots.clear();
            self.unknown_from = 0;
            return;
        }
        if let Some((e, o)) = self.escaped {
            // A local's address lets the callee write that local and what lies above it in the
            // frame, not the caller's area above the entry stack pointer (the incoming
            // parameters and return address): that would be out of the local's bounds.
            let hi = if e == 0 && o < 0 { 0 } else { i64::MAX };
            self.forget(e, i64::from(o), hi);
        }
    }

    /// Drops slots nothing can address any more (an epoch no register, slot or escape names).
    pub(crate) fn collect_garbage(&mut self) {
        let held = |e: u32, regs: &[Val; NREGS]| {
            e == 0
                || regs
                    .iter()
                    .any(|v| matches!(v, Val::Stack(x, _) if *x == e))
        };
        if self.slots.iter().all(|s| held(s.epoch, &self.regs)) {
            return;
        }
        let mut live: Vec<u32> = vec![0];
        for v in self.regs.iter().chain(self.slots.iter().map(|s| &s.val)) {
            if let Val::Stack(e, _) = v {
                live.push(*e);
            }
        }
        if let Some((e, _)) = self.escaped {
            live.push(e);
        }
        self.slots.retain(|s| live.contains(&s.epoch));
    }
}

/// `v` as read with `size` bytes: constants truncated, symbolic values kept when the read is
/// at least pointer-sized (parameters from 4 bytes on, as 32-bit views).
#[inline]
pub(crate) fn view(v: Val, size: u8, ptr: u8, sets: &mut Sets) -> Val {
    match v {
        Val::Stack(..) | Val::Addr(..) | Val::Import(..) => {
            if size >= ptr {
                v
            } else {
                Val::Unknown
            }
        }
        v => v.view(size, sets),
    }
}

/// [`view`] borrowing the sets only when `v` is one (the common case needs none).
#[inline]
pub(crate) fn view_in(v: Val, size: u8, ptr: u8, sets: &std::cell::RefCell<Sets>) -> Val {
    if size >= 8 {
        return v;
    }
    let m = super::value::mask(size);
    match v {
        Val::Stack(..) | Val::Addr(..) | Val::Import(..) => {
            if size >= ptr {
                v
            } else {
                Val::Unknown
            }
        }
        Val::Const(x, h) => Val::Const(x & m, h),
        Val::Set(..) => sets.borrow_mut().map(v, |x| x & m),
        Val::Runtime(x, g) => Val::Runtime(
            x & m,
            if size >= 4 {
                g
            } else {
                super::value::NO_GLOBAL
            },
        ),
        Val::Param(p, _) if size >= 4 => Val::Param(p, true),
        _ => Val::Unknown,
    }
}

/// What the solver needs to know to join states of one function.
pub(crate) struct JoinCtx {
    /// The stack pointer register.
    pub sp: usize,
    /// Lowest entry-frame offset of a stack parameter.
    pub param_base: i32,
    pub ptr: u8,
    /// Constants may cross the merge (the function's control flow is fully known).
    pub consts: bool,
}

/// The state where paths carrying `inputs` (at least one) meet; `epoch` is the block's own
/// epoch, used when the paths disagree about the stack pointer.
#[cfg(test)]
pub(crate) fn join(inputs: &[&State], epoch: u32, cx: &JoinCtx, sets: &mut Sets) -> State {
    let mut out = State::unknown(cx.sp, epoch);
    join_into(&mut out, inputs, epoch, cx, sets);
    out
}

/// [`join`] into `out`, reusing its slot buffer.
pub(crate) fn join_into(
    out: &mut State,
    inputs: &[&State],
    epoch: u32,
    cx: &JoinCtx,
    sets: &mut Sets,
) {
    let first = inputs[0];
    if cx.consts && inputs[1..].iter().all(|s| *s == first) {
        out.clone_from(first);
        return;
    }
    if inputs.len() == 1 {
        // One path into a function whose control flow is not fully known: its constants
        // are dropped, the rest crosses as it is.
        out.clone_from(first);
        for v in out.regs.iter_mut() {
            if constant_like(*v) {
                *v = Val::Unknown;
            }
        }
        for sl in out.slots.iter_mut() {
            if constant_like(sl.val) {
                sl.val = Val::Unknown;
            }
        }
        out.flags = Flags::NONE;
        return;
    }
    out.regs = [Val::Unknown; NREGS];
    out.regs[cx.sp] = Val::Stack(epoch, 0);
    out.slots.clear();
    out.escaped = None;
    out.escaped_all = false;
    out.wiped = inputs.iter().any(|s| s.wiped);
    out.unknown_from = inputs
        .iter()
        .map(|s| s.unknown_from)
        .min()
        .unwrap_or(i32::MAX);
    for r in 0..NREGS {
        let v0 = first.regs[r];
        let same = inputs[1..].iter().all(|s| s.regs[r] == v0);
        out.regs[r] = if same && (cx.consts || !constant_like(v0)) {
            v0
        } else {
            let mut v = sets.join(v0, v0, cx.consts);
            for s in &inputs[1..] {
                v = sets.join(v, s.regs[r], cx.consts);
            }
            v
        };
    }
    if !inputs.iter().all(|s| s.regs[cx.sp] == first.regs[cx.sp]) {
        out.regs[cx.sp] = Val::Stack(epoch, 0);
    }
    out.flags = if inputs.iter().all(|s| s.flags == first.flags) && cx.consts {
        first.flags
    } else {
        Flags::NONE
    };
    for s in inputs {
        if s.escaped_all {
            out.escaped_all = true;
        }
        if let Some((e, o)) = s.escaped {
            out.escape(Val::Stack(e, o));
        }
    }
    // Slots: every key of every input, with the value every input gives it.
    let same_keys = inputs[1..].iter().all(|s| {
        s.slots.len() == first.slots.len()
            && s.slots
                .iter()
                .zip(&first.slots)
                .all(|(a, b)| a.epoch == b.epoch && a.off == b.off && a.size == b.size)
    });
    if same_keys {
        out.slots.reserve(first.slots.len());
        for (i, sl) in first.slots.iter().enumerate() {
            let same = inputs[1..].iter().all(|s| s.slots[i].val == sl.val);
            let v = if same && (cx.consts || !constant_like(sl.val)) {
                sl.val
            } else {
                let mut v = sets.join(sl.val, sl.val, cx.consts);
                for s in &inputs[1..] {
                    v = sets.join(v, s.slots[i].val, cx.consts);
                }
                v
            };
            out.slots.push(Slot { val: v, ..*sl });
        }
    } else {
        let mut keys: Vec<(u32, i32, u8)> = inputs
            .iter()
            .flat_map(|s| s.slots.iter().map(|sl| (sl.epoch, sl.off, sl.size)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // Keys are visited in increasing order, so each input's position in its own sorted
        // slots only moves forward.
        let mut cursors = vec![0usize; inputs.len()];
        let mut vals: Vec<Val> = Vec::with_capacity(inputs.len());
        for (e, o, z) in keys {
            vals.clear();
            for (i, s) in inputs.iter().enumerate() {
                vals.push(s.load_from(&mut cursors[i], e, o, z, cx.param_base, cx.ptr, sets));
            }
            let v0 = vals[0];
            let v = if vals[1..].iter().all(|&w| w == v0) && (cx.consts || !constant_like(v0)) {
                v0
            } else {
                let mut v = sets.join(v0, v0, cx.consts);
                for &w in &vals[1..] {
                    v = sets.join(v, w, cx.consts);
                }
                v
            };
            if v == Val::Unknown && (e != 0 || o < 0) {
                // Nothing to keep (see `State::store`); an overlapping earlier key is gone too.
                if let Some(l) = out.slots.last() {
                    if l.epoch == e && l.end() > i64::from(o) {
                        out.slots.pop();
                    }
                }
                continue;
            }
            // Stored in key order: only the last slot can overlap the new one.
            let slot = Slot {
                epoch: e,
                off: o,
                size: z,
                val: v,
            };
            if let Some(l) = out.slots.last() {
                if l.epoch == e && l.end() > i64::from(o) {
                    out.slots.pop();
                }
            }
            if out.slots.len() < super::bounds::MAX_SLOTS {
                out.slots.push(slot);
            }
        }
    }
    out.collect_garbage();
}

/// Whether a value is a constant of some kind (what does not cross a merge in a function
/// whose control flow is not fully known).
#[inline]
fn constant_like(v: Val) -> bool {
    matches!(v, Val::Const(..) | Val::Set(..) | Val::Runtime(..))
}

/// Widening at a block reached again (a loop): whatever changed since the block's previous
/// entry state `old` becomes unknown, so that no loop is followed value by value. `new` is the
/// join of the current inputs.
pub(crate) fn widen(old: &State, new: &mut State, epoch: u32, cx: &JoinCtx, sets: &mut Sets) {
    for r in 0..NREGS {
        if new.regs[r] != old.regs[r] {
            new.regs[r] = if r == cx.sp {
                Val::Stack(epoch, 0)
            } else {
                Val::Unknown
            };
        }
    }
    if new.flags != old.flags {
        new.flags = Flags::NONE;
    }
    new.wiped |= old.wiped;
    new.unknown_from = new.unknown_from.min(old.unknown_from);
    if old.escaped_all {
        new.escaped_all = true;
    }
    if let Some((e, o)) = old.escaped {
        new.escape(Val::Stack(e, o));
    }
    if new.slots != old.slots {
        let keys: Vec<(u32, i32, u8)> = new
            .slots
            .iter()
            .chain(old.slots.iter())
            .map(|s| (s.epoch, s.off, s.size))
            .collect();
        let mut merged = State::unknown(cx.sp, epoch);
        merged.slots.clear();
        let mut keys = keys;
        keys.sort_unstable();
        keys.dedup();
        for (e, o, z) in keys {
            let a = old.load(e, o, z, cx.param_base, cx.ptr, sets);
            let b = new.load(e, o, z, cx.param_base, cx.ptr, sets);
            merged.store(e, o, z, if a == b { a } else { Val::Unknown });
        }
        new.slots = merged.slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callsite::engine::value::How;

    #[test]
    fn stores_replace_what_they_overlap_and_loads_see_exact_slots() {
        let mut sets = Sets::default();
        let mut s = State::entry(4, &[]);
        let c = |v| Val::Const(v, How::Immediate);
        s.store(0, -8, 4, c(1));
        s.store(0, -4, 4, c(2));
        s.store(0, -6, 4, c(3)); // overlaps both
        assert_eq!(s.slots.len(), 1);
        assert_eq!(s.load(0, -6, 4, 4, 4, &mut sets), c(3));
        assert_eq!(s.load(0, -8, 4, 4, 4, &mut sets), Val::Unknown);
        assert_eq!(s.load(0, -6, 2, 4, 4, &mut sets), c(3));
        assert_eq!(s.load(0, -5, 2, 4, 4, &mut sets), Val::Unknown);
        // Untracked entry-frame slots above the parameter base are parameters.
        assert_eq!(
            s.load(0, 8, 4, 4, 4, &mut sets),
            Val::Param(ParamLoc::Stack(8), false)
        );
        s.forget(0, -100, 100);
        assert!(s.slots.is_empty());
    }

    #[test]
    fn joins_make_sets_and_widening_forgets_what_changed() {
        let mut sets = Sets::default();
        let cx = JoinCtx {
            sp: 4,
            param_base: 4,
            ptr: 4,
            consts: true,
        };
        let mut a = State::entry(4, &[]);
        let mut b = State::entry(4, &[]);
        a.set(0, Val::Const(1, How::Immediate));
        b.set(0, Val::Const(2, How::Immediate));
        a.set(3, Val::Import(7));
        b.set(3, Val::Import(7));
        let j = join(&[&a, &b], 9, &cx, &mut sets);
        assert!(matches!(j.regs[0], Val::Set(..)));
        assert_eq!(j.regs[3], Val::Import(7));
        let mut again = j.clone();
        again.set(3, Val::Unknown);
        widen(&j, &mut again, 9, &cx, &mut sets);
        assert_eq!(again.regs[3], Val::Unknown);
        assert_eq!(again.regs[0], j.regs[0]);
        // Without known control flow constants never cross; symbolic facts do.
        let cx2 = JoinCtx {
            consts: false,
            ..cx
        };
        let j2 = join(&[&a, &a], 9, &cx2, &mut sets);
        assert_eq!(j2.regs[0], Val::Unknown);
        assert_eq!(j2.regs[3], Val::Import(7));
    }
}
