//! The `threshold` rule kind (being written).

use std::sync::Arc;

use serde::Deserialize;

use super::Kind;
use crate::matcher::Columns;

/// The `[rule.threshold]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {}

impl Spec {
    /// Checks the settings and gives each field a slot in `columns`.
    pub fn bind(&self, _columns: &mut Columns) -> Result<Arc<dyn Kind>, String> {
        Err("the threshold kind is not available yet".into())
    }
}
