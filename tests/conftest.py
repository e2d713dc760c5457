"""Fixtures shared by the tests."""
import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from mmengine.registry import DefaultScope

from tests.helpers import TINY_PCPVT, TINY_SVT, write_colour_classes
from tests.test_tools.detection_helpers import (DETECTOR_EPOCHS, TRAINED_CONFIGS, train_detector,
                                                write_coco)


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


@pytest.fixture
def torch_compile_calls(monkeypatch):
    """The keyword arguments of each ``torch.compile`` call; the function runs uncompiled."""
    calls = []

    def record(function, **kwargs):
        calls.append(kwargs)
        return function

    monkeypatch.setattr(torch, 'compile', record)
    return calls


@pytest.fixture(scope='session')
def colour_dataset(tmp_path_factory) -> Path:
    """``train/`` (8 images a class), ``val/`` (6 a class) of :func:`write_colour_classes`."""
    root = tmp_path_factory.mktemp('colour_dataset')
    write_colour_classes(root / 'train', 8, seed=0)
    write_colour_classes(root / 'val', 6, seed=1)
    return root


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> Path:
    """The ``coco`` folder of :func:`~tests.test_tools.detection_helpers.write_coco`."""
    return write_coco(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='session')
def trained_detectors(tiny_coco, tmp_path_factory) -> dict:
    """A tiny Mask R-CNN (Twins-SVT) and RetinaNet (Twins-PCPVT) trained with tools/train.py.

    Session-scoped: the detection tool and inference tests share them (a few minutes).
    """
    archs = {'mask-rcnn': TINY_SVT, 'retinanet': TINY_PCPVT}
    return {kind: train_detector(config, archs[kind], tiny_coco,
                                 tmp_path_factory.mktemp(kind), DETECTOR_EPOCHS)
            for kind, config in TRAINED_CONFIGS.items()}
