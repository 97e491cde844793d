"""Dependency graph: *which layers are coupled* when a neuron, filter or channel is removed.

The model is traced with ``torch.fx`` and shapes are propagated on an example input. Every Linear/Conv output
starts a channel *group*; the group follows the tensor through zero-preserving ops (ReLU, GELU, pooling,
dropout, BatchNorm, flatten) to its consumers (the next Linear/Conv inputs, with a flatten factor for
Conv->Flatten->Linear). Residual adds merge groups. A group that reaches anything netpress cannot follow
exactly (LayerNorm across the channels, concatenation, reshapes into heads, an unknown module, the model
output, or an add with an untracked tensor) is *blocked*, with the reason naming the module or operation.
"""
from __future__ import annotations

import dataclasses
import math
import operator

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from netpress.errors import NetpressError

LINEAR, CONVS = nn.Linear, (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# f(0) == 0 elementwise or per-channel ops: a removed (all-zero) channel stays zero through them
PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.ELU, nn.Hardswish, nn.Dropout,
                nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
                nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
PASS_FUNCS = {"relu", "relu_", "gelu", "tanh", "silu", "leaky_relu", "relu6", "elu", "hardswish", "dropout",
              "max_pool1d", "max_pool2d", "max_pool3d", "_max_pool1d", "_max_pool2d", "_max_pool3d", "avg_pool1d",
              "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
              "adaptive_max_pool2d", "_adaptive_max_pool2d", "contiguous", "clone"}
ADDS = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub, "add", "add_", "sub", "sub_"}
RESHAPES = {"flatten", "view", "reshape"}


class SurgeryError(NetpressError):
    """Structured pruning cannot proceed safely; the message names the module or operation."""


@dataclasses.dataclass
class Group:
    """Channels that must be removed together.

    Attributes:
        size: number of channels.
        producers: modules whose output rows are these channels (Linear/Conv).
        consumers: ``(module, factor)``: Linear/Conv inputs; ``factor`` input features per channel (flatten).
        norms: BatchNorm modules with per-channel parameters on these channels.
        blocked: reasons the group cannot be pruned (empty = prunable).
    """

    size: int
    producers: list[str] = dataclasses.field(default_factory=list)
    consumers: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    norms: list[str] = dataclasses.field(default_factory=list)
    blocked: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Track:
    """Where a tensor's channels come from: group id, channel dimension, features per channel."""

    gid: int
    dim: int
    factor: int = 1


class DependencyGraph:
    """Channel groups of a model.

    Args:
        model: any traceable module (not changed).
        example_input: one batch of input, for shapes.

    Raises:
        SurgeryError: the model cannot be traced by torch.fx.

    Example:
        >>> g = DependencyGraph(net, torch.zeros(1, 1, 28, 28))
        >>> [grp.producers for grp in g.groups() if not grp.blocked]
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as exc:  # fx raises many types for untraceable code
            raise SurgeryError(f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
                               "structured pruning needs a traceable model") from None
        self.modules = dict(self.gm.named_modules())
        ShapeProp(self.gm).propagate(example_input)
        self.parent: dict[int, int] = {}
        self.data: dict[int, Group] = {}
        self.tracks: dict[fx.Node, Track | None] = {}
        self.module_tracks: dict[str, Track | None] = {}
        for node in self.gm.graph.nodes:
            self.tracks[node] = self._visit(node)
            if node.op == "call_module":
                self.module_tracks[node.target] = self.tracks[node]

    # union-find over group ids
    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def group(self, gid: int) -> Group:
        return self.data[self.find(gid)]

    def groups(self) -> dict[int, Group]:
        """Root id -> group, in creation order."""
        return {g: self.data[g] for g in self.data if self.find(g) == g}

    def _new(self, size: int, producer: str) -> int:
        gid = len(self.parent)
        self.parent[gid] = gid
        self.data[gid] = Group(size, [producer])
        return gid

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ga, gb = self.data[ra], self.data[rb]
        if ga.size != gb.size:
            ga.blocked.append(f"add of tensors with {ga.size} and {gb.size} channels")
        for f in ("producers", "consumers", "norms", "blocked"):
            getattr(ga, f).extend(getattr(gb, f))
        self.parent[rb] = ra
        del self.data[rb]

    def _block(self, track: "Track | None", reason: str) -> None:
        if track is not None and reason not in self.group(track.gid).blocked:
            self.group(track.gid).blocked.append(reason)

    @staticmethod
    def _shape(node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def _visit(self, node: fx.Node) -> Track | None:
        if node.op in ("placeholder", "get_attr"):
            return None
        ins = [a for a in node.all_input_nodes]
        tracked = [self.tracks.get(a) for a in ins if self.tracks.get(a) is not None]
        if node.op == "output":
            for t in tracked:
                self._block(t, "reaches the model output")
            return None
        if node.op == "call_module":
            return self._visit_module(node, self.modules[node.target], tracked)
        return self._visit_function(node, tracked)

    def _visit_module(self, node, mod, tracked) -> Track | None:
        inp = self.tracks.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
        name = node.target
        shape = self._shape(node.args[0]) if node.args else None
        if isinstance(mod, LINEAR) or (isinstance(mod, CONVS) and mod.groups == 1):
            if inp is not None:
                want = (len(shape) - 1) if isinstance(mod, LINEAR) else 1
                if inp.dim != want:
                    self._block(inp, f"{type(mod).__name__} {name} reads the channels along another dimension")
                else:
                    self.group(inp.gid).consumers.append((name, inp.factor))
            out = self._shape(node)
            return Track(self._new(mod.out_features if isinstance(mod, LINEAR) else mod.out_channels, name),
                         len(out) - 1 if isinstance(mod, LINEAR) else 1)
        if isinstance(mod, NORMS):
            if inp is not None:
                if not mod.affine:
                    self._block(inp, f"BatchNorm without affine parameters ({name})")
                self.group(inp.gid).norms.append(name)
            return inp
        if isinstance(mod, PASS_MODULES):
            return inp
        if isinstance(mod, nn.Flatten):
            return self._reshape(node, inp, f"Flatten {name}")
        for t in tracked:
            self._block(t, f"unsupported module {type(mod).__name__} ({name})")
        if isinstance(mod, CONVS):  # grouped conv: its own output channels are tied to its input
            gid = self._new(mod.out_channels, name)
            self.group(gid).blocked.append(f"unsupported module grouped {type(mod).__name__} ({name})")
            return Track(gid, 1)
        return None

    def _visit_function(self, node, tracked) -> Track | None:
        target = node.target
        tname = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        inp = self.tracks.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
        if target in ADDS or tname in ADDS:
            return self._add(node, tname)
        if tname in PASS_FUNCS:
            return inp
        if target in (operator.mul, operator.truediv, torch.mul) or tname in ("mul", "div"):
            if sum(isinstance(a, fx.Node) for a in node.args) == 1 and inp is not None:
                return inp  # scaling by a number keeps zeros
        if tname in RESHAPES or target is torch.flatten:
            return self._reshape(node, inp, f"{tname}")
        if tname == "mean" and inp is not None and inp.dim == 1 and inp.factor == 1:
            out = self._shape(node)
            if out is not None and len(out) >= 2 and out[1] == self._shape(node.args[0])[1]:
                return inp
        if tname in ("size", "dim", "getattr"):
            return None
        for t in tracked:
            self._block(t, f"unsupported operation {tname}")
        return None

    def _add(self, node, tname) -> Track | None:
        nodes = [a for a in node.args if isinstance(a, fx.Node)]
        tracks = [self.tracks.get(a) for a in nodes]
        live = [t for t in tracks if t is not None]
        if not live:
            return None
        if len(live) < len(nodes) and len(nodes) > 1:
            for t in live:
                self._block(t, f"{tname} with a tensor netpress cannot trace to a layer")
            return live[0]
        first = live[0]
        for t in live[1:]:
            if (t.dim, t.factor) != (first.dim, first.factor):
                self._block(t, f"{tname} of tensors with different channel layouts")
            self._union(first.gid, t.gid)
        return first

    def _reshape(self, node, inp, what) -> Track | None:
        if inp is None:
            return None
        src, out = self._shape(node.args[0]), self._shape(node)
        if src == out:
            return inp
        if src and out and inp.dim == 1 and len(out) == 2 and out[0] == src[0] and out[1] == math.prod(src[1:]):
            return Track(inp.gid, 1, inp.factor * math.prod(src[2:]))
        self._block(inp, f"unsupported reshape ({what} from {src} to {out})")
        return None
