"""Start-up checks of the GPU: one line for a human when the GPU cannot, or will not, be used.

Why: the torch wheels in requirements.lock (CUDA 13.0) carry compiled kernels only for the
architectures that torch.cuda.get_arch_list() names (sm_75 ... sm_120 for torch 2.14.1+cu130). On an
older GPU, e.g. a V100 (sm_70), torch imports, reports the GPU as available, and fails only at the
first kernel launch with "no kernel image is available for execution on the device", deep inside a
run. And a run that silently falls back to the CPU takes days where the paper's took hours. So the
CLI prints these lines before any work starts. The decisions are pure functions of the capability
and the architecture list, so they are tested without a GPU; only device_report() and cpu_notice()
(without arguments) ask torch.
"""

from __future__ import annotations

import os
import re
import warnings

CPU_NOTICE = "no GPU visible: running on the CPU"

_ARCH = re.compile(r"(sm|compute)_(\d+)([a-z]?)")


def parse_arch(arch: str) -> tuple[str, int, int, str] | None:
    """'sm_86' -> ('sm', 8, 6, ''); 'compute_90a' -> ('compute', 9, 0, 'a'); None if not of that form.

    The number is major * 10 + minor (sm_100 is 10.0, sm_121 is 12.1). The suffix 'a' marks
    architecture-specific code, 'f' family-specific code (CUDA 12.9+).
    """
    m = _ARCH.fullmatch(arch.strip())
    if m is None:
        return None
    kind, number, suffix = m.group(1), int(m.group(2)), m.group(3)
    return kind, number // 10, number % 10, suffix


def runs_on(arch: str, capability: tuple[int, int]) -> str | None:
    """How code built for `arch` runs on a device of compute `capability`.

    'native': a cubin the device executes. CUDA's binary compatibility: a cubin for X.Y runs on X.Z
    for Z >= Y (same major), except 'a' cubins, which run on exactly X.Y.
    'jit': PTX (compute_XY) that the driver compiles on first use, for any device >= X.Y ('a': exactly
    X.Y; 'f': same major); it works, but the first launch of each kernel is slow.
    None: it cannot run there.
    """
    parsed = parse_arch(arch)
    if parsed is None:
        return None
    kind, major, minor, suffix = parsed
    cap = (int(capability[0]), int(capability[1]))
    if suffix == "a":
        fits = cap == (major, minor)
    elif kind == "sm" or suffix == "f":
        fits = cap[0] == major and cap[1] >= minor
    else:
        fits = cap >= (major, minor)
    if not fits:
        return None
    return "native" if kind == "sm" else "jit"


def compatibility_report(capability: tuple[int, int], arch_list: list[str], device: str = "the GPU") -> str | None:
    """None if this torch build has native kernels for a device of `capability`; else one line.

    `arch_list` is torch.cuda.get_arch_list(); an empty list (a build that does not say) gives None,
    since there is nothing to judge by.
    """
    if not arch_list:
        return None
    modes = {runs_on(arch, capability) for arch in arch_list}
    cap = f"compute capability {capability[0]}.{capability[1]}"
    built = " ".join(arch_list)
    if "native" in modes:
        return None
    if "jit" in modes:
        return (f"{device} ({cap}) has no native kernels in this torch build ({built}): CUDA will "
                "JIT-compile its PTX, so the first steps are slow")
    return (f"{device} ({cap}) is not supported by this torch build (kernels for {built}): GPU runs would "
            "fail with 'no kernel image is available'; use --device cpu or a GPU that this build supports")


def device_report() -> str | None:
    """Check every visible GPU against the installed torch; None when all are fine or there is no GPU.

    Devices of the same model and capability are reported together, so eight V100s make one line.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    arch_list = list(torch.cuda.get_arch_list())
    groups: dict[tuple[str, tuple[int, int]], list[int]] = {}
    for i in range(torch.cuda.device_count()):
        key = (torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
        groups.setdefault(key, []).append(i)
    lines = []
    for (name, cap), ids in groups.items():
        label = f"GPU {ids[0]}" if len(ids) == 1 else "GPUs " + ",".join(map(str, ids))
        line = compatibility_report(cap, arch_list, f"{label} ({name})")
        if line:
            lines.append(line)
    return "; ".join(lines) or None


def usage_text(device: str, name: str, capability: tuple[int, int], runtime: dict) -> str:
    """What a CUDA run uses, in one line: the GPU, AMP and memory format (a reviewer's first check)."""
    return (f"using {device}: {name} (compute capability {capability[0]}.{capability[1]}), "
            f"AMP {runtime['amp']} autocast, channels_last {'on' if runtime['channels_last'] else 'off'}")


def usage_line(device: str) -> str | None:
    """usage_text for `device` as the training loop will run it; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    from artifact.train import Runtime

    return usage_text(device, torch.cuda.get_device_name(device), tuple(torch.cuda.get_device_capability(device)),
                      Runtime(device=device).describe())


def cpu_notice(cuda_available: bool | None = None, reason: str | None = None,
               in_image: bool | None = None) -> str | None:
    """The one-line notice that the run uses the CPU, or None when CUDA is available.

    Without arguments it asks torch, and adds why CUDA is unusable when torch says so (e.g. "The
    NVIDIA driver on your system is too old"), or, inside the image (OILWATER_IN_IMAGE=1) with no
    reason, the usual cause: a container started without GPU access.
    """
    if cuda_available is None:
        cuda_available, reason = _probe_cuda()
    if cuda_available:
        return None
    if in_image is None:
        in_image = os.environ.get("OILWATER_IN_IMAGE") == "1"
    if not reason and in_image:
        reason = "in the container: start it with 'docker run --gpus all' or 'apptainer exec --nv'"
    return f"{CPU_NOTICE} ({reason})" if reason else CPU_NOTICE


def _probe_cuda() -> tuple[bool, str | None]:
    """torch.cuda.is_available(), and the first sentence of the warning torch gives when it is not."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return True, None
    for w in caught:
        text = " ".join(str(w.message).split())
        if "CUDA" in text or "NVIDIA" in text:
            return False, text.split(". ")[0].rstrip(".")
    return False, None
