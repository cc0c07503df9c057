"""Classical hierarchical mask proposals: the stand-ins for Table 5's GPB-UCM and Selective Search
(SimBaseline Sec. 4.1 / 6.5), built on scikit-image.

Neither original runs here: gPb-UCM (Arbelaez et al., MATLAB with compiled MEX code) and Selective
Search (Uijlings et al., MATLAB; OpenCV's version lives in ``opencv-contrib`` and returns boxes, not
masks). Both produce a *hierarchy of segments*; the stand-ins keep that idea with scikit-image's
region adjacency graphs:

* ``ucm_proposals`` (for **GPB-UCM**): the Sobel gradient magnitude of the image stands in for the
  gPb contour detector; a watershed of it over-segments the image; neighbouring regions are merged
  greedily by the mean boundary strength between them (``skimage.graph.merge_hierarchical`` on
  ``rag_boundary``), which is how an ultrametric contour map is built. Every region at each of the
  ``levels`` (boundary-strength thresholds, relative to the strongest boundary) is a proposal.
* ``selective_search_proposals`` (for **Selective Search**): Felzenszwalb-Huttenlocher segments (the
  initial regions of Selective Search) merged greedily by mean-colour similarity (``rag_mean_color``);
  every region at each level is a proposal. The original's texture/size/fill similarities and its
  several colour spaces are left out.

Each level continues the merging of the finer one, so the levels nest as a hierarchy does (and
the finest regions are merged once, not once per level). Proposals are deduplicated and capped at
``max_proposals`` (default 100, MaskFormer's number of queries; the paper does not say how many
classical proposals it kept), coarsest levels first.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_LEVELS = (0.05, 0.1, 0.2, 0.35, 0.5)
PROPOSAL_METHODS = ("ucm", "selective-search")
MAX_PROPOSALS = 100  # MaskFormer's number of queries


def _to_numpy(image: torch.Tensor) -> np.ndarray:
    """One ``[3, H, W]`` image (0-255, any dtype) -> float ``[H, W, 3]`` in 0..1."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image [3, H, W], got shape {tuple(image.shape)}")
    return image.permute(1, 2, 0).cpu().double().numpy() / 255.0


def _weight_boundary(graph, src, dst, n):
    """``merge_hierarchical``'s edge update for boundary graphs: the mean boundary strength of the union."""
    default = {"weight": 0.0, "count": 0}
    count_src = graph[src].get(n, default)["count"]
    count_dst = graph[dst].get(n, default)["count"]
    weight_src = graph[src].get(n, default)["weight"]
    weight_dst = graph[dst].get(n, default)["weight"]
    count = count_src + count_dst
    return {"count": count, "weight": (count_src * weight_src + count_dst * weight_dst) / max(count, 1)}


def _weight_mean_color(graph, src, dst, n):
    diff = graph.nodes[dst]["mean color"] - graph.nodes[n]["mean color"]
    return {"weight": float(np.linalg.norm(diff))}


def _merge_mean_color(graph, src, dst):
    node = graph.nodes[dst]
    node["total color"] += graph.nodes[src]["total color"]
    node["pixel count"] += graph.nodes[src]["pixel count"]
    node["mean color"] = node["total color"] / node["pixel count"]


def _merge_nothing(graph, src, dst):
    pass


def _levels(labels: np.ndarray, graph_of, thresholds, merge, weight) -> list[np.ndarray]:
    """The label maps of the hierarchy at each threshold, coarsest first: each level merges on from the
    previous (finer) one, whose regions form the nodes of ``graph_of(labels)``."""
    from skimage import graph as skgraph

    out = []
    for t in sorted(thresholds):
        if labels.min() == labels.max():  # one region left: nothing to merge (and no graph to build)
            out.append(labels)
            continue
        labels = skgraph.merge_hierarchical(labels, graph_of(labels), thresh=t, rag_copy=False, in_place_merge=True,
                                            merge_func=merge, weight_func=weight)
        out.append(labels)
    return out[::-1]


def _masks(levels: list[np.ndarray], max_proposals: int) -> torch.Tensor:
    seen, masks = set(), []
    for labels in levels:
        for value in np.unique(labels):
            mask = labels == value
            key = np.packbits(mask).tobytes()
            if key in seen:
                continue
            seen.add(key)
            masks.append(mask)
            if len(masks) == max_proposals:
                return torch.from_numpy(np.stack(masks))
    shape = levels[0].shape if levels else (0, 0)
    return torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, *shape), dtype=torch.bool)


def ucm_proposals(image, levels=DEFAULT_LEVELS, marker_level: float = 0.05, max_proposals: int = MAX_PROPOSALS) -> torch.Tensor:
    """GPB-UCM stand-in: ``[N, H, W]`` bool masks of a boundary-strength hierarchy (module docstring).
    ``levels``: merge thresholds as fractions of the strongest boundary; ``marker_level``: the finest
    over-segmentation floods the gradient from its low plateaus, the connected pieces of
    ``gradient < marker_level * max``."""
    from scipy import ndimage
    from skimage import filters, graph as skgraph, segmentation
    from skimage.color import rgb2gray

    rgb = _to_numpy(image)
    edges = filters.sobel(rgb2gray(rgb))
    scale = float(edges.max()) or 1.0
    markers, _ = ndimage.label(edges < marker_level * scale)
    labels = segmentation.watershed(edges, markers=markers) - 1
    hierarchy = _levels(labels, lambda current: skgraph.rag_boundary(current, edges), [t * scale for t in levels],
                        _merge_nothing, _weight_boundary)
    return _masks(hierarchy, max_proposals)


def selective_search_proposals(image, levels=DEFAULT_LEVELS, scale: float = 100.0, sigma: float = 0.8,
                               min_size: int | None = None, max_proposals: int = MAX_PROPOSALS) -> torch.Tensor:
    """Selective Search stand-in: ``[N, H, W]`` bool masks of a colour-similarity hierarchy over
    Felzenszwalb segments (module docstring). ``levels``: merge thresholds on the Euclidean distance
    of mean RGB colours (0..1 scale); ``scale``/``sigma``/``min_size``: Felzenszwalb's parameters
    (``min_size`` defaults to 0.1 % of the image)."""
    from skimage import graph as skgraph, segmentation

    rgb = _to_numpy(image)
    min_size = min_size or max(4, rgb.shape[0] * rgb.shape[1] // 1000)
    labels = segmentation.felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=min_size)
    hierarchy = _levels(labels, lambda current: skgraph.rag_mean_color(rgb, current), levels, _merge_mean_color,
                        _weight_mean_color)
    return _masks(hierarchy, max_proposals)


def proposals(method: str, image, **options) -> torch.Tensor:
    """``[N, H, W]`` bool masks of ``image`` (``[3, H, W]``, 0-255) by ``method`` (``PROPOSAL_METHODS``)."""
    if method == "ucm":
        return ucm_proposals(image, **options)
    if method == "selective-search":
        return selective_search_proposals(image, **options)
    raise ValueError(f"unknown proposal method {method!r}; known: {', '.join(PROPOSAL_METHODS)}")
