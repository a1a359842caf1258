#!/usr/bin/env python3
"""Watching runs while they go: TensorBoard event files (`ardkit run --tensorboard`) and the
progress that long attacks report inside an evaluation batch."""
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import cli_case as cli
from cli_case import TINY, CliCase, run

# The event format's public field numbers (TensorFlow's event.proto, summary.proto, tensor.proto),
# written here independently of ardkit's own .proto, so a wrong field number on either side fails.
EVENT_PROTO = """
syntax = "proto3";
package check;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what { string file_version = 3; bytes graph_def = 4; Summary summary = 5; }
}
message Summary {
  message Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value { float simple_value = 2; bytes obsolete_old_style_histogram = 3; Image image = 4; TensorProto tensor = 8; }
  }
  repeated Value value = 1;
}
message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
}
message TensorProto { int32 dtype = 1; bytes tensor_shape = 2; repeated bytes string_val = 8; }
"""


def crc32c(data):
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_event_class = None


def event_class():
    """The Event message, compiled from EVENT_PROTO by Debian's protoc."""
    global _event_class
    if _event_class is None:
        folder = Path(tempfile.mkdtemp(prefix="ardkit-proto-"))
        (folder / "check_event.proto").write_text(EVENT_PROTO)
        subprocess.run(["protoc", f"--python_out={folder}", f"-I{folder}", "check_event.proto"],
                       check=True)
        sys.path.insert(0, str(folder))
        import check_event_pb2
        _event_class = check_event_pb2.Event
    return _event_class


def read_events(path, test):
    """Every record of an event file, its two CRCs checked, decoded."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        test.assertGreaterEqual(len(data) - at, 12, f"{path}: a record cut short at byte {at}")
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        test.assertEqual(header_crc, masked(crc32c(header)), f"length CRC of the record at byte {at}")
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        test.assertEqual(body_crc, masked(crc32c(body)), f"data CRC of the record at byte {at}")
        event = event_class()()
        event.ParseFromString(body)
        events.append(event)
        at += 16 + length
    return events


def tag_of(line, key):
    """The tag ardkit documents for a metrics.jsonl number (docs/experiments.md)."""
    if line["type"] == "test":
        return f"test/{line['checkpoint']}/{key}"
    if line["type"] == "epoch":
        return "val/" + key[4:] if key.startswith("val_") else "epoch/" + key
    return key.replace(".", "/", 1) if "." in key else "train/" + key


def metrics_lines(folder):
    """metrics.jsonl's records; a line that a kill cut short is not one."""
    out = []
    for text in (folder / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            pass
    return out


def expected_scalars(folder):
    """(tag, step) -> value from metrics.jsonl, the latest line of a (type, step) winning."""
    latest = {}
    for line in metrics_lines(folder):
        latest[(line["type"], line.get("checkpoint"), line["step"])] = line
    out = {}
    for line in latest.values():
        for key, value in line.items():
            if key not in ("type", "checkpoint", "step", "epoch", "time") and isinstance(value, (int, float)):
                out.setdefault((tag_of(line, key), line["step"]), value)
    return out


class TensorBoard(CliCase):
    def event_file(self, folder):
        files = list((folder / "tensorboard").rglob("events.out.tfevents.*"))
        self.assertEqual(len(files), 1, files)
        return files[0]

    def scalars(self, events):
        """(tag, step) -> value, each pair once; steps increase within every tag."""
        out, last_step = {}, {}
        for event in events:
            for value in event.summary.value:
                if value.WhichOneof("value") != "simple_value":
                    continue
                key = (value.tag, event.step)
                self.assertNotIn(key, out, f"{key} written twice")
                self.assertGreater(event.step, last_step.get(value.tag, -1), value.tag)
                last_step[value.tag] = event.step
                out[key] = value.simple_value
        return out

    def assert_scalars_match(self, folder, scalars):
        expected = expected_scalars(folder)
        self.assertEqual(set(scalars), set(expected))
        for key, value in expected.items():
            # Event files hold float32.
            self.assertAlmostEqual(scalars[key], value, delta=1e-6 * max(1.0, abs(value)), msg=key)

    def test_event_files_hold_the_metrics_sample_grids_and_configuration(self):
        exp = self.write_datafree("sample_grid = true\n")
        exp.write_text(exp.read_text().replace("[train]", "[train]\nlog_every = 1"))
        result = run("run", str(exp), "--output", str(self.dir / "runs"), "--tensorboard")
        self.assertEqual(result.returncode, 0, result.stderr)
        [folder] = [f for f in self.completed_runs() if f.name.startswith("df-")]
        events = read_events(self.event_file(folder), self)
        self.assertEqual(events[0].file_version, "brain.Event:2")
        scalars = self.scalars(events)
        self.assert_scalars_match(folder, scalars)
        # The generator's terms, the knobs and the final test numbers are curves too.
        tags = {tag for tag, _ in scalars}
        for tag in ("train/loss", "train/lr", "gen/loss", "syn/class_entropy", "knob/attack.eps",
                    "epoch/train_loss", "test/last/clean", "test/last/pgd10"):
            self.assertIn(tag, tags)
        results = json.loads((folder / "results.json").read_text())
        steps = results["budget"]["student_steps"]
        self.assertAlmostEqual(scalars[("test/last/pgd10", steps)],
                               results["last"]["attacks"]["pgd10"]["robust_acc"], places=4)
        # Each epoch's sample grid, byte for byte, at the epoch's last step.
        epoch_steps = {json.loads(l)["epoch"]: json.loads(l)["step"]
                       for l in (folder / "metrics.jsonl").read_text().splitlines()
                       if json.loads(l)["type"] == "epoch"}
        images = {(v.tag, e.step): v.image for e in events for v in e.summary.value
                  if v.WhichOneof("value") == "image"}
        self.assertEqual(len(images), 2)
        for epoch, step in epoch_steps.items():
            png = (folder / "samples" / f"epoch_{epoch:03d}.png").read_bytes()
            image = images[("samples", step)]
            self.assertEqual(image.encoded_image_string, png)
            self.assertEqual((image.width, image.height), struct.unpack(">II", png[16:24]))
        # The resolved configuration for the text dashboard.
        [config] = [v for e in events for v in e.summary.value if v.tag == "config"]
        self.assertEqual(config.metadata.plugin_data.plugin_name, "text")
        self.assertIn(b"[generator]", config.tensor.string_val[0])
        # The teacher, trained first by the same command, has its curves; the flag is not part
        # of the run id, so the same run without it is the completed one.
        [teacher] = [f for f in self.completed_runs() if f.name.startswith("teacher-")]
        teacher_scalars = self.scalars(read_events(self.event_file(teacher), self))
        self.assert_scalars_match(teacher, teacher_scalars)
        self.assertIn("val/robust_acc", {tag for tag, _ in teacher_scalars})
        again = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertIn("already completed", again.stderr)

    def test_a_grids_runs_are_named_by_their_axis_values(self):
        # One --logdir for the store: TensorBoard names a run by its event file's folder, which a
        # grid cell's label ([run] label, not part of the run id) makes readable.
        self.write("exp.toml", TINY.replace("epochs = 2", "epochs = 1"))
        grid = self.write("grid.toml", '[grid]\nname = "g"\nexperiments = ["exp.toml"]\n'
                          '[axes]\nrun.seed = [1, 2]\n')
        result = run("grid", str(grid), "--output", str(self.dir / "runs"), "--set",
                     "run.tensorboard=true", cwd=self.dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        folders = self.completed_runs()
        self.assertEqual(len(folders), 2)
        names = sorted(self.event_file(f).parent.name for f in folders)
        self.assertEqual(names, ["run.seed=1", "run.seed=2"])
        for folder in folders:
            self.assert_scalars_match(folder, self.scalars(read_events(self.event_file(folder), self)))
        # The same cells without the label are the same runs: nothing runs again.
        again = run("grid", str(grid), "--output", str(self.dir / "runs"), cwd=self.dir)
        self.assertIn("2 done", again.stdout + again.stderr)

    def test_no_event_files_unless_asked(self):
        exp = self.write("exp.toml", TINY)
        result = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(result.returncode, 0, result.stderr)
        [folder] = self.completed_runs()
        self.assertFalse((folder / "tensorboard").exists())

    def test_sigkill_and_resume_leave_each_step_once(self):
        # Checkpoints every ~0.6 s and a metrics line every step; the kill waits until lines were
        # written after the latest checkpoint, which the resumed run writes again.
        exp = self.write("long.toml", TINY.replace("train_size = 256", "train_size = 16384")
                         .replace("epochs = 2", "epochs = 3").replace("steps = 2", "steps = 5")
                         .replace("[train]", "[train]\nlog_every = 1\ncheckpoint_minutes = 0.01")
                         .replace("[run]", "[run]\ntensorboard = true"))
        cmd = [cli.ARDKIT, "run", str(exp), "--output", str(self.dir / "runs"), "--threads", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        metrics = lambda: list((self.dir / "runs").glob("*/metrics.jsonl"))
        checkpoint = lambda: list((self.dir / "runs").glob("*/checkpoints/last.pt"))
        count = lambda: metrics()[0].read_text().count("\n")
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if metrics() and checkpoint() and count() >= 40:
                saved, seen = checkpoint()[0].stat().st_mtime_ns, count()
                time.sleep(0.05)
                if checkpoint()[0].stat().st_mtime_ns == saved and count() >= seen + 2:
                    break  # lines past the checkpoint, which has not moved since
            time.sleep(0.01)
        self.assertIsNone(proc.poll(), "the run ended before it could be killed")
        proc.kill()
        proc.communicate()
        [folder] = [m.parent for m in metrics()]
        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resuming", resumed.stderr)
        lines = metrics_lines(folder)
        step_lines = [l["step"] for l in lines if l["type"] == "step"]
        self.assertGreater(len(step_lines), len(set(step_lines)),
                           "the kill should have left steps that the resumed run wrote again")
        scalars = self.scalars(read_events(self.event_file(folder), self))
        self.assert_scalars_match(folder, scalars)
        self.assertEqual(sorted(s for t, s in scalars if t == "train/loss"), sorted(set(step_lines)))


class AttackProgress(CliCase):
    def test_autoattack_reports_stage_robust_points_and_eta_inside_a_batch(self):
        exp = self.write("exp.toml", TINY)
        trained = run("run", str(exp), "--output", str(self.dir / "runs"))
        self.assertEqual(trained.returncode, 0, trained.stderr)
        [folder] = self.completed_runs()
        # One batch of AutoAttack at a small radius (most points stay robust, so every stage
        # runs its whole budget), on a terminal: the progress line is redrawn within the batch.
        cmd = [cli.ARDKIT, "eval", str(folder), "--suite", "standard", "--eps", "0.01",
               "--points", "64", "--batch-size", "64", "-o", str(self.dir / "aa.json")]
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        output = b""
        deadline = time.time() + 600
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=60)
        os.close(master)
        text = output.decode(errors="replace")
        if os.environ.get("ARDKIT_SHOW_PROGRESS"):
            print(text)
        self.assertEqual(proc.returncode, 0, text[-2000:])
        redraws = [r for r in re.split(r"[\r\n]", text) if "autoattack" in r]
        stages, totals = {}, set()
        for line in redraws:
            for stage, robust, total in re.findall(r"(apgd-ce|apgd-t|fab-t|square) \(robust (\d+)/(\d+)\)", line):
                self.assertLessEqual(int(robust), int(total))
                totals.add(int(total))  # the batch: the clean-correct points among the 64
                stages.setdefault(stage, []).append(line)
        self.assertEqual(len(totals), 1, totals)
        self.assertLessEqual(totals.pop(), 64)
        # Within the one batch, several stages were seen, each with an ETA and its own count.
        self.assertGreaterEqual(len(stages), 2, redraws[-5:])
        self.assertTrue(any("eta" in l and "step" in l for l in stages.get("apgd-t", [])), stages.keys())
        self.assertTrue(any("target" in l for l in stages.get("apgd-t", [])))
        report = json.loads((self.dir / "aa.json").read_text())
        self.assertIn("autoattack", report["attacks"])


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
