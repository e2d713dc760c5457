"""Image loading that names the file it cannot read, and skips such files during training.

mmcv's ``LoadImageFromFile`` fails on a file that does not decode (truncated, corrupt, not
an image) with a bare ``AssertionError`` or an OpenCV error; ``ignore_empty=True`` only helps
with missing files. A single bad file then ends a training run of days.
"""
import logging
import multiprocessing
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

from mmtwins.registry import TRANSFORMS

_ON_ERROR = ('raise', 'skip')


class ImageLoadError(RuntimeError):
    """An image file that is missing or does not decode."""


class SharedCount:
    """A count that a process and all its data loader workers add to, across epochs.

    Each data loader worker holds its own copy of the dataset and its pipeline, and workers
    that are not persistent start again, with a fresh copy, every epoch: a plain attribute
    counts one worker's epoch. This one lives in shared memory, created where the dataset
    is built (the training process), and reaches the workers with the dataset: inherited
    by ``fork``, passed by ``spawn`` and ``forkserver`` as the workers start.

    Example:
        >>> count = SharedCount()
        >>> count.add_one(), count.add_one()
        (1, 2)
    """

    def __init__(self) -> None:
        # The spawn context's lock can be handed to workers of every start method; the
        # default (fork) context's cannot reach spawned workers ("A SemLock created in a
        # fork context is being shared with a process in a spawn context"). Being a named
        # semaphore, it starts multiprocessing's resource tracker, which removes it should
        # this process be killed.
        self._value = multiprocessing.get_context('spawn').Value('q', 0)

    @property
    def value(self) -> int:
        """The count so far."""
        return self._value.value

    def add_one(self) -> int:
        """Adds one, atomically across processes; returns the new count."""
        with self._value.get_lock():
            self._value.value += 1
            return self._value.value

    def __deepcopy__(self, memo: dict) -> 'SharedCount':
        # A copy in the same process counts into the same total; copying the shared value
        # itself fails (multiprocessing shares it only with a process being started).
        return self


@TRANSFORMS.register_module()
class SafeLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` with clear errors, or bounded skipping, on unreadable images.

    Takes the arguments of ``mmcv.transforms.LoadImageFromFile``. With the default
    ``color_type='color'`` every image comes out as 3-channel 8-bit BGR: grayscale is
    replicated, 16-bit is scaled down, the alpha channel of RGBA is dropped.

    Args:
        on_error: ``'raise'`` (evaluation: an :class:`ImageLoadError` naming the file) or
            ``'skip'`` (training: a warning, and ``None``, which makes an MMEngine dataset
            draw another sample).
        max_skipped: With ``'skip'``, the number of unreadable images tolerated; one more
            raises an :class:`ImageLoadError`. Counted over the whole life of the process
            that builds the pipeline (one training process, one rank), all its data loader
            workers and epochs together (:class:`SharedCount`); each failed attempt counts,
            also a redrawn sample that lands on an unreadable file again.
        **kwargs: The arguments of ``mmcv.transforms.LoadImageFromFile``.

    Example:
        >>> train_pipeline = [
        ...     dict(type='mmtwins.SafeLoadImageFromFile', on_error='skip', max_skipped=100),
        ...     dict(type='RandomResizedCrop', scale=224)]
    """

    def __init__(self, on_error: str = 'raise', max_skipped: int = 100, **kwargs) -> None:
        if on_error not in _ON_ERROR:
            raise ValueError(f'on_error must be one of {_ON_ERROR}, not {on_error!r}')
        if max_skipped < 0:
            raise ValueError(f'max_skipped must be >= 0, not {max_skipped}')
        super().__init__(**kwargs)
        self.on_error = on_error
        self.max_skipped = max_skipped
        # Only skipping counts; evaluation pipelines and inferencers need no shared memory.
        self.skipped_count = SharedCount() if on_error == 'skip' else None

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results and 'img' in results:
            # Inferencers (mmpretrain's) decode images themselves and drop the loading step
            # by the type name 'LoadImageFromFile', which is not this one.
            return results
        filename = results['img_path']
        try:
            loaded = super().transform(results)
        except Exception as error:  # mmcv and OpenCV raise assorted types for one cause
            return self._unreadable(filename, f'{type(error).__name__}: {error}')
        if loaded is None:  # a missing file with ignore_empty=True
            return self._unreadable(filename, 'file not found')
        return loaded

    def _unreadable(self, filename: str, reason: str) -> None:
        message = f'cannot load image {filename!r} ({reason.strip()})'
        if self.on_error == 'raise':
            raise ImageLoadError(message)
        count = self.skipped_count.add_one()
        if count > self.max_skipped:
            raise ImageLoadError(
                f'{message}; {count} unreadable images so far, more than '
                f'max_skipped={self.max_skipped} (counted over this process, all its data '
                f'loader workers and epochs; a warning named each)')
        print_log(f'{message}: skipped, another sample is drawn '
                  f'({count} skipped of at most {self.max_skipped})',
                  logger='current', level=logging.WARNING)
        return None

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, on_error={self.on_error!r}, '
                f'max_skipped={self.max_skipped})')
