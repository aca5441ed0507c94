"""A job (core.jobs) on a page: start it for this session, follow its live progress, cancel or restart it.

The job runs off the request thread, so the page answers at once and the other pages keep working;
a reload, or another session asking for the same work, finds the same job by its content and
follows the same progress.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import jobs

REFRESH_SECONDS = 1.0


def session_owner() -> str:
    """This browser session's id (the owner that the per-session cap counts)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def find(kind: str, params: dict[str, Any]) -> jobs.JobStatus | None:
    """The job doing ``kind`` on ``params`` in this server (any session's), if there is one."""
    return jobs.runner().status(jobs.job_id(kind, params))


def start(kind: str, params: dict[str, Any], title: str) -> jobs.JobStatus:
    """Start the work (or attach this session to the job already doing it); raises JobLimitError at the cap.

    Called when the page lacks the work's result, so a job that did finish is run again (its result is gone)."""
    jid = jobs.runner().submit(kind, params, owner=session_owner(), title=title, again=True)
    return jobs.runner().status(jid)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _progress_text(status: jobs.JobStatus, estimate: str | None) -> str:
    if status.status == "queued":
        return f"Queued: waiting for a free worker ({jobs.runner().workers} on this server)"
    left = status.eta_seconds
    pace = f"about {_duration(left)} left" if left is not None else (estimate or "measuring its pace")
    return f"{status.message} · {_duration(status.elapsed)} so far, {pace}"


def follow(status: jobs.JobStatus, *, estimate: str | None = None, restart: Any = None,
           restart_args: tuple = ()) -> None:
    """Show a job that has not (successfully) ended, then stop the page.

    Running or queued: a progress bar redrawn every second, with the time so far and left, and a
    Cancel button; when the job ends the whole page runs again (and reads the result from the store).
    Failed, cancelled or interrupted: what happened, and a button that starts it again
    (``restart(*restart_args)`` as its callback).
    """
    jid = status.id
    if status.active:
        st.info(f"**{status.title}** runs in the background. You can use the other pages meanwhile and come back: "
                "this page, or a reload of it, finds the job again"
                + (f"; {status.owners} sessions asked for it." if status.owners > 1 else "."),
                icon=":material/hourglass_top:")

        @st.fragment(run_every=REFRESH_SECONDS)
        def live() -> None:
            now = jobs.runner().status(jid)
            if now is None or not now.active:
                st.rerun()  # the whole page: the result is in the store now, or the job failed
            st.progress(min(1.0, max(0.0, now.fraction)), text=_progress_text(now, estimate))

        live()
        st.button("Cancel", key=f"job_cancel_{jid[:12]}", on_click=jobs.runner().cancel, args=(jid,),
                  help="stops the job at its next step; what it finished so far stays cached")
        st.caption(f"At most {jobs.runner().per_owner} jobs run per session.")
        st.stop()
    message = {"failed": f"**{status.title}** failed: {status.error}",
               "cancelled": f"**{status.title}** was cancelled after {_duration(status.elapsed)} "
                            f"({status.fraction:.0%} done).",
               "interrupted": f"**{status.title}** was interrupted at {status.fraction:.0%}: {status.error}."}[status.status]
    (st.error if status.status == "failed" else st.warning)(message, icon=":material/error:")
    if restart is not None:
        st.button("Start it again", key=f"job_restart_{jid[:12]}", type="primary", on_click=restart, args=restart_args)
    st.stop()
