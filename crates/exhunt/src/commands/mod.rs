//! One module per subcommand.

pub(crate) mod collect;
pub(crate) mod probe;
pub(crate) mod remediate;
pub(crate) mod report;
pub(crate) mod rules;
pub(crate) mod scan;
pub(crate) mod serve;
