"""Every regex of the product runs in linear time on hostile text (issue 18 §2).

A regex that backtracks catastrophically holds the GIL: one anonymous request carrying a
run of backslashes froze every request and queue message of the host. This test finds
every regex of ``shared/`` and ``functions/`` (compiled patterns the modules hold, and the
string literals handed to ``re.compile``/``re.sub``/``re.match``/... anywhere in the code,
found with ``ast``) and runs each over 10,000-character adversarial texts: runs of every
special character, pairs of them, and the pattern's own words followed by such runs (what
reaches a pattern's slow path). Any run over 50 ms fails.

The runs happen in a child process the test can kill: an exponential pattern would
otherwise never return (the regex engine holds the GIL and ignores signals).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import multiprocessing
import pkgutil
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "functions")
LENGTH = 10_000
BUDGET_SECONDS = 0.050
HUNG_SECONDS = 3.0  # a run this long is catastrophic: the child is killed and the pattern fails
# Characters that start or continue the paths a pattern can take, and that hostile text uses.
SPECIALS = "\\/\"'=:;,.-_ \t\n@<>#?&%|(){}[]*+^$~!`0aZ"
FLAG_NAMES = {"IGNORECASE": re.IGNORECASE, "I": re.IGNORECASE, "MULTILINE": re.MULTILINE, "M": re.MULTILINE,
              "DOTALL": re.DOTALL, "S": re.DOTALL, "VERBOSE": re.VERBOSE, "X": re.VERBOSE, "ASCII": re.ASCII,
              "A": re.ASCII}
RE_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}


@dataclass(frozen=True)
class FoundPattern:
    where: str
    source: str
    flags: int

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.source, self.flags)


def _modules() -> Iterator[Any]:
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            yield importlib.import_module(info.name)


def _held(value: Any, where: str, depth: int = 0) -> Iterator[tuple[str, re.Pattern[str]]]:
    """Patterns in a module-level value: itself, or inside tuples, lists, sets and dicts."""
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            yield where, value
    elif depth < 3 and isinstance(value, tuple | list | set | frozenset):
        for index, item in enumerate(value):
            yield from _held(item, f"{where}[{index}]", depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for key, item in value.items():
            yield from _held(item, f"{where}[{key!r}]", depth + 1)


def compiled_patterns() -> list[FoundPattern]:
    found: list[FoundPattern] = []
    for module in _modules():
        for name, value in vars(module).items():
            holders = [(f"{module.__name__}.{name}", value)]
            if isinstance(value, type) and value.__module__ == module.__name__:  # class attributes too
                holders = [(f"{module.__name__}.{name}.{attr}", held) for attr, held in vars(value).items()]
            for where, holder in holders:
                found += [FoundPattern(at, p.pattern, p.flags) for at, p in _held(holder, where)]
    return found


def _flags(node: ast.expr | None) -> int | None:
    """The value of a flags argument made of ``re.X`` names joined by ``|``; None: not static."""
    if node is None:
        return 0
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "re":
        return int(FLAG_NAMES.get(node.attr, 0)) if node.attr in FLAG_NAMES else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _flags(node.left), _flags(node.right)
        return None if left is None or right is None else left | right
    return None


def literal_patterns() -> list[FoundPattern]:
    """String literals passed as the pattern of a ``re.*`` call anywhere in the sources
    (in functions too, which no module attribute holds)."""
    found: list[FoundPattern] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                        and node.func.attr in RE_FUNCTIONS and node.args):
                    continue
                pattern = node.args[0]
                if not (isinstance(pattern, ast.Constant) and isinstance(pattern.value, str)):
                    continue  # an f-string or a name: compiled at import, found among the module's patterns
                flag_position = {"compile": 1, "match": 2, "fullmatch": 2, "search": 2, "findall": 2,
                                 "finditer": 2, "split": 3, "sub": 4, "subn": 4}[node.func.attr]
                flag_node = next((k.value for k in node.keywords if k.arg == "flags"), None)
                if flag_node is None and len(node.args) > flag_position:
                    flag_node = node.args[flag_position]
                flags = _flags(flag_node)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                flags = re.compile(pattern.value, 0 if flags is None else flags).flags  # as compiled ones report them
                found.append(FoundPattern(where, pattern.value, flags))
    return found


def all_patterns() -> list[FoundPattern]:
    unique: dict[tuple[str, int], FoundPattern] = {}
    for pattern in compiled_patterns() + literal_patterns():
        unique.setdefault((pattern.source, pattern.flags), pattern)
    return list(unique.values())


def _fill(fragment: str, length: int = LENGTH) -> str:
    return (fragment * (length // max(len(fragment), 1) + 1))[:length]


def _words(source: str) -> list[str]:
    """The literal words of a pattern (``token``, ``eyJ``, ``cookie``, ``invitations`` ...):
    hostile text starts with them to reach the pattern's later, slower parts."""
    plain = re.sub(r"\\.", " ", source)
    return sorted(set(re.findall(r"[A-Za-z][A-Za-z_\-]{2,}", plain)))[:12]


def adversarial_inputs(source: str) -> Iterator[tuple[str, str]]:
    for char in SPECIALS:
        yield f"run of {char!r}", _fill(char)
        yield f"'a' then run of {char!r} then '!'", "a" + _fill(char, LENGTH - 2) + "!"
    for first, second in itertools.combinations("\\/\"'=:;,.-_ @<>", 2):
        yield f"run of {first + second!r}", _fill(first + second)
    for mixed in ('\\"', "\\'", '"\\', "\\\\\"", " \t", "-eyJ", "a@", "@a.", "=a&", "a=", ":\"", "\": \"\\",
                  "\\x", "\\\\n", "<a@b>", "%2", "\r\n ", "1-", "2024-01-01 "):
        yield f"run of {mixed!r}", _fill(mixed)
    for word in _words(source):
        for char in "\\\"' =:-_.@/":
            yield f"{word!r} and run of {char!r}", _fill(word + char)
            for lead in (f'"{word}": "', f"'{word}': '", f"{word}: ", f"{word}=", f"{word} ", f"/{word}/"):
                yield f"{lead!r} then run of {char!r}", lead + _fill(char, LENGTH - len(lead))


def _worker(patterns: list[tuple[str, int]], start: int, pipe: Connection) -> None:
    for index in range(start, len(patterns)):
        source, flags = patterns[index]
        pattern = re.compile(source, flags)
        for label, text in adversarial_inputs(source):
            pipe.send(("start", index, label))
            best = float("inf")
            for _ in range(3):  # the best of up to three: the machine is shared, the budget is not
                began = time.perf_counter()
                pattern.subn("", text)  # every start position is tried, as search/findall/sub do
                best = min(best, time.perf_counter() - began)
                if best <= BUDGET_SECONDS:
                    break
            pipe.send(("done", index, label, best))
    pipe.send(("end",))


def measure(patterns: list[FoundPattern]) -> dict[int, tuple[str, float]]:
    """The slowest (input, seconds) of each pattern; a hung run counts as ``HUNG_SECONDS``."""
    plain = [(p.source, p.flags) for p in patterns]
    slowest: dict[int, tuple[str, float]] = {}
    context = multiprocessing.get_context("fork")
    start = 0
    while start < len(plain):
        receiving, sending = context.Pipe(duplex=False)
        child = context.Process(target=_worker, args=(plain, start, sending), daemon=True)
        child.start()
        sending.close()
        running: tuple[int, str] | None = None
        try:
            while True:
                if not receiving.poll(HUNG_SECONDS):
                    assert running is not None, "the regex worker did not start"
                    index, label = running
                    slowest[index] = (f"{label} (killed after {HUNG_SECONDS:.0f} s)", HUNG_SECONDS)
                    start = index + 1
                    break
                message = receiving.recv()
                if message[0] == "end":
                    start = len(plain)
                    break
                if message[0] == "start":
                    running = (message[1], message[2])
                    continue
                _, index, label, seconds = message
                if seconds > slowest.get(index, ("", -1.0))[1]:
                    slowest[index] = (label, seconds)
        finally:
            child.kill()
            child.join()
            receiving.close()
    return slowest


def test_the_search_finds_the_patterns_it_must() -> None:
    """The finder itself: the redaction patterns (in a tuple), a class-free module-level
    pattern, and a literal passed to re.sub inside a function are all found."""
    wheres = {p.where for p in all_patterns()}
    sources = {p.source for p in all_patterns()}
    assert any(w.startswith("shared.observability._PATTERNS") for w in wheres)
    assert any(w.startswith("shared.storage.keys._FORBIDDEN") for w in wheres)
    assert '["\\\\]' in sources  # shared/web/users_pages.py: re.sub(r'["\\]', "", ...) in a function
    assert len(sources) >= 25


def _too_slow(patterns: list[FoundPattern]) -> list[str]:
    slowest = measure(patterns)
    return [f"{patterns[i].where}: {patterns[i].source!r} took {seconds * 1000:.0f} ms on {label}"
            for i, (label, seconds) in sorted(slowest.items()) if seconds > BUDGET_SECONDS]


def test_every_regex_is_linear_on_adversarial_input() -> None:
    too_slow = _too_slow(all_patterns())
    assert not too_slow, "regexes slower than 50 ms on 10,000 characters:\n" + "\n".join(too_slow)


if __name__ == "__main__":  # the figures: python -m tests.unit.test_regex_safety
    found = all_patterns()
    began = time.perf_counter()
    figures = measure(found)
    for i, (label, seconds) in sorted(figures.items(), key=lambda item: -item[1][1])[:10]:
        print(f"{seconds * 1000:8.1f} ms  {found[i].where}  {label}")
    print(f"{len(found)} patterns, {time.perf_counter() - began:.1f} s in all")
