"""Graph tasks: node classification over one graph (:class:`GraphTask`).

A :class:`GraphTask` holds one PyTorch Geometric ``Data`` with node features ``x``
(``num_nodes x num_features``), an ``edge_index`` (``2 x num_edges``), integer node
labels ``y`` and three disjoint, non-empty boolean node masks ``train_mask``,
``val_mask`` and ``test_mask``. A network built for it (``space.build(arch, task)``
with ``task.input_shape == (num_features,)``) maps ``(x, edge_index)`` to logits for
every node; it is trained full-batch by
:class:`~naslab.workers.graph_training.GraphTrainingEvaluator`
(:meth:`GraphTask.make_evaluator`). The mini-batch interface of
:class:`~naslab.workers.task.Task` (:meth:`~GraphTask.loaders`,
:meth:`~GraphTask.sample_batch`) does not fit full-batch training and is refused with
a :class:`~naslab.core.errors.ConfigError` that says so.

Ways to get one:

* :meth:`GraphTask.from_data`: a ``Data`` of your own (its masks, or a seeded,
  class-stratified random split);
* :meth:`GraphTask.from_pyg`: a PyG data set (Planetoid ``cora``, ``citeseer``,
  ``pubmed``; Amazon ``photo``, ``computers``; Coauthor ``cs``, ``physics``) read
  from a local folder; nothing is downloaded unless asked;
* the registered tasks (:data:`naslab.workers.task.TASKS`), which need no download:
  ``sbm`` (:func:`sbm_task`, a stochastic block model generated from a seed) and
  ``karate`` (:func:`karate_task`, Zachary's karate club as shipped inside PyG);
  ``cora``, ``citeseer`` and ``pubmed`` read a local folder (``root=...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from naslab.core.errors import ConfigError
from naslab.core.validation import check_bool, check_choice, check_float, check_int
from naslab.workers.task import Task, data_key

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from naslab.workers.graph_training import GraphTrainingEvaluator

__all__ = [
    "MASKS",
    "PYG_DATASETS",
    "SPLITS",
    "GraphTask",
    "citeseer_task",
    "cora_task",
    "karate_task",
    "pubmed_task",
    "random_split",
    "sbm_task",
]

#: The masks a graph task holds, in order.
MASKS: tuple[str, ...] = ("train_mask", "val_mask", "test_mask")
#: How :meth:`GraphTask.from_data` splits the nodes: ``"auto"`` (the data's masks if it
#: has all three, else a random split), ``"given"`` (the data's masks, required) or
#: ``"random"`` (a seeded, class-stratified random split, ignoring any masks).
SPLITS: tuple[str, ...] = ("auto", "given", "random")
#: The PyG data sets :meth:`GraphTask.from_pyg` reads: name -> (PyG class, its name).
PYG_DATASETS: dict[str, tuple[str, str]] = {
    "cora": ("Planetoid", "Cora"),
    "citeseer": ("Planetoid", "CiteSeer"),
    "pubmed": ("Planetoid", "PubMed"),
    "photo": ("Amazon", "Photo"),
    "computers": ("Amazon", "Computers"),
    "cs": ("Coauthor", "CS"),
    "physics": ("Coauthor", "Physics"),
}
#: Largest graph :func:`sbm_task` generates (its sampling is quadratic in the nodes).
MAX_SBM_NODES = 20_000


# -- validation ---------------------------------------------------------------------


def _tensor(name: str, data: Any, what: str) -> torch.Tensor:
    value = getattr(data, what, None)
    if not isinstance(value, torch.Tensor):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise ConfigError(f"graph task {name!r}: data.{what} must be a torch.Tensor, got {got}")
    if value.is_sparse or value.layout != torch.strided:
        raise ConfigError(f"graph task {name!r}: data.{what} must be a dense tensor "
                          f"(got layout {value.layout}); convert it with .to_dense()")
    return value.detach()


def _check_features(name: str, data: Any) -> torch.Tensor:
    x = _tensor(name, data, "x")
    if not x.is_floating_point():
        raise ConfigError(f"graph task {name!r}: data.x must have a floating dtype (float32 "
                          f"is used), got {x.dtype}")
    if x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ConfigError(f"graph task {name!r}: data.x must have shape (num_nodes >= 2, "
                          f"num_features >= 1), got {tuple(x.shape)}")
    x = x.to("cpu", torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise ConfigError(f"graph task {name!r}: data.x contains NaN or infinite values")
    return x


def _check_edges(name: str, data: Any, num_nodes: int) -> torch.Tensor:
    edges = _tensor(name, data, "edge_index")
    if edges.is_floating_point() or edges.is_complex() or edges.dtype == torch.bool:
        raise ConfigError(f"graph task {name!r}: data.edge_index must hold integer node "
                          f"indices (int64), got {edges.dtype}")
    if edges.dim() != 2 or edges.shape[0] != 2:
        raise ConfigError(f"graph task {name!r}: data.edge_index must have shape "
                          f"(2, num_edges), got {tuple(edges.shape)}")
    if edges.numel() and (int(edges.min()) < 0 or int(edges.max()) >= num_nodes):
        raise ConfigError(
            f"graph task {name!r}: data.edge_index refers to node(s) outside "
            f"[0, {num_nodes}) (found {int(edges.min())} .. {int(edges.max())}); "
            "edges must join nodes of data.x")
    return edges.to("cpu", torch.int64).contiguous()


def _check_labels(name: str, data: Any, num_nodes: int, num_classes: int | None
                  ) -> tuple[torch.Tensor, int]:
    y = _tensor(name, data, "y")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ConfigError(f"graph task {name!r}: data.y must be integer class indices "
                          f"(int64), got {y.dtype}")
    if y.dim() != 1 or y.shape[0] != num_nodes:
        raise ConfigError(f"graph task {name!r}: data.y must have shape (num_nodes,) = "
                          f"({num_nodes},), got {tuple(y.shape)} (one label per node; "
                          "multi-label targets are not accepted)")
    low, top = int(y.min()), int(y.max())
    if low < 0:
        raise ConfigError(f"graph task {name!r}: labels must be >= 0, found {low}")
    if num_classes is None:
        num_classes = max(top + 1, 2)
    num_classes = check_int("num_classes", num_classes, minimum=2, maximum=2**31 - 1)
    if top >= num_classes:
        raise ConfigError(f"graph task {name!r}: labels must lie in [0, num_classes="
                          f"{num_classes}), found label {top}")
    return y.to("cpu", torch.int64).contiguous(), num_classes


def _check_masks(name: str, data: Any, num_nodes: int) -> list[torch.Tensor]:
    masks = []
    for what in MASKS:
        mask = _tensor(name, data, what)
        if mask.dtype != torch.bool or mask.shape != (num_nodes,):
            raise ConfigError(
                f"graph task {name!r}: data.{what} must be a boolean tensor of shape "
                f"({num_nodes},), got {mask.dtype} of shape {tuple(mask.shape)} (several "
                "splits stacked as columns are not accepted: pick one)")
        if not bool(mask.any()):
            raise ConfigError(f"graph task {name!r}: data.{what} selects no node; every "
                              "split needs at least one")
        masks.append(mask.to("cpu").contiguous())
    for i in range(3):
        for j in range(i + 1, 3):
            both = int((masks[i] & masks[j]).sum())
            if both:
                raise ConfigError(f"graph task {name!r}: {MASKS[i]} and {MASKS[j]} overlap "
                                  f"on {both} node(s); the splits must be disjoint")
    return masks


def random_split(y: torch.Tensor, train: float, val: float, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded, class-stratified train/validation/test node masks for labels ``y``.

    Within each class (in a random order drawn from ``seed``), a ``train`` fraction
    of the nodes (at least one) goes to training, a ``val`` fraction to validation
    and the rest to test. Raises ConfigError when validation or test ends up empty
    (a graph too small for the fractions).
    """
    train = check_float("train fraction", train, minimum=0.0, maximum=1.0,
                        strict_minimum=True, strict_maximum=True)
    val = check_float("val fraction", val, minimum=0.0, maximum=1.0,
                      strict_minimum=True, strict_maximum=True)
    if train + val >= 1.0:
        raise ConfigError(f"train + val fractions must be < 1 (the rest is the test split), "
                          f"got {train} + {val}")
    gen = torch.Generator().manual_seed(check_int("split_seed", seed, minimum=0))
    masks = [torch.zeros(len(y), dtype=torch.bool) for _ in range(3)]
    for c in torch.unique(y).tolist():
        nodes = (y == c).nonzero().view(-1)
        nodes = nodes[torch.randperm(len(nodes), generator=gen)]
        n_train = min(len(nodes), max(1, round(len(nodes) * train)))
        n_val = min(len(nodes) - n_train, round(len(nodes) * val))
        masks[0][nodes[:n_train]] = True
        masks[1][nodes[n_train:n_train + n_val]] = True
        masks[2][nodes[n_train + n_val:]] = True
    for mask, what in zip(masks[1:], ("validation", "test"), strict=True):
        if not bool(mask.any()):
            raise ConfigError(f"the random split of {len(y)} nodes (train={train}, val={val}) "
                              f"leaves the {what} split empty; use a larger graph or other "
                              "fractions")
    return masks[0], masks[1], masks[2]


# -- the task -----------------------------------------------------------------------


class GraphTask(Task):
    """Node classification over one graph (see the module docstring).

    Args:
        name: short name of the task.
        data: a PyG ``Data`` with ``x``, ``edge_index``, ``y`` and the three masks
            (:data:`MASKS`); only those are kept (copied to the CPU).
        num_classes: number of classes; inferred as the largest label plus one when
            omitted.
        key: identity of the data (see :attr:`key`); when omitted, the name plus a
            digest of the tensors, so different graphs or splits never share a key.

    Raises:
        ConfigError: a tensor is missing or has a wrong dtype or shape, ``x`` holds
            NaN or infinities, an edge refers to a node that does not exist, a label
            is negative or not below ``num_classes``, or a mask is empty or overlaps
            another.
    """

    def __init__(self, name: str, data: Data, *, num_classes: int | None = None,
                 key: str | None = None) -> None:
        from torch_geometric.data import Data

        if not isinstance(name, str) or not name:
            raise ConfigError(f"a task's name must be a non-empty string, got {name!r}")
        if not isinstance(data, Data):
            raise ConfigError(f"graph task {name!r}: data must be a torch_geometric.data.Data "
                              f"(one homogeneous graph), got {type(data).__name__}")
        x = _check_features(name, data)
        edges = _check_edges(name, data, x.shape[0])
        y, num_classes = _check_labels(name, data, x.shape[0], num_classes)
        masks = _check_masks(name, data, x.shape[0])
        super().__init__(name, (int(x.shape[1]),), num_classes)
        self.data = Data(x=x, edge_index=edges, y=y, **dict(zip(MASKS, masks, strict=True)))
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(f"key must be a non-empty string, got {key!r}")
        self._key = key

    # -- constructors ---------------------------------------------------------------

    @classmethod
    def from_data(cls, name: str, data: Data, *, split: str = "auto", train: float = 0.6,
                  val: float = 0.2, split_seed: int = 0, num_classes: int | None = None,
                  key: str | None = None) -> GraphTask:
        """A task over ``data``, split as ``split`` says (:data:`SPLITS`).

        ``train`` and ``val`` are the fractions of each class of a random split (the
        rest is the test split), drawn from ``split_seed`` (see :func:`random_split`);
        they are used only when the nodes are split at random.
        """
        from torch_geometric.data import Data

        split = check_choice("split", split, SPLITS)
        if not isinstance(data, Data):
            raise ConfigError(f"graph task {name!r}: data must be a torch_geometric.data.Data "
                              f"(one homogeneous graph), got {type(data).__name__}")
        present = [m for m in MASKS if getattr(data, m, None) is not None]
        if split == "given" and len(present) < 3:
            missing = [m for m in MASKS if m not in present]
            raise ConfigError(f"graph task {name!r}: split='given' needs "
                              f"data.{', data.'.join(missing)}; use split='random' for a "
                              "seeded random split")
        if split == "random" or (split == "auto" and len(present) < 3):
            y, _ = _check_labels(name, data, _check_features(name, data).shape[0], num_classes)
            masks = random_split(y, train, val, split_seed)
            data = Data(x=data.x, edge_index=data.edge_index, y=data.y,
                        **dict(zip(MASKS, masks, strict=True)))
        return cls(name, data, num_classes=num_classes, key=key)

    @classmethod
    def from_pyg(cls, name: str, root: str | os.PathLike[str], *, dataset: str | None = None,
                 download: bool = False, **split: Any) -> GraphTask:
        """A PyG data set (:data:`PYG_DATASETS`, ``dataset`` or else ``name``) read from
        ``root``, as PyG lays it out there (``root/Cora/raw/ind.cora.x``, ...).

        Nothing is downloaded unless ``download`` is True (then PyG downloads into
        ``root`` only); a folder that lacks the files raises ConfigError naming them.
        ``split`` options are those of :meth:`from_data` (Planetoid's public split by
        default; Amazon and Coauthor have none, so their nodes are split at random).
        PyG reads pickled files there: read only folders you trust.
        """
        dataset = check_choice("PyG data set", (dataset if dataset is not None else name),
                               PYG_DATASETS)
        download = check_bool("download", download)
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise ConfigError(f"root must be a folder path, got {root!r}")
        folder = Path(root)
        if not folder.is_dir():
            raise ConfigError(f"graph task {name!r}: root folder {str(folder)!r} does not exist "
                              f"(it should hold PyG's {PYG_DATASETS[dataset][1]} files; "
                              "download=True fetches them into it where there is internet)")
        pyg = _load_pyg(dataset, folder, download)
        data = pyg[0]
        for what in MASKS:  # some PyG data sets hold several splits as columns: keep none
            mask = getattr(data, what, None)
            if isinstance(mask, torch.Tensor) and mask.dim() != 1:
                setattr(data, what, None)
        return cls.from_data(name, data, **split)

    # -- identity and data ----------------------------------------------------------

    @property
    def key(self) -> str:
        """The given key, or the name plus a digest of the graph and its split."""
        if self._key is None:
            self._key = data_key(self.name, [(what, getattr(self.data, what)) for what in
                                             ("x", "edge_index", "y", *MASKS)],
                                 self.num_classes)
        return self._key

    @property
    def num_nodes(self) -> int:
        """Number of nodes of the graph."""
        return int(self.data.x.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of (directed) edges in ``edge_index``."""
        return int(self.data.edge_index.shape[1])

    def make_evaluator(self, **options: Any) -> GraphTrainingEvaluator:
        """The evaluator that trains networks on this task: a
        :class:`~naslab.workers.graph_training.GraphTrainingEvaluator` with ``options``."""
        from naslab.workers.graph_training import GraphTrainingEvaluator

        return GraphTrainingEvaluator(self, **options)

    def loaders(self, batch_size: int, seed: int) -> Any:
        """Refused: a graph task is trained full-batch (the whole graph at once) by
        :meth:`make_evaluator`'s evaluator, not from mini-batch loaders."""
        raise ConfigError(
            f"graph task {self.name!r} is trained full-batch on its whole graph and has no "
            "mini-batch loaders; evaluate with task.make_evaluator() "
            "(naslab.workers.graph_training.GraphTrainingEvaluator), not TrainingEvaluator")

    def sample_batch(self, n: int) -> torch.Tensor:
        """Refused, as :meth:`loaders`: a network of a graph task needs the graph's edges
        too; its latency is measured on the whole graph by the graph evaluator."""
        return self.loaders(n, 0)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (f"GraphTask(key={self.key!r}, nodes={self.num_nodes}, edges={self.num_edges}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")


def _load_pyg(dataset: str, folder: Path, download: bool) -> Any:
    """The PyG data set object, built so that a missing file raises instead of downloading."""
    import torch_geometric.datasets as pyg_datasets

    cls_name, pyg_name = PYG_DATASETS[dataset]
    base = getattr(pyg_datasets, cls_name)
    if not download:
        def refuse(self: Any) -> None:
            missing = [p for p in self.raw_paths if not os.path.exists(p)]
            raise ConfigError(
                f"{pyg_name}: file(s) missing under {str(folder)!r}: {missing}; put PyG's "
                f"{cls_name} raw files there, or pass download=True where there is internet")

        base = type(base.__name__, (base,), {"download": refuse})
    try:
        return base(str(folder), pyg_name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"could not read PyG's {pyg_name} from {str(folder)!r}: "
                          f"{type(exc).__name__}: {exc}") from exc


# -- built-in tasks -----------------------------------------------------------------


def _sbm_edges(blocks: torch.Tensor, p_in: float, p_out: float, gen: torch.Generator
               ) -> torch.Tensor:
    """An undirected SBM edge set (both directions, no self-loops), sampled row by row."""
    n = len(blocks)
    rows, cols = [], []
    for start in range(0, n, 512):
        stop = min(start + 512, n)
        same = blocks[start:stop, None] == blocks[None, :]
        prob = torch.where(same, p_in, p_out)
        hit = torch.rand(stop - start, n, generator=gen) < prob
        hit &= torch.arange(start, stop)[:, None] < torch.arange(n)[None, :]  # upper triangle
        r, c = hit.nonzero(as_tuple=True)
        rows.append(r + start)
        cols.append(c)
    r, c = torch.cat(rows), torch.cat(cols)
    return torch.stack([torch.cat([r, c]), torch.cat([c, r])])


def sbm_task(num_nodes: int = 1000, num_classes: int = 4, num_features: int = 16,
             avg_degree: float = 8.0, homophily: float = 0.6, feature_signal: float = 0.3,
             seed: int = 0, train: float = 0.5, val: float = 0.25) -> GraphTask:
    """A stochastic block model graph generated deterministically from ``seed``.

    ``num_nodes`` nodes in ``num_classes`` blocks of (nearly) equal size; the label
    of a node is its block. Each node has on average ``avg_degree`` neighbours, a
    ``homophily`` fraction of them in its own block. Node features are a block's
    random mean vector scaled by ``feature_signal`` plus standard normal noise, so
    features alone predict the block weakly and neighbourhoods add evidence (a GNN
    beats chance, ``1 / num_classes``, by far). The nodes are split per class at
    random (``train``, ``val``, the rest test) from ``seed`` too. No download.
    """
    num_nodes = check_int("sbm num_nodes", num_nodes, minimum=4, maximum=MAX_SBM_NODES)
    num_classes = check_int("sbm num_classes", num_classes, minimum=2, maximum=num_nodes // 2)
    num_features = check_int("sbm num_features", num_features, minimum=1, maximum=4096)
    avg_degree = check_float("sbm avg_degree", avg_degree, minimum=0.0, maximum=num_nodes - 1)
    homophily = check_float("sbm homophily", homophily, minimum=0.0, maximum=1.0)
    feature_signal = check_float("sbm feature_signal", feature_signal, minimum=0.0,
                                 maximum=100.0)
    seed = check_int("sbm seed", seed, minimum=0)
    block_size = num_nodes / num_classes
    p_in = avg_degree * homophily / max(block_size - 1, 1)
    p_out = avg_degree * (1 - homophily) / (num_nodes - block_size)
    if p_in > 1 or p_out > 1:
        raise ConfigError(f"sbm: avg_degree={avg_degree} with homophily={homophily} needs "
                          f"edge probabilities above 1 (within a block {p_in:.3g}, between "
                          f"{p_out:.3g}); lower avg_degree or use more nodes")
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) * num_classes // num_nodes
    means = torch.randn(num_classes, num_features, generator=gen)
    x = feature_signal * means[y] + torch.randn(num_nodes, num_features, generator=gen)
    edges = _sbm_edges(y, p_in, p_out, gen)
    from torch_geometric.data import Data

    data = Data(x=x, edge_index=edges, y=y)
    return GraphTask.from_data("sbm", data, split="random", train=train, val=val,
                               split_seed=seed, num_classes=num_classes)


def karate_task(split_seed: int = 0, train: float = 0.5, val: float = 0.25) -> GraphTask:
    """Zachary's karate club (34 nodes, 156 directed edges, 4 classes, one-hot node
    features), as shipped inside PyG (``KarateClub``, no download), split per class at
    random from ``split_seed``."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    return GraphTask.from_data("karate", data, split="random", train=train, val=val,
                               split_seed=split_seed)


def cora_task(root: str | os.PathLike[str], split: str = "auto", split_seed: int = 0,
              download: bool = False) -> GraphTask:
    """Planetoid Cora read from ``root`` (see :meth:`GraphTask.from_pyg`); the public split."""
    return GraphTask.from_pyg("cora", root, download=download, split=split,
                              split_seed=split_seed)


def citeseer_task(root: str | os.PathLike[str], split: str = "auto", split_seed: int = 0,
                  download: bool = False) -> GraphTask:
    """Planetoid CiteSeer read from ``root`` (see :meth:`GraphTask.from_pyg`)."""
    return GraphTask.from_pyg("citeseer", root, download=download, split=split,
                              split_seed=split_seed)


def pubmed_task(root: str | os.PathLike[str], split: str = "auto", split_seed: int = 0,
                download: bool = False) -> GraphTask:
    """Planetoid PubMed read from ``root`` (see :meth:`GraphTask.from_pyg`)."""
    return GraphTask.from_pyg("pubmed", root, download=download, split=split,
                              split_seed=split_seed)
