"""The batch job runner: a daemon thread per process that claims pending jobs and runs them one at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ...archive.catalog import Archive
from ...request import Limits
from .store import JobStore

log = logging.getLogger(__name__)


class JobRunner:
    """A daemon thread of this process that claims pending jobs of ``store`` and runs them one at a time.

    The thread starts on :meth:`wake` (after a job is created) or :meth:`resume` (at start-up, when the
    folder holds pending jobs: CREATED, or PROCESSING left by a process that died). Idle, it looks for
    claimable jobs again every ``poll_s`` seconds (jobs of crashed processes of this host). It runs only
    the jobs of its own archive (``archive().href``).
    """

    def __init__(self, store: JobStore, archive: Callable[[], Archive], *, workers: int = 0,
                 scheduler: str | None = None, limits: Limits | None = None, poll_s: float = 10.0) -> None:
        self.store = store
        self.limits = limits
        self.archive = archive
        self.workers = workers
        self.scheduler = scheduler
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._resumed = False

    def wake(self) -> None:
        """Start the thread if needed and have it look for jobs now."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="polyfis-batch-runner", daemon=True)
                self._thread.start()
        self._wake.set()

    def resume(self) -> bool:
        """Once per runner: start the thread when jobs (of any archive: the thread keeps its own) are
        pending. True when it did. A folder that cannot be read is logged; it never stops a start."""
        if self._resumed:
            return False
        self._resumed = True
        try:
            pending = self.store.pending()
        except Exception:  # the server starts whatever the jobs folder holds
            log.exception("batch runner: cannot look for pending jobs in %s", self.store.root)
            return False
        if pending:
            log.info("resuming pending batch jobs in %s", self.store.root)
            self.wake()
            return True
        return False

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread, for this process's exit: the job it runs stops where it is and stays pending (not
        FAILED), for the next process to resume. Waits up to ``timeout`` seconds for the thread to end; True
        when it has (or never ran)."""
        self.store.stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        if thread.is_alive():
            log.warning("batch runner: a job was still running after %.0f s; the next server resumes it", timeout)
            return False
        return True

    def run_pending(self) -> int:
        """Claim and run every pending job of this server's archive that no live process holds; the number
        run. Jobs of other archives are left to servers of theirs (never claimed, run or failed here)."""
        count = 0
        archive = self.archive()
        href = archive.href or ""
        for job_id in self.store.pending(href):
            if self.store.stopping.is_set():
                break
            if not self.store.claim(job_id):
                continue
            try:
                record = self.store.get(job_id)
                if record is None or not self.store.is_pending(record) or record.get("archive") != href:
                    continue  # finished (or set aside) by another process between the scan and the claim
                self.store.run(job_id, archive, workers=self.workers, scheduler=self.scheduler,
                               limits=self.limits)
                count += 1
            finally:
                self.store.release(job_id)
        return count

    def _loop(self) -> None:
        while not self.store.stopping.is_set():
            self._wake.clear()
            try:
                ran = self.run_pending()
            except Exception:  # a broken folder or archive must not end the thread
                log.exception("batch runner: cannot run the pending jobs")
                ran = 0
            if not ran:
                self._wake.wait(self.poll_s)
