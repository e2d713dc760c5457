"""Segments an image with a segmentation model of the zoo or a config.

Example:
    python demo/seg_demo.py demo/grace_hopper.jpg upernet_svt-s_8xb2-160k_ade20k-512x512 \\
        --checkpoint upernet_svt-s.pth --out-file grace_hopper_seg.png
"""
import argparse
import sys
from typing import Dict, Optional, Sequence

import numpy as np

from mmtwins.apis import inference_model

# A sibling module: Python puts the folder of a script it runs first on sys.path.
from demo_utils import add_model_arguments, build_model, image_file


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the model arguments (:func:`add_model_arguments`), ``--out-file`` and
    ``--opacity``.

    Args:
        argv: the arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['demo/grace_hopper.jpg',
        ...             'upernet_svt-s_8xb2-160k_ade20k-512x512']).opacity
        0.5
    """
    parser = argparse.ArgumentParser(description='Segment an image')
    add_model_arguments(parser)
    parser.add_argument('--out-file', type=image_file,
                        help='save the image with the label map painted over it '
                        '(an image file: .png, .jpg, ...)')
    parser.add_argument('--opacity', type=float, default=0.5, help='of the painted label map')
    return parser.parse_args(argv)


def class_areas(label_map: np.ndarray, classes: Optional[Sequence[str]]) -> Dict[str, float]:
    """The share of the image each predicted class covers, largest first.

    Example:
        >>> class_areas(np.array([[0, 1], [1, 1]]), ['wall', 'building'])
        {'building': 0.75, 'wall': 0.25}
    """
    labels, counts = np.unique(label_map, return_counts=True)
    order = np.argsort(-counts, kind='stable')
    names = [classes[label] if classes else str(label) for label in labels]
    return {names[i]: float(counts[i] / label_map.size) for i in order}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Segments the image; prints the share of it each class covers and paints
    the label map with ``--out-file``.

    Exits with a one-line error when the model or the image cannot be used.

    Args:
        argv: as for :func:`parse_args`.

    Example:
        >>> main(['demo/grace_hopper.jpg', 'upernet_svt-s_8xb2-160k_ade20k-512x512',
        ...       '--checkpoint', 'upernet_svt-s.pth'])
    """
    args = parse_args(argv)
    model = build_model(args, 'segmentation')
    try:
        result = inference_model(model, args.image, out_file=args.out_file,
                                 opacity=args.opacity)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    for name, share in class_areas(result['pred_label_map'],
                                   model._dataset_meta.get('classes')).items():
        print(f'{name}: {100 * share:.1f}%')
    if args.out_file:
        print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()
