"""MMEngine's runner, loading its own checkpoints through the trusted path."""
from mmengine.runner import Runner as MMEngineRunner

from mmtwins.registry import RUNNERS
from .trusted_checkpoint import trusted_runner_checkpoints


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """An ``mmengine.runner.Runner`` whose ``resume`` and ``load_from`` work under torch >= 2.6.

    ``load_checkpoint`` (used by ``resume``, ``load_from`` and testing) reads the file inside
    :func:`~mmtwins.engine.trusted_runner_checkpoints`; everything else is MMEngine's.

    Example:
        >>> from mmengine.config import Config
        >>> runner = Runner.from_cfg(Config.fromfile('configs/twins/svt-s_8xb128_in1k.py'))
    """

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        with trusted_runner_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)
