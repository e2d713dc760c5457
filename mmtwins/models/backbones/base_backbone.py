"""What every mmtwins backbone shares: arch parsing, options, outputs, freezing."""
from typing import Callable, Dict, Iterator, List, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmtwins.converters import BACKBONE_PREFIX, load_pretrained

_NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, _BatchNorm)


class PyramidBackbone(BaseModule):
    """Base of the four-stage (or custom) pyramids of Twins and DaViT.

    A subclass defines ``arch_zoo`` and ``arch_keys``, builds ``self.stages`` (each
    stage maps an NCHW tensor to channels-last ``(B, H, W, C)`` tokens and starts
    with a ``patch_embed``), then calls :meth:`_freeze_stages`.

    Args:
        arch: A name of ``arch_zoo`` (case-insensitive) or a dict with exactly the
            keys ``arch_keys``, each a sequence with one entry per stage.
        in_channels: Input image channels.
        out_indices: Stages whose maps :meth:`forward` returns; negative
            indices count from the end.
        frozen_stages: -1 freezes nothing, 0 the stem (:meth:`stem_modules`: the
            patch embedding of stage 0), k > 0 the stem and stages ``0 .. k-1``:
            their parameters stop requiring gradients and their modules stay in
            eval mode.
        norm_eval: Keep all normalisation layers in eval mode while training.
            LayerNorm has no running statistics, so this only matters for
            normalisation layers a user adds.
        with_cp: Gradient checkpointing of every block.
        init_cfg: mmengine ``init_cfg``; None for the family's official
            initialisation (:meth:`official_init`), which also runs before a
            ``Pretrained`` one (see :meth:`init_weights`).
    """

    arch_zoo: Dict[str, Dict[str, Sequence]] = {}
    arch_keys: Tuple[str, ...] = ()
    official_init: Callable[[nn.Module], None]

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int,
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int,
                 norm_eval: bool,
                 with_cp: bool,
                 init_cfg: Union[dict, list, None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        self.num_stages = len(self.arch_settings['depths'])
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels={in_channels!r} must be a positive int')
        self.in_channels = in_channels
        self.out_indices = check_out_indices(out_indices, self.num_stages)
        if not _is_int(frozen_stages) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages={frozen_stages!r} must be an int '
                             f'in [-1, {self.num_stages}]')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> Dict[str, tuple]:
        """Resolves ``arch`` to a dict of per-stage tuples (see the class Args)."""
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(
                    f'arch={arch!r} is not a {cls.__name__} arch; choose one of '
                    f'{sorted(cls.arch_zoo)} or pass a dict with the keys '
                    f'{cls.arch_keys}')
            arch = cls.arch_zoo[arch.lower()]
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, not {type(arch)}')
        if set(arch) != set(cls.arch_keys):
            raise ValueError(
                f'a custom {cls.__name__} arch needs exactly the keys '
                f'{cls.arch_keys}; missing {sorted(set(cls.arch_keys) - set(arch))}, '
                f'unknown {sorted(set(arch) - set(cls.arch_keys))}')
        for key in cls.arch_keys:
            _check_stage_values(key, arch[key])
        lengths = {key: len(arch[key]) for key in cls.arch_keys}
        if len(set(lengths.values())) != 1 or lengths['depths'] == 0:
            raise ValueError(f'arch needs one entry per stage in every key, got '
                             f'lengths {lengths}')
        return {key: tuple(arch[key]) for key in cls.arch_keys}

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Runs the stages up to the last one of ``out_indices``.

        Args:
            x: ``(B, in_channels, H, W)`` images (see :meth:`check_input_size`).

        Returns:
            One NCHW map per ``out_indices`` entry, in stage order (views of
            channels-last tokens: ``channels_last`` memory format). Stages after
            the last requested one are not run.
        """
        self.check_input_size(*x.shape[-2:])
        outs = []
        for index, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x = stage(x).permute(0, 3, 1, 2)
            if index in self.out_indices:
                outs.append(self.output_map(index, x))
        return tuple(outs)

    def check_input_size(self, height: int, width: int) -> None:
        """Raises a ``ValueError`` naming the sizes if the arch cannot take this input.

        Every patch embedding pads its input to its stride, so any size works unless a
        subclass says otherwise.
        """

    def output_map(self, index: int, x: Tensor) -> Tensor:
        """The returned form of stage ``index``'s NCHW output ``x``."""
        return x

    def train(self, mode: bool = True) -> 'PyramidBackbone':
        """Sets the mode, keeping frozen stages (and with ``norm_eval`` norms) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _NORM_LAYERS):
                    module.eval()
        return self

    def stem_modules(self) -> List[nn.Module]:
        """What ``frozen_stages=0`` freezes: the first stage's patch embedding."""
        return [self.stages[0].patch_embed]

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for module in [*self.stem_modules(), *self.stages[:self.frozen_stages]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """The official initialisation, then ``init_cfg``.

        The official initialisation is skipped when ``init_cfg`` has initialisers of its
        own. A ``Pretrained`` entry is loaded by mmtwins' converters instead of MMEngine's
        ``PretrainedInit``: the file may be in any supported format (official, timm,
        mmpretrain, mmseg or mmtwins, told apart by its keys), is read without executing
        pickled code, and the backbone part of it (``prefix``, default ``'backbone.'``) is
        loaded over the official values, so whatever it lacks (the per-stage norms of a
        dense model initialised from a classifier) keeps them; the keys are reported. Its
        ``map_location`` is accepted and has no effect: the file is read on the CPU and
        copied into the backbone's tensors, wherever they are.

        Raises:
            ValueError: For a ``Pretrained`` entry without ``checkpoint`` or with keys
                ``PretrainedInit`` does not take (a misspelt ``prefix``, say).
        """
        init_cfgs = self.init_cfg if isinstance(self.init_cfg, list) else \
            [self.init_cfg] if self.init_cfg else []
        pretrained = [cfg for cfg in init_cfgs if cfg['type'] == 'Pretrained']
        initialisers = [cfg for cfg in init_cfgs if cfg['type'] != 'Pretrained']
        if not self._is_init and not initialisers:
            self.apply(self.official_init)
        self.init_cfg, init_cfg = initialisers or None, self.init_cfg
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        for cfg in pretrained:
            _check_pretrained_cfg(cfg)
            load_pretrained(self, cfg['checkpoint'], prefix=cfg.get('prefix') or BACKBONE_PREFIX)


def _check_pretrained_cfg(cfg: dict) -> None:
    unknown = set(cfg) - {'type', 'checkpoint', 'prefix', 'map_location'}
    if unknown or 'checkpoint' not in cfg:
        raise ValueError(
            f'init_cfg {dict(cfg)} needs checkpoint= and takes only prefix= and '
            f'map_location= besides, as MMEngine\'s PretrainedInit'
            + (f'; unknown: {", ".join(sorted(unknown))}' if unknown else ''))


def _is_int(value) -> bool:
    # bool is an int subclass; True for a stage index is a config mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_stage_values(key: str, values) -> None:
    """Raises a ``ValueError`` unless ``values`` is a sequence of positive ints (any
    positive numbers for the ``*ratios`` of MLPs)."""
    number = _is_number if key.startswith('mlp_ratio') else _is_int
    if not isinstance(values, Sequence) or not all(number(v) and v > 0 for v in values):
        kind = 'positive numbers' if key.startswith('mlp_ratio') else 'positive ints'
        raise ValueError(f'arch {key}={values!r} must be a sequence of {kind}, one per stage')


def check_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int) -> Tuple[int, ...]:
    """Validates ``out_indices`` and returns them non-negative and sorted.

    Example:
        >>> check_out_indices((-1, 0), 4)
        (0, 3)
    """
    indices = (out_indices, ) if _is_int(out_indices) else \
        tuple(out_indices) if isinstance(out_indices, Sequence) else ()
    if not indices or not all(_is_int(i) for i in indices):
        raise ValueError(f'out_indices={out_indices!r} must be an int or a '
                         f'non-empty sequence of ints')
    for index in indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices={out_indices!r}: {index} is out of '
                             f'range for {num_stages} stages')
    normalised = sorted(index % num_stages for index in indices)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f'out_indices={out_indices!r} names a stage twice')
    return tuple(normalised)


def drop_path_schedule(drop_path_rate: float, num_branches: int) -> Iterator[float]:
    """Stochastic depth rates rising linearly from 0 to ``drop_path_rate`` over the
    residual branches, in the order they are built (both families' schedule).

    Example:
        >>> list(drop_path_schedule(0.5, 5))
        [0.0, 0.125, 0.25, 0.375, 0.5]
    """
    return iter(torch.linspace(0, drop_path_rate, num_branches, device='cpu').tolist())


def init_linear_and_norm(module: nn.Module) -> None:
    """The official initialisation of both families for one module (use with ``apply``):
    linear layers truncated normal with std .02 and bias 0, LayerNorm weight 1 and bias
    0. It is all of DaViT's; its convolutions keep PyTorch's default.

    Example:
        >>> layer = nn.Linear(4, 2)
        >>> init_linear_and_norm(layer)
        >>> layer.bias.tolist()
        [0.0, 0.0]
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=.02)
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        nn.init.ones_(module.weight)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def check_rates(**rates: float) -> None:
    """Checks that every dropout-like probability, given by name, lies in [0, 1).

    Example:
        >>> check_rates(drop_rate=0.1, drop_path_rate=1.5)
        Traceback (most recent call last):
        ValueError: drop_path_rate=1.5 must be in [0, 1)
    """
    for name, value in rates.items():
        if not _is_number(value) or not 0 <= value < 1:
            raise ValueError(f'{name}={value!r} must be in [0, 1)')
