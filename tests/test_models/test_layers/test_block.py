"""TransformerBlock: the pre-norm formula, one DropPath per branch, checkpointing."""
import pytest
import torch

from mmtwins.models.layers import TransformerBlock, WindowAttention, run_block


def make_block(**options):
    torch.manual_seed(0)
    return TransformerBlock(8, WindowAttention(8, 2, window_size=3), mlp_ratio=2,
                            **options)


@pytest.mark.parametrize('with_cpe', [False, True])
def test_formula(with_cpe):
    block = make_block(norm_eps=1e-6, with_cpe=with_cpe).eval()
    x = torch.randn(2, 5, 4, 8)
    y = block.cpe1(x) if with_cpe else x
    y = y + block.attn(block.norm1(y))
    y = block.cpe2(y) if with_cpe else y
    y = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x), y)
    assert block.norm1.eps == 1e-6
    names = {name.split('.')[0] for name, _ in block.named_parameters()}
    assert names == ({'cpe1', 'cpe2'} if with_cpe else set()) | {'norm1', 'attn', 'norm2', 'mlp'}


def test_one_drop_path_per_residual_branch():
    block = make_block(drop_path_rate=0.5).train()
    calls = []
    block.drop_path.register_forward_hook(lambda *args: calls.append(1))
    block(torch.randn(4, 3, 3, 8))
    assert len(calls) == 2
    assert isinstance(make_block().drop_path, torch.nn.Identity)


def test_run_block_checkpoints_only_when_asked_and_recording():
    block = make_block()
    x = torch.randn(2, 3, 3, 8, requires_grad=True)
    out = run_block(block, x, with_cp=True)
    assert out.grad_fn is not None
    torch.testing.assert_close(out, block(x))
    with torch.no_grad():
        torch.testing.assert_close(run_block(block, x, with_cp=True), block(x))
