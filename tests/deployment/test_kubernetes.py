"""deploy/kubernetes/: valid for a pinned Kubernetes version (kubernetes-validate, strict, offline), and in step with
the image (port, probes, user, drain seconds, hardening) and with the service (the gauge the autoscaler reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.app.fakes import FakePredictor, client_for
from tests.deployment.files import (
    ROOT,
    duration_seconds,
    env_of,
    final_stage_of,
    healthcheck_parts,
    only,
    read_dockerfile,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the [dev] extra")

KUBERNETES_VERSION = "1.34.0"  # preStop's sleep action is GA from 1.34
MANIFESTS = ROOT / "deploy" / "kubernetes"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((MANIFESTS / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = load("deployment.yaml")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    assert len(pod["containers"]) == 1
    found: dict[str, Any] = pod["containers"][0]
    return found


def env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises ValidationError


def test_strict_validation_refuses_an_unknown_field(pod: dict[str, Any]) -> None:
    document = load("deployment.yaml")
    document["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_four_kinds_are_there() -> None:
    kinds = sorted(yaml.safe_load(p.read_text())["kind"] for p in MANIFESTS.glob("*.yaml"))
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


def test_port_and_probes_agree_with_the_image(container: dict[str, Any]) -> None:
    image_env = env_of(final_stage_of(read_dockerfile()))
    exposed = [i.args for i in only(final_stage_of(read_dockerfile()), "EXPOSE")]
    assert container["ports"] == [{"name": "http", "containerPort": int(image_env["CHEXNET_PORT"])}]
    assert exposed == [image_env["CHEXNET_PORT"]]
    assert env(container)["CHEXNET_PORT"] == image_env["CHEXNET_PORT"]
    assert env(container)["CHEXNET_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    options, _ = healthcheck_parts(only(final_stage_of(read_dockerfile()), "HEALTHCHECK")[0].args)
    start_period = duration_seconds(options["start-period"])
    assert startup["periodSeconds"] * startup["failureThreshold"] >= start_period


def test_user_and_hardening_agree_with_the_image_and_compose(pod: dict[str, Any], container: dict[str, Any]) -> None:
    user = only(final_stage_of(read_dockerfile()), "USER")[-1].args
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,  # compose: no-new-privileges
        "readOnlyRootFilesystem": True,  # compose: read_only
        "capabilities": {"drop": ["ALL"]},  # compose: cap_drop ALL
    }
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["medium"] == "Memory"  # compose: tmpfs /tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_grace_period_covers_pre_stop_and_drain(pod: dict[str, Any], container: dict[str, Any]) -> None:
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env(container)["CHEXNET_DRAIN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain
    assert container["readinessProbe"]["periodSeconds"] <= pre_stop  # probes see the drain before it ends


def test_gpu_and_user_checkpoint_from_a_read_only_volume(pod: dict[str, Any], container: dict[str, Any]) -> None:
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env(container)["CHEXNET_DEVICE"] == "cuda"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "checkpoints")
    assert mount["readOnly"] is True
    assert env(container)["CHEXNET_CHECKPOINT"].startswith(mount["mountPath"] + "/")
    volume = next(v for v in pod["volumes"] if v["name"] == "checkpoints")
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_service_pdb_and_autoscaler_select_the_deployment() -> None:
    deployment = load("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    service = load("service.yaml")
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert load("poddisruptionbudget.yaml")["spec"]["selector"]["matchLabels"] == labels
    target = load("horizontalpodautoscaler.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_autoscaler_reads_a_gauge_the_service_exports() -> None:
    metrics = load("horizontalpodautoscaler.yaml")["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Pods"]  # not CPU
    name = metrics[0]["pods"]["metric"]["name"]
    with client_for(FakePredictor()) as client:
        exported = client.get("/metrics").text
    assert f"# TYPE {name} gauge" in exported
