"""What a worker without a nanny must get in its environment to behave as one with.

distributed's nanny sets these in its worker's environment by default
(``distributed.nanny.pre-spawn-environ`` and a fixed hash seed, so every worker
hashes strings alike, which shuffles and groupbys rely on). A worker started
without a nanny gets them from its launcher instead; a cluster's own
environment overrides them.
"""

from __future__ import annotations

NANNY_ENVIRONMENT: dict[str, str] = {
    "PYTHONHASHSEED": "6640",
    "MALLOC_TRIM_THRESHOLD_": "65536",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
