//! What a worker keeps per query name (its rules' route, its rows' column
//! layout), for as many names as it meets before starting over: hunt names
//! are new with every hunt, so the names seen have no bound of their own.

use rustc_hash::FxHashMap;

/// How many query names a worker keeps something for before starting over.
const KEPT: usize = 10_000;

/// Values by query name, bounded.
#[derive(Debug)]
pub struct ByQuery<T> {
    map: FxHashMap<Box<str>, T>,
}

impl<T> Default for ByQuery<T> {
    fn default() -> Self {
        Self {
            map: FxHashMap::default(),
        }
    }
}

impl<T> ByQuery<T> {
    /// The value kept for `query`, made by `make` the first time.
    pub fn get_or_insert_with(&mut self, query: &str, make: impl FnOnce() -> T) -> &mut T {
        // Looked up by `&str`: a key is made only for a new query.
        if !self.map.contains_key(query) {
            if self.map.len() >= KEPT {
                self.map.clear();
            }
            self.map.insert(query.into(), make());
        }
        self.map.get_mut(query).expect("inserted above")
    }
}
