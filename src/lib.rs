pub mod poolusage;
