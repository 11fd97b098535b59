//! SIGTERM and SIGINT: what stops `run` and `backup`.

use anyhow::{Context, Result};

pub(crate) async fn wait_for_signal() -> Result<()> {
    StopSignals::watch()?.wait().await
}

/// SIGTERM and SIGINT blocked on the calling thread while this lives.
pub(crate) struct HeldStopSignals(libc::sigset_t);

#[allow(unsafe_code)] // libc signal-mask calls, see SAFETY below
impl HeldStopSignals {
    pub(crate) fn hold() -> HeldStopSignals {
        // SAFETY: plain libc calls on a local, initialised signal set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            HeldStopSignals(set)
        }
    }
}

#[allow(unsafe_code)] // libc signal-mask call, see SAFETY below
impl Drop for HeldStopSignals {
    fn drop(&mut self) {
        // SAFETY: unblocks the set blocked in `hold`; a signal that came
        // meanwhile is delivered now, to the handler installed since.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// SIGTERM and SIGINT, watched from the moment this is made: one that
/// arrives before `wait` is kept for it.
pub(crate) struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn watch() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    pub(crate) async fn wait(&mut self) -> Result<()> {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        Ok(())
    }
}
