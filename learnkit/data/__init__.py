"""Data: loaders, the DataBlock API, getters, splitters, transforms and dataset download."""

from .block import (
    BlockDataset,
    CategoryBlock,
    DataBlock,
    DataBlockRecipe,
    Datasets,
    MultiCategoryBlock,
    RegressionBlock,
    TransformBlock,
    block_from_spec,
    register_block,
)
from .external import URLs, download_url, learnkit_home, untar_data
from .getters import (
    ColReader,
    FileGetter,
    ImageGetter,
    RegexLabeller,
    get_files,
    get_image_files,
    get_text_files,
    grandparent_label,
    image_extensions,
    parent_label,
    text_extensions,
    using_attr,
)
from .loaders import DataLoaders, DeviceLoader, TensorLoader, default_num_workers
from .recipe import DataRecipe
from .splitters import (
    ColSplitter,
    EndSplitter,
    FileSplitter,
    FuncSplitter,
    GrandparentSplitter,
    IndexSplitter,
    MaskSplitter,
    RandomSplitter,
    TrainTestSplitter,
)
from .transforms import BatchTransform, IntToFloat, ItemTransform, Normalize, imagenet_stats

__all__ = [
    "DataLoaders",
    "DeviceLoader",
    "TensorLoader",
    "default_num_workers",
    "URLs",
    "download_url",
    "learnkit_home",
    "untar_data",
    # DataBlock API
    "DataRecipe",
    "DataBlock",
    "Datasets",
    "BlockDataset",
    "DataBlockRecipe",
    "TransformBlock",
    "CategoryBlock",
    "MultiCategoryBlock",
    "RegressionBlock",
    "register_block",
    "block_from_spec",
    # getters
    "get_files",
    "get_image_files",
    "get_text_files",
    "image_extensions",
    "text_extensions",
    "FileGetter",
    "ImageGetter",
    "parent_label",
    "grandparent_label",
    "RegexLabeller",
    "ColReader",
    "using_attr",
    # splitters
    "RandomSplitter",
    "TrainTestSplitter",
    "IndexSplitter",
    "GrandparentSplitter",
    "FuncSplitter",
    "MaskSplitter",
    "FileSplitter",
    "ColSplitter",
    "EndSplitter",
    # transforms
    "ItemTransform",
    "BatchTransform",
    "IntToFloat",
    "Normalize",
    "imagenet_stats",
]
