"""One job = dataset -> attack -> method (case) -> metrics, with its stages requested by key.

`execute` is the single picklable worker run unchanged by the local pool and by submitit; `prepare`
computes only a job's shared stages, so executors can run those first, once each.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import platform
import resource
import socket
import time
import traceback
from dataclasses import asdict

import numpy as np
import torch

from artifact import metrics
from artifact.attacks import ATTACKS
from artifact.config import DatasetCfg, ModelCfg, TrainCfg, build
from artifact.data import load_dataset
from artifact.errors import warn
from artifact.jobstate import running
from artifact.logs import LOG, job_log
from artifact.methods import METHODS
from artifact.pretrain import start_model
from artifact.stages import clean_cfg, fit_key, stage_key
from artifact.store import PREPARE_TIMING, Store, atomic_write_json, content_hash, derive_seed
from artifact.train import Runtime, predict, prepare, train


@functools.lru_cache(maxsize=2)
def _clean_data(cfg: DatasetCfg, data_root: str | None):
    return load_dataset(cfg, data_root)


def index_digest(index: torch.Tensor) -> str:
    return hashlib.sha256(index.numpy().astype(np.int64).tobytes()).hexdigest()[:16]


class Context:
    """Everything a method needs for one job: the poisoned data, seeds, stages, fit and evaluate."""

    def __init__(self, cfg: dict, store: Store, rt: Runtime, data_root: str | None = None, poisoned: bool = True):
        """The job's context; with `poisoned` false, the same job's view of the clean data (what an attack
        that trains or caches, GM, crafts its poisons in: a whole context, not this one half-built)."""
        self.cfg, self.store, self.rt, self.data_root = cfg, store, rt, data_root
        self._reference = None
        self.dataset_cfg = build(DatasetCfg, cfg["dataset"], "dataset")
        self.model_cfg = build(ModelCfg, cfg["model"], "model")
        self.attack = ATTACKS.get_or_fail(cfg["attack"]["name"], "attack.name")
        self.attack_params = build(self.attack.Params, cfg["attack"]["params"], "attack.params")
        # What determines the poisoned training set; every stage key starts from it.
        self.base_key = {"dataset": cfg["dataset"], "attack": cfg["attack"], "replicate": cfg["seed"]}
        clean = _clean_data(self.dataset_cfg, data_root)
        if not poisoned:
            self.data, self.attack_info = clean, {}
            return
        if hasattr(self.attack, "poison_with_context"):  # protocols.Attack: it trains (GM's surrogate) or caches
            view = Context(cfg, store, rt, data_root, poisoned=False)
            self.data, self.attack_info = self.attack.poison_with_context(view, self.attack_params, self.seed("poison"))
        else:
            self.data, self.attack_info = self.attack.poison(clean, self.attack_params, self.seed("poison"))
        if rt.cuda and self.data.nbytes < 0.5 * torch.cuda.mem_get_info(rt.device)[0]:
            self.data = self.data.to(rt.device)  # keep uint8 images on the GPU when they fit

    def seed(self, *tags) -> int:
        return derive_seed(self.base_key, self.cfg["model"], [asdict(t) if hasattr(t, "__dataclass_fields__")
                                                              else t for t in tags])

    def stage(self, kind: str, extra: dict, compute, *, whole_key: bool = False):
        """Stage `kind`, keyed by this job's poisoned set and model plus `extra`; with `whole_key`, `extra`
        is the whole key (a stage shared beyond the poisoned set: GM's surrogate on the clean data)."""
        return self.store.stage(kind, extra if whole_key else self._stage_key(extra), compute)

    def _stage_key(self, extra: dict) -> dict:
        return stage_key(self.cfg, extra)

    def partial_path(self, kind: str, extra: dict, *, whole_key: bool = False):
        """Where stage `kind` keeps its resumable partial state (train()'s checkpoint, FL rounds)."""
        return self.store.partial_path(kind, extra if whole_key else self._stage_key(extra))

    def new_model(self, tag: str):
        return self.fresh_model(self.seed("init", tag))

    def fresh_model(self, init_seed: int):
        """A model as a job starts it (pretrained body where the config says so), its init seeded by `init_seed`."""
        torch.manual_seed(init_seed)
        return prepare(start_model(self.store, self.model_cfg, self.data.mean, self.data.std, self.rt), self.rt)

    def split_metrics(self, model, split_name: str) -> dict:
        split = self.data.split(split_name)
        pred = predict(model, split, self.rt).argmax(1)
        ga, w = metrics.group_acc(pred, split.y, split.g), self.data.train_group_weights
        return {"acc": metrics.reported_acc(pred, split.y, ga, w, self.data.acc_weighted),
                "acc_plain": metrics.acc(pred, split.y), "wga": metrics.wga(ga), "group_acc": ga,
                "acc_adj": metrics.adjusted_acc(ga, w),
                "worst_is_lrg": metrics.worst_is_lrg(ga, [g for g in (self.data.lrg1, self.data.lrg2) if g is not None]),
                "pred_min_share": metrics.min_class_share(pred)}

    def evaluate(self, model) -> dict:
        """Test metrics of `model`: ACC, per-group accuracy, WGA, and the attack's success."""
        out = self.split_metrics(model, "test")
        ref = {"reference": self.reference()} if self.attack.needs_reference else {}
        out.update(self.attack.success(model, self.data, self.attack_params, self.attack_info, self.rt, **ref))
        return out

    def reference(self) -> dict:
        """Test metrics of the same method (standard case, same seed) trained on the clean data (SA's baseline).

        Its stages are keyed without the attack, so it is computed once and shared by every case and attack.
        """
        if self._reference is None:
            cfg = clean_cfg(self.cfg)
            method, params = _method(cfg)
            self._reference = method.run(Context(cfg, self.store, self.rt, self.data_root), params, "standard")
        return self._reference

    def clean_asr(self, cfg: TrainCfg) -> float:
        """The attack's success on ERM trained with `cfg` on the clean data: what a backdoor's ASR is
        compared with (a clean model also misclassifies some triggered inputs or targets).

        The model is a stage keyed without the attack, so every case, method and attack of a seed shares it.
        """
        clean = Context(clean_cfg(self.cfg), self.store, self.rt, self.data_root)  # its stages ignore the method
        out = clean.fit_evaluate(cfg, tag="clean-baseline", keep_model=True)
        model = self.load_model(out["state_dict"], "clean-baseline")
        return self.attack.success(model, self.data, self.attack_params, self.attack_info, self.rt)["asr"]

    def rates(self, flags: torch.Tensor) -> dict:
        """Share of each ground-truth role (poisons, LRG-1, LRG-2, HRG) among `flags` (IDNF / ELMF)."""
        t = self.data.train
        return metrics.rate_by_role(flags, t.g, t.is_poison, self.data.lrg1, self.data.lrg2, self.data.hrg)

    def val_wga_select(self, epoch, model):
        """JTT/group DRO model selection: the epoch with the best validation WGA (true groups)."""
        val = self.split_metrics(model, "val")
        return val["wga"], {"val_wga": val["wga"], "val_acc": val["acc"]}

    def fit_evaluate(self, cfg: TrainCfg, index: torch.Tensor | None = None, tag: str = "final", *,
                     loss_fn=None, select=None, key_extra: dict | None = None, keep_model: bool = False,
                     reindex=None) -> dict:
        """Train a fresh model on train positions `index`, select its epoch, test it.

        Cached by the exact multiset of training positions (plus `key_extra`, which must describe any
        `loss_fn`/`select` given), so cases whose training sets coincide (e.g. worst = standard when
        every poison is already identified) train once. `keep_model` also stores the selected weights
        (returned under "state_dict") for defenses that inspect the trained model. `reindex` changes the
        training positions between epochs (train()'s hook; EPIC) and its `summary()` is stored under
        "reindex"; `key_extra` must describe it too.
        """
        train_split = self.data.train
        index = torch.arange(len(train_split)) if index is None else index
        key = fit_key(cfg, index_digest(index.sort().values), tag, key_extra, keep_model)

        def compute():
            model = self.new_model(tag)
            out = train(model, train_split, cfg, self.seed(tag, cfg), self.rt, index=index,
                        select=select or self.val_wga_select, loss_fn=loss_fn, reindex=reindex,
                        checkpoint=self.partial_path("fit", key))
            result = {**self.evaluate(model), "best_epoch": out["best_epoch"], "history": out["history"],
                      "train_size": len(index)}
            if reindex is not None:
                result["reindex"] = reindex.summary()
            if keep_model:
                result["state_dict"] = {k: v.cpu() for k, v in model.state_dict().items()}
            return result

        return dict(self.stage("fit", key, compute))

    def load_model(self, state_dict: dict, tag: str = "final"):
        model = self.new_model(tag)
        model.load_state_dict(state_dict)
        return model


def environment(git: str | None = None) -> dict:
    cuda = torch.cuda.is_available()
    return {
        "git_commit": git,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


def job_id(cfg: dict) -> str:
    return content_hash(cfg)


def _method(cfg: dict):
    method = METHODS.get_or_fail(cfg["method"]["name"], "method.name")
    return method, build(method.Params, cfg["method"]["params"], "method.params")


def _failure(store: Store, jid: str, name: str, e: Exception) -> dict:
    """Keep the traceback in the job folder; the user sees one line and the log path."""
    path = store.job_dir(jid) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
    except OSError as write_error:  # a full disk or a read-only folder: the line is all there is
        return {"id": jid, "status": "failed", "error": f"{type(e).__name__}: {e}",
                "log": f"none ({path}: {write_error.strerror})"}
    return {"id": jid, "status": "failed", "error": f"{type(e).__name__}: {e}", "log": str(path)}


def _runtime(store: Store, rt: dict) -> Runtime:
    runtime = Runtime(**rt)
    runtime.setup()
    store.numerics = runtime.numerics()  # stages are keyed by what decides their numbers
    return runtime


def prepare_job(cfg: dict, results: str, rt: dict, data_root: str | None = None) -> dict:
    """Compute the stages this job shares with its sibling cases (e.g. JTT's identification); their wall
    time goes to the job's prepare.json (the dry run's calibration counts it with the job's own)."""
    store, jid = Store(results), job_id(cfg)
    t0 = time.time()
    try:
        with job_log(store.job_dir(jid)):
            LOG.info("job %s: shared stages of %s x %s", jid, cfg["method"]["name"], cfg["attack"]["name"])
            runtime = _runtime(store, rt)
            method, params = _method(cfg)
            method.prepare(Context(cfg, store, runtime, data_root), params)
    except Exception as e:
        return _failure(store, jid, "stage-error.txt", e)
    (store.job_dir(jid) / "stage-error.txt").unlink(missing_ok=True)  # an earlier attempt's
    with contextlib.suppress(OSError):  # only a price hint: a full disk must not fail the stages
        atomic_write_json(store.job_dir(jid) / PREPARE_TIMING, {"wall_s": round(time.time() - t0, 2)})
    return {"id": jid, "status": "done"}


def execute(cfg: dict, results: str, rt: dict, data_root: str | None = None, git: str | None = None) -> dict:
    """Run one job and write its result.json atomically; a failure writes error.txt instead.

    A damaged result.json in the job's folder (not a finished result of this job) is set aside and the job
    runs again."""
    store, jid = Store(results), job_id(cfg)
    if store.is_done(jid):
        return {"id": jid, "status": "done", "cached": True}
    moved = store.set_aside(jid)
    if moved:
        warn(f"{store.result_path(jid)} {moved[1]}; moved to {moved[0].name}, rerunning the job")
    t0 = time.time()
    with running(store, jid), job_log(store.job_dir(jid)):
        try:
            LOG.info("job %s: %s x %s, case %s, seed %s", jid, cfg["method"]["name"], cfg["attack"]["name"],
                     cfg["case"], cfg["seed"])
            runtime = _runtime(store, rt)
            method, params = _method(cfg)
            ctx = Context(cfg, store, runtime, data_root)
            out = method.run(ctx, params, cfg["case"])
            if "clean_baseline" in cfg:
                out["asr_clean"] = ctx.clean_asr(build(TrainCfg, cfg["clean_baseline"], "clean_baseline"))
        except Exception as e:
            LOG.info("job %s: failed (%s: %s)", jid, type(e).__name__, e)
            return _failure(store, jid, "error.txt", e)
        result = {
            "id": jid,
            "config": cfg,
            "seed": cfg["seed"],
            "metrics": out,
            "attack_info": ctx.attack_info,
            "runtime": runtime.describe(),
            "env": environment(git),
            "timing": {
                "wall_s": round(time.time() - t0, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
            },
        }
        try:
            store.write_result(jid, result)
        except OSError as e:
            return {"id": jid, "status": "failed", "log": None,
                    "error": f"cannot write {store.result_path(jid)}: {e.strerror} (its stages are kept; "
                             "free space or fix permissions, then rerun the same command)"}
        LOG.info("job %s: done in %.1f s", jid, result["timing"]["wall_s"])
        return {"id": jid, "status": "done", "cached": False, "wall_s": result["timing"]["wall_s"]}
