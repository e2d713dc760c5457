"""Backbones, necks and layers of mmtwins, registered in ``mmtwins.registry.MODELS``."""
