"""Prints the environment mmtwins runs in; ``--check`` also runs the mmcv ops it needs.

Example:
    $ python -m mmtwins.utils.collect_env --check
"""
import argparse
import importlib
import sys
from typing import Optional, Sequence

from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import mmtwins


def collect_env() -> dict:
    """Returns the versions of mmtwins and of the libraries it builds on."""
    import mmcv
    import mmdet
    import mmpretrain
    import mmseg
    import timm

    env_info = collect_base_env()
    # torch's multi-kilobyte build-flag dump says nothing about this stack.
    env_info.pop('PyTorch compiling details', None)
    env_info['MMCV'] = mmcv.__version__
    env_info['MMPretrain'] = mmpretrain.__version__
    env_info['MMSegmentation'] = mmseg.__version__
    env_info['MMDetection'] = mmdet.__version__
    env_info['timm'] = timm.__version__
    env_info['mmtwins'] = f'{mmtwins.__version__}+{get_git_hash(digits=7)}'
    return env_info


def check_mmcv_ops() -> None:
    """Runs ``nms`` and ``RoIAlign`` of ``mmcv.ops`` on small cases checked by hand.

    Raises:
        RuntimeError: if the compiled ops are missing or give a wrong result.
    """
    import torch
    try:
        from mmcv.ops import RoIAlign, nms
    except ImportError as error:
        raise RuntimeError(
            'mmcv was installed without its compiled ops (mmcv._ext); '
            'run tools/setup_env.sh to build it') from error

    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # Boxes 0 and 1 overlap with IoU 81 / 119 = 0.68 > 0.5: box 1 is suppressed.
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    if keep.tolist() != [0, 2]:
        raise RuntimeError(f'mmcv.ops.nms kept {keep.tolist()}, expected [0, 2]')

    # On a linear ramp f(x, y) = x, the average inside any box is the x of its centre.
    feature = torch.arange(8.).repeat(8, 1)[None, None]
    rois = torch.tensor([[0., 1., 1., 5., 5.]])
    pooled = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feature, rois)
    expected = torch.tensor([[[[1.5, 3.5], [1.5, 3.5]]]])
    if not torch.allclose(pooled, expected, atol=1e-5):
        raise RuntimeError(f'mmcv.ops.RoIAlign gave {pooled.tolist()}, '
                           f'expected {expected.tolist()}')


def import_model_packages() -> None:
    """Imports the models of mmpretrain, mmseg and mmdet in one process, as mmtwins does.

    :func:`collect_env` imports only their top levels; their model packages are where
    versions that do not go together clash (with each other, or with mmcv), so an install
    that mixes them fails here rather than when the first config is built.

    Example:
        >>> import_model_packages()
    """
    for package in ('mmpretrain.models', 'mmseg.models', 'mmdet.models'):
        importlib.import_module(package)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prints the environment; with ``--check`` also checks that the stack works.

    Args:
        argv: the arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit status: 0 (a failing check raises).

    Example:
        >>> main([])  # doctest: +SKIP
        sys.platform: linux
        ...
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='also run the mmcv ops checks')
    args = parser.parse_args(argv)
    for name, value in collect_env().items():
        print(f'{name}: {value}')
    if args.check:
        import_model_packages()
        check_mmcv_ops()
        print('mmcv ops (nms, RoIAlign): OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
