from .checkpoint_hook import CheckpointHook
from .random_states import capture_random_states, restore_random_states
from .runner import Runner

__all__ = ['CheckpointHook', 'Runner', 'capture_random_states', 'restore_random_states']
