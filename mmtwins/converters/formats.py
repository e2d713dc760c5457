"""Telling the family and format of a checkpoint from its keys alone."""
import re
from typing import (Callable, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

from torch import Tensor

from .checkpoint import CheckpointError
from .rename import BACKBONE_PREFIX, StateDict

FAMILIES = ('twins-pcpvt', 'twins-svt', 'davit')
FORMATS = ('official', 'timm', 'mmpretrain', 'mmseg', 'mmtwins')


# Locally-grouped attention has a fused qkv; global sub-sampled attention never
# does (q and kv, or mmseg's in_proj), so its presence in a stage block means SVT.
_LSA_KEY = re.compile(r'^(blocks|stages|layers)\.\d+\.\d+\.attn\.qkv\.')
# mmtwins fuses GSA's q and kv too; there the first block tells: SVT starts every
# stage with LSA, PCPVT with GSA, which sub-samples (has attn.sr) in stage 0 of
# every released arch (sr ratio 8).
_MMTWINS_PCPVT_KEY = re.compile(r'^stages\.0\.blocks\.0\.attn\.sr\.')


def _has_lsa(keys: Iterable[str]) -> bool:
    return any(map(_LSA_KEY.match, keys))


def _mmtwins_first_block_is_lsa(keys: Iterable[str]) -> bool:
    return not any(map(_MMTWINS_PCPVT_KEY.match, keys))


class Signature(NamedTuple):
    """Key patterns that together identify one format of one model family.

    Attributes:
        group: ``'twins'`` or ``'davit'``.
        fmt: The format name, one of :data:`FORMATS`.
        patterns: Regular expressions; every one must match some backbone key.
        is_svt: For Twins, tells SVT from PCPVT given the backbone keys.
    """
    group: str
    fmt: str
    patterns: Tuple[str, ...]
    is_svt: Optional[Callable[[Iterable[str]], bool]] = None


_TWINS_REFERENCE = (r'^patch_embeds\.0\.proj\.weight$', r'^blocks\.0\.0\.')
_MMTWINS_STEM = r'^stages\.0\.patch_embed\.proj\.weight$'

#: Checked in order on the backbone keys (``backbone.`` removed); the first full
#: match wins, so official comes before timm for Twins, whose namings are identical.
SIGNATURES: Tuple[Signature, ...] = (
    Signature('twins', 'official', _TWINS_REFERENCE, _has_lsa),
    Signature('twins', 'timm', _TWINS_REFERENCE, _has_lsa),
    Signature('twins', 'mmpretrain',
              (r'^patch_embeds\.0\.projection\.weight$', r'^stages\.0\.0\.'),
              _has_lsa),
    Signature('twins', 'mmseg',
              (r'^patch_embeds\.0\.projection\.weight$', r'^layers\.0\.0\.'),
              _has_lsa),
    Signature('twins', 'mmtwins', (_MMTWINS_STEM, r'^stages\.0\.pos_enc\.'),
              _mmtwins_first_block_is_lsa),
    Signature('davit', 'official',
              (r'^patch_embeds\.0\.proj\.weight$', r'^main_blocks\.0\.0\.0\.')),
    Signature('davit', 'timm',
              (r'^stem\.conv\.weight$', r'^stages\.0\.blocks\.0\.0\.')),
    Signature('davit', 'mmpretrain',
              (r'^patch_embed\.projection\.weight$',
               r'^stages\.0\.blocks\.0\.spatial_block\.')),
    Signature('davit', 'mmtwins',
              (_MMTWINS_STEM, r'^stages\.0\.blocks\.0\.spatial\.')),
)


def split_backbone(state_dict: Mapping[str, Tensor]) -> Tuple[StateDict, StateDict]:
    """Separates the backbone of a whole-model checkpoint from everything else.

    Args:
        state_dict: A flat state dict.

    Returns:
        ``(body, extras)``: when some key starts with ``backbone.``, the body is
        those keys without the prefix and the extras are all other keys (heads,
        necks); otherwise the body is the whole dict and there are no extras.

    Example:
        >>> split_backbone({'backbone.norm.weight': 'w', 'head.fc.bias': 'b'})
        ({'norm.weight': 'w'}, {'head.fc.bias': 'b'})
    """
    if not any(key.startswith(BACKBONE_PREFIX) for key in state_dict):
        return dict(state_dict), {}
    body, extras = {}, {}
    for key, value in state_dict.items():
        if key.startswith(BACKBONE_PREFIX):
            body[key[len(BACKBONE_PREFIX):]] = value
        else:
            extras[key] = value
    return body, extras


def _matches(signature: Signature, keys: Sequence[str]) -> bool:
    return all(
        any(re.match(pattern, key) for key in keys)
        for pattern in signature.patterns)


def _describe_failure(source: str, keys: List[str], formats: Sequence[str]) -> str:
    sample = ', '.join(keys[:8]) if keys else '(no keys)'
    return (f'{source}: not a Twins (PCPVT, SVT) or DaViT checkpoint in any of the '
            f'formats {", ".join(formats)}. It has {len(keys)} keys, for '
            f'example: {sample}')


def detect_format(state_dict: Mapping[str, Tensor],
                  formats: Optional[Sequence[str]] = None,
                  source: str = 'state dict') -> Tuple[str, str]:
    """Tells the model family and the checkpoint format from the keys alone.

    Args:
        state_dict: A flat state dict (already unwrapped, see
            :func:`mmtwins.converters.unwrap_state_dict`); a ``backbone.`` prefix
            (whole mmpretrain, mmseg or mmdet models) is allowed.
        formats: Restricts the candidates, for example ``('timm', )``; all of
            :data:`FORMATS` when ``None``.
        source: Names the checkpoint in the error message (a file path).

    Returns:
        ``(family, fmt)``, family one of :data:`FAMILIES`, fmt one of
        :data:`FORMATS`. Official and timm Twins files have identical keys and
        are reported as ``'official'`` unless ``formats`` asks for ``'timm'``.

    Raises:
        CheckpointError: If no candidate format matches; the message names
            ``source`` and shows some of its keys.

    Example:
        >>> import timm
        >>> detect_format(timm.create_model('twins_svt_small').state_dict())
        ('twins-svt', 'official')
    """
    formats = FORMATS if formats is None else tuple(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f'Unknown checkpoint formats {sorted(unknown)}; '
                         f'known: {", ".join(FORMATS)}.')
    body = list(split_backbone(state_dict)[0])
    for signature in SIGNATURES:
        if signature.fmt in formats and _matches(signature, body):
            if signature.group == 'davit':
                return 'davit', signature.fmt
            family = 'twins-svt' if signature.is_svt(body) else 'twins-pcpvt'
            return family, signature.fmt
    raise CheckpointError(_describe_failure(source, list(state_dict), formats))
