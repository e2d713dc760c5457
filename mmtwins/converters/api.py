"""Any supported Twins or DaViT checkpoint -> reference naming -> mmtwins naming."""
import warnings
from typing import Any, Mapping, Tuple

from torch import Tensor, nn

from .checkpoint import (CheckpointError, LoadReport, load_into, load_pretrained_state_dict,
                         unwrap_state_dict)
from .davit import BODY_RULES as DAVIT_BODY_RULES
from .davit import HEAD_RULE as DAVIT_HEAD_RULE
from .davit import davit_to_reference
from .formats import FAMILIES, FORMATS, detect_format, split_backbone
from .reference import davit_reference_to_mmtwins, twins_reference_to_mmtwins
from .rename import BACKBONE_PREFIX, StateDict, rename_keys
from .twins import BODY_RULES as TWINS_BODY_RULES
from .twins import HEAD_RULE as TWINS_HEAD_RULE
from .twins import twins_to_reference

_CLASSIFIER_HEAD_PREFIX = 'head.fc.'


def to_reference(state_dict: Mapping[str, Tensor], family: str,
                 fmt: str) -> StateDict:
    """Renames a foreign checkpoint to the reference naming of its family.

    Args:
        state_dict: A flat state dict, whole model or backbone only.
        family: ``'twins-pcpvt'``, ``'twins-svt'`` or ``'davit'``.
        fmt: ``'official'``, ``'timm'``, ``'mmpretrain'`` or ``'mmseg'``.

    Returns:
        Reference keys (official == timm for Twins, timm for DaViT). A
        classifier head ``head.fc`` outside ``backbone.`` is kept; any other key
        outside ``backbone.`` (decode heads, necks of dense models) is dropped
        with a warning.

    Raises:
        ValueError: If ``family`` is unknown, or ``fmt`` is not a foreign format of
            ``family``.
        CheckpointError: If the keys are not those of ``family`` in the ``fmt`` format.

    Example:
        >>> from mmpretrain.models import SVT
        >>> reference = to_reference(SVT('small').state_dict(), 'twins-svt', 'mmpretrain')
        >>> list(reference)[0]
        'patch_embeds.0.proj.weight'
    """
    if family not in FAMILIES:
        raise ValueError(f'family={family!r} is not one of {", ".join(FAMILIES)}')
    body_rules = DAVIT_BODY_RULES if family == 'davit' else TWINS_BODY_RULES
    if fmt not in body_rules:
        raise ValueError(f'No {fmt!r} format for {family}; known: '
                         f'{", ".join(body_rules)}.')
    keys_family, _ = detect_format(state_dict, formats=(fmt, ))
    if keys_family != family:
        raise CheckpointError(f'the keys are those of a {keys_family} checkpoint in the '
                              f'{fmt} format, not of {family}')
    return _renamed_to_reference(state_dict, family, fmt)


def _renamed_to_reference(state_dict: Mapping[str, Tensor], family: str,
                          fmt: str) -> StateDict:
    """:func:`to_reference` of keys whose ``family`` and ``fmt`` are checked."""
    body, extras = split_backbone(state_dict)
    if family == 'davit':
        reference, head_rule = davit_to_reference(body, fmt), DAVIT_HEAD_RULE
    else:
        reference, head_rule = twins_to_reference(body, fmt), TWINS_HEAD_RULE
    head = {k: v for k, v in extras.items()
            if k.startswith(_CLASSIFIER_HEAD_PREFIX)}
    reference.update(rename_keys(head, (head_rule, )))
    dropped = sorted(set(extras) - set(head))
    if dropped:
        warnings.warn(f'Dropped {len(dropped)} keys that belong to neither the '
                      f'backbone nor a classifier head, for example: '
                      f'{", ".join(dropped[:5])}', stacklevel=3)
    return reference


def _reference_to_mmtwins(reference: StateDict, family: str) -> StateDict:
    if family == 'davit':
        return davit_reference_to_mmtwins(reference)
    return twins_reference_to_mmtwins(reference)


def _with_backbone_prefix(state_dict: StateDict) -> StateDict:
    # A bare mmtwins backbone's own state dict has no prefix; whole models do.
    if any(key.startswith(BACKBONE_PREFIX) for key in state_dict):
        return state_dict
    return {BACKBONE_PREFIX + key: value for key, value in state_dict.items()}


def _split_task_heads(state_dict: Mapping[str, Tensor]) -> Tuple[StateDict, StateDict]:
    """Separates what a whole dense model has besides its backbone and classifier head.

    The decode heads and necks of mmseg and mmdet models (``decode_head.``,
    ``auxiliary_head.``, ``neck.``, ``rpn_head.``, ...) are the libraries' own modules,
    which mmtwins segmentors and detectors use too, so they keep their names.

    Returns:
        ``(backbone_and_classifier, task_heads)``.
    """
    _, extras = split_backbone(state_dict)
    heads = {k: v for k, v in extras.items() if not k.startswith(_CLASSIFIER_HEAD_PREFIX)}
    return {k: v for k, v in state_dict.items() if k not in heads}, heads


def convert_to_mmtwins(state_dict_or_checkpoint: Mapping[str, Any],
                       fmt: str = 'auto',
                       source: str = 'state dict'
                       ) -> Tuple[StateDict, str, str]:
    """Converts any supported Twins or DaViT checkpoint to mmtwins keys.

    Args:
        state_dict_or_checkpoint: A flat state dict, or a loaded checkpoint that
            nests one under ``state_dict``, ``model`` or ``state_dict_ema``.
        fmt: ``'auto'`` to detect the format, or one of :data:`FORMATS` to
            insist on it (the family is still read from the keys).
        source: Names the checkpoint in error messages.

    Returns:
        ``(state_dict, family, fmt)``: mmtwins keys (``backbone.*``, ``neck.*``,
        ``head.fc.*``; the decode heads and necks of a whole mmseg or mmdet model
        unchanged), and the detected family and source format.

    Raises:
        ValueError: If the keys match no supported format (or not ``fmt``).

    Example:
        >>> import timm
        >>> official = timm.create_model('twins_pcpvt_small').state_dict()
        >>> state_dict, family, fmt = convert_to_mmtwins(official)
        >>> family, fmt
        ('twins-pcpvt', 'official')
    """
    state_dict = unwrap_state_dict(state_dict_or_checkpoint, source=source)
    formats = FORMATS if fmt == 'auto' else (fmt, )
    family, fmt = detect_format(state_dict, formats=formats, source=source)
    if fmt == 'mmtwins':
        return _with_backbone_prefix(state_dict), family, fmt
    backbone_and_classifier, task_heads = _split_task_heads(state_dict)
    reference = _renamed_to_reference(backbone_and_classifier, family, fmt)
    return {**_reference_to_mmtwins(reference, family), **task_heads}, family, fmt


def to_mmtwins_checkpoint(checkpoint: Mapping[str, Any],
                          source: str = 'checkpoint') -> Mapping[str, Any]:
    """Puts the weights of a loaded checkpoint in mmtwins naming, if they are not yet.

    Twins and DaViT checkpoints of another format become ``{'state_dict': ..., 'meta':
    {..., 'source_format': fmt, 'family': family}}``. mmtwins checkpoints, and checkpoints
    of models that are neither Twins nor DaViT, are returned unchanged, for the caller's
    usual loading (and its report of missing keys) to handle.

    Args:
        checkpoint: What :func:`~mmtwins.converters.read_checkpoint` returned.
        source: Names the checkpoint in messages.

    Example:
        >>> import timm
        >>> official = {'model': timm.create_model('twins_svt_small').state_dict()}
        >>> to_mmtwins_checkpoint(official)['meta']
        {'source_format': 'official', 'family': 'twins-svt'}
    """
    try:
        family, fmt = detect_format(unwrap_state_dict(checkpoint, source=source),
                                    source=source)
    except CheckpointError:
        return checkpoint
    if fmt == 'mmtwins':
        return checkpoint
    state_dict, _, _ = convert_to_mmtwins(checkpoint, fmt=fmt, source=source)
    meta = dict(checkpoint.get('meta') or {}, source_format=fmt, family=family)
    return {'state_dict': state_dict, 'meta': meta}


def load_pretrained(module: nn.Module,
                    path: str,
                    prefix: str = BACKBONE_PREFIX,
                    fmt: str = 'auto') -> LoadReport:
    """Initialises a module from any supported weight file.

    Reads the file safely (:func:`load_pretrained_state_dict`), converts it
    (:func:`convert_to_mmtwins`) and loads the ``prefix`` part
    (:func:`load_into`), reporting what was missing or left over.

    Args:
        module: For example an mmtwins backbone (``prefix='backbone.'``) or a
            whole classifier (``prefix=''``).
        path: A local file or an ``http(s)://`` address.
        prefix: Which part to load: ``''`` (everything) or ``'backbone.'`` of the
            converted mmtwins state dict; any other prefix (``'model.encoder.'``)
            selects the file's keys under it first, as a backbone in any format. As
            in MMEngine's ``PretrainedInit``, the trailing dot is optional.
        fmt: See :func:`convert_to_mmtwins`.

    Returns:
        A :class:`~mmtwins.converters.checkpoint.LoadReport`.

    Example:
        >>> from mmtwins.registry import MODELS
        >>> backbone = MODELS.build(dict(type='TwinsSVT', arch='small'))
        >>> report = load_pretrained(backbone, 'twins_svt_small.pth')  # doctest: +SKIP
    """
    state_dict = load_pretrained_state_dict(path)
    prefix = prefix.rstrip('.') + '.' if prefix else ''
    if prefix not in ('', BACKBONE_PREFIX):
        state_dict = {key[len(prefix):]: value for key, value in state_dict.items()
                      if key.startswith(prefix)}
        if not state_dict:
            raise CheckpointError(f'{path}: no weights under the prefix {prefix!r}')
        prefix = BACKBONE_PREFIX
    state_dict, _, _ = convert_to_mmtwins(state_dict, fmt=fmt, source=str(path))
    return load_into(module, state_dict, prefix=prefix, source=str(path))
