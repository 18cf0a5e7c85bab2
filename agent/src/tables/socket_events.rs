//! `socket_events`: Connections, from sock_diag's destroy notifications (every TCP and
//! UDP connection, reported when it ends, `status` = `closed`) and from exec
//! scans (a connection on a new process's descriptors 0-2, `status` =
//! `succeeded`, with `fd`). `action` is `connect` when the local port is in
//! the kernel's ephemeral range, else `accept`; `pid` is -1 when no exec scan
//! saw the connection (see [`crate::events::sock_destroy`]). Not caught: binds
//! and listens, and connections still open (`process_open_sockets` has those).
//! A scheduled query reads the events since its last run, a hunt the whole
//! buffer; when the source is not running the scan fails, saying why.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::socket_events::TABLE as SCHEMA;

pub struct SocketEvents;

impl Table for SocketEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        super::events_scan(ctx, SCHEMA.name, out)
    }
}
