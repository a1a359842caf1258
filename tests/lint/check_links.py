#!/usr/bin/env python3
"""Checks the links of the repository's Markdown files: every relative link names a file or
folder that exists, and every #anchor a heading of its target (GitHub's slugs). External links
(http, https, mailto) are not followed: nothing is downloaded. Exit 1 with one line per broken
link, naming FILE:LINE, the link and what is missing."""
import re
import subprocess
import sys
from pathlib import Path

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(title):
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to -."""
    title = re.sub(r"`([^`]*)`", r"\1", title)
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
    title = title.strip().lower()
    title = re.sub(r"[^\w\- ]", "", title)
    return title.replace(" ", "-")


def lines_outside_code(path):
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(path, cache={}):
    if path not in cache:
        seen, out = {}, set()
        for _, line in lines_outside_code(path):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                out.add(base if count == 0 else f"{base}-{count}")
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', path.read_text(encoding="utf-8")))
        cache[path] = out
    return cache[path]


def check(root, files):
    problems = []
    for rel in files:
        path = root / rel
        for number, line in lines_outside_code(path):
            line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path.resolve()
                where = f"{rel}:{number}: link ({target})"
                if not dest.exists():
                    problems.append(f"{where}: {file_part} does not exist")
                    continue
                if root.resolve() not in dest.parents and dest != root.resolve():
                    problems.append(f"{where}: points outside the repository")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where}: {dest.name} has no heading with anchor #{anchor}")
    return problems


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    files = subprocess.run(["git", "-C", str(root), "ls-files", "*.md"], capture_output=True,
                           text=True, check=True).stdout.split()
    problems = check(root, files)
    for p in problems:
        print(p)
    print(f"{len(files)} Markdown files, {len(problems)} broken links")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
