"""SIGKILL at random moments under concurrent marked edits: the bounded form of bench/sigkill.py.

Three trials: one process with a slow provider, two processes on one storage
with a provider that fails, and a kill while the provider holds a create.
Each must end with no hung request, no lost acknowledged edit, no event left
pending, and every room no record references listed by `meetplugin reconcile`.
"""

from __future__ import annotations

import pytest
from sigkill_trial import run_trial


@pytest.mark.parametrize(
    ("trial", "mode", "processes"),
    [(1, "slow", 1), (2, "500", 2), (3, "blocked", 1)],
)
def test_sigkill_trial(tmp_path, trial, mode, processes):
    figures = run_trial(tmp_path, trial, mode, processes, seed=1000 + trial)
    print("\nsigkill:", figures)
    assert figures.acknowledged > 0, figures
    assert figures.hung == 0, figures
    assert figures.lost == [], figures
    assert figures.pending == 0 and figures.broken == 0, figures
    assert figures.unlisted == 0, figures
    if mode == "blocked":
        assert figures.killed_during_call, "the kill was meant to cut a held provider call"
