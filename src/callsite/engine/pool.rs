//! Buffers kept per thread from one image to the next.
//!
//! The analysis of an image allocates a few large vectors (decoded instructions, the entry
//! states of every block of a function) and frees them all at its end. Handed back to the
//! allocator, such buffers come back as fresh pages for the next image, which costs page
//! faults and, when the allocator returns idle pages to the system, cross-core TLB
//! shootdowns. Kept here instead, they are reused as they are. The pool is bounded (a few
//! buffers per type, none above [`MAX_BYTES`]), so memory stays flat however many images a
//! thread analyses.

/// The largest buffer kept (bytes of capacity); larger ones go back to the allocator.
const MAX_BYTES: usize = 4 << 20;
/// Buffers kept per element type and thread.
const MAX_BUFFERS: usize = 16;

/// An element type with a per-thread pool of buffers (an architecture's decoded instruction
/// implements it with [`pooled!`](crate::callsite::engine::pool::pooled)).
pub(crate) trait Pooled: Sized + 'static {
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

/// Implements [`Pooled`] for each type with a thread-local pool of its own.
macro_rules! pooled {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::callsite::engine::pool::Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
                thread_local! {
                    static POOL: std::cell::RefCell<Vec<Vec<$t>>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                POOL.with(|p| f(&mut p.borrow_mut()))
            }
        }
    )*};
}

pub(crate) use pooled;

pooled!(Option<super::state::State>, super::flow::Flow, u32, bool);

/// An empty buffer, reused when the pool has one.
pub(crate) fn take<T: Pooled>() -> Vec<T> {
    T::with_pool(|p| p.pop()).unwrap_or_default()
}

/// An empty buffer with room for `n` elements.
pub(crate) fn take_with<T: Pooled>(n: usize) -> Vec<T> {
    let mut v = take::<T>();
    v.reserve(n);
    v
}

/// A buffer of `n` copies of `x`.
pub(crate) fn filled<T: Pooled + Clone>(n: usize, x: T) -> Vec<T> {
    let mut v = take_with::<T>(n);
    v.resize(n, x);
    v
}

/// Hands a buffer back (its elements are dropped).
pub(crate) fn give<T: Pooled>(mut v: Vec<T>) {
    v.clear();
    if v.capacity() == 0 || v.capacity().saturating_mul(std::mem::size_of::<T>()) > MAX_BYTES {
        return;
    }
    T::with_pool(|p| {
        if p.len() < MAX_BUFFERS {
            p.push(v);
        }
    });
}
