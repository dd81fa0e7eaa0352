"""Compatibility module: the DataBlock API now lives in four modules, re-exported here.

:mod:`learnkit.data.blocks` (TransformBlock, CategoryBlock, MultiCategoryBlock, RegressionBlock,
register_block, block_from_spec), :mod:`learnkit.data.pipeline` (SamplePipeline, BlockCollate,
BatchTfmsCollate, BlockDataset, Datasets), :mod:`learnkit.data.recipe` (the DataRecipe protocol) and
:mod:`learnkit.data.datablock` (DataBlock, its summary, and its fitted recipe DataBlockRecipe). ``from
learnkit.data.block import X`` keeps working for every public name.

>>> from learnkit.data.block import DataBlock, CategoryBlock
"""

from .blocks import (
    BLOCKS,
    CategoryBlock,
    MultiCategoryBlock,
    RegressionBlock,
    TransformBlock,
    block_from_spec,
    register_block,
)
from .datablock import RECIPE_KIND, DataBlock, DataBlockRecipe, recipe_from_spec
from .pipeline import BatchTfmsCollate, BlockCollate, BlockDataset, Datasets, SamplePipeline
from .recipe import DataRecipe

__all__ = [
    "TransformBlock",
    "CategoryBlock",
    "MultiCategoryBlock",
    "RegressionBlock",
    "register_block",
    "block_from_spec",
    "BLOCKS",
    "DataBlock",
    "Datasets",
    "BlockDataset",
    "SamplePipeline",
    "BlockCollate",
    "BatchTfmsCollate",
    "DataRecipe",
    "DataBlockRecipe",
    "recipe_from_spec",
    "RECIPE_KIND",
]
