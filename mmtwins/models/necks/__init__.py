"""Necks of mmtwins."""
from .norm_pool import NormPoolNeck

__all__ = ['NormPoolNeck']
