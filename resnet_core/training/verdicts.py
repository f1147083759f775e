"""The measured precision rates of this machine, kept between runs so that, once a run shape is measured, a repeat
run pays nothing.

A verdict rests on MEASUREMENTS measurements taken by separate runs, and goes by the one with the median speed-up
(`typical`): one measurement alone proved unreliable on a shared machine (in a fresh process here bf16 once read
0.23× as fast while other runs of the same shape measured 1.26–1.64×, and remembered alone such an outlier would
have stuck). So the first MEASUREMENTS runs of a shape measure (about 2 s each, longer where bf16 is emulated)
and every later run recalls; a measurement that did not get its threads' CPU time (`Rates.trusted`: the machine was
busy) is not kept, and the next run measures again.

One JSON file, `precision.json`, in the user's cache folder: $RESNET_EXPLORER_CACHE if set (tests point it at a
temporary folder), else $XDG_CACHE_HOME/resnet-explorer, else ~/.cache/resnet-explorer. It holds a list of
{"key": PrecisionKey, "rates": Rates}; rates are recalled only under an equal key, so a verdict measured on another
CPU, core or thread count, torch version, device, model size class, batch or memory format never applies.

The file is read like untrusted input: over MAX_BYTES, not JSON, or not the expected shape, it is ignored (and
rewritten at the next measurement); an entry that does not validate is dropped and the others are kept. Writing
is atomic (a temporary file renamed over it); a folder that cannot be written only means measuring again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .precision import PrecisionKey, Rates

CACHE_ENV = "RESNET_EXPLORER_CACHE"
CACHE_FILE = "precision.json"
MAX_BYTES = 1 << 20  # a cache file larger than this is not read
MAX_ENTRIES = 256  # the newest are kept
MEASUREMENTS = 3  # measurements from separate runs that a verdict rests on
VERSION = 2  # 2: rates carry their CPU share; version 1 files kept untrusted measurements


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "resnet-explorer"


def cache_file() -> Path:
    return cache_dir() / CACHE_FILE


def read_entries(path: Path | None = None) -> list[tuple[PrecisionKey, Rates]]:
    """The valid entries of the cache file, oldest first; [] when it is missing, too large or unreadable."""
    path = path or cache_file()
    try:
        if path.stat().st_size > MAX_BYTES:
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    raw = data.get("verdicts") if isinstance(data, dict) and data.get("version") == VERSION else None
    entries = []
    for item in raw if isinstance(raw, list) else []:
        entry = _entry(item)
        if entry is not None:
            entries.append(entry)
    return entries


def _entry(item: Any) -> tuple[PrecisionKey, Rates] | None:
    if not isinstance(item, dict):
        return None
    try:
        return PrecisionKey.from_dict(item.get("key")), Rates.from_dict(item.get("rates"))
    except ValueError:
        return None


def recall(key: PrecisionKey, path: Path | None = None) -> list[Rates]:
    """The rates measured under exactly `key`, oldest first (at most MEASUREMENTS); [] when none."""
    return [rates for stored, rates in read_entries(path) if stored == key][-MEASUREMENTS:]


def typical(measured: Sequence[Rates]) -> Rates:
    """The measurement with the median speed-up (the lower middle one of an even count): one outlier among three
    does not decide."""
    return sorted(measured, key=lambda rates: rates.speedup)[(len(measured) - 1) // 2]


def remember(key: PrecisionKey, rates: Rates, path: Path | None = None) -> bool:
    """Add `rates` to those of `key` (its oldest dropped beyond MEASUREMENTS); False when the file cannot be
    written."""
    path = path or cache_file()
    entries = read_entries(path)
    kept = [(k, r) for k, r in entries if k == key][-(MEASUREMENTS - 1):]
    entries = [(k, r) for k, r in entries if k != key] + kept + [(key, rates)]
    text = json.dumps(dict(version=VERSION, verdicts=[dict(key=k.to_dict(), rates=r.to_dict())
                                                      for k, r in entries[-MAX_ENTRIES:]]), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision-", suffix=".json")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True
