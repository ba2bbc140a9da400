"""Emulated jobs that answer over real sockets (--listen-host): a running service job listens
at the address its endpoints report and says which job it is; moved, it answers at the new
address and no longer at the old; ended or deleted, it listens nowhere."""

from __future__ import annotations

import pytest
import requests

from juliarun_operator.emulator import EmulatorConfig, running_emulator
from juliarun_operator.emulator.listeners import address_pool
from juliarun_operator.juliarun import Client, Context, Job

from harness import wait_for

pytestmark = pytest.mark.integration
POOL = address_pool(["127.0.90.0/30"])  # 127.0.90.1, .2: loopback, bound without set-up


def answer(endpoint: str) -> str | None:
    try:
        return requests.get(f"http://{endpoint}/", timeout=2).text
    except requests.ConnectionError:
        return None


def test_a_service_job_answers_at_its_endpoint_and_follows_a_move():
    config = EmulatorConfig(create_delay=0.1, worker_delay=0.05, run_time=0.5, listen=tuple(POOL))
    with running_emulator(config) as emu:
        client = Client(Context(url=emu.url, token="listen-test-token", namespace="team"))
        client.submit_job(Job("Notebook", "nb"), run_volume="v")
        client.submit_job(
            Job("Webserver", "web"), run_volume="v", cfg_file="c", ports={"http": (8080, 18080)}
        )
        endpoints = wait_for("endpoints", lambda: client.get_job_endpoint(Job("Notebook", "nb")))
        assert endpoints == ["127.0.90.1:8888"]
        assert client.get_job_endpoint(Job("Webserver", "web")) == ["127.0.90.2:18080"]
        text = wait_for("the job's answer", lambda: answer("127.0.90.1:8888"))
        assert text == "juliarun-emulator job team/nb port nb at 127.0.90.1:8888\n"
        assert "team/web port http" in wait_for("the other job", lambda: answer("127.0.90.2:18080"))

        moved = requests.post(
            f"{emu.url}/_emulator/move",
            json={"namespace": "team", "name": "nb", "address": "127.0.90.3"},
            timeout=5,
        )
        assert moved.json() == {"endpoints": ["127.0.90.3:8888"]}
        assert "at 127.0.90.3:8888" in wait_for(
            "the answer at the new address", lambda: answer("127.0.90.3:8888")
        )
        wait_for("nothing at the old address", lambda: answer("127.0.90.1:8888") is None)

        client.delete_job(Job("Notebook", "nb"), force=True)
        wait_for("nothing after deletion", lambda: answer("127.0.90.3:8888") is None)
        bad = requests.post(
            f"{emu.url}/_emulator/move", json={"namespace": "team", "name": "x", "address": "1"}, timeout=5
        )
        assert bad.status_code == 404
