"""The Deep Compression pipeline: recipes of stages (prune -> quantize -> encode, and more) run as resumable steps.

Example:
    >>> import netpress
    >>> result = netpress.compress(model, train_set, val_set, "deep-compression", out="model.netp")
"""
from netpress.pipeline.compress import CompressResult, compress, file_bytes
from netpress.pipeline.oneshot import PRETRAINED, OneshotResult, compress_pretrained
from netpress.pipeline.recipe import BUILTIN, Recipe, RecipeError, load_recipe, parse_recipe
from netpress.pipeline.runs import compress_run

__all__ = ["PRETRAINED", "OneshotResult", "compress_pretrained", "CompressResult", "compress", "file_bytes", "BUILTIN",
           "Recipe", "RecipeError", "load_recipe", "parse_recipe", "compress_run"]
