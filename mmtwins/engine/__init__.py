from .runner import Runner
from .trusted_checkpoint import (RUNNER_CHECKPOINT_GLOBALS, load_runner_checkpoint,
                                 trusted_runner_checkpoints)

__all__ = [
    'Runner', 'RUNNER_CHECKPOINT_GLOBALS', 'load_runner_checkpoint', 'trusted_runner_checkpoints'
]
