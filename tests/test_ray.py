"""Batches on Ray (issue 18), on this CPU machine: a real local Ray cluster (2 CPUs), the real CLI in fresh
processes, the tiny random-weight bundle. What a broken implementation would get wrong:

- outputs that differ from the local batch's bytes (another seed, another chunking, another code path);
- a killed worker that loses its item, leaves a temp file, or is retried silently (the report must say so);
- a rerun that redoes finished work; a Ctrl-C that loses or corrupts items;
- an item that kills its worker every time retried forever.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

AVGEN = [sys.executable, "-m", "avcli"]
RAY_BIN = str(Path(sys.executable).with_name("ray"))
PROMPTS = "prompt,seed\na red ball,1\na blue block,2\nhits on glass,3\nwood,4\nmetal plate,5\n\"\",6\n"


def _env(**kw) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RAY_worker_niceness": "0",
           "RAY_USAGE_STATS_ENABLED": "0", **kw}
    env.pop("AVGEN_DEBUG", None)
    return env


def _avgen(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*AVGEN, *map(str, args)], capture_output=True, text=True, env=env or _env(),
                          timeout=timeout)


@pytest.fixture(scope="module")
def head():
    """A Ray head on this machine with 2 CPUs, as `ray start --head` makes it on a farm; `--ray auto` joins it."""
    subprocess.run([RAY_BIN, "stop", "--force"], capture_output=True, env=_env())
    r = subprocess.run([RAY_BIN, "start", "--head", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
                        "--disable-usage-stats"], capture_output=True, text=True, env=_env())
    if r.returncode != 0:
        pytest.skip(f"ray start failed here: {r.stderr.strip().splitlines()[-1:]}")
    yield "auto"
    subprocess.run([RAY_BIN, "stop", "--force"], capture_output=True, env=_env())


def _report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _wait_ok(report: Path, proc: subprocess.Popen, n: int = 1, timeout: float = 300) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        rep = _report(report)
        if rep and rep["counts"]["ok"] >= n:
            return rep
        if proc.poll() is not None:
            raise AssertionError(f"the job ended before {n} item(s) finished: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("no item finished in time")


def _actor_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::WorkerHost" in line]


def _no_parts(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".part" in p.name]


def test_ray_prompts_match_the_local_batch_byte_for_byte_and_a_rerun_does_no_work(tiny_bundle, tmp_path):
    prompts = tmp_path / "shots.csv"
    prompts.write_text(PROMPTS)
    # --audio-guidance 3 on a bundle never trained for it: both paths warn once, on the driver, and still run
    common = ["generate", "--bundle", tiny_bundle, "--prompts", prompts, "--steps", "3", "--json",
              "--audio-guidance", "3"]
    # One torch thread, as each Ray actor has (1 CPU each): CPU float kernels split their sums by thread count
    local = _avgen(*common, "--out-dir", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    assert local.stderr.count("--audio-dropout") == 1, local.stderr
    r = _avgen(*common, "--out-dir", tmp_path / "ray", "--ray", "--workers", "2")  # bare --ray: a local instance
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("--audio-dropout") == 1, r.stderr
    rep = json.loads(r.stdout)
    assert rep["counts"] == {"ok": 6, "skipped": 0, "failed": 0, "not run": 0}
    assert rep["ray"]["address"] == "local" and rep["ray"]["workers_started"] == 2 and not rep["ray"]["events"]
    assert len({it["worker"] for it in rep["items"]}) == 2  # both actors did work
    names = sorted(p.name for p in (tmp_path / "local").glob("*.mp4"))
    assert len(names) == 6 and names == sorted(p.name for p in (tmp_path / "ray").glob("*.mp4"))
    for n in names:
        assert (tmp_path / "local" / n).read_bytes() == (tmp_path / "ray" / n).read_bytes(), n
    # rerun: everything is done, so no Ray instance starts and no model loads
    again = _avgen(*common, "--out-dir", tmp_path / "ray", "--ray", "--workers", "2")
    assert again.returncode == 0, again.stderr
    rep2 = json.loads(again.stdout)
    assert rep2["counts"]["skipped"] == 6 and "ray" not in rep2 and rep2["backend"] is None


def _videos(folder: Path, n: int) -> None:
    import numpy as np

    from avcli.media.ffmpeg import write_video

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        frames = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)  # 1.5 s at 8 fps
        write_video(folder / f"shot{i}.mp4", frames, 8.0, None, 16000)


def test_ray_foley_survives_a_killed_worker_and_reports_the_retry(tiny_bundle, tmp_path, head):
    from avcli.media.ffmpeg import probe

    shots, out = tmp_path / "shots", tmp_path / "foley"
    _videos(shots, 6)
    report = tmp_path / "report.json"
    proc = subprocess.Popen([*AVGEN, "foley", str(shots), "--out-dir", str(out), "--bundle", str(tiny_bundle),
                             "--steps", "12", "--ray", head, "--workers", "2", "--report", str(report), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_ok(report, proc)
    pids = _actor_pids()
    assert pids, "no Ray worker process found"
    os.kill(pids[0], signal.SIGKILL)  # the worker dies, as on a node failure or an OOM kill
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    rep = json.loads(stdout)
    assert rep["counts"] == {"ok": 6, "skipped": 0, "failed": 0, "not run": 0}
    died = [e for e in rep["ray"]["events"] if e["event"] == "worker died"]
    assert died and all(e["then"] == "retried" for e in died)
    assert rep["ray"]["workers_started"] >= 3  # a replacement actor loaded the pipeline again
    assert max(it["attempts"] for it in rep["items"]) >= 2  # the retried item says so
    for i in range(6):
        info = probe(out / f"shot{i}.foley.mp4", require_video=True)
        assert info.has_audio and abs(info.duration_s - 1.5) < 0.2
    assert not _no_parts(out)


def test_ray_ctrl_c_at_the_driver_then_rerun_finishes_only_the_rest(tiny_bundle, tmp_path, head):
    n = 12  # rows: work is left when the first is done
    prompts = tmp_path / "shots.csv"
    prompts.write_text("prompt,seed\n" + "".join(f"shot {i},{i}\n" for i in range(n)))
    out, report = tmp_path / "takes", tmp_path / "takes" / "report.json"
    cmd = [*AVGEN, "generate", "--bundle", str(tiny_bundle), "--prompts", str(prompts), "--steps", "16",
           "--out-dir", str(out), "--ray", head, "--workers", "2", "--json"]
    # the child starts with SIGINT's default action: a shell that runs this suite in the background (`cmd &`) hands
    # its children SIGINT ignored, and Python then installs no KeyboardInterrupt handler (the Ctrl-C did nothing)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_ok(report, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    rep = json.loads(stdout)
    assert rep["interrupted"] and rep["counts"]["ok"] >= 1 and rep["counts"]["not run"] >= 1
    from avcli.media.ffmpeg import probe

    ok = {it["output"] for it in rep["items"] if it["status"] == "ok"}
    # an actor may finish its clip between the Ctrl-C and its kill: that file is complete (written atomically)
    done_before = {str(p): p.read_bytes() for p in out.glob("*.mp4")}
    assert ok <= set(done_before) and len(done_before) < n
    for p in done_before:
        assert probe(p, require_video=True).has_audio  # nothing half-written under a final name
    assert not _no_parts(out)  # the killed actors' temp files were removed
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    rep2 = json.loads(again.stdout)
    assert rep2["counts"]["skipped"] == len(done_before) and rep2["counts"]["ok"] == n - len(done_before)
    for path, data in done_before.items():
        assert Path(path).read_bytes() == data  # finished items were not redone
    assert len(list(out.glob("*.mp4"))) == n


class _Dies:
    """A worker for run_on_ray: kills its own process on items named 'poison' (every time), else echoes."""

    def __init__(self, tag: str):
        self.tag = tag

    def run(self, unit):
        from avcli.pipelines.batch import STATUS_OK, ItemResult

        out = []
        for it in unit:
            if it.output.name == "poison":
                os._exit(1)
            out.append(ItemResult(str(it.input), str(it.output), STATUS_OK, 0.0, "", {"tag": self.tag}))
        return out


def test_an_item_that_always_kills_its_worker_fails_after_the_retries(head, tmp_path):
    from ray import cloudpickle

    from avcli.pipelines.batch import STATUS_FAILED, STATUS_OK, Item
    from avcli.pipelines.ray_runner import RayOptions, run_on_ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    items = [Item(tmp_path / f"in{i}", tmp_path / ("poison" if i == 2 else f"out{i}")) for i in range(5)]
    got = {}
    ray.init(address=head, log_to_driver=False)
    try:
        run = run_on_ray([[it] for it in items], _Dies, ("x",), RayOptions(head, workers=2, retries=1),
                         lambda u, i, res: got.__setitem__(u, res))
    finally:
        ray.shutdown()
    assert [got[u].status for u in range(5)] == [STATUS_OK, STATUS_OK, STATUS_FAILED, STATUS_OK, STATUS_OK]
    assert "died 2 time(s)" in got[2].reason and got[2].extra["attempts"] == 2
    assert [e["then"] for e in run.events] == ["retried", "failed"]
    assert all(got[u].extra["tag"] == "x" for u in (0, 1, 3, 4))


def test_ray_options_are_checked_before_any_work(tiny_bundle, tmp_path, monkeypatch, capsys):
    from conftest import run_cli

    from avcli.cli.common import expand_optional_values

    assert expand_optional_values(["foley", "shots/", "--ray"]) == ["foley", "shots/", "--ray", "local"]
    assert expand_optional_values(["foley", "--ray", "shots/"]) == ["foley", "--ray", "local", "shots/"]
    assert expand_optional_values(["foley", "--ray", "auto", "x"]) == ["foley", "--ray", "auto", "x"]
    assert expand_optional_values(["--ray", "10.0.0.1:6379"]) == ["--ray", "10.0.0.1:6379"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red ball\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code, out, err = run_cli(monkeypatch, capsys, "generate", "--bundle", tiny_bundle, "--prompts", prompts,
                             "--out-dir", tmp_path / "o", "--ray")
    assert code == 2 and "pip install 'avgen[ray]'" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    monkeypatch.delitem(sys.modules, "ray")
    code, out, err = run_cli(monkeypatch, capsys, "generate", "--prompt", "x", "--ray")
    assert code == 2 and "--prompts" in err
    code, out, err = run_cli(monkeypatch, capsys, "generate", "--bundle", tiny_bundle, "--prompts", prompts,
                             "--out-dir", tmp_path / "o", "--ray", "--retries", "-1")
    assert code == 2 and "--retries" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.mp4"))
