//! A unit of work over any [`Store`]: commits staged per thing and committed together by
//! `flush` (one transaction in SQLite), with reads that see what is staged. Decides nothing.
//!
//! A second report of a thing already staged loads the staged record (at the version the
//! store still has) and its commit is folded into the staged one, so the batch commits each
//! thing once. A population read (`Samples::window`) flushes first: it must see the samples
//! the batch holds. A flush therefore can come between a `load` and its `stage`; `flushes`
//! counts them so the caller can load again.

use std::collections::HashMap;

use super::{Commit, Loaded, Samples, Store, StoreError, StoredReport};

pub struct Batch<'s> {
    store: &'s mut dyn Store,
    staged: Vec<Commit>,
    at: HashMap<String, usize>,
    flushes: u64,
}

impl<'s> Batch<'s> {
    pub fn new(store: &'s mut dyn Store) -> Batch<'s> {
        Batch {
            store,
            staged: Vec::new(),
            at: HashMap::new(),
            flushes: 0,
        }
    }

    /// The answer staged or stored for (thing, report_id).
    pub fn answer(
        &mut self,
        thing: &str,
        report_id: u64,
    ) -> Result<Option<StoredReport>, StoreError> {
        if let Some(&i) = self.at.get(thing)
            && let Some(a) = self.staged[i]
                .answers
                .iter()
                .find(|a| a.report_id == report_id)
        {
            return Ok(Some(a.clone()));
        }
        self.store.answer(thing, report_id)
    }

    /// The staged record of `thing` (at the stored version), else the stored one.
    pub fn load(&mut self, thing: &str) -> Result<Loaded, StoreError> {
        match self.at.get(thing) {
            Some(&i) => Ok(Loaded {
                version: self.staged[i].expected,
                record: self.staged[i].record.clone(),
            }),
            None => self.store.load(thing),
        }
    }

    /// Stages one step; a step loaded from a staged record folds into it.
    pub fn stage(&mut self, commit: Commit) -> Result<(), StoreError> {
        match self.at.get(&commit.thing) {
            Some(&i) if self.staged[i].expected == commit.expected => {
                self.staged[i].merge(commit);
                Ok(())
            }
            Some(_) => Err(StoreError::Conflict {
                thing: commit.thing,
                expected: commit.expected,
            }),
            None => {
                self.at.insert(commit.thing.clone(), self.staged.len());
                self.staged.push(commit);
                Ok(())
            }
        }
    }

    /// Commits everything staged, all or nothing.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        self.store.commit(&self.staged)?;
        self.staged.clear();
        self.at.clear();
        self.flushes += 1;
        Ok(())
    }

    /// How many flushes happened so far (a `Loaded` from before one is stale).
    pub fn flushes(&self) -> u64 {
        self.flushes
    }
}

impl Samples for Batch<'_> {
    fn window(
        &mut self,
        profile: &str,
        behavior: &str,
        window_start_ms: u64,
    ) -> Result<Vec<f64>, StoreError> {
        if self.staged.iter().any(|c| !c.samples.is_empty()) {
            self.flush()?;
        }
        self.store.window(profile, behavior, window_start_ms)
    }
}
