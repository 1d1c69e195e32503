"""GEORGE (Sohoni et al. 2020) as its official code (HazyResearch/hidden-stratification) runs it.

Stage 1 trains an ERM model (checkpoint by validation accuracy reweighted to the train groups); its
avgpool features are reduced per class (the released Waterbirds config: the 1-D "hardness" projection
onto W1 - W0) and clustered per class (GMM, k in 2..k_max by the mean per-cluster silhouette, ties to
the larger k, as Appendix A.1 and the released config do; or a fixed `k` per class, the setting that
Section 3.1's "we also experiment with letting GEORGE automatically adjust the number of clusters"
suggests for the other runs, docs/deviations.md). Stage 2 trains a fresh model with group DRO over the
clusters, sampling every cluster equally, and keeps the epoch with the best worst ESTIMATED-cluster validation accuracy.
Both stages are shared by the cases: standard (clusters as found), ideal (poisons taken out of the
smallest cluster into their class's largest one), worst (every poison put into the smallest cluster).
IDNF = share of each true role inside the smallest cluster (the samples GEORGE amplifies most).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_samples
from sklearn.mixture import GaussianMixture

from artifact import metrics
from artifact.config import TrainCfg
from artifact.methods import METHODS
from artifact.methods.group_dro import GroupDROLoss, uniform_group_index
from artifact.stages import Stage, fit_stage, stage_key
from artifact.store import content_hash
from artifact.train import predict, train


@dataclass(frozen=True)
class Params:
    erm: TrainCfg = field(default_factory=TrainCfg)  # stage 1 (the official config uses the final recipe)
    final: TrainCfg = field(default_factory=TrainCfg)  # stage 2, group DRO over the clusters
    erm_select: str = "acc_adj"  # ERM checkpoint: val acc reweighted to train groups (Waterbirds) | acc
    reduction: str = "hardness"  # hardness: <x, (W1-W0)/|W1-W0|> (1-D) | none: L2-normalised features
    cluster: str = "gmm"  # gmm | kmeans
    k_max: int = 10  # k searched in 2..k_max per class ...
    k: int = 0  # ... or, when >= 2, this fixed number of clusters per class (no search)
    n_init: int = 3
    eta: float = 0.01  # group DRO step size
    size_adjustment: float = 2.0  # C in C / sqrt(n_c)
    reweight_selection: bool = True  # final checkpoint on val_subclass_rob_acc_rw (Waterbirds) or _acc

    def validate(self):
        if self.erm_select not in ("acc_adj", "acc"):
            return "erm_select must be 'acc_adj' or 'acc'"
        if self.reduction not in ("hardness", "none"):
            return "reduction must be 'hardness' or 'none'"
        if self.cluster not in ("gmm", "kmeans"):
            return "cluster must be 'gmm' or 'kmeans'"
        if self.k_max < 2 or self.n_init < 1:
            return "k_max must be >= 2 and n_init >= 1"
        if self.k == 1 or self.k < 0:
            return "k must be 0 (search 2..k_max by silhouette) or a fixed number of clusters >= 2"
        return None


def reduce_features(features: np.ndarray, head_w: np.ndarray, mode: str) -> np.ndarray:
    """GEORGE's per-sample representation before clustering."""
    if mode == "hardness":
        d = head_w[1] - head_w[0]
        return (features @ (d / np.linalg.norm(d)))[:, None]
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)


def _mixture(algo: str, k: int, n_init: int, seed: int):
    if algo == "gmm":
        return GaussianMixture(n_components=k, n_init=n_init, random_state=seed)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed)


def assign(model, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Index into `keep` (the components used by the training points) of each point's best component."""
    scores = model.predict_proba(x) if isinstance(model, GaussianMixture) else -model.transform(x)
    return scores[:, keep].argmax(1)


def mean_cluster_silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean over clusters of the clusters' mean silhouette (GEORGE's score, not the global mean)."""
    s = silhouette_samples(x, labels)
    return float(np.mean([s[labels == c].mean() for c in np.unique(labels)]))


def fit_clusters(x: np.ndarray, algo: str, k_max: int, n_init: int, seed: int,
                 fixed_k: int = 0) -> tuple[object, np.ndarray, dict]:
    """Fit k = 2..k_max (or only `fixed_k`), keep the best mean per-cluster silhouette (ties to the larger k).

    Returns the model, the components the training points use, and the score of every k tried.
    """
    best, scores = None, {}
    for k in ([fixed_k] if fixed_k else range(2, min(k_max, len(x) - 1) + 1)):
        model = _mixture(algo, k, n_init, seed).fit(x)
        labels = model.predict(x)
        if len(np.unique(labels)) < 2:
            continue
        scores[k] = mean_cluster_silhouette(x, labels)
        if best is None or scores[k] >= best[0]:
            best = (scores[k], model, np.unique(labels))
    if best is None:  # every fit collapsed (e.g. constant features): one cluster
        model = _mixture(algo, 1, n_init, seed).fit(x)
        return model, np.array([0]), scores
    return best[1], best[2], scores


def cluster_per_class(train_x, train_y, val_x, val_y, algo, k_max, n_init, seeds, fixed_k: int = 0) -> dict:
    """Per-class clustering; ids offset per class; val points assigned by the model of their true class."""
    train_ids = np.zeros(len(train_y), dtype=np.int64)
    val_ids = np.zeros(len(val_y), dtype=np.int64)
    cluster_class, per_class = [], []
    for c in np.unique(train_y):
        tr, va = train_y == c, val_y == c
        model, keep, scores = fit_clusters(train_x[tr], algo, k_max, n_init, seeds[int(c)], fixed_k)
        offset = len(cluster_class)
        train_ids[tr] = offset + assign(model, train_x[tr], keep)
        if va.any():
            val_ids[va] = offset + assign(model, val_x[va], keep)
        cluster_class += [int(c)] * len(keep)
        per_class.append({"class": int(c), "k": len(keep), "silhouette": {str(k): v for k, v in scores.items()}})
    return {"train": torch.from_numpy(train_ids), "val": torch.from_numpy(val_ids),
            "cluster_class": cluster_class, "per_class": per_class}


def smallest_cluster(clusters: torch.Tensor) -> int:
    counts = torch.bincount(clusters)
    counts[counts == 0] = counts.max() + 1
    return int(counts.argmin())


def apply_case(clusters: torch.Tensor, is_poison: torch.Tensor, y: torch.Tensor, cluster_class: list[int],
               case: str) -> torch.Tensor:
    """The case intervention on the training cluster ids (the smallest cluster is the standard one's)."""
    clusters = clusters.clone()
    small = smallest_cluster(clusters)
    if case == "worst":
        clusters[is_poison] = small
    elif case == "ideal":
        counts = torch.bincount(clusters, minlength=len(cluster_class))
        owner = torch.tensor(cluster_class)
        for c in torch.unique(y[is_poison & (clusters == small)]).tolist():
            largest = int(torch.where(owner == c, counts, -1).argmax())
            clusters[is_poison & (clusters == small) & (y == c)] = largest
    return clusters


def worst_cluster_acc(pred, y, clusters, weights) -> float:
    """Worst accuracy over the (estimated) clusters present, each sample weighted by `weights`."""
    correct = (pred == y).double() * weights
    accs = [100.0 * float(correct[clusters == c].sum() / weights[clusters == c].sum()) for c in torch.unique(clusters)]
    return min(accs)


class George:
    Params = Params
    cases = ("worst", "standard", "ideal")

    @staticmethod
    def erm_key(params: Params) -> dict:
        return {"erm": asdict(params.erm), "select": params.erm_select}

    @classmethod
    def cluster_key(cls, params: Params) -> dict:
        """The clustering stage's key; a fixed k enters it only when set, so searched clusters keep theirs."""
        key = {**cls.erm_key(params), "reduction": params.reduction, "cluster": params.cluster,
               "k_max": params.k_max, "n_init": params.n_init}
        return {**key, "k": params.k} if params.k else key

    @staticmethod
    def fit_extra(params: Params, clusters, val_clusters) -> dict:
        """What the group DRO model's `fit` key adds: the cluster ids (train, val) it trains and selects on."""
        return {"george": {"clusters": clusters, "val_clusters": val_clusters, "eta": params.eta,
                           "size_adjustment": params.size_adjustment, "reweight_selection": params.reweight_selection}}

    def _erm(self, ctx, params: Params) -> dict:
        model = ctx.new_model(tag="george-erm")

        def select(epoch, m):
            val = ctx.split_metrics(m, "val")
            return val[params.erm_select], {"val_acc_adj": val["acc_adj"], "val_acc": val["acc"], "val_wga": val["wga"]}

        out = train(model, ctx.data.train, params.erm, ctx.seed("george-erm", params.erm), ctx.rt, select=select,
                    checkpoint=ctx.partial_path("george-erm", self.erm_key(params)))
        return {"train_features": predict(model, ctx.data.train, ctx.rt, features=True),
                "val_features": predict(model, ctx.data.val, ctx.rt, features=True),
                "head_w": model.head.weight.detach().float().cpu(),
                "best_epoch": out["best_epoch"], "erm_test": ctx.evaluate(model)}

    def _clusters(self, ctx, params: Params, erm: dict) -> dict:
        head_w = erm["head_w"].numpy()
        tr = reduce_features(erm["train_features"].numpy(), head_w, params.reduction)
        va = reduce_features(erm["val_features"].numpy(), head_w, params.reduction)
        seeds = [ctx.seed("george-cluster", c) for c in range(2)]
        return cluster_per_class(tr, ctx.data.train.y.numpy(), va, ctx.data.val.y.numpy(), params.cluster,
                                 params.k_max, params.n_init, seeds, params.k)

    def prepare(self, ctx, params: Params) -> dict:
        erm = ctx.stage("george-erm", self.erm_key(params), lambda: self._erm(ctx, params))
        clusters = ctx.stage("george-clusters", self.cluster_key(params), lambda: self._clusters(ctx, params, erm))
        return {**clusters, "erm_test": erm["erm_test"]}

    def _val_weights(self, ctx, reweight: bool) -> torch.Tensor:
        """Per val sample: train share / val share of its true group (the official `_rw` selection)."""
        g = ctx.data.val.g
        if not reweight:
            return torch.ones(len(g), dtype=torch.float64)
        val_share = torch.bincount(g, minlength=metrics.N_GROUPS).double() / len(g)
        train_share = torch.tensor(ctx.data.train_group_weights, dtype=torch.float64)
        return (train_share / val_share.clamp(min=1e-12))[g]

    def run(self, ctx, params: Params, case: str) -> dict:
        st = self.prepare(ctx, params)
        train_split, val = ctx.data.train, ctx.data.val
        clusters = apply_case(st["train"], train_split.is_poison, train_split.y, st["cluster_class"], case)
        n_clusters = len(st["cluster_class"])
        counts = torch.bincount(clusters, minlength=n_clusters)
        weights = self._val_weights(ctx, params.reweight_selection)

        def select(epoch, model):
            pred = predict(model, val, ctx.rt).argmax(1)
            score = worst_cluster_acc(pred, val.y, st["val"], weights)
            true_wga = metrics.wga(metrics.group_acc(pred, val.y, val.g))
            return score, {"val_cluster_wga": score, "val_wga": true_wga, "val_acc": metrics.acc(pred, val.y)}

        loss = GroupDROLoss(clusters, counts, params.eta, params.size_adjustment)
        index = uniform_group_index(clusters, ctx.seed("george-sampling"))
        extra = self.fit_extra(params, content_hash(clusters.tolist()), content_hash(st["val"].tolist()))
        out = ctx.fit_evaluate(params.final, index, loss_fn=loss, select=select, key_extra=extra)
        small = smallest_cluster(st["train"])
        out["idnf"] = ctx.rates(st["train"] == small)
        out["clusters"] = {"k_per_class": [p["k"] for p in st["per_class"]], "sizes": counts.tolist(),
                           "smallest": small, "smallest_class": st["cluster_class"][small],
                           "smallest_in_lrg1_class": 100.0 * (st["cluster_class"][small] == ctx.data.lrg1_class),
                           "silhouette": [p["silhouette"] for p in st["per_class"]]}
        out["erm_test"] = st["erm_test"]
        return out


    def stages(self, cfg: dict, params: Params, case: str) -> list[Stage]:
        """ERM, clustering (both shared by the cases) and the case's group DRO model (artifact/stages.py)."""
        erm_key = self.erm_key(params)
        erm = Stage("george-erm", stage_key(cfg, erm_key), train=params.erm, val_passes=params.erm.epochs + 1,
                    train_passes=1)
        clusters = Stage("george-clusters", stage_key(cfg, self.cluster_key(params)), test_passes=0)
        source = {"george-clusters": clusters.id, "case": case}
        extra = self.fit_extra(params, source, {"george-clusters": clusters.id})
        return [erm, clusters, fit_stage(cfg, params.final, source, extra=extra,
                                         runtime=("extra.george.clusters", "extra.george.val_clusters"))]


METHODS.register("george")(George())
