"""DaViT checkpoints of other libraries -> the reference (timm) naming.

The reference naming is timm's: ``stem.conv|norm``, ``stages.{i}.downsample.norm|conv``
(the downsample that starts stage i), ``stages.{s}.blocks.{b}.0.*`` (spatial block)
and ``.1.*`` (channel block) with ``cpe1``, ``norm1``, ``attn.qkv|proj``, ``cpe2``,
``norm2``, ``mlp.fc1|fc2``; ``head.norm`` (post-pool) and ``head.fc``; the per-stage
norms of dense models as ``norm{i}``.
"""
import warnings
from typing import Dict, Mapping, Tuple

from torch import Tensor

from .rename import Rule, StateDict, rename_keys, stage_norm_rule

#: Shown whenever mmpretrain's pre-pool norm becomes the post-pool norm.
MMPRETRAIN_NORM_CAVEAT = (
    "mmpretrain's DaViT normalises every token with backbone.norm3 before "
    'pooling; the official model (and mmtwins) pools first and normalises the '
    'pooled vector. backbone.norm3 is carried over as that post-pool norm '
    '(head.norm), so an mmpretrain-trained DaViT classifier is not numerically '
    'equivalent after conversion (its stem padding differs as well): expect '
    'different logits and fine-tune before relying on its accuracy.')

#: Backbone renaming rules of each format (keys without any ``backbone.`` prefix).
BODY_RULES: Dict[str, Tuple[Rule, ...]] = {
    # The same renaming as timm's own ``checkpoint_filter_fn``.
    'official': (
        (r'^patch_embeds\.0\.proj\.', 'stem.conv.'),
        (r'^patch_embeds\.0\.norm\.', 'stem.norm.'),
        (r'^patch_embeds\.(\d+)\.proj\.', r'stages.\1.downsample.conv.'),
        (r'^patch_embeds\.(\d+)\.norm\.', r'stages.\1.downsample.norm.'),
        (r'^main_blocks\.(\d+)\.', r'stages.\1.blocks.'),
        (r'\.cpe\.0\.', '.cpe1.'),
        (r'\.cpe\.1\.', '.cpe2.'),
        (r'^head\.', 'head.fc.'),
        (r'^norms\.', 'head.norm.'),
    ),
    'timm': (),
    'mmpretrain': (
        (r'^patch_embed\.projection\.', 'stem.conv.'),
        (r'^patch_embed\.norm\.', 'stem.norm.'),
        # mmpretrain keeps the downsample at the end of stage s, timm (and the
        # official model) at the start of stage s + 1.
        (r'^stages\.(\d+)\.downsample\.',
         lambda m: f'stages.{int(m.group(1)) + 1}.downsample.'),
        (r'\.downsample\.projection\.', '.downsample.conv.'),
        (r'\.blocks\.(\d+)\.spatial_block\.', r'.blocks.\1.0.'),
        (r'\.blocks\.(\d+)\.channel_block\.', r'.blocks.\1.1.'),
        (r'\.attn\.w_msa\.', '.attn.'),
        (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
        (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
    ),
}

#: mmpretrain's classifier head ``head.fc`` already has the reference name.
HEAD_RULE: Rule = (r'^head\.fc\.', 'head.fc.')


def davit_to_reference(body: Mapping[str, Tensor], fmt: str) -> StateDict:
    """Renames the backbone keys of a DaViT checkpoint to the reference naming.

    Args:
        body: Backbone keys, any ``backbone.`` prefix already removed (official
            and timm files keep their head here too).
        fmt: One of ``'official'``, ``'timm'``, ``'mmpretrain'``.

    Returns:
        The same tensors under reference names. mmpretrain's ``norm{i}`` become
        ``head.norm`` when only the last stage has one (a classifier: see
        :data:`MMPRETRAIN_NORM_CAVEAT`, also issued as a warning) and stay
        ``norm{i}`` otherwise (a dense backbone).

    Example:
        >>> list(davit_to_reference({'main_blocks.0.0.0.cpe.0.proj.bias': None}, 'official'))
        ['stages.0.blocks.0.0.cpe1.proj.bias']
    """
    rules = BODY_RULES[fmt]
    if fmt == 'mmpretrain':
        norm_rule = stage_norm_rule(body, r'^norm(\d+)\.', r'^stages\.(\d+)\.',
                                    'head.norm.', r'norm\1.')
        if norm_rule[1] == 'head.norm.':
            warnings.warn(MMPRETRAIN_NORM_CAVEAT, stacklevel=2)
        rules += (norm_rule, )
    return rename_keys(body, rules)
