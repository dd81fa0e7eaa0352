"""Compatibility module: the DataBlock API now lives in four modules, re-exported here.

:mod:`learnkit.data.blocks` (TransformBlock, CategoryBlock, MultiCategoryBlock, RegressionBlock,
register_block, block_from_spec), :mod:`learnkit.data.pipeline` (SamplePipeline, BlockCollate,
BatchTfmsCollate, BlockDataset, Datasets), :mod:`learnkit.data.recipe` (DataRecipe, DataBlockRecipe,
recipe_from_spec) and :mod:`learnkit.data.datablock` (DataBlock and its summary). ``from
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
from .datablock import DataBlock
from .pipeline import BatchTfmsCollate, BlockCollate, BlockDataset, Datasets, SamplePipeline
from .recipe import RECIPE_KIND, DataBlockRecipe, DataRecipe, recipe_from_spec

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
