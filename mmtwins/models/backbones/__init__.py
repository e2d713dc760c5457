"""Backbones of mmtwins."""
from .base_backbone import PyramidBackbone
from .davit import DaViT
from .twins import TwinsPCPVT, TwinsSVT

__all__ = ['DaViT', 'PyramidBackbone', 'TwinsPCPVT', 'TwinsSVT']
