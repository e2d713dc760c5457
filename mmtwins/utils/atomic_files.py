"""Files that are, at every moment, either their old complete content or their new one.

A file is written under a temporary name in its own folder, flushed to disk, then renamed
over the destination with ``os.replace``, which is atomic on POSIX and Windows: a process
killed at any moment leaves the destination as it was, plus at most a stray temporary file,
which :func:`remove_stale_temporaries` removes later.
"""
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import Iterator, List

_TEMPORARY = re.compile(r'^\..+\.(\d+)\.tmp$')


def temporary_name(path: str) -> str:
    """The hidden temporary file, next to ``path``, that this process writes it through.

    Example:
        >>> temporary_name('work_dirs/exp/epoch_3.pth')  # doctest: +SKIP
        'work_dirs/exp/.epoch_3.pth.4242.tmp'
    """
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}.tmp')


def remove_stale_temporaries(folder: str) -> List[str]:
    """Removes the temporary files in ``folder`` of writers that no longer run.

    Those of :func:`temporary_name`, whose process was killed while it wrote them; only on
    POSIX, where a process id can be probed.

    Args:
        folder: Where the files were written.

    Returns:
        The paths removed.

    Example:
        >>> remove_stale_temporaries('work_dirs/exp')  # doctest: +SKIP
        ['work_dirs/exp/.epoch_3.pth.4242.tmp']
    """
    if os.name != 'posix' or not osp.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        match = _TEMPORARY.match(name)
        if match and not _is_running(int(match.group(1))):
            path = osp.join(folder, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only probes
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sync_folder(folder: str) -> None:
    # The rename itself lives in the folder's entry table, which has its own flush.
    descriptor = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_destination(path: str) -> Iterator[str]:
    """Gives the temporary file to write ``path`` through, and publishes it at the end.

    When the block completes, the temporary file is flushed to disk and renamed to
    ``path`` in one step; when it raises, ``path`` stays as it was. Either way no
    temporary file is left behind (unless the process is killed: see
    :func:`remove_stale_temporaries`).

    Args:
        path: The destination file; its folder must exist.

    Yields:
        The temporary file's path (:func:`temporary_name`), in the same folder.

    Example:
        >>> import tempfile
        >>> path = osp.join(tempfile.mkdtemp(), 'a.txt')
        >>> with atomic_destination(path) as temporary, open(temporary, 'w') as file:
        ...     _ = file.write('done')
        >>> open(path).read()
        'done'
    """
    temporary = temporary_name(path)
    try:
        yield temporary
        with open(temporary, 'rb') as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _sync_folder(osp.dirname(path))
    finally:
        if osp.exists(temporary):
            os.unlink(temporary)


def write_text_atomically(path: str, text: str) -> None:
    """Writes a small text file so that readers see the old text or the new, nothing else.

    Args:
        path: The destination file.
        text: Its new content.

    Example:
        >>> write_text_atomically('work_dirs/exp/last_checkpoint',
        ...                       'work_dirs/exp/epoch_3.pth')  # doctest: +SKIP
    """
    with atomic_destination(path) as temporary, open(temporary, 'w') as file:
        file.write(text)


def check_can_create(path: str) -> str:
    """``path`` if a file can be written there: the nearest existing folder above it is a
    folder this process may write in (the folders between are created when it is written).

    For outputs written after a long computation (predictions, drawn images), checked
    before it starts.

    Args:
        path: The file to be written.

    Returns:
        ``path``.

    Raises:
        ValueError: If that nearest existing path is a file, or a folder without write
            permission.

    Example:
        >>> check_can_create('work_dirs/new/results.pkl')
        'work_dirs/new/results.pkl'
    """
    existing = osp.dirname(osp.abspath(path))
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise ValueError(f'cannot write {path!r}: {existing!r} is a file, not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f'cannot write {path!r}: no permission to write in {existing!r}')
    return path
