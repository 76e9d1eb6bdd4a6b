"""avcli.pipelines.batch.write_report: a Ctrl-C that lands inside the write is held until the report is complete on
disk, then raised; no temp file is left (the Ray Ctrl-C test once found a .report.json.*.part)."""

import json
import os
import signal

import pytest

from avcli.pipelines import batch as B


@pytest.fixture(autouse=True)
def _python_ctrl_c():
    """Python's own Ctrl-C handler for the test, whatever the runner started with: a job started in the background
    by a shell without job control inherits SIGINT ignored, and then no Ctrl-C is raised at all."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_inside_the_write_is_raised_after_it(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    B.write_report(path, {"n": 1})
    real_dump = json.dump

    def dump_then_ctrl_c(obj, f, **kw):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        real_dump(obj, f, **kw)

    monkeypatch.setattr(B.json, "dump", dump_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        B.write_report(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 2}  # the write finished before the interrupt
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no .part left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_no_ctrl_c_no_interrupt(tmp_path):
    B.write_report(tmp_path / "r.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2]}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
