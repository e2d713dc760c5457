"""Tiny architectures and builders shared by the model tests."""
from typing import Optional

import torch
from torch import nn

import mmtwins.models  # noqa: F401  (registers the models)
from mmtwins.registry import MODELS

# Neck settings of each family's official classifier.
NECKS = {
    'TwinsPCPVT': dict(order='norm_pool', eps=1e-6),
    'TwinsSVT': dict(order='norm_pool', eps=1e-6),
    'DaViT': dict(order='pool_norm', eps=1e-5),
}


def build_classifier(backbone: dict,
                     in_channels: int,
                     num_classes: int = 1000,
                     device: Optional[str] = None) -> nn.Module:
    """An mmpretrain ImageClassifier around one of our backbones, as configs build it.

    Args:
        backbone: Backbone config with an unprefixed mmtwins ``type``.
        in_channels: Channels of the last stage.
        num_classes: Classes of the linear head.
        device: ``'meta'`` to build without allocating (counting, or loading
            with ``assign=True``).
    """
    cfg = dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(backbone, type=f'mmtwins.{backbone["type"]}'),
        neck=dict(
            type='mmtwins.NormPoolNeck',
            in_channels=in_channels,
            **NECKS[backbone['type']]),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels,
            loss=dict(type='CrossEntropyLoss')))
    with torch.device(device or 'cpu'):
        return MODELS.build(cfg)


def build_backbone(**cfg) -> nn.Module:
    """A backbone from its config (``type`` unprefixed, in the mmtwins scope)."""
    return MODELS.build(cfg)


def num_params(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


def random_projection_loss(outputs) -> torch.Tensor:
    """A scalar that depends on every output element (a plain sum would not:
    a LayerNorm output sums to its bias whatever its input)."""
    generator = torch.Generator().manual_seed(0)
    return sum((out * torch.randn(out.shape, generator=generator)).sum()
               for out in outputs)
