//! `process_events`: Execs, forks and exits as the kernel's process connector reports them
//! ([`crate::events::proc_connector`]); each exec is read from /proc at once.
//! Differences from osquery (which reads audit): `syscall` is `execve`,
//! `fork` or `exit` (a fork or exit carries the binary and command line its
//! process last exec'd, when the agent saw that exec); `env` is not kept
//! (`env_count` and `env_size` are); `btime` is 0; `fd0_remote`,
//! `fd1_remote`, `fd2_remote` are sweep's own: the peer of a TCP or UDP
//! socket on that descriptor at exec, the reverse-shell signature.
//! A scheduled query reads the events since its last run, a hunt the whole
//! buffer; when the source is not running the scan fails, saying why.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::process_events::TABLE as SCHEMA;

pub struct ProcessEvents;

impl Table for ProcessEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        super::events_scan(ctx, SCHEMA.name, out)
    }
}
