"""Detects objects (and their masks) in an image with a detection model of the zoo or a config.

Example:
    python demo/det_demo.py demo/grace_hopper.jpg mask-rcnn_svt-s_fpn_1x_coco \\
        --checkpoint mask-rcnn_svt-s.pth --out-file grace_hopper_det.jpg
"""
import argparse
import sys
from typing import List

from mmtwins.apis import inference_model

# A sibling module: Python puts the folder of a script it runs first on sys.path.
from demo_utils import build_model, image_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Detect objects in an image')
    parser.add_argument('image', help='image file')
    parser.add_argument('model', help='a model name of the zoo (or an alias) or a config file')
    parser.add_argument(
        '--checkpoint', help='weights in any supported format (default: the published '
        'weights of a zoo model, downloaded)')
    parser.add_argument('--out-file', type=image_file,
                        help='save the image with the detections drawn on it '
                        '(an image file: .png, .jpg, ...)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='list and draw the detections scoring at least this')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
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


def main(argv=None) -> None:
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
