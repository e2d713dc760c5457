"""compile_model: inductor options merged in, token maps kept in their layout."""
import re

import torch
from torch._dynamo.utils import counters
from torch._inductor.utils import run_and_get_code

from mmtwins.models.layers import WindowAttention
from mmtwins.utils import INDUCTOR_OPTIONS, compile_model
from tests.test_models.helpers import build_classifier

EMBED_DIMS = (16, 32)
CHANNELS = (3, ) + EMBED_DIMS  # of the image and the token maps


def transposed_token_buffers(code: str):
    """4-D buffers of the generated code stored with dim 1 fastest that are not NCHW.

    A channels_last NCHW buffer (an image, a convolution's weight, input or output)
    has stride 1 on its channels, dim 1. A ``(B, H, W, C)`` token map given
    channels_last strides (inductor's layout optimisation, see
    ``mmtwins/utils/compile.py``) has stride 1 on H: the test input's map heights
    (10, 5) are none of the channel counts.
    """
    buffers = re.findall(r'empty_strided_cpu\(\((\d+), (\d+), (\d+), (\d+)\), '
                         r'\((\d+), (\d+), (\d+), (\d+)\)', code)
    return [(shape, strides) for *shape, strides in
            ((*map(int, match[:4]), tuple(map(int, match[4:]))) for match in buffers)
            if strides[1] == 1 and shape[1] not in CHANNELS]


def test_compiled_pcpvt_keeps_token_maps_channels_last():
    # PCPVT has every kind of convolution on token maps (patch embedding, PEG, GSA's
    # sub-sampling). Plain torch.compile on PyTorch 2.15 stores its LayerNorm outputs
    # transposed (this check finds 6 such buffers); compile_model none.
    torch._dynamo.reset()
    arch = dict(embed_dims=EMBED_DIMS, depths=(2, 1), num_heads=(1, 2),
                mlp_ratios=(2, 2), sr_ratios=(2, 1))
    model = build_classifier(dict(type='TwinsPCPVT', arch=arch), 32, num_classes=10)
    model.eval()
    x = torch.randn(2, 3, 40, 44)
    with torch.no_grad():
        logits, codes = run_and_get_code(compile_model(model), x)
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)
    assert transposed_token_buffers('\n'.join(codes)) == []


def test_merges_options_mode_and_caller_options(torch_compile_calls):
    compile_model(torch.nn.Identity())
    compile_model(torch.nn.Identity(), mode='max-autotune-no-cudagraphs', fullgraph=True)
    compile_model(torch.nn.Identity(), options=dict(layout_optimization=True), dynamic=None)
    assert torch_compile_calls == [
        dict(dynamic=False, options=INDUCTOR_OPTIONS),
        dict(dynamic=False, options=dict(max_autotune=True, coordinate_descent_tuning=True,
                                         **INDUCTOR_OPTIONS), fullgraph=True),
        dict(dynamic=None, options=dict(layout_optimization=True)),
    ]


def test_other_backends_get_the_arguments_unchanged_but_static_shapes(torch_compile_calls):
    compile_model(torch.nn.Identity(), backend='aot_eager', mode='default')
    assert torch_compile_calls == [dict(backend='aot_eager', mode='default', dynamic=False)]


def test_each_input_size_compiles_a_static_graph():
    # Padded windows: with symbolic sizes, their floor divisions are what sympy chokes on.
    torch._dynamo.reset()
    counters.clear()
    attention = WindowAttention(16, num_heads=2, window_size=7).eval()
    compiled = compile_model(attention)
    with torch.no_grad():
        for height, width in ((9, 12), (16, 11), (20, 25), (9, 12)):
            tokens = torch.randn(2, height, width, 16)
            torch.testing.assert_close(compiled(tokens), attention(tokens),
                                       rtol=1e-4, atol=1e-5)
    # One per size; with symbolic sizes the second size's graph would serve the third.
    assert counters['stats']['unique_graphs'] == 3
