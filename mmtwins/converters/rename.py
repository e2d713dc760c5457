"""One generic key-renaming function; every format is a table of rules fed to it."""
import re
from typing import Callable, Dict, Iterable, Mapping, Sequence, Tuple, Union

from torch import Tensor

#: A renaming rule: a regular expression and its replacement, a template such as
#: ``r'blocks.\1.'`` or a function of the match (for index arithmetic).
Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]

StateDict = Dict[str, Tensor]

#: Where whole mmtwins models (and mmseg's and mmdet's) keep their backbone's keys.
BACKBONE_PREFIX = 'backbone.'


def rename_keys(state_dict: Mapping[str, Tensor],
                rules: Sequence[Rule]) -> StateDict:
    """Renames every key by applying all ``rules`` in order (``re.sub`` each).

    Args:
        state_dict: The tensors to rename; the tensors themselves are not copied.
        rules: ``(pattern, replacement)`` pairs, applied one after the other, so a
            later rule sees the result of the earlier ones.

    Returns:
        A new dict with the renamed keys, in the original order.

    Raises:
        ValueError: If two keys end up with the same name, which means a rule
            table is wrong for this checkpoint: silently keeping one would lose
            weights.

    Example:
        >>> rename_keys({'stages.0.0.w': 't'}, [(r'^stages\\.', 'blocks.')])
        {'blocks.0.0.w': 't'}
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    renamed: StateDict = {}
    sources: Dict[str, str] = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, repl in compiled:
            new_key = pattern.sub(repl, new_key)
        add_renamed(renamed, sources, key, new_key, value)
    return renamed


def add_renamed(renamed: StateDict, sources: Dict[str, str], key: str, new_key: str,
                value: Tensor) -> None:
    """Adds ``value`` to ``renamed`` as ``new_key``, the new name of ``key``.

    Args:
        renamed: The renamed state dict being built.
        sources: The old key of each key of ``renamed``, kept up to date here.
        key: The old key.
        new_key: Its new name.
        value: Its tensor.

    Raises:
        ValueError: If an earlier key was renamed to ``new_key`` too: keeping either
            tensor would silently lose the other.

    Example:
        >>> renamed, sources = {}, {}
        >>> add_renamed(renamed, sources, 'blocks.0.0.w', 'stages.0.w', 't')
        >>> add_renamed(renamed, sources, 'blocks.0.spatial.w', 'stages.0.w', 't')
        Traceback (most recent call last):
        ValueError: 'blocks.0.0.w' and 'blocks.0.spatial.w' both map to 'stages.0.w'
    """
    if new_key in renamed:
        raise ValueError(f'{sources[new_key]!r} and {key!r} both map to {new_key!r}')
    renamed[new_key], sources[new_key] = value, key


def indices_of(keys: Iterable[str], pattern: str) -> set:
    """Collects the integer that group 1 of ``pattern`` captures in each matching key.

    Args:
        keys: Checkpoint keys.
        pattern: A regular expression whose first group is an integer.

    Returns:
        The set of captured integers.

    Example:
        >>> indices_of(['norm3.weight', 'norm3.bias'], r'^norm(\\d+)\\.')
        {3}
    """
    regex = re.compile(pattern)
    return {int(m.group(1)) for m in map(regex.match, keys) if m}


def stage_norm_rule(keys: Iterable[str], norm_pattern: str, stage_pattern: str,
                    classifier_repl: str, dense_repl: str) -> Rule:
    """Chooses where the per-stage norms of mmpretrain-style backbones go.

    mmpretrain builds a norm only after the stages it outputs: a classifier has
    one, after the last stage, and it is the classifier's final norm; a dense
    backbone has one after every stage, and they are the dense per-stage norms.

    Args:
        keys: The backbone keys of the checkpoint.
        norm_pattern: Matches a stage-norm key, group 1 being the stage index.
        stage_pattern: Matches any key of a stage, group 1 being its index; it
            tells how many stages the backbone has.
        classifier_repl: Replacement when only the last stage has a norm.
        dense_repl: Replacement otherwise (may use ``\\1``).

    Returns:
        The rule ``(norm_pattern, chosen replacement)``.

    Example:
        >>> classifier_keys = ['stages.0.0.w', 'stages.1.0.w', 'norm1.weight']
        >>> stage_norm_rule(classifier_keys, r'^norm(\\d+)\\.', r'^stages\\.(\\d+)\\.',
        ...                 'head.norm.', r'norm\\1.')[1]
        'head.norm.'
    """
    keys = list(keys)
    last_stage = max(indices_of(keys, stage_pattern), default=-1)
    if indices_of(keys, norm_pattern) == {last_stage}:
        return norm_pattern, classifier_repl
    return norm_pattern, dense_repl
