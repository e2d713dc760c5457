"""Backbones, necks and layers of mmtwins, registered in ``mmtwins.registry.MODELS``."""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
