"""MMEngine's runner with the fixes mmtwins needs, each in one visible place.

* Checkpoints load under torch >= 2.6, whatever their format: MMEngine 0.10.7 reads its own
  runner checkpoints with torch's ``weights_only=True`` default and fails on their message
  hub. :func:`mmtwins.converters.read_checkpoint` reads them (and every other file) with
  the allowlist of :mod:`mmtwins.converters.trusted_checkpoint`, and Twins / DaViT weights
  of other formats (official, timm, mmpretrain, mmseg) are converted to mmtwins keys.
* Distributed runs work on machines without GPUs, over the ``gloo`` backend: MMEngine 0.10.7
  calls ``torch.cuda.set_device`` while initialising a ``pytorch`` launch and hands
  ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, both of which fail without CUDA.
"""
import datetime
import os
from typing import Callable, Dict, Optional, Union

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner as MMEngineRunner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from mmtwins.converters import read_checkpoint, to_mmtwins_checkpoint
from mmtwins.registry import RUNNERS


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """An ``mmengine.runner.Runner`` that loads any supported checkpoint and runs on CPUs.

    Example:
        >>> from mmengine.config import Config
        >>> runner = Runner.from_cfg(Config.fromfile('configs/twins/svt-s_8xb128_in1k.py'))
        >>> runner.train()
    """

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
        """
        checkpoint = to_mmtwins_checkpoint(read_checkpoint(filename, map_location),
                                           source=filename)
        # From here on as MMEngine's Runner.load_checkpoint, after its file read.
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def setup_env(self, env_cfg: Dict) -> None:
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            _init_cpu_process_group(self.launcher, env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict], model: torch.nn.Module):
        if self.distributed and model_wrapper_cfg is None and not torch.cuda.is_available():
            # DDP over CPU parameters must not be given device ids; an explicit None
            # overrides the default that MMEngine adds.
            model_wrapper_cfg = dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False))
        return super().wrap_model(model_wrapper_cfg, model)


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
