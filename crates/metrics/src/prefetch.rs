//! A cache prefetch hint, for summaries whose updates are memory-bound.
//!
//! A record of a flow export updates a few dozen sketches spread over tens of megabytes: each
//! update is a cache miss or two, and one after another they cost more than the arithmetic.
//! A caller that knows which addresses the next record will touch asks for them a record
//! ahead, so the misses overlap with the work on the current one. The hint changes no state
//! and no result, only when memory arrives.

/// Asks the processor to bring the cache line holding `p` into all cache levels. Any address
/// will do, even one past the end of an allocation or a null pointer: the hint reads nothing
/// the program sees and never faults. A no-op where no hint instruction is available.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, in every x86-64 processor) is a hint: it does not fault on
    // any address and has no architectural effect (Intel SDM vol. 2, PREFETCHh), so no
    // memory is read through `p` and it need not be valid.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn any_address_is_harmless() {
        let v = vec![1u64, 2, 3];
        prefetch(v.as_ptr());
        prefetch(v.as_ptr().wrapping_add(1 << 20));
        prefetch(std::ptr::null::<u8>());
        assert_eq!(v, [1, 2, 3]);
    }
}
