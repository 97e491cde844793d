"""Pruning: one mask mechanism; scores, scopes, schedules and surgery built on it.

Entry points: :func:`compute_masks` / :func:`prune` (unstructured, any score and scope),
:func:`magnitude_threshold_masks` (Han's quality x std mode). See ``docs`` of each submodule.
"""
from netpress.prune.masks import (Mask, apply_masks, get_masks, is_masked, load_plain_state_dict, plain_name,
                                  plain_state_dict, prunable_tensors, sparsity, strip)
from netpress.prune.scores import SCORES, Score, resolve_score
from netpress.prune.scope import SCOPES, check_fraction
from netpress.prune.core import compute_masks, magnitude_threshold_masks, prune

__all__ = ["Mask", "apply_masks", "get_masks", "is_masked", "load_plain_state_dict", "plain_name",
           "plain_state_dict", "prunable_tensors", "sparsity", "strip",
           "SCORES", "Score", "resolve_score", "SCOPES", "check_fraction", "compute_masks", "magnitude_threshold_masks", "prune"]
from netpress.prune.wanda import WandaHparams, wanda_mask, wanda_module  # noqa: E402
from netpress.prune.sparsegpt import SparseGPTHparams, sparsegpt_module, sparsegpt_weight  # noqa: E402

__all__ += ["WandaHparams", "wanda_mask", "wanda_module", "SparseGPTHparams", "sparsegpt_module", "sparsegpt_weight"]
