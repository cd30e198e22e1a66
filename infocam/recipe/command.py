"""The ``infocam train`` command: arguments, signals, and one line per outcome.

Bad recipes, data folders and checkpoints are one line on stderr and exit code 2 before any work;
a busy output folder exit code 2; a diverged or failed run exit code 1 (its folder marked
failed); SIGTERM (a scheduler's preemption) stops at the next batch with a checkpoint, one line
and exit code 143. Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys

from infocam.recipe.schema import RecipeError, load_recipe, shipped_recipes


def add_train_command(sub) -> None:
    """The ``infocam train`` sub-command (registered by :mod:`infocam.cli`)."""
    train = sub.add_parser("train", help="train a network from a YAML recipe (checkpoints, log, results.json); "
                           "several GPUs: torchrun --nproc-per-node N -m infocam train ...")
    train.add_argument("recipe", help=f"a recipe file, or a shipped recipe: {', '.join(shipped_recipes())}")
    train.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one recipe value, e.g. train.epochs=1 or device=cpu; repeatable")
    train.add_argument("--dry-run", action="store_true",
                       help="build the network and run one batch of a generated fixture through forward+backward")
    train.add_argument("--fresh", action="store_true", help="ignore a checkpoint in the output folder (default: resume)")
    train.add_argument("--force-resume", action="store_true",
                       help="resume a checkpoint although recipe keys that change the numbers differ")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _say(message: str) -> None:
    if _rank() == 0:
        print(message, file=sys.stderr)


def train_command(args) -> int:
    """Run ``infocam train``; returns the exit code."""
    from infocam.device import DeviceError
    from infocam.paths import DataError
    from infocam.recipe.runner import FolderBusy, TrainingError, dry_run, run
    from infocam.train import CheckpointError, Stopped, clear_stop, request_stop

    previous = signal.signal(signal.SIGTERM, request_stop) if not args.dry_run else None
    try:
        recipe = load_recipe(args.recipe, args.set)
        if args.dry_run:
            print(json.dumps(dry_run(recipe), indent=2))
        else:
            out = run(recipe, resume=not args.fresh, force_resume=args.force_resume,
                      log=functools.partial(print, flush=True) if _rank() == 0 else (lambda *a, **k: None))
            if _rank() == 0:
                print(f"results: {out}")
    except (RecipeError, CheckpointError, DataError, DeviceError, FolderBusy) as exc:
        _say(f"infocam: error: {exc}")
        return 2
    except TrainingError as exc:
        _say(f"infocam: error: {exc}")
        return 1
    except Stopped as exc:
        _say(f"infocam: SIGTERM: {exc}")
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            clear_stop()
    return 0
