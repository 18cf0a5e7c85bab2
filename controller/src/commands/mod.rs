//! One file per subcommand.

pub mod agents;
pub mod hunt;
pub mod keygen;
pub mod matches;
pub mod results;
