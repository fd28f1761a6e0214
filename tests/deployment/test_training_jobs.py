"""deploy/kubernetes/training/pytorchjob.yaml and deploy/slurm/train.sbatch: the commands they run are ones torchrun
and chexnet train accept today, they resume with ``--resume auto`` (what a restart needs), and the PyTorchJob's pod
template is a valid pod template for a pinned Kubernetes version. (The tests that show the commands work on two
nodes are tests/training/test_multi_node.py.)"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from torch.distributed.run import get_args_parser

from chexnet_cli import build_parser
from tests.deployment.files import ROOT

PYTORCHJOB = ROOT / "deploy" / "kubernetes" / "training" / "pytorchjob.yaml"
SBATCH = ROOT / "deploy" / "slurm" / "train.sbatch"
KUBERNETES_VERSION = "1.34.0"


def split_launch(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """(torchrun's options, chexnet train's) of ``torchrun ... --no-python CHEXNET train ...``."""
    launch = get_args_parser().parse_args(argv)
    assert launch.no_python and Path(launch.training_script).name == "chexnet"
    return launch, build_parser().parse_args(launch.training_script_args)


def job() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PYTORCHJOB.read_text(encoding="utf-8"))
    return document


def test_the_pytorchjob_runs_an_elastic_resumable_chexnet_train() -> None:
    document = job()
    assert (document["apiVersion"], document["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    elastic, worker = document["spec"]["elasticPolicy"], document["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert elastic["rdzvBackend"] == "c10d"
    assert elastic["minReplicas"] == 1 and elastic["maxReplicas"] == worker["replicas"] == 2
    (container,) = worker["template"]["spec"]["containers"]
    assert container["name"] == "pytorch"  # the Training Operator finds the container by this name
    assert container["command"][0] == "torchrun"
    _, train = split_launch(container["command"][1:])
    assert (train.command, train.resume, train.out) == ("train", "auto", Path("/runs/chexnet-2node"))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert train.out.parent == Path(mounts["runs"])  # the run folder is on the volume every pod shares


def test_the_pytorchjob_pod_template_is_valid() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in [dev]")
    template = job()["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    document = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "worker"}, "template": template}
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises ValidationError


def sbatch_launch() -> list[str]:
    """The srun line of the sbatch script, continuations joined, with the script's variables given values."""
    text = SBATCH.read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [row for row in text.splitlines() if row.startswith("srun ")]
    values = {
        "$SLURM_JOB_NUM_NODES": "2", "$GPUS_PER_NODE": "1", "$RDZV_HOST": "node1", "$RDZV_PORT": "29500",
        "$SLURM_JOB_ID": "42", "$DATA": "data/nih", "$RUN": "runs/chexnet-2node", "$EPOCHS": "15",
    }  # fmt: skip
    for name, value in values.items():
        line = line.replace(name, value)
    return shlex.split(line)


def test_the_sbatch_script_runs_an_elastic_resumable_chexnet_train() -> None:
    if shutil.which("bash") is not None:
        assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    argv = sbatch_launch()
    torchrun = argv.index(".venv/bin/torchrun")
    launch, train = split_launch(argv[torchrun + 1 :])
    assert (launch.nnodes, launch.rdzv_backend, launch.rdzv_endpoint) == ("1:2", "c10d", "node1:29500")
    assert launch.max_restarts == 3
    assert (train.command, train.resume, train.out, train.epochs) == ("train", "auto", Path("runs/chexnet-2node"), 15)
    assert "#SBATCH --requeue" in SBATCH.read_text(encoding="utf-8")  # a requeued job resumes the same run
