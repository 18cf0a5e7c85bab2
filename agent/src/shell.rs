//! placeholder
pub fn run(_l: crate::Limits) -> Result<(), crate::AgentError> {
    Ok(())
}
