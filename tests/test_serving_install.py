"""A serving install (``make serve``: the base dependencies, none of the ``[train]`` extras) runs ``chexnet`` and
the service: the parser of every command, and the app, import nothing that only the training extras install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

TRAIN_EXTRAS = ("pandas", "sklearn", "scipy", "matplotlib", "nncf", "pyarrow", "ray", "tensorboard")

PROGRAM = textwrap.dedent(
    """
    import sys

    for name in {blocked!r}:  # as if not installed: import fails, importlib.util.find_spec answers None
        sys.modules[name] = None
    import chexnet_cli

    parser = chexnet_cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        sub.format_help()
    import app.main, app.runtime.server
    print("commands:", " ".join(sorted(commands)))
    try:
        chexnet_cli.main(["serve", "--help"])
    except SystemExit as stop:
        assert stop.code == 0
    """
)


def test_chexnet_and_the_service_need_none_of_the_training_extras() -> None:
    program = PROGRAM.format(blocked=set(TRAIN_EXTRAS))
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"serve", "train", "predict", "quantize"} <= set(done.stdout.split("commands:")[1].split("\n")[0].split())
