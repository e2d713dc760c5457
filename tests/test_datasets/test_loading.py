"""SafeLoadImageFromFile's bound on skipped images holds over a process's data loader workers
and epochs, whatever the workers' start method.

Kept light on imports: ``spawn`` workers import this module to rebuild the dataset."""
import copy
import traceback
from typing import List

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader, Dataset

from mmtwins.datasets import ImageLoadError, SafeLoadImageFromFile


class _Loads(Dataset):
    """Loads ``paths[index]`` with ``loader``; a sample says whether it was skipped."""

    def __init__(self, loader: SafeLoadImageFromFile, paths: List[str]) -> None:
        self.loader = loader
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> bool:
        return self.loader(dict(img_path=self.paths[index])) is None


@pytest.fixture
def good_and_bad(tmp_path) -> List[str]:
    """A readable PNG and a file that is not an image."""
    good, bad = tmp_path / 'good.png', tmp_path / 'bad.png'
    cv2.imwrite(str(good), np.zeros((4, 4, 3), np.uint8))
    bad.write_bytes(b'not an image')
    return [str(good), str(bad)]


def _two_workers(loader: SafeLoadImageFromFile, paths: List[str],
                 start_method: str) -> DataLoader:
    """Two workers, started again each epoch; they take the indices in turn."""
    return DataLoader(_Loads(loader, paths), batch_size=None, num_workers=2,
                      persistent_workers=False, multiprocessing_context=start_method)


def _error_of_an_epoch(data: DataLoader) -> str:
    """The message of the :class:`ImageLoadError` an epoch ends with, '' if none."""
    try:
        for _ in data:
            pass
    except ImageLoadError as error:
        # The re-raised worker error and its traceback form a reference cycle holding the
        # data loader iterator. Freed later by the garbage collector, the iterator stops its
        # workers only after a 5 s join timeout each (PyTorch 2.15, measured); cleared
        # here, it is freed and its workers stopped at once.
        traceback.clear_frames(error.__traceback__)
        return str(error)
    return ''


def test_the_count_holds_across_forked_workers_and_epochs(good_and_bad):
    good, bad = good_and_bad
    loader = SafeLoadImageFromFile(on_error='skip', max_skipped=3)
    data = _two_workers(loader, [bad, bad, good, good], 'fork')  # one bad file a worker
    assert list(data) == [True, True, False, False]
    assert loader.skipped_count.value == 2  # the workers' counts, seen by this process
    assert '4 unreadable images so far, more than max_skipped=3' in _error_of_an_epoch(data)


def test_spawned_workers_start_from_the_count_so_far(good_and_bad):
    """Spawned workers get the dataset pickled: the count must come along, not a copy.

    It starts at two skips in this process, as the workers of an earlier epoch leave it
    (one spawned epoch here: each worker takes seconds to import torch).
    """
    good, bad = good_and_bad
    loader = SafeLoadImageFromFile(on_error='skip', max_skipped=3)
    assert loader(dict(img_path=bad)) is None and loader(dict(img_path=bad)) is None
    data = _two_workers(loader, [bad, bad, good, good], 'spawn')
    assert '4 unreadable images so far, more than max_skipped=3' in _error_of_an_epoch(data)


def test_a_copy_in_the_same_process_counts_into_the_same_total(good_and_bad):
    bad = good_and_bad[1]
    loader = SafeLoadImageFromFile(on_error='skip', max_skipped=1)
    assert loader(dict(img_path=bad)) is None
    with pytest.raises(ImageLoadError, match='2 unreadable images so far'):
        copy.deepcopy(loader)(dict(img_path=bad))


def test_evaluation_pipelines_hold_no_count():
    assert SafeLoadImageFromFile(on_error='raise').skipped_count is None
