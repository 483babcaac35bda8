pub mod dump;
pub mod poolusage;
