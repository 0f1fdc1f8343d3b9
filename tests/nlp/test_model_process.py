"""The model in a child process (what the embedded desk labels with): same predictions, a
child that comes back when killed, and a child that does not outlive its parent."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from nlp.sentiment import DEFAULT_MODEL_DIR, ModelProcess, load_model

TEXTS = ["ありがとうございました、助かりました！", "何度も問い合わせているのに返事がない。いい加減にしてください",
         "注文番号を教えてください", "", "(´・ω・`) 届きません…😢"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is gone as far as work goes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def child(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ModelProcess(str(DEFAULT_MODEL_DIR))
    yield model
    model.close()


def test_predicts_what_the_model_in_this_process_predicts(child):
    here = load_model(str(DEFAULT_MODEL_DIR))
    assert child.pid() != os.getpid()
    assert child.tag == here.tag
    assert child.predict(TEXTS, batch_size=2) == here.predict(TEXTS, batch_size=2)


def test_a_killed_child_is_replaced_and_the_call_still_answers(child, caplog):
    first = child.pid()
    os.kill(first, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="nlp.sentiment"):
        (p,) = child.predict(["対応が早くてとても満足しています"])
    assert p.label == "positive"
    assert child.pid() != first
    assert "ended unexpectedly" in caplog.text


def test_a_model_that_does_not_load_fails_in_the_caller_and_leaves_no_child(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")  # a directory, but no model in it
    before = {p.pid for p in multiprocessing.active_children()}
    with pytest.raises((OSError, ValueError)):
        load_model(str(tmp_path), child_process=True)
    left = {p.pid for p in multiprocessing.active_children()} - before
    assert not [pid for pid in left if _alive(pid)]


def test_the_child_ends_with_its_parent_even_when_the_parent_is_killed(tmp_path):
    script = ("import sys, time\n"
              "from nlp.sentiment import load_model\n"
              "m = load_model(child_process=True)\n"
              "print(m.pid(), flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=str(DEFAULT_MODEL_DIR.parents[2]), env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child_pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_work_refused_while_this_process_exits_is_a_clear_error(child, monkeypatch):
    """concurrent.futures takes no new work once the interpreter is exiting, when a CLI
    command's labelling thread may still be running (`flask demo`)."""
    from concurrent.futures import process

    from nlp.sentiment import ModelProcessClosed

    monkeypatch.setattr(process, "_global_shutdown", True)
    with pytest.raises(ModelProcessClosed, match="shut down"):
        child.predict(["ありがとう"])
