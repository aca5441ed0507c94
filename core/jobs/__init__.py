"""Heavy work as jobs: :mod:`core.jobs.pool` runs them, :mod:`core.jobs.kinds` registers the work."""

from core.jobs import kinds as _kinds  # noqa: F401 - registers the kinds of work
from core.jobs.pool import (ACTIVE, FINAL, KINDS, JobCancelled, JobLimitError, JobRunner, JobStatus, job_id,
                              register, run_in_foreground, runner)

__all__ = ["ACTIVE", "FINAL", "KINDS", "JobCancelled", "JobLimitError", "JobRunner", "JobStatus", "job_id",
           "register", "run_in_foreground", "runner"]
