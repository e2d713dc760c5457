"""Fixtures shared by the tests."""
import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from mmengine.registry import DefaultScope

from tests.helpers import write_colour_classes


@contextmanager
def _restored_default_scope() -> Iterator[None]:
    """Restores MMEngine's default scope as it was, whatever the block sets.

    MMEngine keeps the current default scope in a process-wide registry of instances
    (every Runner and inferencer adds one, e.g. scope 'mmengine' for a plain Runner), and
    unprefixed names then resolve in that scope. MMEngine's own
    ``DefaultScope.overwrite_default_scope`` restores that registry the same way.
    """
    saved = copy.deepcopy(DefaultScope._instance_dict)
    try:
        yield
    finally:
        DefaultScope._instance_dict = saved


@pytest.fixture(autouse=True, scope='module')
def module_default_scope():
    """Keeps module-scoped fixtures (trained runners) from leaking into other modules."""
    with _restored_default_scope():
        yield


@pytest.fixture(autouse=True)
def test_default_scope():
    """Keeps the default scope one test sets from leaking into the next."""
    with _restored_default_scope():
        yield


@pytest.fixture(scope='session')
def colour_dataset(tmp_path_factory) -> Path:
    """``train/`` (8 images a class), ``val/`` (6 a class) of :func:`write_colour_classes`."""
    root = tmp_path_factory.mktemp('colour_dataset')
    write_colour_classes(root / 'train', 8, seed=0)
    write_colour_classes(root / 'val', 6, seed=1)
    return root
