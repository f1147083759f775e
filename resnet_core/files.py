"""Files named by users, or found in folders and run folders they hand over: read only when they are regular files,
without ever blocking and never past a byte cap; written without ever replacing a file unless asked, and never
through a symbolic link.

A FIFO blocks its reader until someone writes, /dev/zero never ends (and its st_size is 0), a socket or a device is
no file to read: each is refused, by `os.stat` before it is opened and by `os.fstat` after an `O_NONBLOCK` open,
with one ValueError (NotRegularFile) naming the field (`what`) and what the path is. OSError (a missing file, no
permission) is left to the caller, which knows what a missing file means there. The lowest layer: imports nothing
from the project.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def kind_of(mode: int) -> str:
    """What a stat mode is, for a message: "a regular file", "a named pipe (FIFO)", …"""
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


class NotRegularFile(ValueError):
    """A FIFO, device, socket or folder where a file was to be read (a reader may treat it like a missing file)."""


def _check_regular(mode: int, path: Path, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"{what} must be a regular file; {path} is {kind_of(mode)}")


def open_regular(path: str | Path, what: str, cap: int | None = None,
                 too_big: Callable[[int], str] | None = None) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (symlinks followed) of at most `cap` bytes; else one
    ValueError naming `what` (`too_big(size)` gives the message for a file over the cap). Never blocks."""
    path = Path(path)
    _check_regular(os.stat(path).st_mode, path, what)  # a device or FIFO is never even opened
    fd = os.open(path, os.O_RDONLY | _NONBLOCK)  # … and if one took the file's place since, this open cannot block
    try:
        status = os.fstat(fd)
        _check_regular(status.st_mode, path, what)
        if cap is not None and status.st_size > cap:
            raise ValueError(too_big(status.st_size) if too_big else _over_cap(what, path, status.st_size, cap))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, what: str, cap: int, too_big: Callable[[int], str] | None = None) -> bytes:
    """The bytes of a regular file of at most `cap` bytes (see `open_regular`); at most cap + 1 bytes are read, so
    a file that grows while it is read is refused too."""
    with open_regular(path, what, cap, too_big) as file:
        data = file.read(cap + 1)
    if len(data) > cap:
        raise ValueError(too_big(len(data)) if too_big else _over_cap(what, Path(path), len(data), cap))
    return data


def _over_cap(what: str, path: Path, size: int, cap: int) -> str:
    return f"{what} must be at most {cap:,} bytes; {path} is {size:,} bytes"


def write_new_file(path: str | Path, write: Callable[[Path], None], what: str, *, force: bool = False,
                   force_hint: str = "force=True") -> Path:
    """Write a file at `path` through `write(temporary path)`: a temporary file in the same folder, then moved into
    place. Without `force` nothing already at `path` is replaced (a file, a folder, a symlink, even a dangling one);
    with it a regular file or a symlink is replaced (the link itself, never what it points at), anything else is
    refused. Every refusal is one ValueError naming `what` and what is there; `force_hint` names the way out."""
    path = Path(path)
    _check_writable(path, what, force, force_hint)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666))  # the umask applies
    except FileNotFoundError:
        raise ValueError(f"{what} must be in an existing folder; {path.parent} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{what} cannot be written: {path}: {exc.strerror or exc}") from None
    try:
        write(tmp)
        _publish(tmp, path, what, force, force_hint)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def _check_writable(path: Path, what: str, force: bool, force_hint: str) -> None:
    """What is at `path` now, checked before anything is written (`_publish` checks again, atomically)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise ValueError(f"{what} must be in an existing folder; {path.parent} is not a folder") from None
        raise ValueError(f"{what} cannot be written: {path}: {exc.strerror or exc}") from None
    replaceable = stat.S_ISREG(mode) or stat.S_ISLNK(mode)
    if force and replaceable:
        return
    if force:
        how = f"{force_hint} replaces only a file or a symbolic link"
    elif stat.S_ISLNK(mode):
        how = f"{force_hint} replaces the link, never what it points at"
    else:
        how = f"{force_hint} replaces it" if replaceable else ""
    there = f"a symbolic link to {os.readlink(path)}" if stat.S_ISLNK(mode) else (
        "a file already" if stat.S_ISREG(mode) else kind_of(mode))
    raise ValueError(f"{what} must name a new file; {path} is {there}" + (f" ({how})" if how else ""))


def _publish(tmp: Path, path: Path, what: str, force: bool, force_hint: str) -> None:
    """Move the written file into place: `os.replace` with `force` (a rename replaces a symlink itself), else a hard
    link, which fails rather than replace anything that appeared meanwhile."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        _check_writable(path, what, force, force_hint)  # raises, naming what appeared
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise ValueError(f"{what} cannot be written: {path}: {exc.strerror or exc}") from None
        _copy_new(tmp, path, what, force_hint)  # a file system without hard links


def _copy_new(tmp: Path, path: Path, what: str, force_hint: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    except FileExistsError:
        _check_writable(path, what, False, force_hint)
        raise
    with os.fdopen(fd, "wb") as out, open(tmp, "rb") as source:
        while chunk := source.read(2**20):
            out.write(chunk)
