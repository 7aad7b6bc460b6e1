"""No route of the plugin reads a file outside what TensorBoard serves: its
only file route is `index.js`, and path-traversal attempts around it (`../`,
encoded dots and slashes, absolute paths, backslashes, NUL bytes, names of
symlinks in the log directory) get 404, in the WSGI app and through a real
`tensorboard` process over raw HTTP (so no client tidies the path)."""

import shutil
import socket
import uuid

import pytest

from support import plugin_logs
from support.plugin_calls import plugin_client
from support.servers import tensorboard_process, wait_for_json

ROUTE = "/data/plugin/weight_health/"


@pytest.fixture(scope="module")
def served(api_logdir, tmp_path_factory):
    """(logdir, secret file outside it, the secret's text): a copy of a real
    run, with a symlink to the secret and one to the folder holding it."""
    root = tmp_path_factory.mktemp("traversal")
    (root / "private").mkdir()
    secret = root / "private" / "secret.txt"
    marker = f"WEIGHT_HEALTH_SECRET_{uuid.uuid4().hex}"
    secret.write_text(marker)
    logdir = root / "logs"
    shutil.copytree(api_logdir / plugin_logs.LOOP_RUN, logdir / plugin_logs.LOOP_RUN)
    (logdir / plugin_logs.LOOP_RUN / "index.js").symlink_to(secret)
    (logdir / "outside").symlink_to(secret.parent, target_is_directory=True)
    return logdir, secret, marker


def attacks(logdir, secret):
    """Paths (raw, as sent on the request line) that try to reach a file."""
    up = "../" * 12
    return [
        ROUTE + up + "etc/passwd",
        "/" + up + str(secret).lstrip("/"),
        ROUTE + "..%2f" * 12 + "etc%2fpasswd",
        ROUTE + "%2e%2e%2f" * 12 + str(secret).lstrip("/").replace("/", "%2f"),
        ROUTE + "%2e%2e/" * 12 + str(secret).lstrip("/"),
        ROUTE + "%252e%252e%252f" * 12 + "etc%252fpasswd",
        ROUTE + "..\\" * 12 + "etc\\passwd",
        ROUTE + "..%5c" * 12 + "etc%5cpasswd",
        ROUTE + "..;/" * 12 + "etc/passwd",
        ROUTE + "index.js/" + up + "etc/passwd",
        ROUTE + "index.js/../plugin.py",
        ROUTE + "static/index.js",
        ROUTE + "static/../plugin.py",
        ROUTE + "../plugin.py",
        ROUTE + "/etc/passwd",
        ROUTE + "%2fetc%2fpasswd",
        ROUTE + str(secret),
        ROUTE + str(secret).replace("/", "%2f"),
        ROUTE + "file://" + str(secret),
        ROUTE + "index.js%00.png",
        ROUTE + "index.js%00/../../plugin.py",
        ROUTE + "./index.js",
        ROUTE + "runs/../index.js",
        ROUTE + "INDEX.JS",
        ROUTE + "index.js::$DATA",
        ROUTE + plugin_logs.LOOP_RUN + "/index.js",  # a symlink to the secret
        ROUTE + "outside/secret.txt",  # through a symlinked folder
        ROUTE + str(logdir / "outside" / "secret.txt"),
        ROUTE + "~/.bashrc",
        ROUTE + "a" * 5000,
        ROUTE,
        ROUTE.rstrip("/"),
    ]


def check_not_served(path, status, body, marker):
    assert status == 404, (path, status, body[:200])
    assert marker.encode() not in body, path
    assert b"root:" not in body and b"class WeightHealthPlugin" not in body, path


def test_traversal_around_the_static_route_is_not_found_in_the_wsgi_app(served):
    logdir, secret, marker = served
    client, _, _ = plugin_client(logdir)
    for path in attacks(logdir, secret):
        # PATH_INFO as a server would pass it on: percent-escapes decoded.
        raw = path.split("?")[0]
        from urllib.parse import unquote_to_bytes

        decoded = unquote_to_bytes(raw).decode("latin-1")
        response = client.get("/", environ_overrides={"PATH_INFO": decoded, "RAW_URI": raw})
        check_not_served(path, response.status_code, response.get_data(), marker)
    assert client.get(ROUTE + "index.js").get_data().startswith(b"/*! Weight Health tab")


def raw_get(base_url, path):
    """(status, body) of a GET whose request line carries `path` byte for byte."""
    host, port = base_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"GET " + path.encode("latin-1") + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := connection.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_traversal_around_the_static_route_is_not_found_over_http(served):
    logdir, secret, marker = served
    with tensorboard_process(logdir) as base:
        wait_for_json(base + ROUTE + "runs", lambda body: [r["run"] for r in body["runs"]] == [plugin_logs.LOOP_RUN])
        for path in attacks(logdir, secret):
            status, body = raw_get(base, path)
            check_not_served(path, status, body, marker)
        # The one file route still serves the frontend, whatever its query says.
        status, body = raw_get(base, ROUTE + "index.js?path=../../../etc/passwd")
        assert status == 200 and body.startswith(b"/*! Weight Health tab")
