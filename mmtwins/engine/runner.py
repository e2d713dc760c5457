"""MMEngine's runner with the fixes mmtwins needs, each in one visible place.

* Checkpoints load under torch >= 2.6, whatever their format: MMEngine 0.10.7 reads its own
  runner checkpoints with torch's ``weights_only=True`` default and fails on their message
  hub. :func:`mmtwins.converters.read_checkpoint` reads them (and every other file) with
  the allowlist of :mod:`mmtwins.converters.trusted_checkpoint`, and Twins / DaViT weights
  of other formats (official, timm, mmpretrain, mmseg) are converted to mmtwins keys.
* A checkpoint of another architecture is refused with the differing backbone tensors
  listed: MMEngine 0.10.7 only logs the mismatches and tests (or trains) a model whose
  backbone is left at its random initialisation. Testing refuses any tensor of the model
  that the checkpoint does not set (a missing head, or one of other classes).
* A resumed run shuffles its data with the seed of the run it continues: MMEngine 0.10.7
  builds the data loader with a new seed (the configs' ``randomness.seed=None``) and reads
  the checkpoint's seed only afterwards (see :meth:`Runner.train`).
* Checkpoints are written atomically: MMEngine 0.10.7 ``torch.save``s straight into the
  destination file, so a run killed mid-write leaves a truncated ``epoch_N.pth`` that
  ``--resume`` then fails on. :meth:`Runner.save_checkpoint` writes a temporary file in the
  same folder and renames it (:mod:`mmtwins.utils.atomic_files`); the ordering of the
  checkpoint, ``last_checkpoint`` and the removal of old checkpoints is fixed in
  :class:`mmtwins.engine.CheckpointHook`.
* ``compile`` in a config compiles the model's training forward with
  :func:`mmtwins.utils.compile_model`: MMEngine 0.10.7 compiles the whole ``train_step``,
  which recompiles at every iteration (see :meth:`Runner._maybe_compile`), and calls
  ``torch.compile`` with inductor's layout optimisation on, which stores the models'
  ``(B, H, W, C)`` token maps transposed (see :mod:`mmtwins.utils.compile`).
* Distributed runs work on machines without GPUs, over the ``gloo`` backend: MMEngine 0.10.7
  calls ``torch.cuda.set_device`` while initialising a ``pytorch`` launch and hands
  ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, both of which fail without CUDA.
"""
import datetime
import glob
import os
import os.path as osp
import types
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed, master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.model import BaseTTAModel, is_model_wrapper, revert_sync_batchnorm
from mmengine.runner import Runner as MMEngineRunner
from mmengine.runner.checkpoint import _load_checkpoint_to_model, find_latest_checkpoint

from mmtwins.converters import (CheckpointError, read_checkpoint, to_mmtwins_checkpoint,
                                unwrap_state_dict)
from mmtwins.converters.checkpoint import refuse_another_architecture, refuse_incomplete
from mmtwins.registry import RUNNERS
from mmtwins.utils.atomic_files import atomic_destination, remove_stale_temporaries
from mmtwins.utils.compile import compile_model


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """An ``mmengine.runner.Runner`` that loads any supported checkpoint and runs on CPUs.

    Example:
        >>> from mmengine.config import Config
        >>> config = Config.fromfile('configs/twins/svt-s_8xb128_in1k.py')
        >>> runner = Runner.from_cfg(config)  # doctest: +SKIP
        >>> runner.train()  # doctest: +SKIP
    """

    _testing = False
    _resuming = False
    # (path, checkpoint) that train() read for its seed, for resume() to load.
    _read_ahead: Optional[Tuple[str, Mapping]] = None

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]) -> dict:
        """Loads a checkpoint for ``resume``, ``load_from`` and testing.

        Args:
            filename: a local file or an ``http(s)://`` address: a runner checkpoint, or
                Twins / DaViT weights in any format mmtwins converts.
            map_location: as in :func:`torch.load`.
            strict: whether every key of the model must be in the checkpoint.
            revise_keys: ``(pattern, replacement)`` pairs applied to the checkpoint keys.
                The checkpoint :meth:`train` read to resume is not read again (its
                tensors are on the CPU, whatever ``map_location``: loading copies them
                to the model's and the optimizer's devices).
        """
        checkpoint = self._take_read_ahead(filename)
        if checkpoint is None:
            checkpoint = read_checkpoint(filename, map_location)
        checkpoint = to_mmtwins_checkpoint(checkpoint, source=filename)
        model = _unwrapped(self.model)
        state_dict = unwrap_state_dict(checkpoint, source=filename)
        refuse_another_architecture(model, state_dict, filename)
        if self._testing or self._resuming:
            refuse_incomplete(model, state_dict, filename,
                               'tested' if self._testing else 'resumed')
        # From here on as MMEngine's Runner.load_checkpoint, after its file read.
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def train(self) -> torch.nn.Module:
        """Trains as MMEngine does, a resumed run with its checkpoint's seed from the start.

        MMEngine 0.10.7 builds the training data loader (its sampler's shuffling seed)
        with this run's seed, and only then reads the seed of the checkpoint it resumes
        from: with ``randomness.seed=None`` (a new random seed per run, the configs'
        default) a resumed run would visit the data in another order than the run it
        continues.
        """
        resume_from = self._checkpoint_to_resume()
        if resume_from is not None:
            checkpoint = read_checkpoint(resume_from)
            self._read_ahead = (resume_from, checkpoint)
            seed = (checkpoint.get('meta') or {}).get('seed') \
                if isinstance(checkpoint, Mapping) else None
            if seed is not None and seed != self.seed:
                self._randomness_cfg.update(seed=seed)
                self.set_randomness(**self._randomness_cfg)
        return super().train()

    def resume(self, filename: str, *args, **kwargs) -> None:
        """Resumes as MMEngine does, refusing a checkpoint that does not set every weight.

        MMEngine 0.10.7 loads the model's weights leniently, then fails with a traceback in
        the optimizer's state (another number of parameters) or, with an optimizer of as
        many parameters, trains on with some weights at their initial values.
        """
        self._resuming = True
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def test(self) -> dict:
        """Tests as MMEngine does, refusing a checkpoint that does not set every weight.

        MMEngine 0.10.7 logs the missing and mismatched tensors and scores the model with
        them at their random initialisation (a head of other classes, say). A checkpoint
        with more tensors than the model (an auxiliary head) is fine.
        """
        self._testing = True
        try:
            return super().test()
        finally:
            self._testing = False

    def load_or_resume(self) -> None:
        """As MMEngine's, resuming from the checkpoint :meth:`_checkpoint_to_resume` picks."""
        if not self._has_loaded:
            self._checkpoint_to_resume()
        try:
            super().load_or_resume()
        finally:
            self._read_ahead = None  # not held through training if it went unused

    def _take_read_ahead(self, filename: str) -> Optional[Mapping]:
        """The checkpoint :meth:`train` read from ``filename``, handed over once."""
        if self._read_ahead is None or self._read_ahead[0] != filename:
            return None
        checkpoint, self._read_ahead = self._read_ahead[1], None
        return checkpoint

    def _checkpoint_to_resume(self) -> Optional[str]:
        """The checkpoint to resume from, checked, and set as ``load_from``; None without one.

        As MMEngine picks it (``--resume PATH``, else the file ``last_checkpoint`` names in
        the work dir), but with an error naming the file rather than a traceback when it
        does not exist, the work dir's own copy when the work dir was moved or copied
        (``last_checkpoint`` holds the absolute path it was written with), and an error
        rather than a fresh start over the old run's files when the work dir has
        checkpoints but no ``last_checkpoint``.
        """
        if not self._resume:
            return None
        if self._load_from is None:
            self._load_from = self._last_checkpoint()
        path = self._load_from
        if path is not None and '://' not in path and not osp.isfile(path):
            raise CheckpointError(f'cannot resume from {path}: no such file')
        return path

    def _last_checkpoint(self) -> Optional[str]:
        """The file ``last_checkpoint`` names, in this work dir if it was moved or copied."""
        record = osp.join(self.work_dir, 'last_checkpoint')
        if not osp.isfile(record):
            checkpoints = sorted(glob.glob(osp.join(self.work_dir, '*.pth')))
            if checkpoints:
                raise CheckpointError(
                    f'cannot resume: {self.work_dir} holds checkpoints '
                    f'({", ".join(map(osp.basename, checkpoints))}) but no last_checkpoint '
                    f'file naming the one to resume from; name it: --resume PATH')
            return None
        path = find_latest_checkpoint(self.work_dir)
        if '://' in path:  # a checkpoint hook's remote out_dir
            return path
        here = osp.join(self.work_dir, osp.basename(path))
        if osp.abspath(osp.dirname(path)) != osp.abspath(self.work_dir) and osp.isfile(here):
            self.logger.warning(f'{record} names {path}, outside the work dir: resuming from '
                                f'its copy {here} (the work dir was moved or copied)')
            return here
        if not osp.isfile(path):
            raise CheckpointError(f'cannot resume: {record} names {path}, which does not exist')
        return path

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """Saves a runner checkpoint as MMEngine does, but atomically on local disks.

        ``out_dir/filename`` is at every moment absent, the previous complete file or the
        new complete file. Remote storage (``s3://`` ...) is written as MMEngine does.

        Args:
            out_dir: The folder of the checkpoint.
            filename: Its name in ``out_dir``.
            file_client_args: Deprecated MMEngine file client settings.
            save_optimizer: Whether to save the optimizer state.
            save_param_scheduler: Whether to save the parameter scheduler states.
            meta: Extra meta information (epoch, iter, ...).
            by_epoch: Whether ``meta`` counts epochs (``True``) or iterations.
            backend_args: Arguments of the file backend of ``out_dir``.

        Example:
            >>> runner.save_checkpoint(runner.work_dir, 'epoch_3.pth')  # doctest: +SKIP
        """
        options = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                       save_param_scheduler=save_param_scheduler, meta=meta,
                       by_epoch=by_epoch, backend_args=backend_args)
        local = file_client_args is None and isinstance(
            get_file_backend(out_dir, backend_args=backend_args), LocalBackend)
        if not local:
            super().save_checkpoint(out_dir, filename, **options)
            return
        destination = osp.join(out_dir, filename)
        for stale in remove_stale_temporaries(osp.dirname(destination)):
            self.logger.warning(f'removed {stale}, left by a run killed while it wrote it')
        with atomic_destination(destination) as temporary:
            super().save_checkpoint(out_dir, osp.relpath(temporary, out_dir), **options)

    def _maybe_compile(self, target: str) -> None:
        """Compiles the model's training forward if the config's ``compile`` asks for it.

        ``compile = True`` or a dict of ``torch.compile`` arguments, as in MMEngine, given
        to :func:`mmtwins.utils.compile_model` (static shapes, inductor's options for these
        models; a config's own settings win). What is compiled is the model's
        ``loss`` method (images and data samples to losses: mmpretrain, mmseg and mmdet
        models all have one), or ``forward`` for a model without one; validation and
        testing stay eager, as with MMEngine.

        MMEngine 0.10.7 compiles the whole ``train_step`` instead, and recompiles it at
        every iteration: its guards hold the values of the learning rate, which the
        schedulers change as training goes, and of the random numbers that mmpretrain's
        Mixup and CutMix draw in the data preprocessor; after
        ``torch._dynamo.config.recompile_limit`` (8) recompilations those frames run
        eagerly. The training forward has neither, and is where the time goes.

        Args:
            target: The method MMEngine would compile (``'train_step'``); the training
                forward of the unwrapped model is compiled in its place.
        """
        compile_cfg = self.cfg.get('compile')
        if compile_cfg is None or compile_cfg is False:
            return
        if compile_cfg is True:
            compile_cfg = {}
        if not isinstance(compile_cfg, Mapping):
            raise TypeError(f'the config\'s `compile` must be a bool or a dict of '
                            f'torch.compile arguments, not {compile_cfg!r}')
        model = _unwrapped(self.model)
        name = 'loss' if callable(getattr(type(model), 'loss', None)) else 'forward'
        compiled = compile_model(getattr(type(model), name), **compile_cfg)
        # A method of the model, not a function holding it: a deep copy of the model (EMA)
        # then calls the compiled code on itself.
        setattr(model, name, types.MethodType(compiled, model))
        self.logger.info(f'The model\'s {name} is compiled; the first iterations will be '
                         f'slow.')

    def setup_env(self, env_cfg: Dict) -> None:
        """Sets up the environment as MMEngine does; a distributed run without CUDA joins
        its process group over gloo first (MMEngine's setup assumes a GPU per process).

        Args:
            env_cfg: The config's ``env_cfg``.
        """
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            _init_cpu_process_group(self.launcher, env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict],
                   model: torch.nn.Module) -> torch.nn.Module:
        """Wraps the model as MMEngine does; on CPUs a distributed run gets DDP without
        device ids and without SyncBatchNorm.

        Args:
            model_wrapper_cfg: The config's ``model_wrapper_cfg``; None for the default.
            model: The model to wrap.

        Returns:
            The wrapped model.
        """
        if self.distributed and not torch.cuda.is_available():
            # SyncBatchNorm (mmseg's and mmdet's heads) only runs on GPUs: on CPUs each
            # process keeps its own BatchNorm statistics.
            model = revert_sync_batchnorm(model)
        if self.distributed and model_wrapper_cfg is None and not torch.cuda.is_available():
            # DDP over CPU parameters must not be given device ids; an explicit None
            # overrides the default that MMEngine adds.
            model_wrapper_cfg = dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False))
        return super().wrap_model(model_wrapper_cfg, model)


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside (distributed) data parallel and test-time augmentation wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def _init_cpu_process_group(launcher: str, dist_cfg: Dict) -> None:
    """Joins the process group of a ``torchrun`` launch over gloo, without touching CUDA."""
    if launcher != 'pytorch':
        raise RuntimeError(
            f'distributed runs without GPUs are supported with --launcher pytorch '
            f'(tools/dist_train.sh, torchrun), not with --launcher {launcher}')
    timeout = dist_cfg.get('timeout')
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **({} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))))
