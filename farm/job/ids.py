"""Which job ids the farm accepts: a job id names result files and Redis keys, so it may not hold a path."""

from __future__ import annotations

import re

# UUID-like: letters, digits, '-' and '_', starting with a letter or digit (no '.', '/', '\\' or spaces).
SAFE_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_safe_job_id(job_id: object) -> bool:
    return isinstance(job_id, str) and SAFE_JOB_ID.fullmatch(job_id) is not None
