from .collect_env import check_mmcv_ops, collect_env

__all__ = ['collect_env', 'check_mmcv_ops']
