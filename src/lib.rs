pub mod callsite;
pub mod model;
pub mod poolusage;
