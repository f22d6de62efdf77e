//! Storage for testing ReelDB under faults: a simulated disk that knows what is durable and can
//! produce power-loss images ([`SimStorage`]), a wrapper that fails chosen operations of any
//! storage with EIO or ENOSPC ([`FaultyStorage`]), the plan both share ([`FaultPlan`]), and a
//! moto S3 server on loopback for stores on S3 ([`MotoServer`]).
//!
//! Nothing here is used by ReelDB itself; tests, fuzz targets and soak runs depend on it.

mod faulty;
mod moto;
mod plan;
mod sim;

pub use faulty::FaultyStorage;
pub use moto::{BUCKET, MotoServer};
pub use plan::{Fault, FaultPlan, KillPoint, OpKind};
pub use sim::SimStorage;
