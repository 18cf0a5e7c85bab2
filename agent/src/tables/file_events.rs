//! `file_events`: Changes under the configured `[events] file_paths`, from inotify,
//! and fanotify for writes where permitted ([`crate::events::file_watch`]);
//! `category` is the configuration's key, `pid` (sweep's own) the writing
//! process where fanotify names it.
//! A scheduled query reads the events since its last run, a hunt the whole
//! buffer; when the source is not running the scan fails, saying why.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::file_events::TABLE as SCHEMA;

pub struct FileEvents;

impl Table for FileEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        super::events_scan(ctx, SCHEMA.name, out)
    }
}
