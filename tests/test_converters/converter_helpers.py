"""Test helpers: tiny random-weight models of every library whose checkpoints
mmtwins converts, and the conversion command line as a module.

The architectures are small enough for CPU tests yet keep everything that naming
depends on: several blocks per stage, GSA with and without sub-sampling, LSA.
At 224 x 224 every Twins and DaViT stage map is a multiple of the window size 7,
where all ports compute the same windows.
"""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Dict, Sequence

import timm
import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.models import build_classifier
from mmseg.models.backbones import PCPVT as MMSegPCPVT
from mmseg.models.backbones import SVT as MMSegSVT
from torch import nn

NUM_CLASSES = 5
IMAGE_SIZE = 224

TWINS_ARCHS: Dict[str, Dict[str, list]] = {
    'twins-pcpvt': dict(embed_dims=[16, 32, 32, 64], depths=[2, 1, 1, 2],
                        num_heads=[1, 1, 1, 2], mlp_ratios=[2, 2, 2, 2],
                        sr_ratios=[8, 4, 2, 1]),
    'twins-svt': dict(embed_dims=[16, 32, 32, 64], depths=[2, 1, 2, 2],
                      num_heads=[1, 1, 1, 2], mlp_ratios=[2, 2, 2, 2],
                      sr_ratios=[8, 4, 2, 1]),
}
WINDOW_SIZES = [7, 7, 7, 7]

DAVIT_ARCH = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2])
DAVIT_DIMS = [16, 32, 64, 128]


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fills every parameter and buffer with random values, in eval mode.

    Fresh initialisations have ones and zeros in norms and biases, which would hide
    swapped weight and bias tensors; random values do not.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return model.eval()


def use_official_eps(model: nn.Module) -> nn.Module:
    """Gives every LayerNorm of an OpenMMLab Twins port the official epsilon.

    The official model uses 1e-5 in the patch embeddings and the GSA sub-sampling
    and 1e-6 everywhere else; the ports use one value (not always the configured
    one), which would make their outputs differ by about 1e-5 relative.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            official_1e5 = 'patch_embeds' in name or name.endswith('attn.norm')
            module.eps = 1e-5 if official_1e5 else 1e-6
    return model


def image(batch: int = 2, size: int = IMAGE_SIZE, seed: int = 1) -> torch.Tensor:
    """A reproducible random input batch."""
    return torch.randn(batch, 3, size, size,
                       generator=torch.Generator().manual_seed(seed))


def timm_twins(family: str, num_classes: int = NUM_CLASSES) -> nn.Module:
    """timm's Twins with the tiny arch; its keys are the official ones."""
    arch = TWINS_ARCHS[family]
    name = 'twins_svt_small' if family == 'twins-svt' else 'twins_pcpvt_small'
    extra = dict(wss=WINDOW_SIZES) if family == 'twins-svt' else {}
    return randomize(timm.create_model(
        name, pretrained=False, num_classes=num_classes, **arch, **extra))


def _mm_twins_arch(family: str) -> dict:
    arch = dict(TWINS_ARCHS[family], patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2])
    if family == 'twins-svt':
        arch['window_sizes'] = WINDOW_SIZES
    return arch


def mmpretrain_twins(family: str,
                     norm_after_stage: Sequence[bool] = (False, False, False,
                                                          True)) -> ImageClassifier:
    """mmpretrain's Twins classifier (its ImageNet configs' layout by default)."""
    backbone = dict(
        type='SVT' if family == 'twins-svt' else 'PCPVT',
        arch=_mm_twins_arch(family), qkv_bias=True, norm_after_stage=list(norm_after_stage))
    return randomize(use_official_eps(build_classifier(dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=TWINS_ARCHS[family]['embed_dims'][-1])))))


def mmseg_twins(family: str, norm_after_stage: bool) -> nn.Module:
    """mmseg's Twins backbone (its GSA is an ``nn.MultiheadAttention``)."""
    arch = _mm_twins_arch(family)
    window_sizes = arch.pop('window_sizes', None)
    common = dict(qkv_bias=True, drop_path_rate=0.,
                  norm_after_stage=norm_after_stage)
    if family == 'twins-svt':
        # mmseg spells the argument this way.
        model = MMSegSVT(**arch, windiow_sizes=window_sizes, **common)
    else:
        model = MMSegPCPVT(**arch, **common)
    return randomize(use_official_eps(model))


def timm_davit(num_classes: int = NUM_CLASSES) -> nn.Module:
    """timm's DaViT with the tiny arch (the reference naming)."""
    return randomize(timm.create_model(
        'davit_tiny', pretrained=False, num_classes=num_classes,
        embed_dims=tuple(DAVIT_DIMS), depths=tuple(DAVIT_ARCH['depths']),
        num_heads=tuple(DAVIT_ARCH['num_heads'])))


def mmpretrain_davit(out_indices: Sequence[int] = (3, )) -> nn.Module:
    """mmpretrain's DaViT classifier (out_indices (3,), as its configs)."""
    return randomize(build_classifier(dict(
        type='ImageClassifier',
        backbone=dict(type='DaViT', arch=DAVIT_ARCH, drop_path_rate=0.,
                      out_indices=tuple(out_indices)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=DAVIT_DIMS[-1]))))


def official_davit_state_dict(num_classes: int = NUM_CLASSES,
                              dense: bool = False) -> Dict[str, torch.Tensor]:
    """A random checkpoint with the official DaViT keys, written from the spec.

    No package ships the official DaViT naming, so the keys come from the list in
    ``ARCHITECTURE.md`` section 3: ``patch_embeds.0`` (stem conv 7x7, then norm),
    ``patch_embeds.{i}`` (norm on the previous width, then conv 2x2),
    ``main_blocks.{s}.{b}.{0|1}`` (spatial, channel) with ``cpe.0``, ``norm1``,
    ``attn.qkv``, ``attn.proj``, ``cpe.1``, ``norm2``, ``mlp.fc1|fc2``; ``norms``
    and ``head`` for classifiers, ``norm{i}`` for dense models.
    """
    shapes = {'patch_embeds.0.proj.weight': (DAVIT_DIMS[0], 3, 7, 7),
              'patch_embeds.0.proj.bias': (DAVIT_DIMS[0], ),
              'patch_embeds.0.norm.weight': (DAVIT_DIMS[0], ),
              'patch_embeds.0.norm.bias': (DAVIT_DIMS[0], )}
    for i in range(1, len(DAVIT_DIMS)):
        previous, dims = DAVIT_DIMS[i - 1], DAVIT_DIMS[i]
        shapes.update({f'patch_embeds.{i}.norm.weight': (previous, ),
                       f'patch_embeds.{i}.norm.bias': (previous, ),
                       f'patch_embeds.{i}.proj.weight': (dims, previous, 2, 2),
                       f'patch_embeds.{i}.proj.bias': (dims, )})
    for stage, depth in enumerate(DAVIT_ARCH['depths']):
        dims = DAVIT_DIMS[stage]
        for block in range(depth):
            for kind in (0, 1):
                prefix = f'main_blocks.{stage}.{block}.{kind}.'
                for name, shape in (('cpe.0.proj', (dims, 1, 3, 3)),
                                    ('norm1', None),
                                    ('attn.qkv', (3 * dims, dims)),
                                    ('attn.proj', (dims, dims)),
                                    ('cpe.1.proj', (dims, 1, 3, 3)),
                                    ('norm2', None),
                                    ('mlp.fc1', (4 * dims, dims)),
                                    ('mlp.fc2', (dims, 4 * dims))):
                    out_dims = shape[0] if shape else dims
                    shapes[f'{prefix}{name}.weight'] = shape or (dims, )
                    shapes[f'{prefix}{name}.bias'] = (out_dims, )
    if dense:
        for i, dims in enumerate(DAVIT_DIMS):
            shapes.update({f'norm{i}.weight': (dims, ), f'norm{i}.bias': (dims, )})
    else:
        shapes.update({'norms.weight': (DAVIT_DIMS[-1], ),
                       'norms.bias': (DAVIT_DIMS[-1], ),
                       'head.weight': (num_classes, DAVIT_DIMS[-1]),
                       'head.bias': (num_classes, )})
    generator = torch.Generator().manual_seed(2)
    return {key: torch.randn(shape, generator=generator) * 0.2
            for key, shape in shapes.items()}


def mmtwins_twins(family: str, **kwargs) -> nn.Module:
    """mmtwins' own Twins backbone with the tiny arch (fresh initialisation)."""
    from mmtwins.registry import MODELS
    backbone = 'TwinsSVT' if family == 'twins-svt' else 'TwinsPCPVT'
    return MODELS.build(dict(type=backbone, arch=TWINS_ARCHS[family],
                             **kwargs)).eval()


def mmtwins_twins_classifier(family: str) -> ImageClassifier:
    """An mmpretrain classifier around mmtwins' Twins backbone and neck."""
    from mmpretrain.registry import MODELS
    backbone = 'TwinsSVT' if family == 'twins-svt' else 'TwinsPCPVT'
    dims = TWINS_ARCHS[family]['embed_dims'][-1]
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type=f'mmtwins.{backbone}', arch=TWINS_ARCHS[family]),
        neck=dict(type='mmtwins.NormPoolNeck', in_channels=dims,
                  order='norm_pool', eps=1e-6),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=dims))).eval()


def mmtwins_davit(**kwargs) -> nn.Module:
    """mmtwins' own DaViT backbone with the tiny arch (fresh initialisation)."""
    from mmtwins.registry import MODELS
    return MODELS.build(dict(type='DaViT', arch=dict(
        embed_dims=DAVIT_DIMS, depths=DAVIT_ARCH['depths'],
        num_heads=DAVIT_ARCH['num_heads']), **kwargs)).eval()


def mmtwins_davit_classifier() -> ImageClassifier:
    """An mmpretrain classifier around mmtwins' DaViT backbone and neck."""
    from mmpretrain.registry import MODELS
    arch = dict(embed_dims=DAVIT_DIMS, depths=DAVIT_ARCH['depths'],
                num_heads=DAVIT_ARCH['num_heads'])
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='mmtwins.DaViT', arch=arch),
        neck=dict(type='mmtwins.NormPoolNeck', in_channels=DAVIT_DIMS[-1],
                  order='pool_norm', eps=1e-5),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=DAVIT_DIMS[-1]))).eval()


CLI_PATH = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'tools',
                    'model_converters', 'convert.py')


def load_convert_cli() -> ModuleType:
    """Imports ``tools/model_converters/convert.py`` (not a package) as a module."""
    spec = importlib.util.spec_from_file_location('convert_cli', CLI_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
