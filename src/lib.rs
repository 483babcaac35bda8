pub mod poolsrc;
pub mod poolusage;
