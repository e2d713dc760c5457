"""Installs mmtwins; use ``tools/setup_env.sh`` for the whole verified environment."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    with open(osp.join(HERE, 'mmtwins', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def read_requirements(name: str) -> list:
    """Reads ``requirements/<name>.txt``, skipping comments and blank lines."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt'), encoding='utf-8') as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmtwins',
    version=read_version(),
    description='OpenMMLab-style toolbox for the Twins and DaViT vision transformers',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests', 'docs')),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests')},
    license='Apache License 2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
