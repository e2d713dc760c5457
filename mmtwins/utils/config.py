"""Loading config files with errors that name the file and the problem."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


class ConfigError(ValueError):
    """A config file that is missing or cannot be read."""


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Reads a config file and applies ``--cfg-options`` overrides.

    Args:
        path: the ``.py`` config file.
        cfg_options: ``{'dotted.key': value}`` overrides, as parsed by ``DictAction``.

    Raises:
        ConfigError: the file does not exist, or it fails to parse or to evaluate
            (the message names the file and the original error).

    Example:
        >>> cfg = load_config('configs/twins/svt-s_8xb128_in1k.py', {'train_cfg.max_epochs': 1})
    """
    if not osp.isfile(path):
        raise ConfigError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except Exception as error:
        raise ConfigError(f'config file {path!r} cannot be loaded: '
                          f'{type(error).__name__}: {error}') from error
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
