"""Files that are, at every moment, either their old complete content or their new one.

A file is written under a temporary name in its own folder, flushed to disk, then renamed
over the destination with ``os.replace``, which is atomic on POSIX and Windows: a process
killed at any moment leaves the destination as it was, plus at most a stray temporary file.
"""
import os
import os.path as osp


def temporary_name(path: str) -> str:
    """The hidden temporary file, next to ``path``, that this process writes it through.

    Example:
        >>> temporary_name('work_dirs/exp/epoch_3.pth')  # doctest: +SKIP
        'work_dirs/exp/.epoch_3.pth.4242.tmp'
    """
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}.tmp')


def _sync_folder(folder: str) -> None:
    # The rename itself lives in the folder's entry table, which has its own flush.
    descriptor = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(temporary: str, path: str) -> None:
    """Flushes a fully written temporary file to disk and renames it to ``path``.

    Args:
        temporary: The complete new content, in the same folder as ``path``.
        path: The destination, replaced in one step if it exists.

    Example:
        >>> with open(temporary_name('out/a.txt'), 'w') as file:
        ...     file.write('done')
        >>> publish(temporary_name('out/a.txt'), 'out/a.txt')
    """
    with open(temporary, 'rb') as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _sync_folder(osp.dirname(path))


def write_text_atomically(path: str, text: str) -> None:
    """Writes a small text file so that readers see the old text or the new, nothing else.

    Args:
        path: The destination file.
        text: Its new content.

    Example:
        >>> write_text_atomically('work_dirs/exp/last_checkpoint', 'work_dirs/exp/epoch_3.pth')
    """
    temporary = temporary_name(path)
    try:
        with open(temporary, 'w') as file:
            file.write(text)
        publish(temporary, path)
    finally:
        if osp.exists(temporary):
            os.unlink(temporary)
