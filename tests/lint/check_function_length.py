#!/usr/bin/env python3
"""No function in core, registry or tools runs past LIMIT lines, so each reads as one step.

A function is a brace body whose header (the text since the previous ';', '{' or '}') ends in a
parameter list, outside any other function: free functions, methods defined in or out of their
class, constructors. Lambdas and blocks count towards the function they are in. Strings, raw
strings and comments are skipped. A documented dispatch table (a switch over opcodes, a table of
cases) may be longer: the comment just above its header says "dispatch table".

usage: check_function_length.py REPOSITORY [LIMIT]
"""
import re
import sys
from pathlib import Path

FOLDERS = ("core", "registry", "tools")
SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$")


def code_only(text):
    """The text with comments, strings and character literals blanked, newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2); j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) + len(m.group(1)) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:end])); i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def functions(path):
    """(first line, last line, header) of each outermost function body in the file."""
    raw = path.read_text()
    text = code_only(raw)
    stack, found, header_start = [], [], 0
    for i, c in enumerate(text):
        if c == "{":
            if any(k == "function" for k, _ in stack):
                stack.append(("block", i)); continue
            header = text[header_start:i]
            flat = " ".join(header.split())
            if SCOPE.search(flat) and not flat.rstrip().endswith(")"):
                kind = "scope"
            elif re.search(r"\)\s*(const|noexcept|override|final|mutable|\s|->\s*[\w:<>,&* ]+)*$", flat) \
                    or re.search(r"\)\s*:\s*.*\)\s*$", flat):
                kind = "function"
            else:
                kind = "data"
            stack.append((kind, header_start if kind == "function" else i))
            if kind != "function":
                header_start = i + 1
        elif c == "}":
            if not stack:
                continue
            kind, begin = stack.pop()
            if kind == "function":
                first = raw.count("\n", 0, begin + len(text[begin:]) - len(text[begin:].lstrip())) + 1
                last = raw.count("\n", 0, i) + 1
                found.append((first, last))
            if not any(k == "function" for k, _ in stack):
                header_start = i + 1
        elif c == ";" and not any(k == "function" for k, _ in stack):
            header_start = i + 1
    lines = raw.split("\n")
    out = []
    for first, last in found:
        while lines[first - 1].strip() in ("", "public:", "private:", "protected:") or \
                lines[first - 1].strip().startswith("//"):
            first += 1
        out.append((first, last, lines[first - 1].strip()))
    return out


def main():
    root = Path(sys.argv[1])
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    long = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.cpp")):
            lines = path.read_text().split("\n")
            for first, last, header in functions(path):
                size = last - first + 1
                above = "\n".join(lines[max(0, first - 4):first - 1])
                if size > limit and "dispatch table" not in above:
                    long.append(f"{path.relative_to(root)}:{first}: {size} lines: {header[:60]}")
    for entry in long:
        print(entry)
    if long:
        print(f"{len(long)} function(s) longer than {limit} lines: split them into stages a "
              "reader can follow (a documented dispatch table says so in the comment above it)")
        return 1
    print(f"every function in {', '.join(FOLDERS)} is at most {limit} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
