//! Step 1 of the size cut (order in `limits.rs`): how many items of each custom metric list
//! go out. Pure arithmetic on item sizes measured by `measure.rs`; the socket lists are left
//! to `limits::plan`, which runs after this step on what remains.

/// The bytes custom lists may always use when the sockets need the rest: a quarter of the
/// payload. The sockets keep at least the other three quarters (minus the fixed parts).
pub(crate) const CUSTOM_SHARE: usize = 32_000;

/// Bytes for custom list items, out of `room` (the payload left after the fixed parts):
/// everything the socket lists (`sockets` bytes, all entries) leave, but at least
/// `CUSTOM_SHARE` when there is that much room at all.
pub(crate) fn budget(room: usize, sockets: usize) -> usize {
    room.saturating_sub(sockets).max(CUSTOM_SHARE.min(room))
}

/// Items kept per list (each list keeps a prefix, in its own order) and the bytes they use.
/// Lists take one item each in turn, in metric name order, so one huge list never starves
/// a small one; a list whose next item does not fit stops there. Bounded by the item count.
pub(crate) fn plan(items: &[Vec<usize>], budget: usize) -> (Vec<usize>, usize) {
    let mut kept = vec![0; items.len()];
    let mut open: Vec<usize> = (0..items.len()).filter(|i| !items[*i].is_empty()).collect();
    let mut left = budget;
    while !open.is_empty() {
        open.retain(|&i| match items[i].get(kept[i]) {
            Some(size) if *size <= left => {
                left -= size;
                kept[i] += 1;
                kept[i] < items[i].len()
            }
            _ => false,
        });
    }
    (kept, budget - left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_what_sockets_leave_but_at_least_the_share() {
        assert_eq!(budget(100_000, 10_000), 90_000);
        assert_eq!(budget(100_000, 99_000), CUSTOM_SHARE);
        assert_eq!(budget(20_000, 50_000), 20_000);
    }

    #[test]
    fn lists_take_turns_and_keep_prefixes() {
        let items = vec![vec![10; 1000], vec![], vec![10, 10], vec![30, 1]];
        let (kept, used) = plan(&items, 100);
        // Round 1: 10 + 10 + 30; round 2: 10 + 10 + 1 (two lists done); then only the big
        // list: 2 more, and 9 bytes are left.
        assert_eq!(kept, [4, 0, 2, 2]);
        assert_eq!(used, 91);
        assert_eq!(plan(&items, 0), (vec![0, 0, 0, 0], 0));
        let small = vec![vec![5; 3], vec![7]];
        assert_eq!(plan(&small, 1_000), (vec![3, 1], 22));
    }
}
