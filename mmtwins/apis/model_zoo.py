"""The model zoo: released models by name, built from their configs, with their weights.

Names come from ``model-index.yml`` (one ``metafile.yml`` per family). Each model also
answers to the names users know from mmpretrain's model zoo and from timm (``Alias``).

Example:
    >>> from mmtwins.apis import get_model, list_models
    >>> list_models('*svt*', task='classification')
    ['svt-b_8xb128_in1k', 'svt-l_16xb64_in1k', 'svt-s_8xb128_in1k']
    >>> model = get_model('svt-s_8xb128_in1k', pretrained='alt_gvt_small.pth')  # doctest: +SKIP
"""
import copy
import difflib
import fnmatch
import functools
import os.path as osp
import warnings
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.registry import MODELS, DefaultScope

from mmtwins.converters import convert_to_mmtwins, load_into, read_checkpoint
from mmtwins.converters.checkpoint import refuse_another_architecture, refuse_incomplete

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_INDEX = REPO_ROOT / 'model-index.yml'

# The task a config is for, read from the library scope its components resolve in.
TASKS = {'mmpretrain': 'classification', 'mmseg': 'segmentation', 'mmdet': 'detection'}


class ModelInfo(NamedTuple):
    """One released model of ``model-index.yml``.

    Attributes:
        name: Its zoo name, e.g. ``'svt-s_8xb128_in1k'``.
        config: Path of its config file.
        weights: Address of its published weights; None if there are none.
        aliases: Other names it answers to (mmpretrain's, timm's, mmseg's).
        metadata: The entry's ``Metadata`` (parameters, FLOPs, training data, ...).
        results: The entry's ``Results`` (task, dataset, metrics).
    """
    name: str
    config: str
    weights: Optional[str]
    aliases: Tuple[str, ...]
    metadata: dict
    results: list


class NoPublishedWeightsError(ValueError):
    """``pretrained=True`` for a config, or a zoo model without published weights.

    Args:
        model: the model as the message names it, e.g. ``"'my_config.py'"``.
    """

    def __init__(self, model: str):
        self.model = model
        super().__init__(f'{model} has no published weights in the model zoo; '
                         f'pass pretrained=<path to a weight file> instead')


class NoNetworkError(ConnectionError):
    """``pretrained=True`` without network, the published weights not downloaded before.

    Command-line tools catch it to say how *they* take a weight file.

    Args:
        name: the zoo name of the model.
        url: the address of its published weights.
    """

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url
        super().__init__(
            f'cannot download the weights of {name} ({url}): no network. Download the file '
            f'elsewhere, then pass it: get_model({name!r}, '
            f'pretrained=\'/path/to/{osp.basename(url)}\')')


def _read_model_index(index_path: Path) -> List[ModelInfo]:
    infos = []
    for metafile in load(str(index_path))['Import']:
        metafile_path = index_path.parent / metafile
        for entry in load(str(metafile_path)).get('Models', []):
            infos.append(ModelInfo(
                name=entry['Name'],
                config=str(index_path.parent / entry['Config']),
                weights=entry.get('Weights'),
                aliases=tuple(entry.get('Alias', ())),
                metadata=entry.get('Metadata', {}),
                results=entry.get('Results', [])))
    return infos


class ModelZoo:
    """Finds released models by name or alias (case-insensitive)."""

    _by_name: Dict[str, ModelInfo] = {}
    _names: Dict[str, str] = {}  # name or alias, lower case -> name

    @classmethod
    def _ensure_loaded(cls) -> None:
        if cls._by_name:
            return
        if not MODEL_INDEX.is_file():
            raise FileNotFoundError(
                f'{MODEL_INDEX} not found: the model zoo needs the mmtwins repository '
                f'(install it with `pip install -e .` from a checkout)')
        for info in _read_model_index(MODEL_INDEX):
            cls._by_name[info.name] = info
            for name in (info.name, *info.aliases):
                cls._names[name.lower()] = info.name

    @classmethod
    def names(cls) -> List[str]:
        """All zoo names (not the aliases), sorted."""
        cls._ensure_loaded()
        return sorted(cls._by_name)

    @classmethod
    def get(cls, name: str) -> ModelInfo:
        """The model called ``name`` (or with that alias).

        Raises:
            ValueError: for an unknown name, suggesting close ones.
        """
        cls._ensure_loaded()
        canonical = cls._names.get(name.lower())
        if canonical is None:
            close = difflib.get_close_matches(name.lower(), list(cls._names), n=10, cutoff=0.5)
            suggestions = list(dict.fromkeys(cls._names[match] for match in close))[:3]
            hint = f' Did you mean {" or ".join(suggestions)}?' if suggestions else ''
            raise ValueError(f'unknown model name {name!r}.{hint} '
                             f'mmtwins.list_models() lists all names.')
        return cls._by_name[canonical]


def list_models(pattern: Optional[str] = None, task: Optional[str] = None) -> List[str]:
    """Names of the released models.

    Args:
        pattern: a shell-style wildcard pattern (``'*svt*'``), case-insensitive, that
            matches the start of a name, as in mmpretrain (``'davit'`` is ``'davit*'``). It
            matches a model by its name or by any of its aliases, as :func:`get_model`
            finds it.
        task: only models of this task: ``'classification'``, ``'segmentation'`` or
            ``'detection'``.

    Raises:
        ValueError: for another ``task``.

    Example:
        >>> list_models('davit*')
        ['davit-b_4xb256_in1k', 'davit-s_4xb256_in1k', 'davit-t_4xb256_in1k']
        >>> list_models('twins_svt_*', task='classification')  # timm names
        ['svt-b_8xb128_in1k', 'svt-l_16xb64_in1k', 'svt-s_8xb128_in1k']
    """
    if task is not None and task not in TASKS.values():
        raise ValueError(f'unknown task {task!r}; expected one of {sorted(TASKS.values())}')
    names = ModelZoo.names()
    if pattern is not None:
        names = [n for n in names if _matches(ModelZoo.get(n), pattern)]
    if task is not None:
        names = [n for n in names if _zoo_task(n) == task]
    return names


def _matches(info: ModelInfo, pattern: str) -> bool:
    """Whether the name or an alias of ``info`` starts with a match of ``pattern``."""
    return any(fnmatch.fnmatch(name.lower(), pattern.lower() + '*')
               for name in (info.name, *info.aliases))


@functools.lru_cache(maxsize=None)
def _zoo_task(name: str) -> str:
    """:func:`task_of` a zoo model, once per process: it parses the model's config."""
    return task_of(name)


def task_of(model: Union[str, Path, Config]) -> str:
    """The task of a model: the library scope its model type resolves in.

    As mmengine's registries build the model, that scope is the prefix of ``model.type``
    (``'mmpretrain.ImageClassifier'``), else the model's ``_scope_``, else the config's
    ``default_scope``. A config whose ``default_scope`` is ``mmtwins`` thus has its task
    told by its model.

    Args:
        model: a zoo name or alias, a ``.py`` config path or a
            :class:`~mmengine.config.Config`.

    Raises:
        ValueError: when that scope is none of mmpretrain, mmseg and mmdet.

    Example:
        >>> task_of('upernet_svt-s_8xb2-160k_ade20k-512x512')
        'segmentation'
        >>> task_of(Config(dict(default_scope='mmtwins',
        ...                     model=dict(_scope_='mmpretrain', type='ImageClassifier'))))
        'classification'
    """
    config = model if isinstance(model, Config) else _resolve(model)[0]
    model_cfg = config.get('model') or {}
    model_type = model_cfg.get('type')
    if isinstance(model_type, str) and '.' in model_type:
        scope = model_type.split('.')[0]
    else:
        scope = model_cfg.get('_scope_') or config.get('default_scope')
    if scope not in TASKS:
        raise ValueError(
            f'cannot tell the task of {_describe(model)}: its model (type={model_type!r}) '
            f'resolves in scope {scope!r}; prefix the type with one of {sorted(TASKS)} or '
            f'set the model\'s _scope_ to one')
    return TASKS[scope]


def _explain_scope_error(model: Union[str, Path, Config], config: Config,
                         error: KeyError) -> None:
    """Raises a ``ValueError`` for a type the registry of the config's ``mmtwins`` scope
    lacks (mmengine's ``KeyError`` names the registry, not the fix); else returns."""
    if config.get('default_scope') != 'mmtwins' or 'mmtwins::' not in str(error):
        return
    task_of(config)  # the unprefixed model type: its own message
    model_cfg = config.model
    if '_scope_' not in model_cfg:
        library = model_cfg.type.split('.')[0]
        raise ValueError(
            f'{_describe(model)}: {error.args[0].split(". ")[0]}: {model_cfg.type} builds '
            f'its nested parts (data preprocessor, losses) with unprefixed names of its '
            f'library; add _scope_={library!r} to the model dict') from error


def _describe(model: Union[str, Path, Config]) -> str:
    """``model`` for a message: a name or path as given, a Config by its file."""
    if isinstance(model, Config):
        return repr(model.filename) if model.filename else 'a config'
    return repr(str(model))


def _resolve(model: Union[str, Path, Config]) -> Tuple[Config, Optional[ModelInfo]]:
    if isinstance(model, Config):
        return copy.deepcopy(model), None
    if str(model).endswith('.py'):
        if not osp.isfile(model):
            raise FileNotFoundError(f'config file {str(model)!r} does not exist')
        return Config.fromfile(str(model)), None
    info = ModelZoo.get(str(model))
    return Config.fromfile(info.config), info


def _dataset_meta(config: Config, checkpoint_meta: dict) -> dict:
    """Class names: from the checkpoint if it has them, else from the test dataset.

    The test dataset's ``metainfo`` in the config wins over its class's defaults (a config
    training on its own classes).
    """
    if 'dataset_meta' in checkpoint_meta:
        return checkpoint_meta['dataset_meta']
    dataset = config.get('test_dataloader', {}).get('dataset', {})
    if dataset.get('metainfo'):
        return dict(dataset['metainfo'])
    dataset_type = dataset.get('type')
    if dataset_type is None:
        return {}
    from mmengine.registry import DATASETS
    scope = config.get('default_scope')
    if '.' not in dataset_type and scope:
        dataset_type = f'{scope}.{dataset_type}'
    dataset_class = DATASETS.get(dataset_type)
    if dataset_class is None:
        warnings.warn(f'test_dataloader.dataset.type={dataset_type!r} of the config is not a '
                      f'registered dataset (a missing scope prefix such as "mmpretrain.", or '
                      f'a module not imported), so the predictions carry no class names',
                      stacklevel=3)
        return {}
    return dict(getattr(dataset_class, 'METAINFO', {}))


def _downloaded_path(url: str) -> str:
    """Where torch.hub keeps a downloaded file."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))


def _can_download(url: str) -> bool:
    """Whether the host of ``url`` resolves (a quick, side-effect-free network check)."""
    import socket
    from urllib.parse import urlparse
    try:
        socket.getaddrinfo(urlparse(url).hostname, 443)
    except OSError:
        return False
    return True


def _load_pretrained(network: torch.nn.Module, path: str) -> dict:
    """Loads weights of any supported format into a whole model; returns the file's meta.

    As ``tools/test.py`` does, weights that leave any of the model's tensors at their
    random initialisation (another head, a backbone alone) or that belong to another
    architecture (a deeper model of the same widths) are refused: predictions with them
    would be quietly wrong.
    """
    checkpoint = read_checkpoint(path)
    state_dict, _, _ = convert_to_mmtwins(checkpoint, source=path)
    refuse_another_architecture(network, state_dict, path)
    refuse_incomplete(network, state_dict, path, 'used for inference')
    load_into(network, state_dict, prefix='', source=path)
    return checkpoint.get('meta') or {}


def get_model(model: Union[str, Path, Config],
              pretrained: Union[bool, str] = False,
              device: Union[str, torch.device, None] = None,
              **model_overrides) -> torch.nn.Module:
    """Builds a model from a zoo name, an alias, a config file or a ``Config``.

    Args:
        model: ``'svt-s_8xb128_in1k'``, an alias such as
            ``'twins-svt-small_3rdparty_8xb128_in1k'`` (mmpretrain) or ``'twins_svt_small'``
            (timm), a ``.py`` config path, or a :class:`~mmengine.config.Config`.
        pretrained: ``False``: fresh weights. ``True``: the published weights of a zoo
            model (downloaded; without network, pass a local file instead). A path or
            address: weights in any supported format (mmtwins, official, timm, mmpretrain,
            mmseg), converted on the fly.
        device: where to put the model; default CPU.
        **model_overrides: merged into ``config.model``, e.g.
            ``backbone=dict(out_indices=(0, 1, 2, 3))``; ``data_preprocessor=dict(...)``
            merges into the config's data preprocessor.

    Returns:
        The model in eval mode, with ``_config``, ``_metainfo`` and ``_dataset_meta``
        set as mmpretrain's inferencers expect.

    Example:
        >>> model = get_model('davit-tiny_3rdparty_in1k')  # fresh weights
        >>> model.extract_feat(torch.rand(1, 3, 224, 224))[0].shape
        torch.Size([1, 768])
        >>> model = get_model('davit_tiny', pretrained='davit_tiny.pth')  # doctest: +SKIP
    """
    config, info = _resolve(model)
    if pretrained is True:
        if info is None or not info.weights:
            raise NoPublishedWeightsError(_describe(model))
        pretrained = info.weights
        if not osp.isfile(_downloaded_path(pretrained)) and not _can_download(pretrained):
            raise NoNetworkError(info.name, pretrained)
    if not isinstance(config.get('model'), dict):
        raise ValueError(f'{_describe(model)} defines no model (a _base_ file of runtime '
                         f'or schedule settings?)')
    # In the model first, as the runners build it, so that an override of some of its
    # settings keeps the others (the mean and std).
    if config.get('data_preprocessor') and 'data_preprocessor' not in config.model:
        config.model.data_preprocessor = copy.deepcopy(config.data_preprocessor)
    if model_overrides:
        config.merge_from_dict({'model': model_overrides})
    with DefaultScope.overwrite_default_scope(config.get('default_scope')):
        try:
            network = MODELS.build(config.model)
        except KeyError as error:
            _explain_scope_error(model, config, error)
            raise
    checkpoint_meta = _load_pretrained(network, str(pretrained)) if pretrained else {}
    network._config = config
    network._metainfo = info
    network._dataset_meta = _dataset_meta(config, checkpoint_meta)
    if device is not None:
        network.to(device)
    return network.eval()
