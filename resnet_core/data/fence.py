"""The data fence of a shared server: the app reads (and downloads) data sets only under folders its operator
allowed: the data folder ($RESNET_EXPLORER_DATA or ./data) and those listed in $RESNET_EXPLORER_DATA_ROOTS.

A browser user can type any path into the Train page; without the fence, /etc or a home folder would be
scanned, trained on and shown back as images. The command line is not fenced: its user already has the files.
"""

from __future__ import annotations

import os
from pathlib import Path

from .location import default_data_dir

DATA_ROOTS_ENV = "RESNET_EXPLORER_DATA_ROOTS"  # more allowed folders, separated by os.pathsep (":" on Linux)


def data_roots() -> list[Path]:
    """The folders the app may read data from, resolved (symlinks followed)."""
    extra = [p for p in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(p).expanduser().resolve() for p in (default_data_dir(), *extra)]


def fenced_data_dir(text: str) -> str | None:
    """A data folder typed by a user, resolved, if it lies under one of `data_roots()`; None for blank (the
    data folder itself). Anything else is one ValueError that says nothing about what is at that path."""
    text = text.strip()
    if not text:
        return None
    if "\x00" in text:
        raise ValueError("data_dir must be a folder path; got a path with a NUL character")
    try:
        resolved = Path(text).expanduser().resolve()  # a symlink pointing out of the fence lands outside it
    except (RuntimeError, OSError):  # ~nosuchuser, a symlink loop, a name too long
        resolved = None
    if resolved is not None and any(resolved.is_relative_to(root) for root in data_roots()):
        return str(resolved)
    roots = ", ".join(str(r) for r in data_roots())
    raise ValueError(f"data_dir must be inside the server's data folders ({roots}); the server's operator can "
                     f"allow more with {DATA_ROOTS_ENV}")


def check_run_data(data_dir: str | None) -> None:
    """A stored run's data folder (from its config.json) must be inside the fence too before the app reads it
    again (to re-evaluate or lesion the run): a run trained from the command line may name any folder."""
    if data_dir is not None:
        fenced_data_dir(data_dir)
