"""Execute notebooks headlessly with papermill, in a chosen profile.

Sources are the ``notebooks/NN_topic.py`` percent files (or their paired ``.ipynb``). Each run
writes the executed copy to ``build/executed/<profile>/NN_topic.ipynb`` - never into
``notebooks/`` - with the kernel's stdout and stderr beside it, and appends its status and wall
time to ``build/executed/<profile>/runs.json``. A failing notebook does not stop the others; the
caller gets every result and decides the exit code.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from . import env, profiles, results


@dataclass
class NotebookRun:
    notebook: str
    profile: str
    status: str  # "ok" or "failed"
    wall_time_s: float
    output: str
    stdout: str
    stderr: str
    error: str | None = None
    started: str = ""


def notebooks_dir() -> Path:
    root = env.project_root()
    return (root if root is not None else Path.cwd()) / "notebooks"


def discover(directory: Path | None = None) -> list[Path]:
    """The notebook sources in book order (``NN_topic.py``)."""
    directory = directory or notebooks_dir()
    return sorted(p for p in directory.glob("[0-9][0-9]_*.py"))


def resolve(name: str | Path) -> Path:
    """A notebook given as a path, a file name, or a stem like ``00_about_this_book``."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (notebooks_dir() / path.name, notebooks_dir() / f"{path.name}.py"):
        if candidate.is_file():
            return candidate
    known = ", ".join(p.stem for p in discover()) or "none"
    raise FileNotFoundError(f"no notebook {str(name)!r}; known notebooks: {known}")


def executed_dir(profile: str) -> Path:
    return results.build_dir() / "executed" / profile


def _as_ipynb(source: Path, destination: Path) -> Path:
    """Papermill reads .ipynb: convert a percent-format source with jupytext."""
    import jupytext

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    destination.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, destination, fmt="ipynb")
    return destination


def _record_runs(directory: Path, runs: list[NotebookRun]) -> None:
    path = directory / "runs.json"
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing.update({r.notebook: asdict(r) for r in runs})
    results.write_json_atomic(path, existing)


def load_runs(profile: str) -> dict[str, dict]:
    path = executed_dir(profile) / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def notebook_parameters(source: Path) -> dict[str, tuple[object, str | None]]:
    """The parameters cell of ``source``: name -> (default value, annotation text or None)."""
    import ast

    import jupytext

    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    found: dict[str, tuple[object, str | None]] = {}
    for cell in cells:
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name, value, annotation = node.targets[0].id, node.value, None
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                name, value, annotation = node.target.id, node.value, ast.unparse(node.annotation)
            else:
                continue
            try:
                default = ast.literal_eval(value)
            except ValueError:
                default = None
            found[name] = (default, annotation)
    return found


SCALARS = ("int", "float", "str", "bool")


def _matches(value, annotation: str) -> bool:
    """Whether ``value`` fits a parameter annotation built from int, float, str, bool, None, list,
    ``list[...]`` and ``|`` (the forms the notebooks use); read with ``ast``, never evaluated."""
    import ast

    def fits(node, v) -> bool:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return fits(node.left, v) or fits(node.right, v)
        if isinstance(node, ast.Constant) and node.value is None:
            return v is None
        if isinstance(node, ast.Name):
            return isinstance(v, list) if node.id == "list" else node.id in SCALARS and _fits_scalar(v, node.id)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "list":
            return isinstance(v, list) and all(fits(node.slice, item) for item in v)
        return False

    return fits(ast.parse(annotation, mode="eval").body, value)


def _type_name(default) -> str | None:
    """The type a default value stands for (``None`` and other defaults constrain nothing)."""
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", list)):
        if isinstance(default, types):
            return kind
    return None


def _fits_scalar(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return {"int": isinstance(value, int), "float": isinstance(value, (int, float)),
            "str": isinstance(value, str)}[kind]


def check_parameters(sources: list[Path], parameters: dict) -> None:
    """Refuse, before any notebook runs, a parameter no notebook declares or a value of the wrong type.

    The type comes from the parameter's annotation in the parameters cell (``SEEDS: list[int] | None
    = None``), else from its default (``SEED = 0`` takes an int; a ``None`` default takes anything)."""
    declared = {source.stem: notebook_parameters(source) for source in sources}
    for name, value in parameters.items():
        owners = {nb: spec[name] for nb, spec in declared.items() if name in spec}
        if not owners:
            known = sorted({n for spec in declared.values() for n in spec})
            raise ValueError(f"parameter {name!r} is not a parameter of {', '.join(declared) or 'these notebooks'}; "
                             f"their parameters: {', '.join(known)}")
        for nb, (default, annotation) in owners.items():
            expected = annotation or _type_name(default)
            if expected is not None and not _matches(value, expected):
                raise ValueError(f"parameter {name}={value!r} ({type(value).__name__}) does not fit {nb}'s "
                                 f"{name}, which takes {expected} (default {default!r})")


def run_notebooks(names, profile: str, parameters: dict | None = None, progress: bool = True,
                  timeout: int | None = None) -> list[NotebookRun]:
    """Execute ``names`` in ``profile``; returns one ``NotebookRun`` per notebook, failed ones included."""
    import papermill
    from tqdm.auto import tqdm

    prof = profiles.load(profile)
    sources = [resolve(n) for n in names]
    check_parameters(sources, {k: v for k, v in (parameters or {}).items() if k != "PROFILE"})
    out_dir = executed_dir(prof.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": prof.name, **(parameters or {})}
    # The kernel inherits this process's environment: where results go, and offline flags.
    os.environ["OVNB_BUILD_DIR"] = str(results.build_dir().resolve())
    if prof.offline:
        env.set_offline(True)
    runs = []
    bar = tqdm(sources, desc=f"notebooks [{prof.name}]", unit="nb", disable=not progress)
    for source in bar:
        bar.set_postfix_str(source.stem)
        output = out_dir / f"{source.stem}.ipynb"
        stdout, stderr = out_dir / f"{source.stem}.stdout.txt", out_dir / f"{source.stem}.stderr.txt"
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        t0 = time.perf_counter()
        error = None
        try:
            source_nb = source if source.suffix == ".ipynb" else _as_ipynb(source, out_dir / ".inputs" / f"{source.stem}.ipynb")
            with open(stdout, "w") as out_f, open(stderr, "w") as err_f:
                papermill.execute_notebook(
                    str(source_nb), str(output), parameters=params, kernel_name="python3",
                    cwd=str(source.parent), progress_bar=progress, stdout_file=out_f, stderr_file=err_f,
                    execution_timeout=timeout,
                )
        except Exception as exc:  # keep going: the caller reports every failure at the end
            if hasattr(exc, "ename"):  # a cell raised: papermill marked it in the executed copy
                error = f"{_cell_label(exc)}: {exc.ename}: {exc.evalue}"
            else:  # the runner itself failed: keep its traceback
                error = f"{type(exc).__name__}: {exc}".strip()
                with open(stderr, "a") as err_f:
                    err_f.write(traceback.format_exc())
        run = NotebookRun(source.stem, prof.name, "failed" if error else "ok", round(time.perf_counter() - t0, 2),
                          str(output), str(stdout), str(stderr), error[:4000] if error else None, started)
        runs.append(run)
        _record_runs(out_dir, [run])
    return runs


def _cell_label(exc) -> str:
    """Which cell raised: its index in the executed copy (papermill's injected parameters cell
    included) and its first line of code."""
    lines = [line.strip() for line in (getattr(exc, "source", "") or "").splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    where = f"cell {exc.cell_index}" if getattr(exc, "cell_index", None) is not None else "a cell"
    return f"{where} `{first[:80]}`" if first else where


def summarize(runs: list[NotebookRun]) -> str:
    lines = [f"{'notebook':<40} {'status':<7} {'wall s':>8}"]
    lines += [f"{r.notebook:<40} {r.status:<7} {r.wall_time_s:>8.1f}" for r in runs]
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        lines.append("")
        lines.append(f"{len(failed)} notebook(s) failed: {', '.join(r.notebook for r in failed)}")
        for r in failed:
            first = (r.error or "").splitlines()[0] if r.error else ""
            lines.append(f"  {r.notebook}: {first}")
            lines.append(f"    executed copy (error cell marked): {r.output}")
            lines.append(f"    kernel stderr: {r.stderr}")
    return "\n".join(lines)
