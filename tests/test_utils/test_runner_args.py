"""release_process_group: the tools' exit after a distributed run."""
import torch.distributed as dist

from mmtwins.utils import release_process_group


def test_destroys_the_process_group_and_is_a_no_op_without_one(tmp_path):
    release_process_group()  # none yet: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
                            world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()
