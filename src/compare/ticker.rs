//! Polls a [`Control`] every `STEP` units of work.

use super::{Control, DiffError};

const STEP: u64 = 8192;

pub(super) struct Ticker<'c> {
    ctl: &'c mut dyn Control,
    work: u64,
    next_check: u64,
    done: u64,
    total: u64,
}

impl<'c> Ticker<'c> {
    pub(super) fn new(ctl: &'c mut dyn Control, total: u64) -> Self {
        Ticker {
            ctl,
            work: 0,
            next_check: STEP,
            done: 0,
            total,
        }
    }

    pub(super) fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    /// Checks for cancellation right now.
    pub(super) fn check(&mut self) -> Result<(), DiffError> {
        if self.ctl.cancelled() {
            return Err(DiffError::Cancelled);
        }
        Ok(())
    }

    /// Records `n` units of work that do not advance progress.
    #[inline]
    pub(super) fn work(&mut self, n: u64) -> Result<(), DiffError> {
        self.work += n;
        if self.work >= self.next_check {
            self.next_check = self.work + STEP;
            self.check()?;
            self.ctl.progress(self.done.min(self.total), self.total);
        }
        Ok(())
    }

    /// Records `n` units of finished work (advances progress).
    #[inline]
    pub(super) fn done(&mut self, n: u64) -> Result<(), DiffError> {
        self.done += n;
        self.work(n)
    }

    /// Sets the absolute progress (monotone: lower values are ignored).
    #[inline]
    pub(super) fn done_at(&mut self, at: u64) {
        self.done = self.done.max(at);
    }

    /// Reports final progress.
    pub(super) fn finish(&mut self) {
        self.ctl.progress(self.total, self.total);
    }
}
