from .inference import inference_model
from .model_zoo import (ModelZoo, NoNetworkError, NoPublishedWeightsError, get_model,
                        list_models, task_of)

__all__ = [
    'get_model', 'list_models', 'inference_model', 'ModelZoo', 'task_of',
    'NoPublishedWeightsError', 'NoNetworkError'
]
