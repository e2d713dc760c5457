"""Checkpoint-format converters: any Twins or DaViT weight file to mmtwins keys.

Every conversion goes through a reference naming per family (official == timm for
Twins, timm for DaViT): :func:`detect_format` reads the family and format from the
keys, :func:`to_reference` renames foreign keys to the reference, and
``mmtwins.converters.reference`` maps the reference onto mmtwins' own modules.
"""
from .api import (convert_to_mmtwins, load_pretrained, to_mmtwins_checkpoint,
                  to_reference)
from .checkpoint import (CheckpointError, LoadReport, load_into, load_pretrained_state_dict,
                         read_checkpoint, save_checkpoint_atomically, unwrap_state_dict)
from .davit import MMPRETRAIN_NORM_CAVEAT
from .formats import FAMILIES, FORMATS, detect_format
from .rename import BACKBONE_PREFIX
from .trusted_checkpoint import RUNNER_CHECKPOINT_GLOBALS, trusted_runner_checkpoints

__all__ = [
    'BACKBONE_PREFIX', 'FAMILIES', 'FORMATS', 'MMPRETRAIN_NORM_CAVEAT', 'CheckpointError',
    'LoadReport', 'RUNNER_CHECKPOINT_GLOBALS',
    'convert_to_mmtwins', 'detect_format', 'load_into', 'load_pretrained',
    'load_pretrained_state_dict', 'read_checkpoint', 'save_checkpoint_atomically',
    'to_mmtwins_checkpoint', 'to_reference', 'trusted_runner_checkpoints', 'unwrap_state_dict'
]
