"""Installs mmtwins; use ``tools/setup_env.sh`` for the whole verified environment."""
import os.path as osp
import re
import warnings

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


def extension_args() -> dict:
    """``mmtwins._ext``, the CPU attention kernel (``mmtwins/csrc``), built against torch.

    torch must be importable while building (``pip install --no-build-isolation``);
    without it mmtwins installs without the kernel and attention runs on
    ``scaled_dot_product_attention`` (same results, slower on CPU).
    """
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        warnings.warn('torch is not importable: mmtwins._ext (the CPU attention kernel) '
                      'is not built; install with pip install --no-build-isolation')
        return {}
    # -Wno-psabi: the kernel's 64-byte vector helpers are all inlined; no ABI crosses.
    extension = CppExtension('mmtwins._ext', ['mmtwins/csrc/few_key_attention.cpp'],
                             extra_compile_args=['-O3', '-Wno-psabi'])
    return {'ext_modules': [extension], 'cmdclass': {'build_ext': BuildExtension}}


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
    exclude_package_data={'mmtwins': ['csrc/*']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests')},
    license='Apache License 2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
    **extension_args(),
)
