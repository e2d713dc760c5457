"""mmtwins: an OpenMMLab-style toolbox for the Twins and DaViT vision transformers."""
from .apis import get_model, inference_model, list_models
from .version import __version__

__all__ = ['__version__', 'get_model', 'inference_model', 'list_models']
