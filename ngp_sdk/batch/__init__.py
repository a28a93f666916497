"""Batch jobs on Ray: train many scenes and render long camera paths across workers (``ngp batch``).

``run(jobs, address=None)`` runs a job file (YAML/JSON, see :mod:`ngp_sdk.batch.jobs`) on a local Ray or a
cluster and returns the summary. Ray is the optional extra ``.[cluster]``; it is imported only when a batch runs,
never by ``import ngp_sdk``.
"""

from ngp_sdk.batch.jobs import Job, JobFileError, frame_ranges, load_jobs, parse_jobs
from ngp_sdk.batch.runner import BatchInterrupted, run

__all__ = ["run", "load_jobs", "parse_jobs", "frame_ranges", "Job", "JobFileError", "BatchInterrupted"]
