"""Reading weight files safely, unwrapping them, saving and loading into modules."""
import logging
import os
import os.path as osp
import pickle
import re
import urllib.error
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmtwins.utils.atomic_files import atomic_destination
from .rename import BACKBONE_PREFIX, StateDict
from .trusted_checkpoint import trusted_runner_checkpoints

#: Keys under which training scripts nest the weights, in the order tried.
WRAPPER_KEYS = ('state_dict', 'model', 'state_dict_ema')

_DATA_PARALLEL_PREFIX = 'module.'
_UNPICKLER_REASON = re.compile(r'WeightsUnpickler error: (.*?)(?:\n|$)')


class CheckpointError(ValueError):
    """A weight file that cannot be used as asked: unreadable, refused, not a state
    dict, of no known format, or of another architecture than the model's.

    The message starts with the file's name; the tools report it in one line.
    """


def _is_url(path: str) -> bool:
    return path.startswith(('http://', 'https://'))


def _refusal(source: str, error: pickle.UnpicklingError) -> CheckpointError:
    match = _UNPICKLER_REASON.search(str(error))
    reason = match.group(1) if match else _first_line(error)
    return CheckpointError(
        f'{source}: refused to load. Weight files are read with '
        f'torch.load(weights_only=True), which accepts tensors, plain containers '
        f'and the objects of MMEngine runner checkpoints, never arbitrary pickled '
        f'objects ({reason}). If you trust '
        f'the file, re-save just its weights elsewhere, for example '
        f'torch.save(torch.load(path, weights_only=False)["state_dict"], new_path).')


def _load_local(path: str, map_location: Any) -> Any:
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        with trusted_runner_checkpoints():
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(path, error) from error
    except (RuntimeError, EOFError, KeyError, OSError) as error:
        # What torch.load raises on a truncated, empty or non-PyTorch file, without
        # naming it: 'PytorchStreamReader failed reading zip archive', '', '101',
        # '[Errno 22] Invalid argument'.
        raise CheckpointError(
            f'{path}: not a readable PyTorch checkpoint (truncated, empty or another '
            f'kind of file?): {type(error).__name__}: {_first_line(error)}') from error


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0] if lines else 'no message'


def _load_url(url: str, map_location: Any) -> Any:
    try:
        with trusted_runner_checkpoints():
            return torch.hub.load_state_dict_from_url(
                url, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(url, error) from error
    except urllib.error.HTTPError as error:
        raise ConnectionError(f'Could not download {url}: {error}') from error
    except (urllib.error.URLError, OSError) as error:
        raise ConnectionError(
            f'Could not download {url} ({error}): no network access? Download '
            f'the file on a machine that has it and pass the local path instead, '
            f'for example load_pretrained_state_dict("/path/to/weights.pth") or '
            f'init_cfg=dict(type="Pretrained", checkpoint="/path/to/weights.pth").'
        ) from error


def read_checkpoint(path: str, map_location: Any = 'cpu') -> Any:
    """Reads a checkpoint file or address without ever executing pickled code.

    Every file is read with ``torch.load(weights_only=True)``; the only objects allowed
    beyond tensors and plain containers are those of MMEngine runner checkpoints
    (:func:`~mmtwins.converters.trusted_runner_checkpoints`), so mmtwins' own
    checkpoints and weight files from elsewhere go through this one reader.

    Args:
        path: A local file, or an ``http(s)://`` address (downloaded through
            ``torch.hub``'s cache).
        map_location: Passed to ``torch.load``.

    Returns:
        What the file holds: a runner checkpoint dict, a wrapped or a flat state dict.

    Raises:
        FileNotFoundError: If the local file does not exist.
        CheckpointError: If the file needs arbitrary objects unpickled (refused),
            or is truncated, empty or not a PyTorch file.
        ConnectionError: If an address cannot be downloaded.

    Example:
        >>> checkpoint = read_checkpoint('work_dirs/svt-s/epoch_300.pth')  # doctest: +SKIP
        >>> checkpoint['meta']['epoch']  # doctest: +SKIP
        300
    """
    path = str(path)
    return _load_url(path, map_location) if _is_url(path) else _load_local(path, map_location)


def unwrap_state_dict(checkpoint: Mapping[str, Any],
                      key: Optional[str] = None,
                      source: str = 'checkpoint') -> StateDict:
    """Finds the flat ``{name: tensor}`` dict inside a loaded checkpoint.

    Args:
        checkpoint: What ``torch.load`` returned: a state dict, or a dict that
            nests it under one of :data:`WRAPPER_KEYS` (tried in that order).
        key: Takes the weights from this key instead of guessing, for example
            ``'state_dict_ema'`` when a file has both.
        source: Names the checkpoint in error messages.

    Returns:
        The tensors, with the ``module.`` prefix of (Distributed)DataParallel
        removed.

    Raises:
        KeyError: If ``key`` is given and missing.
        CheckpointError: If what is left is not a dict of tensors.

    Example:
        >>> unwrap_state_dict({'model': {'module.head.bias': torch.zeros(2)}, 'epoch': 3})
        {'head.bias': tensor([0., 0.])}
    """
    if key is not None:
        if not isinstance(checkpoint, Mapping) or key not in checkpoint:
            keys = list(checkpoint) if isinstance(checkpoint, Mapping) else []
            raise KeyError(f'{source}: no {key!r} in the checkpoint; its keys: '
                           f'{", ".join(map(str, keys[:10]))}')
        checkpoint = checkpoint[key]
    elif isinstance(checkpoint, Mapping):
        for wrapper in WRAPPER_KEYS:
            if isinstance(checkpoint.get(wrapper), Mapping):
                checkpoint = checkpoint[wrapper]
                break
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'{source}: not a state dict but a {type(checkpoint).__name__}; expected a dict '
            f'of tensors, at the top level or under one of {", ".join(WRAPPER_KEYS)}')
    not_tensors = [k for k, v in checkpoint.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(
            f'{source}: not a state dict; these entries are not tensors: '
            f'{", ".join(map(str, not_tensors[:10]))}. Expected the weights at the '
            f'top level or under one of {", ".join(WRAPPER_KEYS)}.')
    return {(k[len(_DATA_PARALLEL_PREFIX):]
             if k.startswith(_DATA_PARALLEL_PREFIX) else k): v
            for k, v in checkpoint.items()}


def load_pretrained_state_dict(path: str,
                               map_location: Any = 'cpu',
                               key: Optional[str] = None) -> StateDict:
    """Reads a weight file without ever executing pickled code.

    Args:
        path: A local file, or an ``http(s)://`` address (downloaded through
            ``torch.hub``'s cache).
        map_location: Passed to ``torch.load``.
        key: See :func:`unwrap_state_dict`.

    Returns:
        The flat state dict, unwrapped by :func:`unwrap_state_dict`.

    Raises:
        FileNotFoundError: If the local file does not exist.
        CheckpointError: If the file needs arbitrary objects unpickled
            (refused), is unreadable, or holds no state dict.
        ConnectionError: If an address cannot be downloaded.

    Example:
        >>> state_dict = load_pretrained_state_dict('twins_svt_small.pth')  # doctest: +SKIP
    """
    return unwrap_state_dict(read_checkpoint(path, map_location), key=key, source=str(path))


def save_checkpoint_atomically(checkpoint: Mapping[str, Any], path: str) -> None:
    """Writes a checkpoint so that ``path`` is either the old file or the new one.

    The data goes to a temporary file in the same folder, which then replaces ``path``
    (:mod:`mmtwins.utils.atomic_files`): an interrupted run never leaves a truncated
    checkpoint behind.

    Args:
        checkpoint: What to ``torch.save``.
        path: The destination file.

    Example:
        >>> save_checkpoint_atomically({'state_dict': sd}, 'out/converted.pth')  # doctest: +SKIP
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_destination(path) as temporary, open(temporary, 'wb') as file:
        torch.save(checkpoint, file)


class LoadReport(NamedTuple):
    """What :func:`load_into` did.

    Attributes:
        loaded_keys: Module keys that received a tensor from the checkpoint.
        missing_keys: Module keys the checkpoint lacks: they keep their fresh
            initialisation (for example the per-stage norms of a dense backbone
            loaded from a classifier).
        unexpected_keys: Checkpoint keys under the prefix the module has no
            place for; ignored.
        dropped_keys: Checkpoint keys outside the prefix (for example the head
            of a classifier when loading a backbone); ignored.
    """
    loaded_keys: List[str]
    missing_keys: List[str]
    unexpected_keys: List[str]
    dropped_keys: List[str]


def _log_report(report: LoadReport, module: nn.Module, prefix: str) -> None:
    lines = [f'Loaded {len(report.loaded_keys)} tensors into '
             f'{type(module).__name__}.']
    if report.missing_keys:
        lines.append('Not in the checkpoint, newly initialised: '
                     + ', '.join(report.missing_keys))
    if report.unexpected_keys:
        lines.append('In the checkpoint but not in the model, ignored: '
                     + ', '.join(report.unexpected_keys))
    if report.dropped_keys:
        lines.append(f'Outside {prefix!r}, not loaded: '
                     + ', '.join(report.dropped_keys))
    level = (logging.WARNING if report.missing_keys or report.unexpected_keys
             else logging.INFO)
    print_log('\n'.join(lines), logger='current', level=level)


def shape_mismatches(own: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> List[str]:
    """One line per tensor of both ``own`` (a model's) and ``theirs`` (a checkpoint's)
    whose shapes differ.

    Example:
        >>> shape_mismatches({'w': torch.zeros(2, 3)}, {'w': torch.zeros(3, 3)})
        ['w: checkpoint (3, 3), model (2, 3)']
    """
    return [f'{key}: checkpoint {tuple(value.shape)}, model {tuple(own[key].shape)}'
            for key, value in theirs.items() if key in own and value.shape != own[key].shape]


# The per-stage output norms of a dense backbone (Twins ``stages.N.norm``, DaViT
# ``stages.N.out_norm``), which a classifier does not have: extra in a dense model's
# checkpoint loaded into a classifier, without any other difference of architecture.
_STAGE_OUTPUT_NORM = re.compile(r'^backbone\.stages\.\d+\.(out_)?norm\.')


def fit_mismatches(model: nn.Module, state_dict: Mapping[str, Tensor],
                   prefix: str = BACKBONE_PREFIX, complete: bool = False) -> List[str]:
    """The tensors under ``prefix`` that ``state_dict`` cannot fill in ``model``, one line each.

    A differing shape is a mismatch, and so is a backbone tensor the checkpoint has and
    the model lacks (the blocks of a deeper model of the same widths), except the
    per-stage output norms of a dense backbone. With ``complete`` so is every tensor of
    the model that the checkpoint lacks; without, only alongside such extra tensors
    (another layout, not a partial file). Other extra tensors (an auxiliary head) are
    fine, and outside ``prefix`` (a classifier's head, when fine-tuning on other classes)
    anything goes.
    """
    # BatchNorm's step counter sets nothing that evaluation uses.
    def counted(key: str) -> bool:
        return key.startswith(prefix) and not key.endswith('num_batches_tracked')

    own = {k: v for k, v in model.state_dict().items() if counted(k)}
    theirs = {k: v for k, v in state_dict.items() if counted(k)}
    lines = shape_mismatches(own, theirs)
    unexpected = sorted(k for k in set(theirs) - set(own)
                        if k.startswith(BACKBONE_PREFIX) and not _STAGE_OUTPUT_NORM.match(k))
    missing = sorted(set(own) - set(theirs))
    lines += [f'{k}: not in the model' for k in unexpected]
    if missing and (unexpected or complete):
        lines += [f'{k}: not in the checkpoint' for k in missing]
    return lines


def refuse_another_architecture(model: nn.Module, state_dict: Mapping[str, Tensor],
                                source: str) -> None:
    """Raises a ``CheckpointError`` listing the mismatches if the backbones differ.

    Args:
        model: The model the checkpoint is for.
        state_dict: The checkpoint's tensors, in the model's key names.
        source: Names the checkpoint in the message, for example its file.
    """
    mismatches = fit_mismatches(model, state_dict)
    if mismatches:
        backbone = getattr(model, 'backbone', None)
        described = type(model).__name__ if backbone is None else \
            f'{type(model).__name__} with a {type(backbone).__name__} backbone'
        raise CheckpointError(
            f'{source} holds the weights of another architecture than the config\'s '
            f'{described}: {len(mismatches)} backbone tensors do not fit:'
            + _listing(mismatches))


def refuse_incomplete(model: nn.Module, state_dict: Mapping[str, Tensor], source: str,
                      purpose: str) -> None:
    """Raises a ``CheckpointError`` listing the model's tensors the checkpoint cannot set.

    Args:
        model: The model the checkpoint is for.
        state_dict: The checkpoint's tensors, in the model's key names.
        source: Names the checkpoint in the message, for example its file.
        purpose: What the checkpoint was to be, for the message: ``'tested'``,
            ``'resumed'`` or ``'used for inference'``.
    """
    mismatches = fit_mismatches(model, state_dict, prefix='', complete=True)
    if mismatches:
        raise CheckpointError(
            f'{source} cannot be {purpose} with the config\'s {type(model).__name__}: '
            f'{len(mismatches)} of its tensors would keep their random initialisation:'
            + _listing(mismatches))


def _listing(mismatches: List[str], shown: int = 10) -> str:
    """:func:`fit_mismatches` lines for a message: ``shown`` of each kind (another shape,
    not in the model, not in the checkpoint), then how many more."""
    kinds: Dict[str, List[str]] = {}
    for line in mismatches:
        kind = line.split(': ', 1)[1]
        kinds.setdefault('of other shapes' if kind.startswith('checkpoint (') else kind,
                         []).append(line)
    lines = []
    for kind, group in kinds.items():
        lines += group[:shown]
        if len(group) > shown:
            lines.append(f'... and {len(group) - shown} more {kind}')
    return '\n  ' + '\n  '.join(lines)


def load_into(module: nn.Module,
              state_dict: Mapping[str, Tensor],
              prefix: str = BACKBONE_PREFIX,
              source: str = 'the checkpoint') -> LoadReport:
    """Loads the ``prefix`` part of an mmtwins state dict into a module, leniently.

    Missing and unexpected keys are allowed and reported (logged and returned);
    a tensor whose shape differs from the module's is an error, since loading
    it would silently mean a different architecture, and so is a state dict of
    which nothing fits, which would leave the module as it was.

    Args:
        module: The model or sub-model to initialise, for example a backbone.
        state_dict: mmtwins keys, see :func:`mmtwins.converters.convert_to_mmtwins`.
        prefix: Only keys starting with it are loaded, with it removed; ``''``
            loads the whole dict.
        source: Names the weights in error messages, for example their file.

    Returns:
        A :class:`LoadReport`.

    Raises:
        CheckpointError: If shapes differ (all mismatches are listed), or no
            tensor fits.

    Example:
        >>> from mmtwins.registry import MODELS
        >>> classifier_backbone = MODELS.build(dict(type='TwinsSVT', arch='small'))
        >>> dense_backbone = MODELS.build(dict(type='TwinsSVT', arch='small',
        ...                                    out_indices=(0, 1, 2, 3),
        ...                                    norm_after_stage=True))
        >>> report = load_into(dense_backbone, classifier_backbone.state_dict(), prefix='')
        >>> report.missing_keys
        ['stages.0.norm.bias', 'stages.0.norm.weight', ...]
    """
    selected = {k[len(prefix):]: v for k, v in state_dict.items()
                if k.startswith(prefix)}
    dropped = sorted(k for k in state_dict if not k.startswith(prefix))
    own = module.state_dict()
    mismatched = shape_mismatches(own, selected)
    if mismatched:
        raise CheckpointError(f'{source}: shapes differ between its weights and '
                              f'{type(module).__name__}: ' + '; '.join(mismatched))
    loaded = sorted(set(selected) & set(own))
    if not loaded:
        where = f' under the prefix {prefix!r}' if prefix else ''
        raise CheckpointError(
            f'{source}: none of its weights{where} fit {type(module).__name__} '
            f'(its first keys: {", ".join(list(state_dict)[:5])})')
    result = module.load_state_dict(selected, strict=False)
    report = LoadReport(
        loaded_keys=loaded,
        missing_keys=sorted(result.missing_keys),
        unexpected_keys=sorted(result.unexpected_keys),
        dropped_keys=dropped)
    _log_report(report, module, prefix)
    return report
