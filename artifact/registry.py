"""Name -> object registries keyed by the names the configs use, loading a plugin only when it is used.

A plugin package (artifact/methods, artifact/attacks, artifact/data) is indexed by reading its modules'
source for `REGISTRY.register("name")`, without importing them: expanding a grid imports only the
methods and attacks it names, `--list` imports none (no torch), and a broken module breaks only the
commands that use it. Plugins outside the package (a researcher's own method, a test's toy method) are
modules or .py files named in $OILWATER_PLUGINS (comma-separated), imported at the first name the
package itself does not have; spawned workers inherit the variable, so they find them too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from artifact.errors import UserError
from artifact.protocols import conformance_problem

REGISTERS = re.compile(r"""\.register\(\s*["']([^"']+)["']""")


class Registry(MutableMapping):
    def __init__(self, kind: str, package: str | None = None):
        self.kind, self.package = kind, package
        self._objs: dict = {}
        self._index: dict[str, str] | None = None  # name -> module that registers it (not yet imported)
        self._plugins_seen = ""  # the $OILWATER_PLUGINS already imported (a changed value imports again)
        self._specs: dict = {}  # name -> what is known of it without running it (datasets: a DatasetSpec)

    def register(self, name: str, spec=None):
        def deco(obj):
            if name in self._objs:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            problem = conformance_problem(self.kind, name, obj)
            if problem:
                raise UserError(f"{problem}; add it to the plugin")
            self._objs[name] = obj
            if spec is not None:
                self._specs[name] = spec
            return obj

        return deco

    def spec(self, name: str, where: str = ""):
        """The spec `name` was registered with (importing its module), or None."""
        self.get_or_fail(name, where)
        return self._specs.get(name)

    def _modules(self) -> dict[str, str]:
        if self._index is None:
            self._index = {}
            if self.package:
                folder = Path(importlib.util.find_spec(self.package).origin).parent
                for path in sorted(folder.glob("*.py")):
                    if not path.name.startswith("_"):
                        for name in REGISTERS.findall(path.read_text()):
                            self._index.setdefault(name, f"{self.package}.{path.stem}")
        return self._index

    def _load(self, name: str) -> None:
        module = self._modules().get(name)
        if module is not None and name not in self._objs:
            _import(module, f"{self.kind} {name!r}")
        plugins = os.environ.get("OILWATER_PLUGINS", "")
        if name not in self._objs and plugins != self._plugins_seen:
            load_plugins()
            self._plugins_seen = plugins

    def __getitem__(self, name: str):
        self._load(name)
        return self._objs[name]

    def __setitem__(self, name: str, obj) -> None:  # a test's stand-in (register() refuses a second one)
        self._objs[name] = obj

    def __delitem__(self, name: str) -> None:  # hides a plugin from this registry (tests)
        self._objs.pop(name, None)
        self._modules().pop(name, None)

    def __contains__(self, name) -> bool:
        if name in self._objs or name in self._modules():
            return True
        self._load(name)
        return name in self._objs

    def __iter__(self) -> Iterator[str]:
        self._load("")  # the external plugins, so that they are listed too
        return iter(sorted(set(self._modules()) | set(self._objs)))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def get_or_fail(self, name: str, where: str = ""):
        if name not in self:
            at = f"{where}: " if where else ""
            raise UserError(f"{at}unknown {self.kind} {name!r} (valid: {', '.join(self)})")
        return self[name]


def _import(module: str, what: str) -> None:
    """Import a plugin module; a syntax error or a missing import in it is one line naming the file."""
    try:
        importlib.import_module(module)
    except (SyntaxError, ImportError) as e:
        where = f"{e.filename}:{e.lineno}" if isinstance(e, SyntaxError) else module
        raise UserError(f"{what}: {where} cannot be imported ({type(e).__name__}: {e}); fix that file") from None


def load_plugins() -> None:
    """Import each module or .py file named in $OILWATER_PLUGINS (comma-separated), once."""
    for item in filter(None, (s.strip() for s in os.environ.get("OILWATER_PLUGINS", "").split(","))):
        if not item.endswith(".py"):
            _import(item, f"OILWATER_PLUGINS {item!r}")
            continue
        path = Path(item).expanduser().resolve()
        name = f"oilwater_plugin_{path.stem}"
        if name in sys.modules:
            continue
        if not path.is_file():
            raise UserError(f"OILWATER_PLUGINS: {path}: file not found; fix the path or unset the variable")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (SyntaxError, ImportError) as e:
            del sys.modules[name]
            raise UserError(f"OILWATER_PLUGINS: {path} cannot be imported ({type(e).__name__}: {e}); fix that file") \
                from None
