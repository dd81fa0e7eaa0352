"""Data: loaders, the DataBlock API, getters, splitters, transforms and dataset download."""

from .external import URLs, download_url, learnkit_home, untar_data
from .loaders import DataLoaders, DeviceLoader, TensorLoader, default_num_workers

__all__ = ["DataLoaders", "DeviceLoader", "TensorLoader", "default_num_workers", "URLs", "download_url",
           "learnkit_home", "untar_data"]
