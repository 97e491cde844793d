"""Local process pool and Ray executors store identical results for the same tiny grid."""
import pytest

from netpress.runs import Store
from netpress.sweep import LocalPool, RayExecutor, parse_spec, run_sweep

SPEC = parse_spec({"kind": "train", "base": {"data": {"name": "digits"}, "training": {"steps": "20it", "eval_every": "10it"}},
                   "params": {"training.lr": [0.05, 0.02]}, "seeds": [0, 1]})
VOLATILE = ("seconds", "updated", "reused")


def _stored(root):
    store = Store(root)
    trials = [{k: v for k, v in t.items() if k not in VOLATILE} for t in store.trials(run_sweep_id())]
    for t in trials:
        t["result"] = {k: v for k, v in t["result"].items() if k not in VOLATILE}
    runs = {r["id"]: (r["status"], r["summary"], r["hparams"]) for r in store.list_runs("train")}
    return trials, runs


def run_sweep_id():
    from netpress.sweep import sweep_id

    return sweep_id(SPEC)


def test_local_pool_and_ray_store_identical_results(tmp_path):
    ray = pytest.importorskip("ray")
    local = run_sweep(SPEC, root=tmp_path / "local", executor=LocalPool(2))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(SPEC, root=tmp_path / "ray", executor=RayExecutor())
    finally:
        ray.shutdown()
    assert local.summary()["done"] == remote.summary()["done"] == 4
    a, b = _stored(tmp_path / "local"), _stored(tmp_path / "ray")
    assert a == b and len(a[0]) == 4 and len(a[1]) == 4
