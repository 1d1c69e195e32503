"""Name -> object registries keyed by the names the configs use."""

import importlib
import pkgutil

from artifact.errors import UserError


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        def deco(obj):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self[name] = obj
            return obj

        return deco

    def get_or_fail(self, name: str, where: str = ""):
        if name not in self:
            at = f"{where}: " if where else ""
            raise UserError(f"{at}unknown {self.kind} {name!r} (valid: {', '.join(sorted(self))})")
        return self[name]


def import_all(package_name: str, package_path) -> None:
    """Import every module of a package, so that each registers itself: adding a method is one file."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
