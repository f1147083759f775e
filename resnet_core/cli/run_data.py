"""`--allow-data-dir` for the commands that read a stored run's data again (`inspect --test-image`, `landscape`,
`lesion`). The command line is not fenced (data/fence.py): a folder the user names is theirs to read. A run folder's
config.json is another matter: it may come from someone else and name /etc or a home folder, so its data_dir is
fenced as the app fences it, unless the user allows it with the flag (or the folder is in the data folders).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.fence import DATA_ROOTS_ENV, check_run_data, data_roots
from ..runs.store import RunInfo, read_run

ALLOW_FLAG = "--allow-data-dir"


def add_allow_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="read the run's data_dir (from its config.json) even outside the data folders "
                             f"($RESNET_EXPLORER_DATA, ${DATA_ROOTS_ENV})")


def fenced_run(run_dir: str | Path, allowed: bool) -> RunInfo:
    """The run at `run_dir`, once its data_dir may be read: inside the data folders, or `allowed`; else one
    ValueError naming the run, its data_dir and the two ways out."""
    info = read_run(run_dir)
    data_dir = info.config.train.data_dir
    if allowed:
        return info
    try:
        check_run_data(data_dir)
    except ValueError:
        roots = ", ".join(str(root) for root in data_roots())
        raise ValueError(f"run {info.run_id}: its data_dir {data_dir} is outside the data folders ({roots}); pass "
                         f"{ALLOW_FLAG} to read it, or add its folder to {DATA_ROOTS_ENV}") from None
    return info
