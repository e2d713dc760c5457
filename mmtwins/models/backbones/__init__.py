"""Backbones of mmtwins."""
from .davit import DaViT
from .twins import TwinsPCPVT, TwinsSVT

__all__ = ['DaViT', 'TwinsPCPVT', 'TwinsSVT']
