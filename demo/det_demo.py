"""Detects objects (and their masks) in an image with a detection model of the zoo or a config.

Example:
    python demo/det_demo.py demo/grace_hopper.jpg mask-rcnn_svt-s_fpn_1x_coco \\
        --checkpoint mask-rcnn_svt-s.pth --out-file grace_hopper_det.jpg
"""
import argparse
import sys
from typing import List, Optional, Sequence

from mmtwins.apis import inference_model

# A sibling module: Python puts the folder of a script it runs first on sys.path.
from demo_utils import add_model_arguments, build_model, image_file


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the model arguments (:func:`add_model_arguments`), ``--out-file`` and
    ``--score-thr``.

    Args:
        argv: the arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['demo/grace_hopper.jpg', 'mask-rcnn_svt-s_fpn_1x_coco']).score_thr
        0.3
    """
    parser = argparse.ArgumentParser(description='Detect objects in an image')
    add_model_arguments(parser)
    parser.add_argument('--out-file', type=image_file,
                        help='save the image with the detections drawn on it '
                        '(an image file: .png, .jpg, ...)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='list and draw the detections scoring at least this')
    return parser.parse_args(argv)


def detection_lines(result: dict, score_thr: float) -> List[str]:
    """One line per detection scoring at least ``score_thr``: name, score, box.

    Example:
        >>> import numpy as np
        >>> detection_lines(dict(bboxes=np.array([[1., 2., 30., 40.]]),
        ...                      scores=np.array([0.9]), labels=np.array([0]),
        ...                      label_names=['person']), 0.3)
        ['person 0.900 [1, 2, 30, 40]']
    """
    names = result.get('label_names') or [str(label) for label in result['labels']]
    return [f'{name} {score:.3f} [{", ".join(f"{v:.0f}" for v in box)}]'
            for name, score, box in zip(names, result['scores'], result['bboxes'])
            if score >= score_thr]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Detects the objects of the image; prints one line per detection and draws
    them with ``--out-file``.

    Exits with a one-line error when the model or the image cannot be used.

    Args:
        argv: as for :func:`parse_args`.

    Example:
        >>> main(['demo/grace_hopper.jpg', 'mask-rcnn_svt-s_fpn_1x_coco'])
    """
    args = parse_args(argv)
    model = build_model(args, 'detection')
    try:
        result = inference_model(model, args.image, out_file=args.out_file,
                                 score_thr=args.score_thr)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    lines = detection_lines(result, args.score_thr)
    print('\n'.join(lines) if lines else f'no detection scores {args.score_thr} or more')
    if args.out_file:
        print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()
