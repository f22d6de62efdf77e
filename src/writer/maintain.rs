//! Maintenance from the writer's own handle: `Writer::compact`, `thin`, `clean`, `expire`,
//! `rewrite_catalog` and `maintain` run a [`Maintenance`] while this writer is quiet (it cannot commit meanwhile),
//! so cleaning copies without waiting for the writer to close, then reload the latest
//! version, since cleaning moves what the writer's deduplication index points at.

use crate::error::Result;
use crate::maintenance::{
    CatalogRewrite, Cleaning, Compaction, KeyframeThinning, Maintenance, MaintenancePlan,
    MaintenanceReport, MaintenanceStep, Thinning, expire::Expiry,
};
use crate::writer::Writer;

impl Writer {
    /// Runs `step` on a maintenance run over this writer's store, then reloads the latest
    /// version (poisoning the writer if that fails).
    fn maintain_with<T>(&mut self, step: impl FnOnce(&mut Maintenance) -> Result<T>) -> Result<T> {
        self.check_usable()?;
        let mut run = Maintenance::open(self.store().clone(), true)?;
        let result = step(&mut run);
        drop(run);
        if let Err(e) = self.reload() {
            self.poison();
            return Err(e);
        }
        result
    }

    /// [`Maintenance::run`] with this writer's lock.
    pub fn maintain(
        &mut self,
        plan: &MaintenancePlan,
        progress: &mut dyn FnMut(MaintenanceStep, usize, usize),
    ) -> Result<MaintenanceReport> {
        self.maintain_with(|m| m.run(plan, progress))
    }

    /// [`Maintenance::compact`] with this writer's lock.
    pub fn compact(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<Compaction> {
        self.maintain_with(|m| m.compact(progress))
    }

    /// [`Maintenance::thin`] with this writer's lock.
    pub fn thin(&mut self, keep_every: u64) -> Result<Thinning> {
        self.maintain_with(|m| m.thin(keep_every))
    }

    /// [`Maintenance::thin_with`] with this writer's lock.
    pub fn thin_with(
        &mut self,
        policy: KeyframeThinning,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Thinning> {
        self.maintain_with(|m| m.thin_with(policy, progress))
    }

    /// [`Maintenance::clean`] with this writer's lock: the copy always runs when worth it.
    pub fn clean(&mut self, min_garbage: f64) -> Result<Cleaning> {
        self.maintain_with(|m| m.clean(min_garbage))
    }

    /// [`Maintenance::rewrite_catalog`] with this writer's lock.
    pub fn rewrite_catalog(&mut self, min_dead: f64) -> Result<CatalogRewrite> {
        self.maintain_with(|m| m.rewrite_catalog(min_dead))
    }

    /// [`Maintenance::expire`] with this writer's lock.
    pub fn expire(&mut self, expiry: Expiry, keep_meta: &[&str]) -> Result<Vec<u64>> {
        self.maintain_with(|m| m.expire(expiry, keep_meta))
    }
}
