//! The column names of each query's rows, in the order last seen. Rows of one
//! query carry the same names in the same order, so the next name is known
//! by comparing the record's bytes with `"name":` rather than reading the
//! string and looking it up. Anything else (another order, whitespace, an
//! escaped name) is read the long way and learnt in its place.

use super::json::Reader;
use crate::by_query::ByQuery;

/// Names learnt per query: rows with more columns read the rest the long way.
const KEYS_KEPT: usize = 512;

/// Shapes by query name, for one rule set's slots.
#[derive(Debug, Default)]
pub struct Shapes {
    by_query: ByQuery<Shape>,
    /// Names recognised from a shape (tests show the fast path is taken).
    #[cfg(test)]
    pub names_recognised: usize,
}

/// One query's column names as the bytes `"name":`, and each name's slot in
/// the rule set's columns (None: no rule reads it).
#[derive(Debug, Default)]
pub(super) struct Shape {
    keys: Vec<(Box<[u8]>, Option<usize>)>,
}

impl Shapes {
    pub(super) fn of(&mut self, query: &str) -> &mut Shape {
        self.by_query.get_or_insert_with(query, Shape::default)
    }

    /// Counts names recognised from a shape (tests only).
    #[inline]
    pub fn recognised(&mut self, _names: usize) {
        #[cfg(test)]
        {
            self.names_recognised += _names;
        }
    }
}

impl Shape {
    /// Member `k`'s name taken from the reader when it is the one learnt
    /// there: `Some(slot)`. None leaves the reader where it was.
    #[inline]
    pub(super) fn known(&self, r: &mut Reader<'_>, k: usize) -> Option<Option<usize>> {
        let (token, slot) = self.keys.get(k)?;
        r.take_exact(token).then_some(*slot)
    }

    /// Member `k`'s name was `token` (`"name":` as the record spells it).
    /// Learnt only in its place: after a member that could not be learnt
    /// (an escaped name), the rest of the row is not.
    pub(super) fn learn(&mut self, k: usize, token: &[u8], slot: Option<usize>) {
        if k < KEYS_KEPT && k <= self.keys.len() {
            self.keys.truncate(k);
            self.keys.push((token.into(), slot));
        }
    }
}
