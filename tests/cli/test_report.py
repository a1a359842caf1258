#!/usr/bin/env python3
"""`ardkit report`: grouping, every format, the results index and the HTML page."""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import cli_case as cli
from cli_case import SET_ASIDE, TINY, CliCase, run


def png_is_blank(path):
    """Whether a PNG (as Chromium writes it: 8-bit RGB(A), not interlaced) is one flat colour:
    inflate its pixel rows and count distinct filtered byte values (a flat page has a handful)."""
    import struct
    import zlib
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) < 16


class Report(CliCase):
    """`ardkit report`: a grid's cells grouped by axes with mean ± std over seeds, every format,
    the results index, and the HTML page in a real headless Chromium."""

    def setUp(self):
        super().setUp()
        self.write("a.toml", TINY.replace('name = "tiny"', 'name = "a"').replace("epochs = 2", "epochs = 1"))
        self.grid = self.write("grid.toml", f"""
[grid]
experiment = "a.toml"
output = "{self.dir / 'runs'}"
[axes]
objective.plugin = ["pgd_at", "trades"]
run.seed = [0, 1]
[[zip]]
attack.eps = [0.05, 0.1]
eval.0.eps = [0.05, 0.1]
eval.1.eps = [0.05, 0.1]
""")
        done = run("grid", str(self.grid), "--jobs", "2", "--threads", "1")
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_runs_of_one_name_are_told_apart(self):
        # Given as a folder, the grid's eight runs are all called "a"; grouped by name alone they
        # were averaged into one row of n = 8, as if they were seeds.
        result = run("report", str(self.dir / "runs"), "--checkpoint", "last", "--format", "csv")
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = result.stdout.strip().splitlines()
        header = rows[0].split(",")
        self.assertEqual(header[:3], ["name", "attack.eps", "objective.plugin"], rows[0])
        cells = sorted(tuple(r.split(",")[:3]) for r in rows[1:])
        self.assertEqual(cells, [("a", eps, obj) for eps in ("0.05", "0.1") for obj in ("pgd_at", "trades")])
        self.assertTrue(all(r.split(",")[header.index("n")] == "2" for r in rows[1:]), rows)

    def test_formats_group_and_aggregate_over_seeds(self):
        js = run("report", str(self.grid), "--format", "json", "--checkpoint", "last")
        self.assertEqual(js.returncode, 0, js.stderr)
        report = json.loads(js.stdout)
        # A [[zip]] group is grouped by its first key: the others move with it.
        self.assertEqual(report["group_by"], ["objective.plugin", "attack.eps"])
        self.assertEqual(report["metrics"], ["clean", "fgsm", "pgd10", "worst_case"])
        self.assertEqual(len(report["groups"]), 4)
        self.assertEqual(len(report["runs"]), 8)
        # Each group's numbers are the mean and sample std of its two seeds' results.json.
        for g in report["groups"]:
            self.assertEqual(g["n"], 2)
            values = []
            for run_id in g["runs"]:
                r = json.loads((self.dir / "runs" / run_id / "results.json").read_text())
                values.append(r["last"]["attacks"]["pgd10"]["robust_acc"])
                self.assertEqual(r["norm"]["pgd10"], "linf")
                self.assertEqual(r["eps"]["pgd10"], float(g["keys"]["attack.eps"]))
            mean = sum(values) / 2
            std = (sum((v - mean) ** 2 for v in values)) ** 0.5  # n - 1 = 1
            self.assertAlmostEqual(g["metrics"]["pgd10"]["mean"], mean, places=9)
            self.assertAlmostEqual(g["metrics"]["pgd10"]["std"], std, places=9)
        first = report["groups"][0]
        table = run("report", str(self.grid), "--by", "objective.plugin", "--checkpoint", "last")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("objective.plugin  checkpoint  n", table.stdout)
        self.assertIn("pgd_at            last        4", table.stdout)
        md = run("report", str(self.grid), "--format", "markdown", "--checkpoint", "last").stdout
        self.assertIn("| objective.plugin | attack.eps |", md)
        self.assertIn("| %.2f ± %.2f |" % (first["metrics"]["pgd10"]["mean"], first["metrics"]["pgd10"]["std"]), md)
        csv = run("report", str(self.grid), "--format", "csv", "--checkpoint", "best").stdout.splitlines()
        self.assertEqual(csv[0].split(",")[:4], ["objective.plugin", "attack.eps", "checkpoint", "n"])
        self.assertEqual(len(csv), 5)
        tex = run("report", str(self.grid), "--format", "latex").stdout
        self.assertIn("\\toprule", tex)
        self.assertIn("$\\pm$", tex)
        self.assertIn("objective.plugin & attack.eps", tex)
        rb = json.loads(run("report", str(self.grid), "--format", "robustbench", "--checkpoint", "last").stdout)
        self.assertEqual(len(rb), 8)
        self.assertEqual({m["eps"] for m in rb}, {"0.05", "0.1"})
        self.assertEqual(rb[0]["dataset"], "synthetic")
        # The index holds every run and can be queried with SQL.
        import sqlite3
        db = sqlite3.connect(self.dir / "runs/index.sqlite")
        self.assertEqual(db.execute("select count(*) from runs").fetchone()[0], 8)
        self.assertEqual(db.execute("select count(distinct cell) from coordinates").fetchone()[0], 8)
        # Training metrics per epoch, for curves and SQL.
        self.assertEqual(db.execute("select count(distinct folder) from epochs where metric = 'train_loss'").fetchone()[0], 8)
        db.close()
        # Rebuilt from the folders when deleted or asked.
        (self.dir / "runs/index.sqlite").unlink()
        again = json.loads(run("report", str(self.grid), "--format", "json", "--checkpoint", "last").stdout)
        self.assertEqual(again["groups"], report["groups"])
        self.assertEqual(run("report", str(self.grid), "--rebuild-index").returncode, 0)
        # A folder of runs, labelled by run name; --by name pools runs that differ, when asked.
        plain = run("report", str(self.dir / "runs"), "--checkpoint", "last", "--by", "name")
        self.assertIn("a     last        8", plain.stdout)
        self.assert_error(run("report", str(self.grid), "--by", "atack.eps"), 2,
                          "--by atack.eps: not a coordinate of these runs (did you mean 'attack.eps'?)", runs_allowed=True)
        self.assert_error(run("report", str(self.grid), "--format", "xlsx"), 2, "is not one of", runs_allowed=True)

    def test_html_page_renders_in_headless_chromium(self):
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium not installed (bash tools/setup.sh --tests installs it)")
        page = self.dir / "report.html"
        made = run("report", str(self.grid), "--html", str(page), "--format", "json", "--checkpoint", "last",
                   "--heatmap", "objective.plugin,attack.eps")
        self.assertEqual(made.returncode, 0, made.stderr)
        report = json.loads(made.stdout)
        html = page.read_text()
        self.assertNotIn("http://", html.split("Chart.js")[0])  # nothing fetched: all inlined
        self.assertNotIn("<script src", html)
        chrome = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,2400",
                  "--user-data-dir=" + str(self.dir / "chrome")]
        dom = subprocess.run(chrome + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        self.assertEqual(dom.returncode, 0, dom.stderr)
        import re
        body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
        attrs = dict(re.findall(r'data-(\w+)="(\d+)"', body))
        self.assertEqual(attrs.get("ready"), "1", body)
        self.assertEqual(attrs.get("errors"), "0", dom.stdout[:2000])
        # scatter, the eps curve, and one training curve per metric (lr, losses, validation)
        self.assertGreaterEqual(int(attrs["charts"]), 5)
        self.assertEqual(attrs["painted"], attrs["charts"])
        # The numbers in the page are the JSON's.
        cells = re.findall(r'<td class="num" data-metric="(\w+)">([^<]+)</td>', dom.stdout)
        expected = [(m, "%.2f ± %.2f" % (g["metrics"][m]["mean"], g["metrics"][m]["std"]))
                    for g in report["groups"] for m in report["metrics"]]
        self.assertEqual(cells, expected)
        self.assertIn('id="heatmap-table"', dom.stdout)
        # A run has one colour in every chart: the colour of its value of the colour key (the
        # first grouping key that is not an eps axis) in the scatter, the eps lines and the curves.
        import html as html_lib
        legend = json.loads(html_lib.unescape(
            re.search(r'<pre id="legend-colours" hidden="">(.*?)</pre>', dom.stdout, re.S).group(1)))
        key = next(k for k in report["group_by"] if not re.search(r"(^|\.)eps$", k))
        scatter = legend["last checkpoint"]
        self.assertGreaterEqual(len(scatter), 2, legend)
        self.assertEqual(len(set(scatter.values())), len(scatter), scatter)  # told apart
        compared = 0
        for title, entries in legend.items():
            for label, colour in entries.items():
                words = label.split()
                value = next((w.split("=", 1)[1] for w in words if w.startswith(key + "=")), None)
                if value is None and title.startswith("worst case against"):
                    value = words[0]
                if value in scatter:
                    self.assertEqual(colour, scatter[value], f"{label} in chart {title!r}")
                    compared += 1
        self.assertGreaterEqual(compared, 2 * len(scatter), legend)
        self.assertIn("objective.plugin", dom.stdout.split('id="diffs"')[1])  # the config diff
        shot = self.dir / "shot.png"
        subprocess.run(chrome + ["--screenshot=" + str(shot), page.as_uri()], capture_output=True, timeout=120)
        self.assertTrue(shot.exists())
        self.assertFalse(png_is_blank(shot))


if __name__ == "__main__":
    cli.main(sys.modules[__name__])
