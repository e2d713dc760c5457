"""Capturing and restoring the global random number generators a training run draws from.

The data augmentations draw from NumPy's and Python's global generators, dropout, drop path
and the data loaders from torch's. A run resumed from a checkpoint continues exactly only if
all of them continue from where the checkpoint was taken.

The states hold only what ``torch.load(weights_only=True)`` and the runner checkpoint
allowlist accept: tuples, ints, floats, strings, a NumPy ``uint32`` array and ByteTensors.
"""
import random
from typing import Any, Dict

import numpy as np
import torch

RandomStates = Dict[str, Any]


def capture_random_states() -> RandomStates:
    """The states of Python's, NumPy's and torch's global generators (CUDA ones too if any).

    Returns:
        A dict for :func:`restore_random_states`.

    Example:
        >>> states = capture_random_states()
        >>> first = np.random.rand()
        >>> restore_random_states(states)
        >>> np.random.rand() == first
        True
    """
    states = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['torch_cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: RandomStates) -> None:
    """Sets the global generators back to states captured by :func:`capture_random_states`.

    Args:
        states: What :func:`capture_random_states` returned, possibly through a checkpoint.

    Example:
        >>> from mmtwins.converters import read_checkpoint
        >>> restore_random_states(read_checkpoint('epoch_3.pth')['random_states'])  # doctest: +SKIP
    """
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if 'torch_cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['torch_cuda'])
