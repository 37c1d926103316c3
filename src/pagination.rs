//! Keyset pagination: ask the store for one row more than the page holds;
//! if it comes back, another page follows, and the last row shown names it.

/// Rows to fetch for a page of `limit`.
pub fn fetch_size(limit: i64) -> i64 {
    limit.saturating_add(1)
}

/// Cuts `rows` (fetched with [`fetch_size`]) to `limit` and returns the
/// cursor of the next page, if there is one.
pub fn page<T, C>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(cursor);
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_plus_one_names_the_next_page() {
        let (rows, next) = page(vec![5, 4, 3], 2, |r| *r);
        assert_eq!(rows, [5, 4]);
        assert_eq!(next, Some(4));
    }

    #[test]
    fn the_last_page_has_no_next_cursor() {
        let (rows, next) = page(vec![5, 4], 2, |r| *r);
        assert_eq!(rows, [5, 4]);
        assert_eq!(next, None);
    }
}
