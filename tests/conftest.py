"""Fixtures shared by the tests."""
from pathlib import Path

import pytest

from tests.helpers import write_colour_classes


@pytest.fixture(scope='session')
def colour_dataset(tmp_path_factory) -> Path:
    """``train/`` (8 images a class), ``val/`` (6 a class) of :func:`write_colour_classes`."""
    root = tmp_path_factory.mktemp('colour_dataset')
    write_colour_classes(root / 'train', 8, seed=0)
    write_colour_classes(root / 'val', 6, seed=1)
    return root
