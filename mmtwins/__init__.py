"""mmtwins: an OpenMMLab-style toolbox for the Twins and DaViT vision transformers."""
from .version import __version__

__all__ = ['__version__']
