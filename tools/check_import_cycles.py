#!/usr/bin/env python3
"""Reports file-level import cycles inside each Rust crate of the repository.

A file depends on another file of the same crate when it names an item of it through a
crate-relative path: `use crate::…`, `use super::…`, `use self::…`, a `use` of a child module
(`use child::Item`), or such a path written in code (`crate::lm::check_vocab(…)`). Re-exports are
followed to the file that defines the item (`crate::Error` is error.rs, not lib.rs, when lib.rs
says `pub use error::Error`), so a `mod.rs` or `lib.rs` that only declares modules and re-exports
their items is no part of a cycle. `mod child;` declarations are structure, not imports.
Comments, doc comments and string literals are ignored.

Every crate target is checked: the library, binaries, tests, examples and benches of every
Cargo.toml package under the root (the `target` folder and hidden folders excluded).

Usage: check_import_cycles.py [ROOT]   (ROOT defaults to the repository holding this script)
Exit status: 0 when no crate has a cycle, 1 when one has (each cycle is printed with the lines
that close it), 2 on a usage error.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# ---- lexing: blank out comments, strings and char literals, keeping offsets and newlines ----


def strip_code(src: str) -> str:
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = src.find(end, m.end())
            j = n if j < 0 else j + len(end)
            blank(i + 1, j - 1)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            m = re.compile(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'").match(src, i)
            if m:
                blank(i + 1, m.end() - 1)
                i = m.end()
            else:
                i += 1  # a lifetime or label
        else:
            i += 1
    return "".join(out)


# ---- use trees ----------------------------------------------------------------------------

TOKEN = re.compile(r"::|[{},*;]|\bas\b|[A-Za-z_][A-Za-z0-9_]*|\S")


def parse_use_tree(text: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::d as e, f::*}` → [(["a","b"], None), (["a","c","d"], "e"), (["a","f","*"], None)]."""
    toks = TOKEN.findall(text)
    pos = 0

    def tree(prefix: list[str]) -> list[tuple[list[str], str | None]]:
        nonlocal pos
        path = list(prefix)
        if pos < len(toks) and toks[pos] == "::":  # a leading `::` (`use ::std::…`)
            pos += 1
        while pos < len(toks):
            t = toks[pos]
            if t == "{":
                pos += 1
                items = []
                while pos < len(toks) and toks[pos] != "}":
                    items += tree(path)
                    if pos < len(toks) and toks[pos] == ",":
                        pos += 1
                pos += 1
                return items
            if t == "*":
                pos += 1
                return [(path + ["*"], None)]
            path.append(t)
            pos += 1
            if pos < len(toks) and toks[pos] == "::":
                pos += 1
                continue
            alias = None
            if pos + 1 < len(toks) and toks[pos] == "as":
                alias = toks[pos + 1]
                pos += 2
            return [(path, alias)]
        return [(path, None)] if path != prefix else []

    return tree([])


# ---- modules ------------------------------------------------------------------------------


@dataclass
class Module:
    path: tuple[str, ...]
    file: Path
    children: dict[str, "Module"] = field(default_factory=dict)
    items: set[str] = field(default_factory=set)
    # name → (absolute path or None for external, line, is glob)
    imports: dict[str, tuple[tuple[str, ...] | None, int]] = field(default_factory=dict)
    globs: list[tuple[tuple[str, ...], int]] = field(default_factory=list)
    span: tuple[int, int] = (0, 1 << 62)  # within its file (inline modules)


@dataclass
class Ref:
    module: Module  # where the reference is written
    path: list[str]  # as written, e.g. ["crate", "lm", "check_vocab"] or ["child", "Item"]
    line: int
    is_use: bool


ITEM = re.compile(
    r"\b(?:fn|struct|enum|trait|type|const|static|union)\s+([A-Za-z_][A-Za-z0-9_]*)"
    r"|\bmacro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)"
)
MOD_DECL = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([;{])")
USE = re.compile(r"(?<![\w:])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]*);")
PATH = re.compile(r"(?<![\w:$.])([A-Za-z_][A-Za-z0-9_]*)((?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def matching_brace(text: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(text)


class Crate:
    def __init__(self, root: Path):
        self.root_file = root
        self.texts: dict[Path, str] = {}
        self.refs: list[Ref] = []
        self.root = self.load_file(root, (), root.parent, True)

    def load_file(self, file: Path, path: tuple[str, ...], dir_: Path, owns_dir: bool) -> Module:
        """Loads `file` as module `path`; `dir_` is where its `mod x;` children live."""
        text = strip_code(file.read_text(encoding="utf-8"))
        self.texts[file] = text
        top = Module(path, file)
        # Inline modules, innermost last, so that a position maps to the deepest one.
        scopes: list[Module] = [top]
        for m in MOD_DECL.finditer(text):
            name, kind = m.group(1), m.group(2)
            parent = self.scope_at(scopes, m.start())
            inline_dirs = list(parent.path[len(path):])
            if kind == "{":
                end = matching_brace(text, m.end() - 1)
                child = Module(parent.path + (name,), file, span=(m.end(), end))
                parent.children[name] = child
                scopes.append(child)
            else:
                base = dir_ if owns_dir else dir_ / file.stem
                base = base.joinpath(*inline_dirs)
                for cand, owns in ((base / f"{name}.rs", False), (base / name / "mod.rs", True)):
                    if cand.exists():
                        sub_dir = cand.parent if owns else cand.parent
                        parent.children[name] = self.load_file(
                            cand, parent.path + (name,), sub_dir, owns
                        )
                        break
        for m in ITEM.finditer(text):
            self.scope_at(scopes, m.start()).items.add(m.group(1) or m.group(2))
        uses = []
        for m in USE.finditer(text):
            scope = self.scope_at(scopes, m.start())
            line = line_of(text, m.start())
            uses.append((m.start(), m.end()))
            for p, alias in parse_use_tree(m.group(2)):
                if not p:
                    continue
                self.refs.append(Ref(scope, p, line, True))
                if p[-1] == "*":
                    scope.globs.append((tuple(p[:-1]), line))
                else:
                    name = alias or (p[-2] if p[-1] == "self" and len(p) > 1 else p[-1])
                    if name != "_":
                        scope.imports[name] = (tuple(p), line)
        for m in PATH.finditer(text):
            if any(a <= m.start() < b for a, b in uses):
                continue
            if re.search(r"\bin\s*$", text[max(0, m.start() - 8) : m.start()]):
                continue  # `pub(in crate::x)`
            segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
            scope = self.scope_at(scopes, m.start())
            self.refs.append(Ref(scope, segs, line_of(text, m.start()), False))
        return top

    @staticmethod
    def scope_at(scopes: list[Module], offset: int) -> Module:
        best = scopes[0]
        for s in scopes[1:]:
            if s.span[0] <= offset <= s.span[1] and len(s.path) > len(best.path):
                best = s
        return best

    def module(self, path: tuple[str, ...]) -> Module | None:
        m = self.root
        for s in path:
            m = m.children.get(s)
            if m is None:
                return None
        return m

    def absolute(self, scope: Module, segs: list[str]) -> tuple[str, ...] | None:
        """The crate-absolute path of a path written in `scope`, or None when it leaves the crate
        (another crate, the standard library, or an item of `scope` itself such as `Self::`)."""
        if not segs:
            return None
        cur = list(scope.path)
        if segs[0] == "crate":
            return tuple(segs[1:])
        if segs[0] in ("super", "self"):
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if not cur:
                        return None
                    cur.pop()
                k += 1
            return tuple(cur) + tuple(segs[k:])
        if segs[0] in scope.children:
            return tuple(cur) + tuple(segs)
        return None

    def resolve(self, path: tuple[str, ...], seen: set) -> Path | None:
        """The file defining what `path` (crate-absolute) names."""
        if path in seen:
            return None
        seen = seen | {path}
        m, k = self.root, 0
        while k < len(path) and path[k] in m.children:
            m = m.children[path[k]]
            k += 1
        rest = path[k:]
        if not rest or rest[0] in ("*", "self"):
            return m.file
        name = rest[0]
        if name in m.items:
            return m.file
        if name in m.imports:
            target, _ = m.imports[name]
            ab = self.absolute(m, list(target))
            if ab is None:
                return None  # another crate's item
            return self.resolve(ab + rest[1:], seen)
        for g, _ in m.globs:
            ab = self.absolute(m, list(g))
            if ab is None:
                continue
            gm = self.module(ab)
            if gm is not None and (name in gm.items or name in gm.imports or name in gm.children):
                return self.resolve(ab + rest, seen)
        if m is self.root:
            for mod in self.all_modules():
                if name in mod.items and re.search(
                    rf"macro_rules!\s*{re.escape(name)}\b", self.texts[mod.file]
                ):
                    return mod.file
        return m.file

    def all_modules(self):
        stack = [self.root]
        while stack:
            m = stack.pop()
            yield m
            stack.extend(m.children.values())

    def edges(self) -> dict[Path, dict[Path, int]]:
        out: dict[Path, dict[Path, int]] = {f: {} for f in self.texts}
        for r in self.refs:
            if r.path[-1] == "*" and len(r.path) == 1:
                continue
            ab = self.absolute(r.module, r.path)
            if ab is None:
                continue
            target = self.resolve(ab, set())
            src = r.module.file
            if target is not None and target != src:
                out[src].setdefault(target, r.line)
        return out


# ---- crates and targets -------------------------------------------------------------------


def read_manifest(text: str) -> dict:
    """The parts of a Cargo.toml this script needs: `[package]`, `[lib] path` and the `path`s of
    `[[bin]]`, `[[test]]`, `[[example]]` and `[[bench]]` (tomllib where Python has it, 3.11+)."""
    try:
        import tomllib

        return tomllib.loads(text)
    except ImportError:
        pass
    out: dict = {}
    table: dict | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if m := re.fullmatch(r"\[\[\s*([\w.-]+)\s*\]\]", line):
            table = {}
            out.setdefault(m.group(1), []).append(table)
        elif m := re.fullmatch(r"\[\s*([\w.-]+)\s*\]", line):
            table = out.setdefault(m.group(1), {})
        elif table is not None and (m := re.fullmatch(r'path\s*=\s*"([^"]*)"', line)):
            table["path"] = m.group(1)
    return out


def crate_roots(pkg: Path) -> list[Path]:
    try:
        manifest = read_manifest((pkg / "Cargo.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"warning: {pkg / 'Cargo.toml'}: {e}", file=sys.stderr)
        return []
    if "package" not in manifest:
        return []
    roots: set[Path] = set()
    lib = manifest.get("lib", {})
    roots.add(pkg / lib.get("path", "src/lib.rs"))
    for kind in ("bin", "test", "example", "bench"):
        for t in manifest.get(kind, []):
            if "path" in t:
                roots.add(pkg / t["path"])
    roots.add(pkg / "src" / "main.rs")
    roots.add(pkg / "build.rs")
    for d in ("src/bin", "tests", "examples", "benches"):
        base = pkg / d
        if base.is_dir():
            roots.update(base.glob("*.rs"))
            roots.update(p for p in base.glob("*/main.rs"))
    return sorted(r for r in roots if r.is_file())


def packages(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d != "target" and d != "node_modules"
        )
        if "Cargo.toml" in filenames:
            found.append(Path(dirpath))
    return found


def sccs(graph: dict[Path, dict[Path, int]]) -> list[list[Path]]:
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on: set[Path] = set()
    stack: list[Path] = []
    result = []
    counter = [0]

    def visit(v: Path) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                result.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def one_cycle(graph: dict[Path, dict[Path, int]], comp: list[Path]) -> list[Path]:
    """A shortest cycle through the first file of a strongly connected component."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__)
        return 2
    root = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parent.parent
    if not root.is_dir():
        print(f"{root}: not a folder", file=sys.stderr)
        return 2
    reported: set[tuple[Path, ...]] = set()
    crates = 0
    for pkg in packages(root):
        for target in crate_roots(pkg):
            crates += 1
            crate = Crate(target)
            graph = crate.edges()
            for comp in sccs(graph):
                key = tuple(comp)
                if key in reported:
                    continue
                reported.add(key)
                cyc = one_cycle(graph, comp)
                rel = lambda p: os.path.relpath(p, root)  # noqa: E731
                print(f"import cycle in {rel(target)}: {len(comp)} files")
                for a, b in zip(cyc, cyc[1:]):
                    print(f"  {rel(a)}:{graph[a][b]} uses {rel(b)}")
                others = [rel(p) for p in comp if p not in cyc]
                if others:
                    print(f"  (also in the cycle: {', '.join(others)})")
    if reported:
        print(f"{len(reported)} import cycle(s) found in {crates} crate targets")
        return 1
    print(f"no import cycles in {crates} crate targets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
