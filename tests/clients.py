"""Talking to the build API the way clients do: post, poll, download."""

from __future__ import annotations

import time

import requests

C7 = {
    "version": "23.05.4",
    "target": "ath79/generic",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
}
X86_APK = {"version": "25.12.0", "target": "x86/64", "profile": "generic"}
# A 2019 device: board name from `ubus call system board`, installed packages.
UPGRADE_2019 = {
    "distro": "OpenWrt",
    "version": "23.05.4",
    "target": "ath79/generic",
    "board": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
}


def post(base: str, body: dict, **headers) -> requests.Response:
    return requests.post(f"{base}/api/v1/build", json=body, headers=headers, timeout=30)


def wait_for(base: str, body: dict, timeout: float = 120) -> requests.Response:
    """POST, then poll the hash until the build is no longer in progress."""
    response = post(base, body)
    deadline = time.monotonic() + timeout
    while response.status_code == 202:
        assert time.monotonic() < deadline, f"build still {response.json()}"
        time.sleep(0.3)
        request_hash = response.json()["request_hash"]
        response = requests.get(f"{base}/api/v1/build/{request_hash}", timeout=30)
    return response


def explain(response: requests.Response) -> str:
    """The parts of a failed answer that say why, for assertion messages."""
    body = response.json()
    return f"{body.get('detail')}\n{body.get('stderr', '')[-1500:]}"


def download(base: str, result: dict, image: dict) -> bytes:
    response = requests.get(f"{base}/store/{result['bin_dir']}/{image['name']}")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    return response.content


def poll_all(base: str, body: dict, timeout: float = 120) -> list[dict]:
    """Every answer from POST to the end of the build, polling quickly."""
    answers = [post(base, body).json()]
    deadline = time.monotonic() + timeout
    while answers[-1]["status"] == 202 and time.monotonic() < deadline:
        time.sleep(0.02)
        url = f"{base}/api/v1/build/{answers[-1]['request_hash']}"
        answers.append(requests.get(url, timeout=30).json())
    return answers


def until_stage(url: str, body: dict, stage: str, timeout: float = 60) -> str:
    """Poll the build of ``body`` until it is at ``stage``; its request hash."""
    answer = post(url, body).json()
    deadline = time.monotonic() + timeout
    while answer.get("stage") != stage:
        assert answer["status"] == 202 and time.monotonic() < deadline, answer
        time.sleep(0.1)
        answer = requests.get(
            f"{url}/api/v1/build/{answer['request_hash']}", timeout=10
        ).json()
    return answer["request_hash"]
