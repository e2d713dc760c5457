"""What the demos share: the ``--out-file`` argument, and the model of the command line
(its arguments, and the model built from them, checked for the demo's task, with the
errors a command-line user can act on).

Example:
    >>> add_model_arguments(parser)
    >>> parser.add_argument('--out-file', type=image_file)
    >>> model = build_model(parser.parse_args(), 'segmentation')
"""
import argparse
import os.path as osp
import sys

import torch

from mmtwins.apis import NoNetworkError, NoPublishedWeightsError, get_model, task_of
from mmtwins.apis.inference import check_image_file

# The demo of each task, named to a user who gives a demo a model of another task.
DEMOS = {
    'classification': 'demo/image_demo.py',
    'segmentation': 'demo/seg_demo.py',
    'detection': 'demo/det_demo.py',
}


def image_file(path: str) -> str:
    """An argparse ``type``: a file name cv2 can write an image to, told by its extension.

    Checked when the arguments are parsed: cv2 itself fails only when it writes, after the
    model has been built and run.

    Args:
        path: the value given on the command line.

    Example:
        >>> image_file('drawn.png')
        'drawn.png'
    """
    try:
        return check_image_file(path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def device(name: str) -> str:
    """``name`` if PyTorch has that device here: for ``--device``, checked before the
    model is built.

    Example:
        >>> device('cpu')
        'cpu'
    """
    try:
        torch.device(name)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f'{name}: no CUDA device here; use cpu')
    return name


def positive_int(text: str) -> int:
    """``text`` as an int of at least 1, for counts such as ``--topk``.

    Example:
        >>> positive_int('5')
        5
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number of at least 1')
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the arguments :func:`build_model` reads: ``image``, ``model``, ``--checkpoint``
    and ``--device``.

    Args:
        parser: the demo's parser; its own options are added after these.

    Example:
        >>> parser = argparse.ArgumentParser(description='Segment an image')
        >>> add_model_arguments(parser)
        >>> parser.parse_args(['a.jpg', 'svt-s_8xb128_in1k']).device
        'cpu'
    """
    parser.add_argument('image', help='image file')
    parser.add_argument('model', help='a model name of the zoo (or an alias) or a config file')
    parser.add_argument(
        '--checkpoint', help='weights in any supported format (default: the published '
        'weights of a zoo model, downloaded)')
    parser.add_argument('--device', default='cpu', type=device,
                        help='e.g. cpu or cuda:0')


def build_model(args: argparse.Namespace, task: str) -> torch.nn.Module:
    """The model ``args.model`` with the weights ``args.checkpoint`` (default: the published
    ones), on ``args.device``.

    Exits with a one-line error and no traceback when the model is of another task (told
    before any weights are read or downloaded: it names the demo to use), when it has no
    weights to load (it names ``--checkpoint``) and when the model cannot be found.

    Args:
        args: the parsed command line, with ``model``, ``checkpoint`` and ``device``.
        task: the task of the demo, e.g. ``'segmentation'``.

    Example:
        >>> model = build_model(parse_args(), 'segmentation')
    """
    # sys.exit raises SystemExit, which none of the clauses below catches.
    try:
        model_task = task_of(args.model)
        if model_task != task:
            sys.exit(f'error: {args.model} is a {model_task} model; use {DEMOS[model_task]}')
        return get_model(args.model, pretrained=args.checkpoint or True, device=args.device)
    except NoPublishedWeightsError:
        sys.exit(f'error: {args.model} has no published weights; give a weight file with '
                 f'--checkpoint FILE')
    except NoNetworkError as error:
        sys.exit(f'error: cannot download the weights of {error.name} ({error.url}): no '
                 f'network. Download the file elsewhere, then give it with --checkpoint '
                 f'/path/to/{osp.basename(error.url)}')
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        sys.exit(f'error: {error}')
