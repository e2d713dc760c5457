from .loading import ImageLoadError, SafeLoadImageFromFile

__all__ = ['ImageLoadError', 'SafeLoadImageFromFile']
