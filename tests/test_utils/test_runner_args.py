"""release_process_group: the tools' exit after a distributed run."""
import gc
import weakref

import torch.distributed as dist

from mmtwins.utils import release_process_group


def test_destroys_the_process_group_and_is_a_no_op_without_one(tmp_path):
    release_process_group()  # none yet: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()


class _Cycle:
    """Holds itself, as a finished runner does through its hooks."""

    def __init__(self):
        self.itself = self


def test_frees_objects_in_reference_cycles_before_destroying(tmp_path):
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    gc.disable()  # no automatic collection: only release_process_group's
    try:
        left_over = weakref.ref(_Cycle())
        assert left_over() is not None
        release_process_group()
        assert left_over() is None
    finally:
        gc.enable()
    assert not dist.is_initialized()
