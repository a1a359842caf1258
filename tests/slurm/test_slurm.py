#!/usr/bin/env python3
"""The Slurm backend against a real one-node cluster (munged, slurmctld, slurmd on localhost,
started by cluster.sh): submit a small grid, send one running task the pre-time-limit SIGUSR1
(it checkpoints, requeues itself and resumes), and check that every cell completes with the same
numbers as the local backend."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

EXPERIMENT = """
[run]
name = "{name}"
deterministic = true
[data]
plugin = "synthetic"
train_size = {train_size}
validation = 32
test_size = 64
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 8
hidden = 32
[objective]
plugin = "{objective}"
[attack]
plugin = "pgd"
eps = 0.1
steps = 2
step_size = 0.05
[train]
epochs = {epochs}
batch_size = 32
[[eval]]
plugin = "pgd"
eps = 0.1
steps = 5
"""

GRID = """
[grid]
name = "s"
experiments = ["student.toml"]
[axes]
run.seed = [0, 1, 2]
[slurm]
cpus = 1
time = "00:20:00"
signal_seconds = 60
"""


def sh(*args, env=None, check=True, timeout=300):
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def signal_task(task, env, cluster, log):
    """scancel --batch --signal=USR1 until the task's log shows it checkpointed and requeued.
    On a slow machine slurmctld may answer "Job can not be altered now" although the signal
    arrived: a refused call is sent again only while the task is still running and the log shows
    no requeue, never to the requeued task (which would die of it before its handler is set)."""
    deadline = time.time() + 180
    refusals = []
    while time.time() < deadline:
        r = sh("scancel", "--batch", "--signal=USR1", task, env=env, check=False)
        if r.returncode == 0:
            return
        refusals.append(r.stderr.strip())
        wait = time.time() + 30
        while time.time() < wait:
            if "requeueing" in log.read_text():
                return
            time.sleep(0.5)
        state = sh("squeue", "-h", "-j", task, "-o", "%T", env=env, check=False).stdout.strip()
        if state != "RUNNING":
            break
    job = sh("scontrol", "show", "job", task, env=env, check=False).stdout
    logs = "".join(
        f"--- {name} (last 30 lines)\n" +
        "\n".join((cluster / name).read_text(errors="replace").splitlines()[-30:]) + "\n"
        for name in ("slurmctld.log", "slurmd.log") if (cluster / name).exists())
    raise AssertionError(f"scancel --signal=USR1 {task} was refused ({refusals}) and the task "
                         f"did not requeue:\n{job}{logs}")


def results(store):
    cells = json.loads((store / "grids/s/cells.json").read_text())["cells"]
    out = {}
    for c in cells:
        r = json.loads((store / c["run_id"] / "results.json").read_text())
        # The test numbers and every epoch's training loss: a resume that was not bit-exact
        # would show in the losses even where the accuracies agree.
        epochs = [json.loads(l) for l in (store / c["run_id"] / "metrics.jsonl").read_text().splitlines()]
        losses = tuple(e["train_loss"] for e in epochs if e["type"] == "epoch")
        out[c["label"]] = (r["last"]["clean_acc"], r["last"]["worst_case_acc"],
                           r["best"]["clean_acc"], r["best"]["worst_case_acc"], losses)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ardkit", required=True)
    args = parser.parse_args()
    ardkit = str(Path(args.ardkit).resolve())
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            print(f"{tool} not installed (bash tools/setup.sh --tests installs it)")
            return 1
    work = Path(tempfile.mkdtemp(prefix="ardkit-slurm-"))
    cluster = work / "cluster"
    env = dict(os.environ, ARDKIT_SLURM_PORT=str(20000 + os.getpid() % 20000))
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin"
    try:
        started = sh("bash", str(HERE / "cluster.sh"), "start", str(cluster), env=env)
        env["SLURM_CONF"] = started.stdout.strip().split("=", 1)[1]
        (work / "teacher.toml").write_text(EXPERIMENT.format(
            name="teacher", objective="pgd_at", train_size=256, epochs=1))
        # Long enough per cell (~10 s) that the signal reaches it mid-training.
        (work / "student.toml").write_text(EXPERIMENT.format(
            name="student", objective="rslad", train_size=16384, epochs=4)
            + '\n[teacher]\nexperiment = "teacher.toml"\n')
        (work / "grid.toml").write_text(GRID)
        os.chdir(work)
        submitted = sh(ardkit, "grid", "grid.toml", "--output", "slurm-runs", "--backend", "slurm",
                       env=env)
        print(submitted.stderr, end="")
        cells_job = submitted.stderr.split("submitted cells")[1].split("job array ")[1].split()[0]
        # Wait for cell 0 to finish its first epoch, then send what sbatch --signal=B:USR1@60
        # sends before the time limit.
        log0 = Path("slurm-runs/grids/s/logs/cell-0000.log")
        deadline = time.time() + 300
        while time.time() < deadline and not (log0.exists() and "epoch 1/4:" in log0.read_text()):
            time.sleep(0.2)
        assert log0.exists() and "epoch 1/4:" in log0.read_text(), \
            "cell 0 did not train within 300 s:\n" + sh("squeue", env=env).stdout
        signal_task(f"{cells_job}_0", env, cluster, log0)
        print(f"sent SIGUSR1 to task {cells_job}_0")
        # Slurm holds a requeued job back for about two minutes; the test does not wait that out.
        deadline = time.time() + 120
        while time.time() < deadline and "requeueing" not in log0.read_text():
            time.sleep(0.5)
        time.sleep(1)
        sh("scontrol", "update", f"JobId={cells_job}_0", "StartTime=now", env=env, check=False)
        deadline = time.time() + 600
        while time.time() < deadline:
            status = sh(ardkit, "grid", "status", "grid.toml", "--output", "slurm-runs", env=env)
            if "3 done, 0 running, 0 failed, 0 pending" in status.stdout:
                break
            summary = [l for l in status.stdout.splitlines() if l.strip()][-1:]
            assert not summary or " failed " not in summary[0], status.stdout
            time.sleep(2)
        else:
            raise AssertionError("the grid did not complete within 600 s:\n" + status.stdout +
                                 sh("squeue", env=env).stdout)
        log = Path("slurm-runs/grids/s/logs/cell-0000.log").read_text()
        assert "checkpointed on a signal; requeueing" in log, log
        assert "restart 1" in log, log
        assert "resuming" in log, log
        print("task 0 checkpointed on SIGUSR1, was requeued and resumed")
        local = sh(ardkit, "grid", "grid.toml", "--output", "local-runs", "--threads", "1", env=env,
                   timeout=600)
        a, b = results(Path("slurm-runs")), results(Path("local-runs"))
        assert a == b, f"slurm {a} != local {b}"
        print(f"all {len(a)} cells match the local backend: {a}")
        return 0
    finally:
        sh("bash", str(HERE / "cluster.sh"), "stop", str(cluster), env=env, check=False)
        os.chdir("/")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
