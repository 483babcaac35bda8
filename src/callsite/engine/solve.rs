//! The worklist solver: the entry state of every block that can reach the blocks asked for.
//!
//! A forward analysis over the [`Cfg`]: a block's entry state is the join of its
//! predecessors' exit states (each refined by the branch its edge depends on, or dropped when
//! the branch cannot go that way), of the entry state at a function entry, and of "nothing
//! known" at a root. Blocks are taken in reverse post-order (lowest first), so every forward
//! predecessor is done before a block; a block reached again through a loop is widened
//! ([`widen`]), which makes every register or slot that changed unknown, so the solver
//! settles after a couple of visits per block. A bound ([`VISITS_PER_BLOCK`]) guards hostile
//! code: past it nothing is known anywhere in the function.
//!
//! Only the ancestors of the blocks asked for are solved: nothing else can change their
//! states, and the order in which those ancestors are taken is the same as in a solve of the
//! whole function, so the states are exactly the ones a whole solve gives.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::bounds::VISITS_PER_BLOCK;
use super::cfg::{Cfg, Edge};
use super::state::{join_into, widen, JoinCtx, State};
use super::value::Sets;

/// Epochs of block entries where paths disagree about the stack pointer (instruction-derived
/// epochs, for calls, stay below it).
pub(crate) const EPOCH_BLOCK: u32 = 0x4000_0000;

/// What an edge's branch says about the state leaving a block.
pub(crate) enum Refined {
    /// Nothing new: the exit state as it is.
    Same,
    /// The branch cannot go this way from this state.
    Infeasible,
    /// The state along this edge.
    Changed(Box<State>),
}

/// Where an input of a block's join comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Entry,
    Unknown,
    Out(usize),
    Changed(usize),
}

/// The entry states found.
pub(crate) struct Solution {
    /// Entry state of each block: `None` for blocks not solved or never reached.
    pub ins: Vec<Option<State>>,
    /// The blocks solved (the ancestors of the ones asked for).
    pub active: Vec<bool>,
}

/// Solves the entry states of the ancestors of `want`. `entry` is the state at the function's
/// entries; `step` runs a block from its entry state and says whether the path continues
/// past it (false after a call that does not return); `refine` gives the state along an edge.
/// `seed`: a block the solve never reaches (behind a branch that cannot go its way, or after a
/// call that does not return) is solved anyway, from nothing known, as code that is there;
/// without it such a block has no state (a caller's constant arguments never reach it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve(
    cfg: &Cfg,
    want: &[bool],
    entry: &State,
    cx: &JoinCtx,
    sets: &std::cell::RefCell<Sets>,
    seed: bool,
    mut step: impl FnMut(&mut State, usize) -> bool,
    mut refine: impl FnMut(&State, usize, Edge) -> Refined,
) -> Solution {
    let nb = cfg.len();
    let mut active: Vec<bool> = super::pool::take_with(nb);
    active.extend_from_slice(want);
    let mut stack: Vec<usize> = (0..nb).filter(|&b| active[b]).collect();
    while let Some(x) = stack.pop() {
        for &(p, _) in cfg.preds(x) {
            if !active[p as usize] {
                active[p as usize] = true;
                stack.push(p as usize);
            }
        }
    }
    let n_active = active.iter().filter(|&&a| a).count();
    let mut budget = n_active.saturating_mul(VISITS_PER_BLOCK) + 64;
    let mut ins: Vec<Option<State>> = super::pool::filled(nb, None);
    let mut outs: Vec<Option<State>> = super::pool::filled(nb, None);
    let mut queued: Vec<bool> = super::pool::filled(nb, false);
    let mut heap: BinaryHeap<Reverse<(u32, u32)>> = BinaryHeap::new();
    for b in 0..nb {
        if active[b] && (cfg.is_entry[b] || cfg.is_root[b]) {
            queued[b] = true;
            heap.push(Reverse((cfg.rpo[b], b as u32)));
        }
    }
    let mut changed_inputs: Vec<State> = Vec::new();
    let mut scratch = State::unknown(cx.sp, 0);
    let mut alt = State::unknown(cx.sp, 0);
    let mut plan: Vec<Input> = Vec::new();
    let mut unknown = State::unknown(cx.sp, 0);
    let mut seeded: Vec<bool> = super::pool::filled(nb, false);
    let order: Vec<usize> = if seed {
        let mut o: Vec<usize> = (0..nb).filter(|&b| active[b]).collect();
        o.sort_by_key(|&b| cfg.rpo[b]);
        o
    } else {
        Vec::new()
    };
    let mut next_seed = 0;
    loop {
        if heap.is_empty() {
            // Code the solve did not reach: start it from nothing known.
            while next_seed < order.len() && ins[order[next_seed]].is_some() {
                next_seed += 1;
            }
            let Some(&b) = order.get(next_seed) else {
                break;
            };
            seeded[b] = true;
            queued[b] = true;
            heap.push(Reverse((cfg.rpo[b], b as u32)));
        }
        let Some(Reverse((_, b))) = heap.pop() else {
            break;
        };
        let b = b as usize;
        queued[b] = false;
        if budget == 0 {
            // No fixpoint within the bound: trust nothing.
            for (i, s) in ins.iter_mut().enumerate() {
                if active[i] {
                    *s = Some(State::unknown(cx.sp, EPOCH_BLOCK + i as u32));
                }
            }
            super::pool::give(outs);
            super::pool::give(queued);
            super::pool::give(seeded);
            return Solution { ins, active };
        }
        budget -= 1;
        let epoch = EPOCH_BLOCK + b as u32;
        // The inputs, as places: refined edge states go to `changed_inputs` (reused).
        plan.clear();
        let mut n_changed = 0;
        if cfg.is_entry[b] {
            plan.push(Input::Entry);
        }
        if cfg.is_root[b] || seeded[b] {
            plan.push(Input::Unknown);
        }
        for &(p, e) in cfg.preds(b) {
            let Some(o) = outs[p as usize].as_ref() else {
                continue;
            };
            match refine(o, p as usize, e) {
                Refined::Same => plan.push(Input::Out(p as usize)),
                Refined::Infeasible => {}
                Refined::Changed(s) => {
                    if changed_inputs.len() <= n_changed {
                        changed_inputs.push(*s);
                    } else {
                        changed_inputs[n_changed] = *s;
                    }
                    plan.push(Input::Changed(n_changed));
                    n_changed += 1;
                }
            }
        }
        if plan.is_empty() {
            continue;
        }
        {
            if plan.contains(&Input::Unknown) {
                unknown = State::unknown(cx.sp, epoch);
            }
            let get = |i: &Input| -> &State {
                match *i {
                    Input::Entry => entry,
                    Input::Unknown => &unknown,
                    Input::Out(p) => outs[p].as_ref().unwrap_or(&unknown),
                    Input::Changed(c) => &changed_inputs[c],
                }
            };
            if plan.len() == 1 && cx.consts {
                let only = get(&plan[0]);
                if alt.slots.capacity() < only.slots.len() {
                    alt.slots = Vec::with_capacity(only.slots.len() + 16);
                }
                alt.clone_from(only);
            } else {
                let mut arr: [&State; 8] = [entry; 8];
                let many: Vec<&State>;
                let refs: &[&State] = if plan.len() <= 8 {
                    for (k, x) in plan.iter().enumerate() {
                        arr[k] = get(x);
                    }
                    &arr[..plan.len()]
                } else {
                    many = plan.iter().map(get).collect();
                    &many
                };
                join_into(&mut alt, refs, epoch, cx, &mut sets.borrow_mut());
            }
        }
        match ins[b].as_mut() {
            Some(old) => {
                widen(old, &mut alt, epoch, cx, &mut sets.borrow_mut());
                if alt == *old {
                    continue;
                }
                std::mem::swap(old, &mut alt);
            }
            None => ins[b] = Some(std::mem::replace(&mut alt, State::unknown(cx.sp, 0))),
        }
        let new = ins[b].as_ref().expect("just set");
        // Stepped in a scratch state whose slot buffer has room to grow (a clone has none).
        if scratch.slots.capacity() < new.slots.len() + 8 {
            scratch.slots = Vec::with_capacity(new.slots.len() + 16);
        }
        scratch.clone_from(new);
        let continues = step(&mut scratch, b);
        let changed = match (&outs[b], continues) {
            (Some(o), true) => *o != scratch,
            (None, true) => true,
            (Some(_), false) => true,
            (None, false) => false,
        };
        if changed {
            if continues {
                match outs[b].as_mut() {
                    Some(o) => std::mem::swap(o, &mut scratch),
                    None => {
                        outs[b] = Some(std::mem::replace(&mut scratch, State::unknown(cx.sp, 0)))
                    }
                }
            } else {
                outs[b] = None;
            }
            for &(s, _) in cfg.succs(b) {
                let s = s as usize;
                if active[s] && !queued[s] {
                    queued[s] = true;
                    heap.push(Reverse((cfg.rpo[s], s as u32)));
                }
            }
        }
    }
    super::pool::give(outs);
    super::pool::give(queued);
    super::pool::give(seeded);
    Solution { ins, active }
}
