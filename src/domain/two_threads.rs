//! Start-up work on a large list (100,000 tokens) whose items depend on nothing but
//! themselves, split between the calling thread and one more.

/// Runs `run` on the items before `cut` here and on the rest on a second thread, and
/// returns both results in order. `run` also gets the index of its half's first item. A
/// panic on the second thread is resumed here, as if one thread had run both halves.
pub fn map_halves<T: Send, U: Send>(
    mut items: Vec<T>,
    cut: usize,
    run: impl Fn(Vec<T>, usize) -> Vec<U> + Sync,
) -> Vec<U> {
    let rest = items.split_off(cut.min(items.len()));
    std::thread::scope(|scope| {
        let later = scope.spawn(|| run(rest, cut));
        let mut done = run(items, 0);
        match later.join() {
            Ok(more) => done.extend(more),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        done
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_come_back_in_order_with_their_offsets() {
        let out = map_halves((0..10).collect(), 4, |half: Vec<i32>, first| {
            half.into_iter().map(|x| (x, first)).collect()
        });
        let expected: Vec<_> = (0..10).map(|x| (x, if x < 4 { 0 } else { 4 })).collect();
        assert_eq!(out, expected);
    }
}
