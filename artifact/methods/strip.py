"""STRIP on JTT's standard model (Appendix A.3, Table 11): can a run-time detector separate the poisons?

The model is exactly Table 2's JTT standard model (same identification stage, same upsampled set, same
seed), kept by ctx.fit_evaluate. Screened inputs are training samples of each ground-truth role
(HRG, LRG-1, LRG-2 and the poisons, which carry the trigger); overlays come from one half of the
validation split and the detection threshold from the other half (clean inputs the defender holds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from artifact.defenses import strip
from artifact.methods import METHODS
from artifact.methods import jtt as jtt_method
from artifact.stages import fit_stage


@dataclass(frozen=True)
class Params:
    jtt: jtt_method.Params = field(default_factory=jtt_method.Params)
    n_overlays: int = 100  # N blends per screened input (the original's 100)
    frr: float = 0.01  # false rejection rate that sets the threshold (the original's 1 %)
    max_per_role: int = 0  # screen at most this many samples of each clean role (0: all)

    def validate(self):
        if self.n_overlays < 1 or not 0 < self.frr < 1 or self.max_per_role < 0:
            return "need n_overlays >= 1, 0 < frr < 1 and max_per_role >= 0"
        return None


def roles(data) -> dict[str, torch.Tensor]:
    """Training positions of each role, in the paper's column order (no LRG-2 on CelebA)."""
    t = data.train
    clean = ~t.is_poison
    masks = {"hrg": clean & torch.isin(t.g, torch.tensor(data.hrg)), "lrg1": clean & (t.g == data.lrg1)}
    if data.lrg2 is not None:
        masks["lrg2"] = clean & (t.g == data.lrg2)
    masks["poisons"] = t.is_poison
    return {k: m.nonzero().squeeze(1) for k, m in masks.items()}


class STRIP:
    Params = Params
    cases = ("standard",)

    def prepare(self, ctx, params: Params) -> dict:
        return METHODS["jtt"].prepare(ctx, params.jtt)

    def run(self, ctx, params: Params, case: str) -> dict:
        ident = self.prepare(ctx, params)
        train, val = ctx.data.train, ctx.data.val
        error = jtt_method.apply_case(ident["error"], train.is_poison, "standard")
        out = ctx.fit_evaluate(params.jtt.final, jtt_method.upsample_index(len(train), error, params.jtt.upweight),
                               keep_model=True)
        model = ctx.load_model(out.pop("state_dict"))
        gen = torch.Generator().manual_seed(ctx.seed("strip"))
        perm = torch.randperm(len(val), generator=gen)
        pool, calib = val.subset(perm[: len(val) // 2]), perm[len(val) // 2 :]
        clean_h = strip.strip_entropy(model, val, calib, pool, params.n_overlays, gen, ctx.rt)
        thr = strip.threshold(clean_h, params.frr)
        out.update({"entropy": {}, "entropy_sd": {}, "flagged": {}, "threshold": thr,
                    "calibration_entropy": float(clean_h.mean())})
        for name, idx in roles(ctx.data).items():
            if params.max_per_role and name != "poisons" and len(idx) > params.max_per_role:
                idx = idx[torch.randperm(len(idx), generator=gen)[: params.max_per_role]]
            h = strip.strip_entropy(model, train, idx, pool, params.n_overlays, gen, ctx.rt)
            out["entropy"][name] = float(h.mean())
            out["entropy_sd"][name] = float(h.std()) if len(h) > 1 else 0.0
            out["flagged"][name] = float(100.0 * (h < thr).double().mean())
        return out


    def stages(self, cfg: dict, params: Params, case: str) -> list:
        """JTT standard's stages, the final model kept (a separate `fit` key: keep_model) (artifact/stages.py)."""
        ident, final = METHODS["jtt"].stages(cfg, params.jtt, "standard")
        return [ident, fit_stage(cfg, params.jtt.final, final.key["index"], keep_model=True,
                                 upweight=params.jtt.upweight)]


METHODS.register("strip")(STRIP())
