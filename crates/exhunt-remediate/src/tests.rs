//! Unit tests: quoting, plan, apply/rollback with failures injected at every journal write.
