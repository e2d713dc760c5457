"""Twins (PCPVT, SVT) checkpoints of other libraries -> the reference naming.

The reference naming is the official one, which timm uses unchanged:
``patch_embeds.{i}.proj|norm``, ``blocks.{i}.{j}.*`` (GSA ``attn.q|kv|proj|sr|norm``,
LSA ``attn.qkv|proj``, ``mlp.fc1|fc2``), ``pos_block.{i}.proj.0``, ``norm``, ``head``,
and ``norm_list.{i}`` for the per-stage norms of dense models.
"""
import re
from typing import Dict, Mapping, Tuple

from torch import Tensor

from .rename import Rule, StateDict, rename_keys, stage_norm_rule

# Names mmpretrain and mmseg share (both come from the same OpenMMLab port).
_OPENMMLAB_RULES: Tuple[Rule, ...] = (
    (r'^patch_embeds\.(\d+)\.projection\.', r'patch_embeds.\1.proj.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
    (r'^position_encodings\.(\d+)\.proj\.', r'pos_block.\1.proj.0.'),
)

#: Backbone renaming rules of each format (keys without any ``backbone.`` prefix).
BODY_RULES: Dict[str, Tuple[Rule, ...]] = {
    'official': (),
    'timm': (),
    'mmpretrain': ((r'^stages\.', 'blocks.'), ) + _OPENMMLAB_RULES,
    'mmseg': ((r'^layers\.', 'blocks.'),
              (r'\.attn\.attn\.out_proj\.', '.attn.proj.')) + _OPENMMLAB_RULES,
}

#: mmpretrain's classifier head ``head.fc`` is the reference's plain ``head``.
HEAD_RULE: Rule = (r'^head\.fc\.', 'head.')

_IN_PROJ = re.compile(r'^(.*)\.attn\.attn\.in_proj_(weight|bias)$')


def split_in_proj(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Splits mmseg's ``nn.MultiheadAttention`` input projection back into q and kv.

    mmseg runs GSA through ``nn.MultiheadAttention``, whose ``in_proj`` stacks the
    query, key and value projections; the official GSA has ``q`` (C rows) and
    ``kv`` (2C rows: keys then values), so the first third is ``q``, the rest ``kv``.

    Args:
        state_dict: mmseg Twins backbone keys.

    Returns:
        A new dict where each ``*.attn.attn.in_proj_weight|bias`` is replaced by
        ``*.attn.q.weight|bias`` and ``*.attn.kv.weight|bias``.

    Example:
        >>> import torch
        >>> q_and_kv = split_in_proj({'layers.0.1.attn.attn.in_proj_bias': torch.zeros(96)})
        >>> {key: tuple(value.shape) for key, value in q_and_kv.items()}
        {'layers.0.1.attn.q.bias': (32,), 'layers.0.1.attn.kv.bias': (64,)}
    """
    converted: StateDict = {}
    for key, value in state_dict.items():
        match = _IN_PROJ.match(key)
        if match is None:
            converted[key] = value
            continue
        block, param = match.groups()
        channels = value.shape[0] // 3
        converted[f'{block}.attn.q.{param}'] = value[:channels].clone()
        converted[f'{block}.attn.kv.{param}'] = value[channels:].clone()
    return converted


def twins_to_reference(body: Mapping[str, Tensor], fmt: str) -> StateDict:
    """Renames the backbone keys of a Twins checkpoint to the reference naming.

    Args:
        body: Backbone keys, any ``backbone.`` prefix already removed (official
            and timm files keep their ``norm`` and ``head`` here too).
        fmt: One of ``'official'``, ``'timm'``, ``'mmpretrain'``, ``'mmseg'``.

    Returns:
        The same tensors under reference names. mmpretrain's
        ``norm_after_stage{i}`` become ``norm`` when only the last stage has one
        (a classifier) and ``norm_list.{i}`` otherwise (a dense backbone).

    Example:
        >>> list(twins_to_reference({'stages.0.0.ffn.layers.1.bias': None}, 'mmpretrain'))
        ['blocks.0.0.mlp.fc2.bias']
    """
    rules = BODY_RULES[fmt]
    if fmt == 'mmseg':
        body = split_in_proj(body)
    elif fmt == 'mmpretrain':
        rules += (stage_norm_rule(body, r'^norm_after_stage(\d+)\.',
                                  r'^patch_embeds\.(\d+)\.', 'norm.',
                                  r'norm_list.\1.'), )
    return rename_keys(body, rules)
