//! One file per subcommand.

pub mod agents;
pub mod hunt;
pub mod keygen;
pub mod matches;
pub mod pack;
pub mod results;
pub mod schedule;
pub mod tail;
