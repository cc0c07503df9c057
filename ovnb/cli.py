"""The ``ovnb`` command.

    ovnb run NOTEBOOK... --profile P     execute notebooks into build/executed/P/
    ovnb book --profile P                execute every notebook, then render the site
    ovnb reproduce --profile P           execute every notebook and print the reproduction status
    ovnb status [--profile P]            print the reproduction status from existing run records
    ovnb toy pretrain | toy check        regenerate / verify the toy foundation models
    ovnb data list | prepare NAME... --root DIR   the real datasets: what they download; prepare them
    ovnb benchmark fusioner-cache        Fusioner training step time with and without the feature cache
    ovnb benchmark fusioner-cosine       the output-size cosine, direct vs upsampled_cosine
    ovnb benchmark simbaseline           batched vs one-by-one region classification; seconds per image
    ovnb benchmark pnp-ovss              PnP-OVSS the fast way vs the official way: time, peak memory
    ovnb benchmark fcclip                FC-CLIP's FPS (Table 4) with a per-stage breakdown, peak memory
    ovnb profiles                        list the profiles
"""

from __future__ import annotations

import argparse
import sys

from . import profiles


def _parameters(pairs: list[str]) -> dict:
    import yaml

    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"ovnb: parameter {pair!r} is not NAME=VALUE")
        name, value = pair.split("=", 1)
        params[name] = yaml.safe_load(value)
    return params


def _profile(name: str) -> str:
    try:
        return profiles.load(name).name
    except ValueError as err:
        raise SystemExit(f"ovnb: {err}") from None


def cmd_run(args) -> int:
    from . import runner

    names = args.notebooks or [p.stem for p in runner.discover()]
    try:
        runs = runner.run_notebooks(names, _profile(args.profile), _parameters(args.param),
                                    progress=not args.quiet, timeout=args.timeout)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"ovnb: {err}") from None
    print(runner.summarize(runs))
    return 1 if any(r.status != "ok" for r in runs) else 0


def cmd_book(args) -> int:
    from . import book

    code = 0
    if not args.skip_run:
        code = cmd_run(argparse.Namespace(notebooks=None, profile=args.profile, param=args.param,
                                          quiet=args.quiet, timeout=args.timeout))
    built = book.build(_profile(args.profile), strict=not args.no_strict)
    if built != 0:
        print(f"ovnb: jupyter-book failed (exit {built})", file=sys.stderr)
    else:
        print(f"ovnb: site written to {book.book_dir() / '_build' / 'html' / 'index.html'}")
    return code or built


def cmd_status(args) -> int:
    import pandas as pd

    from . import results

    df = results.compare(profile=args.profile)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(results.status_summary(df))
        done = df[df["ours"].notna()]
        if len(done):
            print()
            print(done[["paper", "table", "row", "column", "paper_value", "ours", "delta", "status", "weights"]]
                  .to_string(index=False))
    return 0


def cmd_reproduce(args) -> int:
    code = cmd_run(argparse.Namespace(notebooks=None, profile=args.profile, param=args.param,
                                      quiet=args.quiet, timeout=args.timeout))
    cmd_status(argparse.Namespace(profile=_profile(args.profile)))
    return code


def cmd_toy_pretrain(args) -> int:
    import json
    from pathlib import Path

    from .encoders import toy, toy_pretrain

    cfg = toy_pretrain.SMOKE if args.smoke else toy_pretrain.PretrainConfig()
    out = Path(args.out) if args.out else toy.WEIGHTS_DIR
    if args.blip_only:
        manifest = toy_pretrain.pretrain_blip(cfg, out, progress=not args.quiet)
    else:
        manifest = toy_pretrain.pretrain_all(cfg, out, progress=not args.quiet)
    print(json.dumps({"timings": manifest["timings"], "quality": manifest["quality"],
                      "models": {k: v["bytes"] for k, v in manifest["models"].items()}}, indent=2))
    print(f"ovnb: toy weights written to {out}")
    return 0


def cmd_toy_check(args) -> int:
    import json

    from .encoders import toy, toy_pretrain

    try:
        for name in toy.TOY_NAMES:
            toy.load_state_dict(name)
    except toy.ToyWeightsError as err:
        raise SystemExit(f"ovnb: {err}") from None
    print("ovnb: toy checkpoints present and verified")
    if args.quality:
        print(json.dumps(toy_pretrain.evaluate_all(args.n), indent=2))
    return 0


def cmd_profiles(args) -> int:
    for name in profiles.names():
        p = profiles.load(name)
        print(f"{p.name:<6} weights={p.weights:<8} data={p.data:<4} {p.description}")
    return 0


def _benchmark_configs(args, known: dict, default=None) -> list[str]:
    """The ``--configs`` asked for (default: ``default``, else all of ``known``); an unknown one ends the command
    naming the valid ones."""
    configs = args.configs or list(default or known)
    unknown = [c for c in configs if c not in known]
    if unknown:
        raise SystemExit(f"ovnb: unknown {args.what} config(s) {unknown}; valid: {list(known)}")
    return configs


def cmd_benchmark(args) -> int:
    from .reproduce import benchmark

    if args.what == "simbaseline":
        from .reproduce import benchmark_simbaseline as sbb

        configs = _benchmark_configs(args, sbb.CONFIGS)
        regions = [sbb.measure_regions(c, proposals=args.proposals, steps=args.steps) for c in configs]
        print(sbb.report(regions, {}), flush=True)
        pipeline = {c: sbb.measure_pipeline(c) for c in configs} if not args.no_pipeline else {}
        print(sbb.report(regions, pipeline))
        return 0
    if args.what in ("pnp-ovss", "fcclip"):
        from .reproduce import benchmark_fcclip, benchmark_pnp_ovss

        module = benchmark_pnp_ovss if args.what == "pnp-ovss" else benchmark_fcclip
        configs = _benchmark_configs(args, module.CONFIGS, getattr(module, "DEFAULT_CONFIGS", None))
        timings = []
        for name in configs:  # one line per configuration as soon as it is measured, then the table
            if args.what == "pnp-ovss":
                timings.append(module.measure(name, batch=args.batch, steps=args.steps))
            else:
                timings.append(module.measure(name, images=args.images, device=args.device))
            print(module.report(timings[-1:]).splitlines()[-1], flush=True)
        print(module.report(timings))
        return 0 if all(getattr(t, "identical", True) for t in timings) else 1
    if args.what == "fusioner-cosine":
        configs = args.configs or list(benchmark.COSINE_SHAPES)
        unknown = [c for c in configs if c not in benchmark.COSINE_SHAPES]
        if unknown:
            raise SystemExit(f"ovnb: unknown cosine shape(s) {unknown}; valid: {list(benchmark.COSINE_SHAPES)}")
        print(benchmark.report_cosine([benchmark.measure_cosine(c, steps=args.steps, device=args.device)
                                       for c in configs]))
        return 0
    args.configs = args.configs or ["toy", "clip-l"]
    unknown = [c for c in args.configs if c not in benchmark.CONFIGS]
    if unknown:
        raise SystemExit(f"ovnb: unknown benchmark config(s) {unknown}; valid: {list(benchmark.CONFIGS)}")
    timings = []
    for name in args.configs:
        timings.append(benchmark.measure(name, steps=args.steps, batch=args.batch, device=args.device))
        print(benchmark.report(timings[-1:]).splitlines()[-1], flush=True)
    print(benchmark.report(timings))
    return 0


def cmd_data(args) -> int:
    from .data import prepare

    if args.data_command == "list":
        for name in prepare.names():
            print(prepare.plan(name, args.root))
        return 0
    unknown = [n for n in args.names if n not in prepare.DATASETS]
    if unknown:
        raise SystemExit(f"ovnb: unknown dataset(s) {unknown}; datasets that can be prepared: {prepare.names()}")
    for name in args.names:
        sources = None
        if args.source:
            sources = dict(prepare.module(name).SOURCES)
            for pair in args.source:
                key, _, url = pair.partition("=")
                if key not in sources or not url:
                    raise SystemExit(f"ovnb: {name} has no source {key!r} (or no URL given); its sources: "
                                     f"{', '.join(sources)} (write --source KEY=URL)")
                sources[key] = (url, *sources[key][1:]) if isinstance(sources[key], tuple) else url
        print(prepare.plan(name, args.root), flush=True)
        prepare.prepare(name, args.root, sources)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovnb", description="Open-vocabulary segmentation research book")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_run_options(p, profile_default="toy"):
        p.add_argument("--profile", default=profile_default, help=f"one of {profiles.names()}")
        p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                       help="extra papermill parameter (YAML value), may repeat")
        p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("run", help="execute notebooks with papermill into build/executed/<profile>/")
    p.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all)")
    add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("book", help="execute every notebook, then build the site (execution off)")
    add_run_options(p)
    p.add_argument("--skip-run", action="store_true", help="reuse the executed notebooks already there")
    p.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("reproduce", help="execute every notebook and print the reproduction status")
    add_run_options(p, profile_default="paper")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("status", help="print the reproduction status from existing run records")
    p.add_argument("--profile", default=None, help="only this profile's records (default: best of all)")
    p.set_defaults(func=cmd_status)

    toy_parser = sub.add_parser("toy", help="the toy foundation models")
    toy_sub = toy_parser.add_subparsers(dest="toy_command", required=True)
    p = toy_sub.add_parser("pretrain", help="pretrain the toy CLIPs and toy BLIP and rewrite their checkpoints")
    p.add_argument("--out", default=None, help="write weights here instead of ovnb/encoders/toy_weights/")
    p.add_argument("--smoke", action="store_true", help="a few steps only (checks the pipeline, weights are useless)")
    p.add_argument("--blip-only", action="store_true",
                   help="retrain the toy BLIP alone on the toy CLIPs and vocabulary already in the weights folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_toy_pretrain)
    p = toy_sub.add_parser("check", help="verify the toy checkpoints (and optionally measure their quality)")
    p.add_argument("--quality", action="store_true", help="also measure zero-shot / ITM accuracy")
    p.add_argument("-n", type=int, default=600, help="held-out images for --quality")
    p.set_defaults(func=cmd_toy_check)

    data_parser = sub.add_parser("data", help="prepare the real datasets under DATA_ROOT")
    data_sub = data_parser.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("list", help="the datasets that can be prepared, what each downloads")
    p.add_argument("--root", default="data", help="DATA_ROOT (default: data)")
    p.set_defaults(func=cmd_data)
    p = data_sub.add_parser("prepare", help="download, verify and lay out datasets (resumes; keeps what is there)")
    p.add_argument("names", nargs="+", help="dataset names (ovnb data list)")
    p.add_argument("--source", action="append", metavar="KEY=URL",
                   help="fetch one source from elsewhere (a mirror, a file:// path); keys per dataset module's SOURCES")
    p.add_argument("--root", default="data", help="DATA_ROOT (default: data)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("benchmark", help="speed benchmarks (prints ratios)")
    p.add_argument("what", choices=["fusioner-cache", "fusioner-cosine", "simbaseline", "pnp-ovss", "fcclip"],
                   help="fusioner-cache: training step with vs without the cache; fusioner-cosine: Eq. (4)'s "
                        "similarity as interpolate + cosine vs upsampled_cosine (configs toy, paper); simbaseline: "
                        "Eq. (1) on all proposals in one CLIP forward vs one by one, and segment() s/image "
                        "(configs toy, vit-b-16); pnp-ovss: the fast way vs the official way, time, peak memory and identical "
                        "masks (configs toy, blip-l); fcclip: FPS as the paper counts it (batch 1, post-processing included) "
                        "with a per-stage breakdown and peak memory (configs toy, convnext-l, rn50; also rn101, "
                        "rn50x4, rn50x16, rn50x64)")
    p.add_argument("--configs", nargs="+", default=None,
                   help="fusioner-cache: toy, clip-l; fusioner-cosine: toy, paper; simbaseline: toy, vit-b-16; "
                        "pnp-ovss: toy, blip-l; fcclip: toy, convnext-l, rn50 (default), rn101, rn50x4, rn50x16, rn50x64")
    p.add_argument("--proposals", type=int, default=100, help="simbaseline: proposals per image")
    p.add_argument("--no-pipeline", action="store_true", help="simbaseline: the region benchmark only")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--images", type=int, default=3, help="fcclip: timed images (after one untimed)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("profiles", help="list the profiles")
    p.set_defaults(func=cmd_profiles)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
