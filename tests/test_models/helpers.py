"""Tiny architectures and builders shared by the model tests."""
from typing import Callable, Dict, Optional

import timm
import torch
from torch import Tensor, nn

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


def perturbed_timm_model(name: str) -> nn.Module:
    """A timm model with random weights, in eval mode, its biases and norms perturbed so
    that a swapped or missed bias or norm in a key mapping cannot go unnoticed."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def converted_classifier(reference: nn.Module,
                         backbone: dict,
                         in_channels: int,
                         to_mmtwins: Callable[[Dict[str, Tensor]], Dict[str, Tensor]]
                         ) -> nn.Module:
    """Our classifier carrying ``reference``'s weights (shared, not copied), in eval mode.

    Args:
        reference: A timm model.
        backbone: Our backbone's config, as for :func:`build_classifier`.
        in_channels: Channels of the last stage.
        to_mmtwins: The family's reference-to-mmtwins key mapping.
    """
    model = build_classifier(backbone, in_channels, device='meta')
    model.load_state_dict(to_mmtwins(reference.state_dict()), strict=True, assign=True)
    return model.eval()
