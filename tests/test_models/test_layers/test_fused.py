"""oneDNN-fused linear layers: the plain results and gradients, used only where valid."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmtwins.models.layers import Mlp, TransformerBlock, WindowAttention, fused
from mmtwins.models.layers import ResidualDropPath
from mmtwins.models.layers.fused import can_fuse, fused_linear


def plain_linear(x, weight, bias, gelu=False, residual=None):
    out = F.linear(x, weight, bias)
    out = F.gelu(out) if gelu else out
    return out if residual is None else residual + out


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('kind', [dict(), dict(gelu=True), dict(residual=True)])
def test_fused_linear_matches_plain_values_and_gradients(bias, kind):
    torch.manual_seed(0)
    layer = nn.Linear(16, 24, bias=bias)
    # A non-contiguous input, as the heads merged by a transpose are.
    x = torch.randn(2, 16, 5, 7).permute(0, 2, 3, 1).requires_grad_()
    residual = torch.randn(2, 5, 7, 24, requires_grad=True) if 'residual' in kind else None
    options = dict(gelu=kind.get('gelu', False), residual=residual)
    with torch.inference_mode():
        torch.testing.assert_close(fused_linear(x, layer.weight, layer.bias, **options),
                                   plain_linear(x, layer.weight, layer.bias, **options))
    grad = torch.randn(2, 5, 7, 24)
    inputs = [t for t in (x, layer.weight, layer.bias, residual) if t is not None]
    fused = torch.autograd.grad(fused_linear(x, layer.weight, layer.bias, **options),
                                inputs, grad)
    plain = torch.autograd.grad(plain_linear(x, layer.weight, layer.bias, **options),
                                inputs, grad)
    for fused_grad, plain_grad in zip(fused, plain):
        torch.testing.assert_close(fused_grad, plain_grad)


@pytest.mark.parametrize('kind', [dict(), dict(gelu=True), dict(residual=True)])
def test_fused_linear_differentiates_twice_as_plain(kind):
    """A gradient penalty (``create_graph=True``) gets the plain second derivatives; the
    GELU's come through its pre-activation, recomputed in a recorded backward."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 24)
    x = torch.randn(3, 16, requires_grad=True)
    residual = torch.randn(3, 24, requires_grad=True) if 'residual' in kind else None
    options = dict(gelu=kind.get('gelu', False), residual=residual)
    inputs = [t for t in (x, layer.weight, layer.bias, residual) if t is not None]

    def penalty_grads(linear):
        out = linear(x, layer.weight, layer.bias, **options)
        grad_x, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(grad_x.pow(2).sum(), inputs, allow_unused=True)

    for fused_grad, plain_grad in zip(penalty_grads(fused_linear), penalty_grads(plain_linear)):
        torch.testing.assert_close(fused_grad, plain_grad)


def test_torch_func_transforms_take_the_plain_path(monkeypatch):
    """torch.func.grad through a block: the oneDNN kernel is not called inside the
    transform (its autograd function has no functorch rules), and the gradients are
    autograd's."""
    torch.manual_seed(0)
    block = TransformerBlock(8, WindowAttention(8, 2, window_size=3), mlp_ratio=3,
                             with_cpe=True)
    x = torch.randn(2, 6, 9, 8)
    params = dict(block.named_parameters())
    expected = torch.autograd.grad(block(x).sum(), list(params.values()))
    monkeypatch.setattr(fused, '_onednn_linear', None)  # fails if called

    def loss(params):
        return torch.func.functional_call(block, params, (x, )).sum()

    grads = torch.func.grad(loss)({name: p.detach() for name, p in params.items()})
    for name, grad in zip(params, expected):
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_fused_linear_refuses_gelu_and_residual_together():
    with pytest.raises(ValueError, match='not both'):
        fused_linear(torch.rand(2, 4), torch.rand(4, 4), gelu=True, residual=torch.rand(2, 4))


def test_can_fuse_only_fp32_cpu_outside_autocast_export_and_compiled_autograd():
    x = torch.randn(2, 8)
    assert can_fuse(x) and not can_fuse(x.double())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not can_fuse(x)
    compiled = torch.compile(can_fuse, backend='eager', fullgraph=True)
    assert not compiled(x)
    with torch.no_grad():
        assert compiled(x)

    class CanFuse(nn.Module):

        def forward(self, x):
            return x + 1 if can_fuse(x) else x

    exported = torch.export.export(CanFuse(), (x, )).module()
    torch.testing.assert_close(exported(x), x)


@pytest.mark.parametrize('kind', [dict(), dict(gelu=True), dict(residual=True)])
def test_onednn_linear_operator_registration(kind):
    x, weight, bias = torch.randn(2, 3, 8), torch.randn(6, 8), torch.randn(6)
    residual = torch.randn(2, 3, 6) if 'residual' in kind else None
    torch.library.opcheck(fused._onednn_linear_op,
                          (x, weight, bias, kind.get('gelu', False), residual))


@pytest.mark.parametrize('drop_path_rate', [0., 0.3])
def test_compiled_block_fuses_in_inference_and_trains_plain(drop_path_rate):
    """Compiled inference runs the products as ``mmtwins::onednn_linear``; compiled
    training as plain linear layers; both with the eager values and gradients."""
    torch.manual_seed(0)
    block = TransformerBlock(8, WindowAttention(8, 2, window_size=3), mlp_ratio=3,
                             drop_path_rate=drop_path_rate, with_cpe=True)
    x = torch.randn(2, 6, 9, 8)
    graphs = []

    def record(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    def train_step(module):
        block.zero_grad()
        torch.manual_seed(1)
        out = module.train()(x)
        out.sum().backward()
        return out, [param.grad.clone() for param in block.parameters()]

    def ops():
        found = {str(node.target) for graph in graphs for node in graph.graph.nodes}
        graphs.clear()
        return found

    backend = torch._dynamo.backends.common.aot_autograd(
        fw_compiler=record, bw_compiler=record)
    compiled = torch.compile(block, backend=backend, fullgraph=True)
    with torch.inference_mode():
        torch.testing.assert_close(compiled.eval()(x), block(x))
    assert 'mmtwins.onednn_linear.default' in ops()
    torch.testing.assert_close(train_step(compiled), train_step(block))
    assert not any('linear_pointwise' in op or 'onednn' in op for op in ops())


@pytest.mark.parametrize('height, width', [(6, 9), (5, 7)])  # padded windows, or not
@pytest.mark.parametrize('drop_path_rate', [0., 0.3])
def test_block_fused_paths_equal_the_plain_one(height, width, drop_path_rate,
                                               monkeypatch):
    torch.manual_seed(0)
    block = TransformerBlock(8, WindowAttention(8, 2, window_size=3), mlp_ratio=3,
                             drop_path_rate=drop_path_rate, with_cpe=True)
    x = torch.randn(2, height, width, 8)

    def run(mode: str):
        torch.manual_seed(1)
        block.zero_grad()
        if mode == 'inference':
            with torch.inference_mode():
                return block.eval()(x), []
        out = block.train()(x)
        out.sum().backward()
        return out, [param.grad for param in block.parameters()]

    fused_runs = [run(mode) for mode in ('inference', 'train')]
    monkeypatch.setattr(fused, '_LINEAR_POINTWISE', None)  # the plain path
    for (fused_out, fused_grads), mode in zip(fused_runs, ('inference', 'train')):
        plain_out, plain_grads = run(mode)
        torch.testing.assert_close(fused_out, plain_out)
        for fused_grad, plain_grad in zip(fused_grads, plain_grads):
            torch.testing.assert_close(fused_grad, plain_grad)


def test_mlp_adds_the_residual_after_its_dropout():
    torch.manual_seed(0)
    mlp, x, residual = Mlp(4, 8, drop=0.5).train(), torch.randn(3, 4), torch.randn(3, 4)
    torch.manual_seed(1)
    out = mlp(x, residual=residual)
    torch.manual_seed(1)
    torch.testing.assert_close(out, residual + mlp(x))


def test_residual_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    drop = ResidualDropPath(0.25).train()
    out = drop(torch.zeros(64, 3, 5), torch.ones(64, 3, 5))
    per_sample = out.flatten(1)
    torch.testing.assert_close(per_sample.unique(), torch.tensor([0., 4 / 3]))
    assert (per_sample == per_sample[:, :1]).all()
    torch.testing.assert_close(drop.eval()(torch.ones(2), torch.ones(2)), torch.full((2, ), 2.))
