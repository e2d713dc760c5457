"""MMEngine's runner with the fixes mmtwins needs, each in one visible place.

* Runner checkpoints load under torch >= 2.6 (see :mod:`mmtwins.engine.trusted_checkpoint`).
* Distributed runs work on machines without GPUs, over the ``gloo`` backend: MMEngine 0.10.7
  calls ``torch.cuda.set_device`` while initialising a ``pytorch`` launch and hands
  ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, both of which fail without CUDA.
"""
import datetime
import os
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.runner import Runner as MMEngineRunner

from mmtwins.registry import RUNNERS
from .trusted_checkpoint import trusted_runner_checkpoints


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """An ``mmengine.runner.Runner`` that resumes under torch >= 2.6 and runs on CPU clusters.

    Example:
        >>> from mmengine.config import Config
        >>> runner = Runner.from_cfg(Config.fromfile('configs/twins/svt-s_8xb128_in1k.py'))
        >>> runner.train()
    """

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        """Loads a checkpoint (for ``resume``, ``load_from`` and testing) via the trusted path."""
        with trusted_runner_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)

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
