"""GM: gradient matching (Witches' Brew, Geiping et al. 2021), docs/deviations.md.

Clean-label and targeted: perturb P = floor(budget * N_train) LRG-1 training images within an l_inf ball
of eps/255 (pixel space) so that their clean-label training gradient on a surrogate points where the
gradient of "classify the targets as LRG-1's class" points (loss 1 - cosine over all parameters).
The surrogate is trained on the clean data and is shared by every attack setting on the same
(dataset, model, replicate, recipe); the crafted poisons are a stage shared by every case and method.
Poisons are stored as uint8 images (the rounding cannot leave the eps ball, since x and eps are whole
steps of 1/255). Targets leave the clean test split; ASR = % of targets predicted as the poison class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from artifact.attacks import ATTACKS, poison_count
from artifact.config import TrainCfg
from artifact.data.base import Split
from artifact.errors import UserError
from artifact.models import build_model
from artifact.stages import Stage, stage_key
from artifact.store import derive_seed
from artifact.train import predict, train


@dataclass(frozen=True)
class Params:
    budget: float = 0.01  # fraction of N_train, capped at the size of LRG-1
    n_targets: int = 5
    eps: int = 16  # l_inf bound in 1/255 pixel units
    restarts: int = 8  # R; the restart with the lowest final matching loss is kept
    iterations: int = 250  # M; one signed-Adam step per iteration (a full pass over the poisons)
    tau: float = 0.1  # Adam lr at pbatch 512, in normalized-input units as the reference code counts it
    pbatch: int = 512
    augment: bool = True  # differentiable shift + horizontal flip while crafting
    shift: float = 0.125  # max translation as a fraction of the side (±4 px at 32, ±28 at 224)
    surrogate: TrainCfg = field(default_factory=TrainCfg)  # the attacker's clean training recipe

    def validate(self):
        if not 0 < self.budget < 1:
            return "budget must be in (0, 1)"
        if min(self.n_targets, self.eps, self.restarts, self.iterations, self.pbatch) < 1:
            return "n_targets, eps, restarts, iterations and pbatch must be >= 1"
        if self.tau <= 0 or not 0 <= self.shift < 0.5:
            return "tau must be > 0 and shift in [0, 0.5)"
        return None


# ---------------------------------------------------------------------------------------------------
# Pure pieces (unit-tested)


def milestones(iterations: int) -> list[int]:
    """The reference schedule: lr x0.1 at M/2.667, M/1.6, M/1.142 (93, 156, 218 for M = 250)."""
    return [int(iterations / 2.667), int(iterations / 1.6), int(iterations / 1.142)]


def select_bases(train: Split, group: int, budget: float, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """Seeded bases from `group` (sorted positions) and the requested count before the group-size cap."""
    requested = poison_count(budget, len(train))
    pool = ((train.g == group) & ~train.is_poison).nonzero().squeeze(1)
    pick = pool[torch.randperm(len(pool), generator=gen)[: min(requested, len(pool))]]
    return pick.sort().values, requested


def select_targets(test: Split, target_class: int, n: int, gen: torch.Generator) -> torch.Tensor:
    pool = (test.y == target_class).nonzero().squeeze(1)
    if n > len(pool):
        raise UserError(f"attack.n_targets: {n} targets requested but the test split has only {len(pool)} samples "
                        f"of class {target_class}; lower n_targets")
    return pool[torch.randperm(len(pool), generator=gen)[:n]].sort().values


def param_grad(model, x, y, create_graph: bool = False) -> list[torch.Tensor]:
    """Gradient of the mean cross-entropy w.r.t. every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=create_graph))


def matching_loss(poison_grad: list[torch.Tensor], target_grad: list[torch.Tensor], target_norm) -> torch.Tensor:
    """1 - cosine between the two gradients, all parameters concatenated (one global cosine)."""
    dot = sum((p * t).sum() for p, t in zip(poison_grad, target_grad, strict=True))
    norm = torch.sqrt(sum(p.pow(2).sum() for p in poison_grad))
    return 1 - dot / (norm * target_norm)


def augment(x: torch.Tensor, max_shift_px: float, gen: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation: a uniform sub-pixel shift in ±max_shift_px (bilinear, zero padding)
    per image and axis, and a horizontal flip with probability 1/2, drawn fresh at every call."""
    n, size = len(x), x.shape[-1]
    r = torch.rand(n, 3, generator=gen).to(x.device, x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = torch.where(r[:, 2] > 0.5, -1.0, 1.0)
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (r[:, :2] * 2 - 1) * max_shift_px * 2 / (size - 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def project(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Into the l_inf ball of radius eps, then into the image box: x + delta in [0, 1]."""
    return torch.maximum(torch.minimum(delta.clamp(-eps, eps), 1 - x), -x)


def craft_restart(model, x, y, target_grad, params: Params, std: torch.Tensor, gen: torch.Generator,
                  on_step=None) -> tuple[torch.Tensor, float, list[float]]:
    """One restart: randn*eps init, signed-gradient Adam on delta, projection after every step.

    Adam runs on u = delta / std (the normalized-input units the reference code optimises in), so tau
    means the same step relative to eps as in the reference; the bounds are enforced on delta in pixels.
    Returns (delta, final loss, per-iteration losses); the final loss is the last iteration's mean batch
    loss, measured before its update, as the reference scores restarts.
    """
    eps = params.eps / 255
    delta = project(torch.randn(x.shape, generator=gen).to(x.device) * eps, x, eps)
    u = (delta / std).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=params.tau * params.pbatch / 512)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones(params.iterations), gamma=0.1)
    target_norm = torch.sqrt(sum(t.pow(2).sum() for t in target_grad))
    max_shift = params.shift * x.shape[-1]
    losses = []
    for _ in range(params.iterations):
        grad = torch.zeros_like(u)  # the full-size buffer the batches write their rows into
        batch_losses = []
        for start in range(0, len(x), params.pbatch):
            sl = slice(start, start + params.pbatch)
            xb = x[sl] + u[sl] * std
            if params.augment:
                xb = augment(xb, max_shift, gen)
            loss = matching_loss(param_grad(model, xb, y[sl], create_graph=True), target_grad, target_norm)
            grad += torch.autograd.grad(loss, u)[0]  # w.r.t. delta only; the surrogate's .grad stays untouched
            batch_losses.append(loss.item())
        losses.append(sum(batch_losses) / len(batch_losses))
        u.grad = grad.sign()
        opt.step()
        sched.step()
        with torch.no_grad():
            delta = project(u * std, x, eps)
            u.copy_(delta / std)
        if on_step is not None:
            on_step(delta)
    return project(u.detach() * std, x, eps), losses[-1], losses


def craft(model, x, y, x_target, y_adv, params: Params, std, gen: torch.Generator, on_step=None) -> dict:
    """R restarts against one fixed target gradient (the mean over targets); keep the lowest final loss."""
    model.eval()  # BN running statistics; the surrogate is frozen
    target_grad = [g.detach() for g in param_grad(model, x_target, y_adv)]
    best, finals, curves = None, [], []
    for _ in range(params.restarts):
        delta, final, curve = craft_restart(model, x, y, target_grad, params, std, gen, on_step)
        finals.append(final)
        curves.append(curve)
        if best is None or final < finals[best[0]]:
            best = (len(finals) - 1, delta)
    return {"delta": best[1], "chosen": best[0], "final_losses": finals, "curves": curves}


def quantise(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """uint8 poisons; |round(255 (x + delta)) - 255 x| <= eps because 255 x and eps are whole numbers."""
    return torch.round((x + delta) * 255).clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------
# The attack object


def surrogate_key(cfg: dict, params: Params) -> dict:
    """The attacker's clean model's key: without the attack's settings, so every GM setting shares it."""
    return {"dataset": cfg["dataset"], "model": cfg["model"], "replicate": cfg["seed"],
            "surrogate": asdict(params.surrogate)}


def _surrogate(ctx, params: Params) -> dict:
    """The attacker's clean model (a stage keyed by `surrogate_key`)."""
    key = surrogate_key(ctx.cfg, params)

    def compute():
        model = ctx.fresh_model(derive_seed(key, "init"))
        train(model, ctx.data.train, params.surrogate, derive_seed(key, "train"), ctx.rt,
              checkpoint=ctx.partial_path("gm-surrogate", key, whole_key=True))
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}

    return ctx.stage("gm-surrogate", key, compute, whole_key=True)


class GM:
    Params = Params
    needs_reference = False
    backdoor = True

    def _brew(self, ctx, params: Params, seed: int) -> dict:
        data, dev = ctx.data, ctx.rt.device
        poison_class, target_class = data.lrg1_class, 1 - data.lrg1_class
        bases, requested = select_bases(data.train, data.lrg1, params.budget,
                                        torch.Generator().manual_seed(derive_seed(seed, "bases")))
        targets = select_targets(data.test, target_class, params.n_targets,
                                 torch.Generator().manual_seed(derive_seed(seed, "targets")))
        model = build_model(ctx.model_cfg, data.mean, data.std).to(dev)
        model.load_state_dict(_surrogate(ctx, params)["state_dict"])
        x = data.train.x(bases).to(dev).float().div(255)
        x_t = data.test.x(targets).to(dev).float().div(255)
        y = data.train.y[bases].to(dev)
        y_adv = torch.full((len(targets),), poison_class, dtype=torch.long, device=dev)
        std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1)
        out = craft(model, x, y, x_t, y_adv, params, std, torch.Generator().manual_seed(derive_seed(seed, "craft")))
        with torch.no_grad():
            surrogate_asr = 100.0 * (model(x_t).argmax(1) == poison_class).float().mean().item()
        return {"bases": bases, "requested": requested, "targets": targets, "x_poison": quantise(x, out["delta"]).cpu(),
                "chosen": out["chosen"], "final_losses": out["final_losses"], "curves": torch.tensor(out["curves"]),
                "surrogate_asr": surrogate_asr}

    def stages(self, cfg: dict, params: Params) -> list[Stage]:
        """The surrogate (shared by every GM setting) and the crafted poisons (artifact/stages.py).

        Crafting cost: restarts x iterations x the poisons (budget x N), about 3 passes each (the
        gradient-matching loss differentiates through the poisons' training gradient)."""
        return [Stage("gm-surrogate", surrogate_key(cfg, params), train=params.surrogate, test_passes=0),
                Stage("gm-poisons", stage_key(cfg, {}), grad_passes=3 * params.restarts * params.iterations * params.budget,
                      test_passes=0)]

    def poison_with_context(self, ctx, params: Params, seed: int):
        """Poisons from the cached stage (computed once per dataset/attack/replicate/model)."""
        st = ctx.stage("gm-poisons", {}, lambda: self._brew(ctx, params, seed))
        data, bases, targets = ctx.data, st["bases"], st["targets"]
        train = data.train.replace_samples(bases, st["x_poison"], data.train.y[bases])
        keep = torch.ones(len(data.test), dtype=torch.bool)
        keep[targets] = False
        test = data.test.subset(keep.nonzero().squeeze(1))
        curves = st["curves"]
        info = {
            "poison_class": data.lrg1_class, "target_class": 1 - data.lrg1_class,
            "n_poison": len(bases), "n_poison_requested": st["requested"], "budget_capped": len(bases) < st["requested"],
            "n_targets": len(targets), "n_test_removed": len(targets),
            "target_rows": data.test.rows[targets].tolist(), "target_a": data.test.a[targets].tolist(),
            "chosen_restart": st["chosen"], "restart_final_losses": list(st["final_losses"]),
            "loss_first_iter": curves[st["chosen"], 0].item(), "loss_last_iter": curves[st["chosen"], -1].item(),
            "surrogate_asr": st["surrogate_asr"], "storage": "uint8",
        }
        return replace(data, train=train, test=test), info

    def success(self, model, data, params: Params, info, rt, reference=None):
        """ASR: % of the (held-out) targets the victim predicts as the poison class; and the mean margin."""
        rows = torch.tensor(info["target_rows"], dtype=torch.long)
        targets = Split(data.test.images, rows, torch.full((len(rows),), info["target_class"], dtype=torch.long),
                        torch.tensor(info["target_a"], dtype=torch.long))
        logits = predict(model, targets, rt)
        p, t = info["poison_class"], info["target_class"]
        return {"asr": 100.0 * (logits.argmax(1) == p).float().mean().item(),
                "adv_margin": (logits[:, p] - logits[:, t]).mean().item()}


ATTACKS.register("gm")(GM())
