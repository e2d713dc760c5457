"""The one trusted path for loading the runner checkpoints that mmtwins writes.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, and MMEngine 0.10.7 cannot
load its own runner checkpoints then: they pickle the message hub's ``HistoryBuffer`` objects,
NumPy arrays and scalars, and references to ``HistoryBuffer`` methods through
``builtins.getattr`` (``UnpicklingError ... numpy._core.multiarray.scalar``), so resume and
``load_from`` break.

Rather than switching the check off (``weights_only=False`` or the global
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), runner checkpoints are still loaded with
``weights_only=True``, inside :func:`trusted_runner_checkpoints`, which allows exactly the
objects those files contain. ``getattr`` in particular is replaced by a version that resolves
nothing but the statistics methods of ``HistoryBuffer``, so no pickled payload can reach
arbitrary attributes. :func:`mmtwins.converters.read_checkpoint`, the one reader of
checkpoint files in mmtwins, reads every file this way: a file from elsewhere holding any
other pickled object is refused.

Example:
    >>> with trusted_runner_checkpoints():
    ...     checkpoint = torch.load('work_dirs/exp/epoch_1.pth',
    ...                             weights_only=True)  # doctest: +SKIP
    >>> sorted(checkpoint)  # doctest: +SKIP
    ['message_hub', 'meta', 'optimizer', 'param_schedulers', 'state_dict']
"""
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# The statistics methods that HistoryBuffer instances keep references to.
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner: Any, name: str) -> Callable:
    """A ``getattr`` restricted to the statistics methods of ``HistoryBuffer``."""
    if owner is not HistoryBuffer or name not in _HISTORY_BUFFER_METHODS:
        raise torch.serialization.pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}): a runner checkpoint only '
            f'references HistoryBuffer.{{{", ".join(_HISTORY_BUFFER_METHODS)}}}')
    return getattr(owner, name)


def _numpy_pickle_globals() -> List[Any]:
    """The callables and types NumPy pickles arrays and scalars with, for this NumPy."""
    array_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    scalar_reconstruct = np.float64(0).__reduce__()[0]
    dtype_types = [type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'OV']
    return [array_reconstruct, scalar_reconstruct, np.ndarray, np.dtype, *dtype_types]


RUNNER_CHECKPOINT_GLOBALS: List[Union[Any, Tuple[Any, str]]] = [
    HistoryBuffer,
    (_history_buffer_method, 'builtins.getattr'),
    *_numpy_pickle_globals(),
]


@contextmanager
def trusted_runner_checkpoints() -> Iterator[None]:
    """Allows ``torch.load(..., weights_only=True)`` to read MMEngine runner checkpoints.

    The allowance is scoped to the ``with`` block (``torch.serialization.safe_globals``),
    never global.
    """
    with torch.serialization.safe_globals(RUNNER_CHECKPOINT_GLOBALS):
        yield

