"""Reference checkpoint keys (official == timm for Twins, timm for DaViT) -> mmtwins.

The models own this last step of every conversion, so the key names below follow
the modules in ``mmtwins.models``. Tensors are passed through untouched except
Twins' GSA ``q`` and ``kv``, which mmtwins stores fused as ``qkv`` (q rows first,
then k, then v: the order of ``torch.cat([q, kv])``).

A classifier checkpoint maps to ``backbone.*``, ``neck.*`` (its final norm) and, if it
has a head, ``head.fc.*``; a dense one (per-stage norms) maps to the ``backbone.*`` keys
only: a classification norm and head, if it has any, are dropped.
"""
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .rename import StateDict, add_renamed

#: A key mapping: a pattern matched against the whole key, and the target template
#: (``match.expand``) or None to drop the key. Unlike :data:`~.rename.Rule`s, which
#: rewrite keys step by step, the first mapping that matches decides.
KeyMapping = Tuple[str, Optional[str]]

_TWINS_BLOCK_PART = (r'(norm1|norm2|attn\.(?:qkv|q|kv|proj|sr|norm)|'
                     r'mlp\.fc1|mlp\.fc2)\.(weight|bias)')
_TWINS_BACKBONE_RULES: Tuple[KeyMapping, ...] = (
    (r'patch_embeds\.(\d+)\.(proj|norm)\.(weight|bias)',
     r'backbone.stages.\1.patch_embed.\2.\3'),
    (r'blocks\.(\d+)\.(\d+)\.' + _TWINS_BLOCK_PART,
     r'backbone.stages.\1.blocks.\2.\3.\4'),
    (r'pos_block\.(\d+)\.proj\.0\.(weight|bias)',
     r'backbone.stages.\1.pos_enc.proj.\2'),
    (r'norm_list\.(\d+)\.(weight|bias)', r'backbone.stages.\1.norm.\2'),
)
_TWINS_CLASSIFIER_RULES: Tuple[KeyMapping, ...] = (
    (r'norm\.(weight|bias)', r'neck.norm.\1'),
    (r'head\.(weight|bias)', r'head.fc.\1'),
)

_DAVIT_BLOCK_PART = (r'(cpe1\.proj|cpe2\.proj|norm1|norm2|attn\.qkv|attn\.proj|'
                     r'mlp\.fc1|mlp\.fc2)\.(weight|bias)')
_DAVIT_BACKBONE_RULES: Tuple[KeyMapping, ...] = (
    (r'stem\.conv\.(weight|bias)', r'backbone.stages.0.patch_embed.proj.\1'),
    (r'stem\.norm\.(weight|bias)', r'backbone.stages.0.patch_embed.norm.\1'),
    (r'stages\.(\d+)\.downsample\.conv\.(weight|bias)',
     r'backbone.stages.\1.patch_embed.proj.\2'),
    (r'stages\.(\d+)\.downsample\.norm\.(weight|bias)',
     r'backbone.stages.\1.patch_embed.norm.\2'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.(?:0|spatial_block)\.' + _DAVIT_BLOCK_PART,
     r'backbone.stages.\1.blocks.\2.spatial.\3.\4'),
    (r'stages\.(\d+)\.blocks\.(\d+)\.(?:1|channel_block)\.' + _DAVIT_BLOCK_PART,
     r'backbone.stages.\1.blocks.\2.channel.\3.\4'),
    (r'norm(\d+)\.(weight|bias)', r'backbone.stages.\1.out_norm.\2'),
)
_DAVIT_CLASSIFIER_RULES: Tuple[KeyMapping, ...] = (
    (r'head\.norm\.(weight|bias)', r'neck.norm.\1'),
    (r'head\.fc\.(weight|bias)', r'head.fc.\1'),
)


def twins_reference_to_mmtwins(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Maps official/timm Twins (PCPVT or SVT) keys onto an mmtwins model.

    Args:
        state_dict: Keys ``patch_embeds.*``, ``blocks.*``, ``pos_block.*``,
            ``norm.*``, ``head.*`` and, for dense models, ``norm_list.{i}.*``.

    Returns:
        ``backbone.*``, ``neck.norm.*`` and ``head.fc.*`` keys for a classifier
        (no ``norm_list``; one without its head, as timm's ``num_classes=0``,
        keeps its final norm), else ``backbone.*`` only (``norm_list.{i}`` ->
        ``backbone.stages.{i}.norm``). GSA ``q`` and ``kv``
        become one ``qkv``.

    Raises:
        ValueError: On a key outside the reference naming, or a ``q`` without
            its ``kv``.

    Example:
        >>> import timm
        >>> from mmtwins.apis import get_model
        >>> reference = timm.create_model('twins_svt_small').state_dict()
        >>> classifier = get_model('svt-s_8xb128_in1k')
        >>> classifier.load_state_dict(twins_reference_to_mmtwins(reference))
        <All keys matched successfully>
    """
    # Dense means per-stage norms, not a missing head: a classifier without its head
    # (timm's num_classes=0) keeps its final norm.
    dense = any(key.startswith('norm_list.') for key in state_dict)
    renamed = _rename(state_dict, _TWINS_BACKBONE_RULES +
                      _classifier_rules(_TWINS_CLASSIFIER_RULES, dense), 'Twins')
    return _fuse_q_kv(renamed)


def davit_reference_to_mmtwins(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Maps timm DaViT keys onto an mmtwins model.

    Args:
        state_dict: Keys ``stem.*``, ``stages.*`` (blocks ``0``/``1`` or
            ``spatial_block``/``channel_block``), ``head.norm.*``, ``head.fc.*``
            and, for dense models, ``norm{i}.*``.

    Returns:
        ``backbone.*``, ``neck.norm.*`` and ``head.fc.*`` keys for a classifier
        (no ``norm{i}``; one without its ``head.fc`` keeps its ``head.norm``),
        else ``backbone.*`` only (``norm{i}`` -> ``backbone.stages.{i}.out_norm``).

    Raises:
        ValueError: On a key outside the reference naming.

    Example:
        >>> import timm
        >>> from mmtwins.apis import get_model
        >>> reference = timm.create_model('davit_tiny').state_dict()
        >>> classifier = get_model('davit-t_4xb256_in1k')
        >>> classifier.load_state_dict(davit_reference_to_mmtwins(reference))
        <All keys matched successfully>
    """
    dense = any(re.fullmatch(r'norm\d+\..*', key) for key in state_dict)
    return _rename(state_dict, _DAVIT_BACKBONE_RULES +
                   _classifier_rules(_DAVIT_CLASSIFIER_RULES, dense), 'DaViT')


def _classifier_rules(rules: Sequence[KeyMapping], dense: bool) -> Tuple[KeyMapping, ...]:
    """The classifier rules, or rules that drop those keys for a dense model."""
    return tuple((pattern, None if dense else target) for pattern, target in rules)


def _rename(state_dict: Mapping[str, Tensor], mappings: Sequence[KeyMapping],
            family: str) -> StateDict:
    """Maps every key by the first of ``mappings`` that matches it whole.

    Raises:
        ValueError: If a key matches no mapping, or two keys map to one (timm's
            ``blocks.0.0`` and ``blocks.0.spatial_block`` spellings of one tensor,
            say): keeping either would silently drop weights.
    """
    renamed: StateDict = {}
    sources: Dict[str, str] = {}
    unknown = []
    for key, value in state_dict.items():
        for pattern, target in mappings:
            match = re.fullmatch(pattern, key)
            if match:
                if target is not None:
                    add_renamed(renamed, sources, key, match.expand(target), value)
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys are not in the {family} reference '
                         f'naming, for example {unknown[:5]}')
    return renamed


def _fuse_q_kv(state_dict: StateDict) -> StateDict:
    """Replaces every ``*.attn.q.{p}`` and ``*.attn.kv.{p}`` pair by ``*.attn.qkv.{p}``."""
    fused = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r'(.*\.attn\.)(q|kv)\.(weight|bias)', key)
        if match is None:
            fused[key] = value
            continue
        prefix, part, param = match.groups()
        other = f'{prefix}{"kv" if part == "q" else "q"}.{param}'
        if other not in state_dict:
            raise ValueError(f'{key} has no matching {other}')
        if part == 'q':
            fused[f'{prefix}qkv.{param}'] = torch.cat([value, state_dict[other]])
    return fused
