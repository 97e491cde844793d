"""Pruning: one mask mechanism; scores, scopes, schedules and surgery built on it."""
from netpress.prune.masks import (Mask, apply_masks, get_masks, is_masked, load_plain_state_dict, plain_name,
                                  plain_state_dict, prunable_tensors, sparsity, strip)

__all__ = ["Mask", "apply_masks", "get_masks", "is_masked", "load_plain_state_dict", "plain_name",
           "plain_state_dict", "prunable_tensors", "sparsity", "strip"]
