"""Where data sets live on this machine: $RESNET_EXPLORER_DATA, else ./data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RESNET_EXPLORER_DATA"


def default_data_dir() -> Path:
    """Where downloaded/placed data sets live: $RESNET_EXPLORER_DATA, else ./data."""
    return Path(os.environ.get(DATA_DIR_ENV, "data")).expanduser()


# where a user chooses the data folder: the same message reaches the command line and the app's pages
DATA_FOLDER_WHERE = "--data-dir on the command line, the “Data folder” field on the Train page"
