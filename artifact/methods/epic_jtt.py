"""EPIC + JTT (Appendix A.4, Table 12): JTT that does not upsample what EPIC flags as poisons.

EPIC runs as in Table 3 (standard case, the same cached run); the samples it removed before epoch `stop`
are taken out of JTT's error set, and JTT's final model is trained as usual. Cases: `none` (JTT as-is,
= Table 2's standard), `standard` (EPIC stopped at `stop`), `ideal` (EPIC flags exactly the poisons,
= Table 2's ideal). The final fits are shared with Table 2 wherever the upsampled set coincides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from artifact.methods import METHODS
from artifact.methods import epic as epic_method
from artifact.methods import jtt as jtt_method
from artifact.stages import fit_stage


@dataclass(frozen=True)
class Params:
    jtt: jtt_method.Params = field(default_factory=jtt_method.Params)
    epic: epic_method.Params = field(default_factory=epic_method.Params)
    stop: int = 0  # standard case: EPIC's removals at epochs < stop count as flagged (unused otherwise)

    def validate(self):
        return "stop must be >= 0" if self.stop < 0 else None


class EpicJTT:
    Params = Params
    cases = ("none", "standard", "ideal")

    def prepare(self, ctx, params: Params) -> dict:
        return METHODS["jtt"].prepare(ctx, params.jtt)

    def run(self, ctx, params: Params, case: str) -> dict:
        ident = self.prepare(ctx, params)
        train_split = ctx.data.train
        error = ident["error"]
        out_extra = {}
        if case == "ideal":
            error = jtt_method.apply_case(error, train_split.is_poison, "ideal")
        elif case == "standard":
            removed_at = epic_method.fit(ctx, params.epic, "standard")["reindex"]["removed_at"]
            flagged = (removed_at >= 0) & (removed_at < params.stop)
            error = error & ~flagged
            out_extra = {"epic_flagged": ctx.rates(flagged), "epic_flagged_count": int(flagged.sum())}
        out = ctx.fit_evaluate(params.jtt.final, jtt_method.upsample_index(len(train_split), error, params.jtt.upweight))
        out["idnf"] = ctx.rates(error)
        out["error_set_size"] = int(error.sum())
        return {**out, **out_extra}


    def stages(self, cfg: dict, params: Params, case: str) -> list:
        """JTT's stages, with EPIC's standard run and its flags in the standard case (artifact/stages.py);
        case none trains exactly JTT standard's final model, ideal JTT ideal's."""
        if case != "standard":
            return METHODS["jtt"].stages(cfg, params.jtt, {"none": "standard"}.get(case, case))
        ident, _ = METHODS["jtt"].stages(cfg, params.jtt, "standard")
        epic = epic_method.stage(cfg, params.epic, "standard")
        source = {"jtt-id": ident.id, "epic": epic.id, "stop": params.stop, "upweight": params.jtt.upweight}
        return [ident, epic, fit_stage(cfg, params.jtt.final, source, upweight=params.jtt.upweight)]


METHODS.register("epic_jtt")(EpicJTT())
