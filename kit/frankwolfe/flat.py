"""Frank-Wolfe vertices of a whole parameter group at once, for SFW on an accelerator.

Per parameter, an SFW step costs a Python call and a few kernel launches for each region; on a GPU
that, not arithmetic, is the step's time (ResNet-20 has 65 parameters). Here the bounded parameters of
one group are segments of one flat momentum buffer (the optimizer's momentum buffers become views of
it) and of one flat vertex buffer, and each kind of region computes all its vertices in a fixed number
of kernels: L-inf by a sign, L2 by per-segment norms, and k-sparse, k-support and L1 (the k-sparse
polytope at k = 1) by one top-k over the rows of a zero-padded matrix per size bucket. Regions of any
other kind keep their own ``lmo``, written into their slice. Nothing here reads a value on the host
(a region's own lmo may; on the CPU, where reads are free and the fused kernels are faster, SFW keeps
its per-parameter path).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from ..budget import reads_are_free
from .constraints import Constraint, KSparsePolytope, KSupportBall, L1Ball, L2Ball, LinfBall, radius_scale

# exact classes: a subclass may define other vertices, so it keeps its own lmo
FLAT_KINDS = {LinfBall: "linf", L2Ball: "l2", L1Ball: "top_k", KSparsePolytope: "top_k", KSupportBall: "top_k"}
KIND_ORDER = ("linf", "l2", "top_k", "own")  # the order of the kinds' slices in the flat buffers
FLAT_DTYPES = (torch.float32, torch.float64)
PAD_SLACK = 2  # a top-k bucket pads its rows to its widest segment while that costs at most 2x its entries
PAD_FREE = 1 << 23  # ... or at most this many entries in all (32 MiB in float32)

_switch: dict = {"use": None}  # None: on accelerators only; True / False: always / never (to compare paths)


@contextmanager
def forced(use: bool = True) -> Iterator[None]:
    """Within the block SFW uses the flat path everywhere (``use=True``, on the CPU too) or nowhere (False)."""
    previous, _switch["use"] = _switch["use"], bool(use)
    try:
        yield
    finally:
        _switch["use"] = previous


def kind_of(constraint: Constraint) -> str:
    """How :class:`FlatRegions` computes this region's vertex: 'linf', 'l2', 'top_k' or 'own' (its lmo)."""
    return FLAT_KINDS.get(type(constraint), "own")


def _region_key(constraint: Constraint) -> tuple:
    return constraint.radius, getattr(constraint, "k", None)


def used_for(param: torch.Tensor) -> bool:
    """True when SFW takes the flat path for parameters like this one: on an accelerator, unless :func:`forced`."""
    return not reads_are_free(param) if _switch["use"] is None else _switch["use"]


def suits(params: Sequence[torch.Tensor]) -> bool:
    """True when the parameters share one device and one dtype the flat buffers support (float32, float64)."""
    first = params[0]
    return first.dtype in FLAT_DTYPES and all(p.dtype == first.dtype and p.device == first.device for p in params)


class FlatRegions:
    """The bounded parameters of one SFW group as segments of a flat momentum and a flat vertex buffer.

    Built from the parameters, their regions and their current momentum buffers (copied in; the caller
    then keeps :attr:`adopted`, views of the flat buffer in its own order, as its buffers). Valid while
    :meth:`matches` holds: the same tensors, regions and buffers, each region's radius and k unchanged.
    """

    def __init__(self, params: Sequence[torch.Tensor], constraints: Sequence[Constraint],
                 momenta: Sequence[torch.Tensor]) -> None:
        if not (len(params) == len(constraints) == len(momenta)) or not params:
            raise ValueError("params, constraints and momenta must be non-empty and of one length")
        if not suits(params):
            raise ValueError("FlatRegions needs parameters of one device and one dtype (float32 or float64)")
        # (not the momenta: the caller replaces them by views, and holding them would keep their memory)
        self.given = (list(params), list(constraints), [_region_key(c) for c in constraints])
        order = sorted(range(len(params)), key=lambda i: (KIND_ORDER.index(kind_of(constraints[i])),
                                                          -params[i].numel()))
        self.params = [params[i] for i in order]
        self.constraints = [constraints[i] for i in order]
        sizes = [p.numel() for p in self.params]
        starts = list(itertools.accumulate([0, *sizes]))
        self.n = n = starts[-1]
        like = self.params[0]
        # one extra entry past the end of each buffer: a zero that padded top-k entries read and write
        self.momentum = torch.zeros(n + 1, dtype=like.dtype, device=like.device)
        self.vertex = torch.zeros(n + 1, dtype=like.dtype, device=like.device)
        self.momentum_views = self._views(self.momentum, starts)
        self.vertex_views = self._views(self.vertex, starts)
        # the caller keeps these views as its momentum buffers: its momentum update updates the flat buffer
        self.adopted = [None] * len(order)
        with torch.no_grad():
            for view, i in zip(self.momentum_views, order, strict=True):
                self.adopted[i] = view.copy_(momenta[i])
        # int32 indices: a few bytes per entry that stay allocated as long as the layout
        segment = torch.repeat_interleave(torch.arange(len(sizes), dtype=torch.int32), torch.tensor(sizes))
        self._segment = segment.to(like.device)
        self._weights = torch.empty(n, dtype=like.dtype, device=like.device)  # per-entry step sizes
        self._weight_views = self._views(self._weights, starts)
        kinds = [kind_of(c) for c in self.constraints]
        spans = {kind: (kinds.index(kind), len(kinds) - kinds[::-1].index(kind)) for kind in set(kinds)}
        radii = torch.tensor([c.radius for c in self.constraints], dtype=like.dtype)
        self._linf = self._l2 = self._top_span = None
        self._buckets: list[dict] = []
        self._own = [(c, self.momentum_views[i], self.vertex_views[i]) for i, c in enumerate(self.constraints)
                     if kinds[i] == "own"]
        if "linf" in spans:
            a, b = spans["linf"]
            self._linf = (starts[a], starts[b], a, b, [-c.radius for c in self.constraints[a:b]])
        if "l2" in spans:
            a, b = spans["l2"]
            self._l2 = (starts[a], starts[b], a, b, radii[a:b].to(like.device),
                        (segment[starts[a]:starts[b]] - a).to(like.device))
        if "top_k" in spans:
            a, b = spans["top_k"]
            self._top_span = (starts[a], starts[b])
            self._buckets = [self._bucket(rows, starts, radii) for rows in self._top_k_rows(a, b)]

    def _views(self, buffer: torch.Tensor, starts: list[int]) -> list[torch.Tensor]:
        return [buffer[a:b].view(p.shape) for a, b, p in zip(starts[:-1], starts[1:], self.params, strict=True)]

    def _top_k_rows(self, first: int, stop: int) -> list[list[int]]:
        # segments arrive widest first; a bucket grows while padding its rows to the widest stays cheap
        groups, rows = [], []
        for i in range(first, stop):
            size = self.params[i].numel()
            if rows:
                width, total = self.params[rows[0]].numel(), sum(self.params[j].numel() for j in rows)
                if (len(rows) + 1) * width > max(PAD_SLACK * (total + size), PAD_FREE):
                    groups.append(rows)
                    rows = []
            rows.append(i)
        return [*groups, rows]

    def _bucket(self, rows: list[int], starts: list[int], radii: torch.Tensor) -> dict:
        device = self.params[0].device
        ks = [getattr(self.constraints[i], "k", 1) for i in rows]  # the L1 ball's vertices: k = 1
        kmax = max(ks)
        return {
            "span": (starts[rows[0]], starts[rows[-1] + 1]),
            "width": self.params[rows[0]].numel(),
            "start": torch.tensor([starts[i] for i in rows])[:, None].to(device),
            "length": torch.tensor([self.params[i].numel() for i in rows])[:, None].to(device),
            "columns": torch.arange(self.params[rows[0]].numel()).to(device),
            "k": kmax,
            "keep": (torch.arange(kmax)[None, :] < torch.tensor(ks)[:, None]).to(device),
            "radius": radii[rows][:, None].to(device),
            "neg_radius": (-radii[rows])[:, None].to(device),
            "support": torch.tensor([type(self.constraints[i]) is KSupportBall for i in rows])[:, None].to(device),
        }

    def matches(self, params: Sequence[torch.Tensor], constraints: Sequence[Constraint],
                momenta: Sequence[torch.Tensor | None]) -> bool:
        """True while this layout still describes these parameters, regions (radius, k) and momentum buffers."""
        given_p, given_c, keys = self.given
        return (len(params) == len(given_p)
                and all(a is b for a, b in zip(params, given_p, strict=True))
                and all(a is b for a, b in zip(constraints, given_c, strict=True))
                and all(a is b for a, b in zip(momenta, self.adopted, strict=True))
                and all(_region_key(c) == key for c, key in zip(constraints, keys, strict=True)))

    @torch.no_grad()
    def vertices(self) -> list[torch.Tensor]:
        """Every region's vertex for the current momenta, as views of the flat vertex buffer (layout order)."""
        m, v = self.momentum, self.vertex
        if self._linf is not None:
            a, b, first, stop, neg_radii = self._linf
            torch.sign(m[a:b], out=v[a:b])
            torch._foreach_mul_(self.vertex_views[first:stop], neg_radii)
        if self._l2 is not None:
            a, b, first, stop, radius, local = self._l2
            norms = torch.stack(torch._foreach_norm(self.momentum_views[first:stop]))
            scale = radius_scale(norms, radius)
            torch.mul(m[a:b], scale.index_select(0, local), out=v[a:b])
        if self._top_span is not None:
            a, b = self._top_span
            v[a:b].zero_()
            size = m.abs()
            for bucket in self._buckets:
                self._top_k_vertices(bucket, size)
        for constraint, momentum, vertex in self._own:
            constraint.lmo(momentum, out=vertex)
        return self.vertex_views

    def _top_k_vertices(self, bucket: dict, size: torch.Tensor) -> None:
        m, v, start, length = self.momentum, self.vertex, bucket["start"], bucket["length"]
        if len(start) == 1:  # one segment: its slice, unpadded
            a, b = bucket["span"]
            ranked = torch.topk(size[a:b].view(1, -1), bucket["k"], dim=1, sorted=True).indices
            where = ranked + start
        else:  # rows padded to the widest with the zero past the end; the k_i first of row i are its top k_i
            columns = bucket["columns"]
            padded = size.take(torch.where(columns < length, start + columns, self.n))
            ranked = torch.topk(padded, bucket["k"], dim=1, sorted=True).indices
            where = torch.where(bucket["keep"] & (ranked < length), start + ranked, self.n)
        x = m.take(where)  # the top entries; 0 past a row's k
        norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        support = x * radius_scale(norms, bucket["radius"])
        values = torch.where(bucket["support"], support, torch.sign(x).mul_(bucket["neg_radius"]))
        v.index_put_((where.view(-1),), values.view(-1))

    def lerp_(self, weights: list[float] | torch.Tensor) -> None:
        """theta <- (1 - eta) theta + eta v per parameter: ``weights`` floats, or a tensor on the device."""
        if isinstance(weights, torch.Tensor):
            torch.index_select(weights.to(self._weights.dtype), 0, self._segment, out=self._weights)
            torch._foreach_lerp_(self.params, self.vertex_views, self._weight_views)
        else:
            torch._foreach_lerp_(self.params, self.vertex_views, weights)

    def gradient_steps(self, lr: float) -> torch.Tensor:
        """eta = lr * ||m|| / ||theta - v|| per segment, clipped to [0, 1] (0 where theta = v), on the device."""
        gaps = torch.stack(torch._foreach_norm(torch._foreach_sub(self.params, self.vertex_views)))
        m_norms = torch.stack(torch._foreach_norm(self.momentum_views))
        return torch.where(gaps > 0, lr * m_norms / gaps.clamp_min(1e-30), 0.0).clamp_(0.0, 1.0)


def flat_vertices(constraints: Sequence[Constraint], xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each region's vertex for its x, computed by :class:`FlatRegions` (new tensors, in the given order)."""
    layout = FlatRegions([torch.empty_like(x) for x in xs], constraints, xs)
    by_id = {id(p): v for p, v in zip(layout.params, layout.vertices(), strict=True)}
    return [by_id[id(p)].clone() for p in layout.given[0]]
