"""cluster.yaml: Ray's own schema accepts it, and its security choices hold (offline, no AWS calls).

Each check is a function over the parsed file (or its text) so that a mutated copy can be shown to fail it:
see test_checks_catch_mutations."""

from __future__ import annotations

import copy
import ipaddress
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = ROOT / "cluster.yaml"
RAY_PORTS = {"dashboard/Jobs API": 8265, "Ray Client": 10001, "GCS": 6379}
WORLD = ("0.0.0.0/0", "::/0")


def load(text: str | None = None) -> dict:
    return yaml.safe_load(text if text is not None else CLUSTER_YAML.read_text())


def _ray_start(commands: list[str], *, head: bool) -> list[str]:
    starts = [c for c in commands if re.search(r"\bray start\b", c)]
    assert starts, f"no `ray start` in {'head' if head else 'worker'}_start_ray_commands"
    for cmd in starts:
        assert ("--head" in cmd) == head, f"`ray start` {'without' if head else 'with'} --head: {cmd}"
    return starts


# ------------------------------------------------------------------ the checks

def check_ray_schema(cfg: dict) -> None:
    """What `ray up` does before it talks to AWS: fill in the provider defaults, then validate the schema."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def check_auth_mode_exported(cfg: dict) -> None:
    """RAY_AUTH_MODE=token in the environment of every `ray start` (head and workers)."""
    for key, head in (("head_start_ray_commands", True), ("worker_start_ray_commands", False)):
        commands = cfg.get(key) or []
        for cmd in _ray_start(commands, head=head):
            before = cmd[:cmd.index("ray start")]
            earlier = " ".join(commands[:commands.index(cmd)])  # each command runs in its own shell
            assert re.search(r"(^|[\s;])(export\s+)?RAY_AUTH_MODE=token\b", before), \
                f"{key}: `ray start` without RAY_AUTH_MODE=token before it in the same command: {cmd}"
            assert "RAY_AUTH_MODE=disabled" not in before + earlier, f"{key}: token auth turned off"


def check_dashboard_loopback(cfg: dict) -> None:
    """The head's dashboard (and Jobs API) binds 127.0.0.1, never the launcher's default 0.0.0.0."""
    for cmd in _ray_start(cfg.get("head_start_ray_commands") or [], head=True):
        args = shlex.split(cmd.split("ray start", 1)[1])
        hosts = [a.split("=", 1)[1] for a in args if a.startswith("--dashboard-host=")]
        hosts += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--dashboard-host"]
        assert hosts, f"head `ray start` without --dashboard-host (Ray's launcher default is 0.0.0.0): {cmd}"
        assert all(h in ("127.0.0.1", "localhost") for h in hosts), f"dashboard bound to {hosts}"
    assert not re.search(r"dashboard[-_]host[= ]+0\.0\.0\.0", yaml.safe_dump(cfg)), "0.0.0.0 dashboard host"


def check_trial_resource_on_head(cfg: dict) -> None:
    """Trial drivers ask for visionsweep_trial: the head offers it, the GPU workers do not."""
    from visionsweep.trainables.ray_session import TRIAL_RESOURCE

    head_type = cfg["head_node_type"]
    types = cfg["available_node_types"]
    assert types[head_type]["resources"].get(TRIAL_RESOURCE, 0) >= 1, "head node type lacks the trial resource"
    for name, node_type in types.items():
        if name != head_type:
            assert TRIAL_RESOURCE not in node_type.get("resources", {}), f"{name} offers {TRIAL_RESOURCE}"
    for cmd in _ray_start(cfg["head_start_ray_commands"], head=True):
        args = shlex.split(cmd.split("ray start", 1)[1])
        flags = [a.split("=", 1)[1] for a in args if a.startswith("--resources=")]
        assert flags and TRIAL_RESOURCE in flags[0], f"head `ray start` without --resources={TRIAL_RESOURCE}"


def _opens_ray_port_to_world(rule: dict) -> str | None:
    proto = str(rule.get("IpProtocol", "tcp"))
    lo, hi = rule.get("FromPort", -1), rule.get("ToPort", -1)
    if proto == "-1" or lo in (-1, None) or hi in (-1, None):
        lo, hi = 0, 65535  # "all traffic"
    cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])] + [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
    for cidr in cidrs:
        if cidr is None:
            continue
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen == 0:  # 0.0.0.0/0 or ::/0
            hit = [name for name, port in RAY_PORTS.items() if lo <= port <= hi]
            if hit:
                return f"{cidr} -> ports {lo}-{hi} ({', '.join(hit)})"
            if lo <= 22 <= hi:
                return f"{cidr} -> SSH (22): limit SSH to your own CIDR"
    return None


def _documented_cli_rules(text: str) -> list[dict]:
    """The `aws ec2 authorize-security-group-ingress` commands written in the file's comments."""
    rules = []
    for line in text.splitlines():
        if "authorize-security-group-ingress" not in line:
            continue
        port = re.search(r"--port\s+(\d+)(?:-(\d+))?", line)
        cidr = re.search(r"--cidr\s+(\S+)", line)
        if port and cidr:
            lo = int(port.group(1))
            rules.append({"IpProtocol": "tcp", "FromPort": lo, "ToPort": int(port.group(2) or lo),
                          "IpRanges": [{"CidrIp": cidr.group(1)}]})
        elif cidr:  # no --port: all ports of --protocol
            rules.append({"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr.group(1)}]})
        for cidr in re.findall(r"CidrIp(?:v6)?=([^,}\]\s']+)", line):
            rules.append({"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]})
    return rules


def effective_ingress_rules(cfg: dict, text: str) -> list[dict]:
    """Every ingress rule this file leads to: IpPermissions anywhere in it, the documented CLI rules, and, for
    a node type without its own SecurityGroupIds, the rules Ray's launcher adds to the group it creates
    (intra-cluster + SSH from 0.0.0.0/0)."""
    rules: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "IpPermissions" and isinstance(value, list):
                    rules.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(cfg)
    rules += _documented_cli_rules(text)
    if any("SecurityGroupIds" not in t.get("node_config", {}) for t in cfg["available_node_types"].values()):
        from ray.autoscaler._private.aws.config import _create_default_inbound_rules

        rules += _create_default_inbound_rules({"sg-created-by-ray"},
                                               cfg.get("provider", {}).get("security_group", {}).get("IpPermissions"))
    return rules


def check_ingress(cfg: dict, text: str) -> None:
    """No rule opens 8265, 10001, 6379 (or a range holding them, or SSH) to 0.0.0.0/0 or ::/0."""
    bad = [msg for rule in effective_ingress_rules(cfg, text) if (msg := _opens_ray_port_to_world(rule))]
    assert not bad, "world-open ingress: " + "; ".join(bad)


AWS_SECRET_PATTERNS = [
    (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "AWS access key id"),
    (r"(?i)aws_secret_access_key", "aws_secret_access_key"),
    (r"(?i)aws_session_token", "aws_session_token"),
    (r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", "40-character secret-like string"),
    (r"(?i)RAY_AUTH_TOKEN\s*=", "a Ray token written into the file"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "private key"),
]


def check_no_secrets(text: str) -> None:
    found = [what for pattern, what in AWS_SECRET_PATTERNS if re.search(pattern, text)]
    assert not found, f"secrets in cluster.yaml: {', '.join(found)}"


def check_commands_parse(cfg: dict) -> None:
    """Every shell command survives YAML (an unquoted ' #' silently cuts a command short) and shlex."""
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    for key in keys:
        for cmd in cfg.get(key) or []:
            shlex.split(cmd)  # raises on an unbalanced quote


CHECKS = {
    "schema": lambda cfg, text: check_ray_schema(cfg),
    "auth_mode": lambda cfg, text: check_auth_mode_exported(cfg),
    "dashboard_loopback": lambda cfg, text: check_dashboard_loopback(cfg),
    "trial_resource": lambda cfg, text: check_trial_resource_on_head(cfg),
    "ingress": check_ingress,
    "secrets": lambda cfg, text: check_no_secrets(text),
    "commands_parse": lambda cfg, text: check_commands_parse(cfg),
}


# ------------------------------------------------------------------ the tests

@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cluster_yaml(name):
    text = CLUSTER_YAML.read_text()
    CHECKS[name](load(text), text)


def _set_head_start(cfg, old, new):
    cfg["head_start_ray_commands"] = [c.replace(old, new) for c in cfg["head_start_ray_commands"]]


def _mutations():
    """(check that must fail, description, how to break the config or the text)."""
    def cfg_mut(fn):
        def apply(cfg, text):
            cfg = copy.deepcopy(cfg)
            fn(cfg)
            return cfg, text
        return apply

    def text_mut(fn):
        return lambda cfg, text: (cfg, fn(text))

    return [
        ("schema", "unknown top-level key", cfg_mut(lambda c: c.update(dashboard_port=8265))),
        ("schema", "fractional resource", cfg_mut(lambda c: c["available_node_types"]["gpu"]["resources"]
                                                  .update(GPU=0.5))),
        ("auth_mode", "head without RAY_AUTH_MODE", cfg_mut(lambda c: _set_head_start(c, "RAY_AUTH_MODE=token ", ""))),
        ("auth_mode", "worker without RAY_AUTH_MODE", cfg_mut(lambda c: c.update(worker_start_ray_commands=[
            x.replace("export RAY_AUTH_MODE=token;", "") for x in c["worker_start_ray_commands"]]))),
        ("dashboard_loopback", "launcher default 0.0.0.0",
         cfg_mut(lambda c: _set_head_start(c, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"))),
        ("dashboard_loopback", "no --dashboard-host",
         cfg_mut(lambda c: _set_head_start(c, "--dashboard-host=127.0.0.1", ""))),
        ("trial_resource", "head without the resource", cfg_mut(
            lambda c: c["available_node_types"]["head"]["resources"].pop("visionsweep_trial"))),
        ("trial_resource", "head start without --resources",
         cfg_mut(lambda c: _set_head_start(c, "--resources='{\"visionsweep_trial\": 1}'", ""))),
        ("ingress", "dashboard open to the world", cfg_mut(lambda c: c["provider"].update(security_group={
            "GroupName": "x", "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000,
                                                 "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}))),
        ("ingress", "GCS open over IPv6", cfg_mut(lambda c: c["provider"].update(security_group={
            "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379,
                               "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]}))),
        ("ingress", "Ray-created group (SSH from 0.0.0.0/0)", cfg_mut(
            lambda c: c["available_node_types"]["gpu"]["node_config"].pop("SecurityGroupIds"))),
        ("ingress", "documented CLI rule opens 10001",
         text_mut(lambda t: t.replace("--port 22 --cidr 203.0.113.10/32", "--port 10001 --cidr 0.0.0.0/0"))),
        ("secrets", "access key id", text_mut(lambda t: t + "\n# AKIAIOSFODNN7EXAMPLE\n")),
        ("secrets", "secret key name", text_mut(lambda t: t + "\n# aws_secret_access_key: x\n")),
        ("commands_parse", "unquoted ' #' in a command", cfg_mut(lambda c: c["setup_commands"].append(
            "echo 'a")),),
    ]


@pytest.mark.parametrize("check,what,mutate", _mutations(), ids=[f"{m[0]}: {m[1]}" for m in _mutations()])
def test_checks_catch_mutations(check, what, mutate):
    """Each check fails on a broken copy of cluster.yaml (the file itself is never modified)."""
    text = CLUSTER_YAML.read_text()
    cfg, text2 = mutate(load(text), text)
    with pytest.raises(Exception):
        CHECKS[check](cfg, text2)
