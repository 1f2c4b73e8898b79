"""build_spec is pure: these tests build unsaved model instances and have no database access
(pytest-django would fail any test here that ran a query)."""

from __future__ import annotations

import dataclasses

import pytest

from hostops.docker import spec_hash
from hostops.types import ContainerSpec, GpuRequest, Mount
from portal.models import Host, Quota, User
from workspaces.models import Workspace, workspace_slug
from workspaces.spec import SpecConfig, build_spec

G = 1024**3
M = 1024**2
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA laptop"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB desktop"
PASSWORD = "0123456789abcdef0123456789abcdef"

CONFIG = SpecConfig(
    domain="corp.example",
    home_root="/srv/homes",
    scratch_root="/srv/scratch",
    datasets_path="/srv/datasets",
    network_prefix="portal-ws",
    docker_runtime="sysbox-runc",
    pids_limit=4096,
    shm_size=8 * G,
    traefik_entrypoint="websecure",
    traefik_middleware="portal-auth@file",
)


def make_workspace(
    username: str = "alice", name: str = "", *, uid: int = 2001, sudo: bool = False, docker: bool = False
) -> Workspace:
    owner = User(username=username, uid=uid, can_sudo=sudo, can_docker=docker)
    host = Host(name="gpu1", queue="host.gpu1")
    return Workspace(id=7, owner=owner, host=host, name=name, image="portal/workspace:1.4", ssh_port=2231)


def make_quota(**overrides: object) -> Quota:
    values = {"mem_guarantee": 32 * G, "mem_limit": 100 * G, "swap": 50 * G, "cpuset": "0-7", "max_gpus": 2}
    values.update(overrides)
    return Quota(**values)


def spec_for(
    workspace: Workspace | None = None,
    *,
    quota: Quota | None = None,
    gpus: tuple[str, ...] = (),
    keys: list[str] | None = None,
    desktop_password: str = PASSWORD,
    config: SpecConfig = CONFIG,
) -> ContainerSpec:
    return build_spec(
        workspace=workspace or make_workspace(),
        quota=quota or make_quota(),
        gpu_ids=gpus,
        authorized_keys=[KEY_A] if keys is None else keys,
        desktop_password=desktop_password,
        config=config,
    )


def test_it_names_the_default_workspace_after_the_member() -> None:
    spec = spec_for()
    assert spec.name == "ws-alice"
    assert spec.hostname == "ws-alice"
    assert spec.image == "portal/workspace:1.4"


def test_it_names_an_extra_workspace_after_member_and_name() -> None:
    spec = spec_for(make_workspace(name="gpu2"))
    assert spec.name == "ws-alice-gpu2"
    assert spec.hostname == "ws-alice-gpu2"


def test_it_takes_memory_and_cpus_from_the_quota() -> None:
    spec = spec_for(quota=make_quota(mem_guarantee=64 * M, mem_limit=256 * M, swap=64 * M, cpuset="0,2-3"))
    assert spec.mem_reservation == 64 * M
    assert spec.mem_limit == 256 * M
    assert spec.memswap_limit == 320 * M
    assert spec.cpuset_cpus == "0,2-3"


def test_an_empty_cpuset_means_every_cpu() -> None:
    assert spec_for(quota=make_quota(cpuset="")).cpuset_cpus == ""


def test_no_swap_makes_memswap_equal_to_the_limit() -> None:
    spec = spec_for(quota=make_quota(swap=0))
    assert spec.memswap_limit == spec.mem_limit == 100 * G


def test_it_refuses_a_guarantee_above_the_limit() -> None:
    with pytest.raises(ValueError, match="guarantee"):
        spec_for(quota=make_quota(mem_guarantee=200 * G))


def test_it_refuses_a_malformed_cpuset() -> None:
    with pytest.raises(ValueError, match="CPU set"):
        spec_for(quota=make_quota(cpuset="0-3;rm -rf /"))


def test_it_takes_pids_shm_network_and_restart_policy_from_config() -> None:
    spec = spec_for()
    assert spec.pids_limit == 4096
    assert spec.shm_size == 8 * G
    assert spec.network == "portal-ws-alice"
    assert spec.restart_policy == "unless-stopped"


def test_it_publishes_only_ssh_on_the_workspaces_port() -> None:
    assert spec_for().ports == {"22/tcp": 2231}


def test_it_refuses_a_privileged_ssh_port() -> None:
    workspace = make_workspace()
    workspace.ssh_port = 22
    with pytest.raises(ValueError, match="SSH port"):
        spec_for(workspace)


def test_it_adds_no_capability_or_security_option() -> None:
    spec = spec_for(make_workspace(sudo=True, docker=True))
    assert spec.cap_add == ()
    assert spec.security_opt == ()
    assert spec.extra_hosts == {}


def test_it_runs_the_member_with_their_uid_and_gid() -> None:
    spec = spec_for(make_workspace(uid=4242))
    assert (spec.user_uid, spec.user_gid) == (4242, 4242)
    assert spec.environment["PORTAL_USER"] == "alice"
    assert spec.environment["PORTAL_UID"] == "4242"
    assert spec.environment["PORTAL_GID"] == "4242"


@pytest.mark.parametrize(
    ("sudo", "docker", "env_sudo", "env_docker"),
    [
        (False, False, "0", "0"),
        (True, False, "1", "0"),
        (False, True, "0", "1"),
        (True, True, "1", "1"),
    ],
)
def test_it_passes_sudo_and_docker_capabilities_as_flags(
    sudo: bool, docker: bool, env_sudo: str, env_docker: str
) -> None:
    env = spec_for(make_workspace(sudo=sudo, docker=docker)).environment
    assert env["PORTAL_SUDO"] == env_sudo
    assert env["PORTAL_DOCKER"] == env_docker


def test_docker_runs_the_container_under_the_configured_runtime_only_for_members_granted_it() -> None:
    assert spec_for(make_workspace(docker=True)).runtime == "sysbox-runc"
    assert spec_for(make_workspace(docker=False)).runtime is None


def test_without_a_runtime_the_docker_capability_changes_nothing() -> None:
    no_runtime = dataclasses.replace(CONFIG, docker_runtime="")
    granted = spec_for(make_workspace(docker=True), config=no_runtime)
    assert granted.runtime is None
    assert granted.environment["PORTAL_DOCKER"] == "0"
    assert spec_hash(granted) == spec_hash(spec_for(make_workspace(docker=False), config=no_runtime))


def test_it_refuses_a_runtime_name_docker_would_not_take() -> None:
    with pytest.raises(ValueError, match="runtime name"):
        spec_for(make_workspace(docker=True), config=dataclasses.replace(CONFIG, docker_runtime="runc --privileged"))


def test_docker_in_the_workspace_never_mounts_the_hosts_socket() -> None:
    spec = spec_for(make_workspace(docker=True))
    assert all("docker.sock" not in mount.source and "docker" not in mount.target for mount in spec.mounts)
    assert spec.gpus == GpuRequest(device_ids=())


def test_without_a_gpu_grant_no_gpu_is_visible() -> None:
    spec = spec_for(gpus=())
    assert spec.gpus == GpuRequest(device_ids=())
    assert spec.environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert spec.environment["NVIDIA_DRIVER_CAPABILITIES"]


def test_one_granted_gpu_is_requested_by_uuid_and_made_visible() -> None:
    uuid = "GPU-5f1c2b3a-0d4e-11ee-8c90-0242ac120002"
    spec = spec_for(gpus=(uuid,))
    assert spec.gpus == GpuRequest(device_ids=(uuid,))
    assert spec.environment["NVIDIA_VISIBLE_DEVICES"] == uuid


def test_several_granted_gpus_keep_their_order() -> None:
    spec = spec_for(gpus=("3", "1"))
    assert spec.gpus.device_ids == ("3", "1")
    assert spec.environment["NVIDIA_VISIBLE_DEVICES"] == "3,1"


@pytest.mark.parametrize("gpu", ["all", "", "0,1", "GPU-x; rm", "-1", "none"])
def test_it_refuses_gpu_ids_that_are_not_an_index_or_uuid(gpu: str) -> None:
    with pytest.raises(ValueError, match="GPU"):
        spec_for(gpus=(gpu,))


def test_it_refuses_the_same_gpu_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        spec_for(gpus=("0", "0"))


def test_it_installs_the_members_keys_one_per_line_in_a_stable_order() -> None:
    env = spec_for(keys=[KEY_B, KEY_A]).environment
    assert env["PORTAL_AUTHORIZED_KEYS"] == f"{KEY_A}\n{KEY_B}"


def test_a_member_without_keys_gets_an_empty_key_list() -> None:
    assert spec_for(keys=[]).environment["PORTAL_AUTHORIZED_KEYS"] == ""


@pytest.mark.parametrize("key", [f"{KEY_A}\nssh-ed25519 AAAAinjected evil", "", "   ", f"{KEY_A}\r"])
def test_it_refuses_a_key_that_is_not_one_line(key: str) -> None:
    with pytest.raises(ValueError, match="one non-empty line"):
        spec_for(keys=[key])


def test_it_passes_the_desktop_password_for_xrdp() -> None:
    assert spec_for().environment["PORTAL_DESKTOP_PASSWORD"] == PASSWORD


@pytest.mark.parametrize("password", ["", "two words", "line\nbreak", "tab\there"])
def test_it_refuses_a_desktop_password_that_is_not_one_word(password: str) -> None:
    with pytest.raises(ValueError, match="desktop password"):
        spec_for(desktop_password=password)


def test_it_mounts_the_members_home_datasets_read_only_and_scratch() -> None:
    assert spec_for().mounts[:3] == (
        Mount(source="/srv/homes/alice", target="/home/alice"),
        Mount(source="/srv/datasets", target="/data", read_only=True),
        Mount(source="/srv/scratch/alice", target="/scratch"),
    )


def test_extra_workspaces_share_the_members_home_and_scratch() -> None:
    default, extra = spec_for(), spec_for(make_workspace(name="gpu2"))
    assert default.mounts[:3] == extra.mounts[:3]


def test_it_keeps_the_ssh_host_keys_in_a_volume_of_their_own() -> None:
    default, extra = spec_for(), spec_for(make_workspace(name="gpu2"))
    assert default.mounts[3] == Mount(source="ws-alice-sshkeys", target="/etc/ssh/keys", kind="volume")
    assert extra.mounts[3].source == "ws-alice-gpu2-sshkeys"


@pytest.mark.parametrize("field", ["home_root", "scratch_root", "datasets_path"])
@pytest.mark.parametrize(
    "path",
    [
        "/srv/../etc",
        "srv/homes",
        "/",
        "//",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/srv/a..b",
        "/run/containerd/containerd.sock",
        "/srv/\x00x",
    ],
)
def test_it_refuses_mount_roots_that_could_reach_elsewhere(field: str, path: str) -> None:
    with pytest.raises(ValueError, match="mount"):
        spec_for(config=dataclasses.replace(CONFIG, **{field: path}))


def test_a_trailing_slash_on_a_root_is_harmless() -> None:
    spec = spec_for(config=dataclasses.replace(CONFIG, home_root="/srv/homes/"))
    assert spec.mounts[0].source == "/srv/homes/alice"


def test_every_mount_source_lies_under_a_configured_root() -> None:
    roots = (CONFIG.home_root, CONFIG.scratch_root, CONFIG.datasets_path)
    for mount in spec_for(make_workspace("j_doe", "x1")).mounts:
        if mount.kind == "bind":
            assert mount.source.startswith(roots)
            assert ".." not in mount.source


def test_it_labels_the_container_for_the_portal() -> None:
    labels = spec_for().labels
    assert labels["portal.managed"] == "true"
    assert labels["portal.workspace"] == "7"
    assert labels["portal.owner"] == "alice"
    assert labels["portal.host"] == "gpu1"


def test_it_refuses_an_unsaved_workspace() -> None:
    workspace = make_workspace()
    workspace.id = None
    with pytest.raises(ValueError, match="saved"):
        spec_for(workspace)


def test_it_routes_code_server_jupyter_and_filebrowser_through_the_portals_gate() -> None:
    labels = spec_for().labels
    assert {key: value for key, value in labels.items() if key.startswith("traefik.")} == {
        "traefik.enable": "true",
        "traefik.docker.network": "portal-ws-alice",
        "traefik.http.routers.u-alice-code.rule": "Host(`alice-code.corp.example`)",
        "traefik.http.routers.u-alice-code.entrypoints": "websecure",
        "traefik.http.routers.u-alice-code.tls": "true",
        "traefik.http.routers.u-alice-code.middlewares": "portal-auth@file",
        "traefik.http.routers.u-alice-code.service": "u-alice-code",
        "traefik.http.services.u-alice-code.loadbalancer.server.port": "8080",
        "traefik.http.routers.u-alice-jup.rule": "Host(`jupyter-alice.corp.example`)",
        "traefik.http.routers.u-alice-jup.entrypoints": "websecure",
        "traefik.http.routers.u-alice-jup.tls": "true",
        "traefik.http.routers.u-alice-jup.middlewares": "portal-auth@file",
        "traefik.http.routers.u-alice-jup.service": "u-alice-jup",
        "traefik.http.services.u-alice-jup.loadbalancer.server.port": "8888",
        "traefik.http.routers.u-alice-files.rule": "Host(`files-alice.corp.example`)",
        "traefik.http.routers.u-alice-files.entrypoints": "websecure",
        "traefik.http.routers.u-alice-files.tls": "true",
        "traefik.http.routers.u-alice-files.middlewares": "portal-auth@file",
        "traefik.http.routers.u-alice-files.service": "u-alice-files",
        "traefik.http.services.u-alice-files.loadbalancer.server.port": "8090",
    }


def test_named_workspaces_get_their_own_hosts_and_routers() -> None:
    labels = spec_for(make_workspace(name="gpu2")).labels
    assert labels["traefik.http.routers.u-alice-gpu2-code.rule"] == "Host(`alice-gpu2-code.corp.example`)"
    assert labels["traefik.http.routers.u-alice-gpu2-jup.rule"] == "Host(`jupyter-alice-gpu2.corp.example`)"


def test_every_workspace_of_a_member_joins_their_own_network_and_no_one_elses() -> None:
    first, second = spec_for(make_workspace("alice")), spec_for(make_workspace("alice", "gpu2"))
    other = spec_for(make_workspace("bob", uid=2002))
    assert first.network == second.network == first.labels["traefik.docker.network"] == "portal-ws-alice"
    assert other.network == other.labels["traefik.docker.network"] == "portal-ws-bob"


def test_it_refuses_a_network_prefix_docker_would_not_take() -> None:
    with pytest.raises(ValueError, match="network name prefix"):
        spec_for(config=dataclasses.replace(CONFIG, network_prefix="-bad prefix"))


def test_underscores_become_hyphens_in_hosts_but_not_in_the_login() -> None:
    spec = spec_for(make_workspace("j_doe"))
    assert spec.name == "ws-j_doe"
    assert spec.hostname == "ws-j-doe"
    assert spec.labels["traefik.http.routers.u-j-doe-code.rule"] == "Host(`j-doe-code.corp.example`)"
    assert spec.labels["traefik.http.routers.u-j-doe-jup.rule"] == "Host(`jupyter-j-doe.corp.example`)"
    assert spec.environment["PORTAL_USER"] == "j_doe"
    assert spec.mounts[0] == Mount(source="/srv/homes/j_doe", target="/home/j_doe")
    assert all("@" not in key for key in spec.labels)


def test_members_whose_names_differ_only_by_underscore_map_to_the_same_slug() -> None:
    # build_spec can't see other members; the unique Workspace.slug refuses the second one
    # (tests/workspaces/test_services.py checks that refusal).
    assert workspace_slug("a_b") == workspace_slug("a-b") == "a-b"
    assert workspace_slug("alice", "gpu") == workspace_slug("alice-gpu") == "alice-gpu"


@pytest.mark.parametrize("username", ["_svc", "svc_", "bob-"])
def test_usernames_that_cannot_be_a_dns_label_are_refused(username: str) -> None:
    with pytest.raises(ValueError, match="web address"):
        spec_for(make_workspace(username))


@pytest.mark.parametrize("domain", ["corp.example`) || Host(`evil.example", "Corp.Example", "", "a..b", "-a.b"])
def test_it_refuses_a_domain_that_could_break_the_router_rule(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        spec_for(config=dataclasses.replace(CONFIG, domain=domain))


@pytest.mark.parametrize("field", ["traefik_entrypoint", "traefik_middleware"])
def test_it_refuses_traefik_names_with_spaces_or_commas(field: str) -> None:
    with pytest.raises(ValueError, match="Traefik"):
        spec_for(config=dataclasses.replace(CONFIG, **{field: "a, b"}))


def test_the_same_inputs_give_an_equal_spec() -> None:
    first = spec_for(make_workspace(name="x"), gpus=("0",), keys=[KEY_A, KEY_B])
    second = spec_for(make_workspace(name="x"), gpus=("0",), keys=[KEY_B, KEY_A])
    assert first == second


def test_any_change_of_input_changes_the_spec() -> None:
    base = spec_for()
    assert spec_for(quota=make_quota(mem_limit=99 * G)) != base
    assert spec_for(gpus=("0",)) != base
    assert spec_for(keys=[KEY_A, KEY_B]) != base
    assert spec_for(make_workspace(sudo=True)) != base
    assert spec_for(desktop_password="f" * 32) != base
