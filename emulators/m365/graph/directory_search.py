"""``$search`` on directory object collections (``/users``), as Graph documents it.

Source: https://learn.microsoft.com/graph/search-query-parameter ("Using $search on directory object collections")
and https://learn.microsoft.com/graph/aad-advanced-queries. What the page says, and what this module does:

* Format ``$search="clause1" [AND | OR] "[clauseX]"``; any number of clauses; parentheses for precedence.
  ``AND`` / ``OR`` stand outside the quotes and "must be in upper case" (lower case is refused here).
* Each clause is ``"<property>:<text to search>"``, wholly inside double quotes; a double quote or backslash inside
  it is escaped with a backslash. The property must be named.
* ``displayName`` and ``description`` are searched by tokens: the value and the search text are split on spaces,
  numbers, a change from lower to upper case and symbols; every token of the search text must start a token of the
  value, in any order, whatever the casing ("displayName:OneVideo" finds names with the tokens ``one`` and ``video``;
  "displayName:Guthr" finds "Guthrie"). Words separated only by symbols also make one joined token
  (``hello.world`` is found by ``helloworld``); a symbol is a token of its own (``David)`` finds "李四(David Li)").
* Any other property of String type behaves as ``$filter`` ``startsWith`` on the whole value (case-insensitive).
* The ``$filter`` of the request is ANDed with the whole ``$search``.

Not said by the page, decided here [U]: the precedence of ``AND`` against ``OR`` without parentheses. The page gives
none, so a chain is read left to right (``"a" OR "b" AND "c"`` is ``("a" OR "b") AND "c"``); parenthesise to be sure.
Also [U]: two clauses with no operator between them, an empty text after the colon, a property the resource does not
have or that is not a string, and lower-case ``and``/``or`` are refused with 400; Graph's exact wording for these is
not documented.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

from ..errors import GraphError

# The properties the page names as searched by tokens; every other string property is a startsWith.
TOKENIZED = frozenset({"displayname", "description"})
# Graph's code for refused directory queries (aad-advanced-queries); its wording for $search errors is undocumented.
SYNTAX_CODE = "Request_UnsupportedQuery"

ValueOf = Callable[[str], object]
Matcher = Callable[[ValueOf], bool]


def _syntax_error(raw: str, why: str) -> GraphError:
    return GraphError(400, SYNTAX_CODE, f"Invalid $search '{raw}': {why}. Use \"property:text\" clauses joined by "
                                        "AND or OR, e.g. \"displayName:ann\" OR \"mail:ann\".")


# ---- tokens of a value ---------------------------------------------------------------------
def _kind(char: str) -> str:
    if char.isdigit():
        return "digit"
    if char.isalpha() or unicodedata.category(char).startswith("M"):
        return "letter"
    return "symbol"


def _words(segment: str) -> list[str]:
    """Split a run without spaces or symbols into words: letters / digits, and lower→upper case changes."""
    words: list[str] = []
    current = ""
    for char in segment:
        if current:
            previous = current[-1]
            if _kind(char) != _kind(previous) or (previous.islower() and char.isupper()):
                words.append(current)
                current = ""
        current += char
    if current:
        words.append(current)
    return [word.casefold() for word in words]


def _chunks(text: str) -> list[tuple[list[str], str]]:
    """Per space-separated chunk: its tokens (words, and each symbol on its own: ``hello.world`` → ``hello``, ``.``,
    ``world``) and its words joined across symbols (``helloworld``)."""
    chunks = []
    for chunk in text.split():
        tokens: list[str] = []
        joined = ""
        segment = ""
        for char in chunk + " ":
            if char != " " and _kind(char) != "symbol":
                segment += char
                continue
            if segment:
                tokens.extend(_words(segment))
                joined += segment
                segment = ""
            if char != " ":
                tokens.append(char.casefold())
        chunks.append((tokens, joined.casefold()))
    return chunks


def value_tokens(text: str) -> set[str]:
    tokens: set[str] = set()
    for words, joined in _chunks(text):
        tokens.update(words)
        if joined:
            tokens.add(joined)
    return tokens


def _token_match(value: str, search: str) -> bool:
    tokens = value_tokens(value)
    for words, joined in _chunks(search):
        if all(any(t.startswith(w) for t in tokens) for w in words):
            continue
        if not (joined and any(t.startswith(joined) for t in tokens)):
            return False
    return True


def _prefix_match(value: object, search: str) -> bool:
    wanted = search.casefold()
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and v.casefold().startswith(wanted) for v in values)


# ---- the expression --------------------------------------------------------------------------
def _lex(raw: str) -> list[tuple[str, str]]:
    """``("clause", text)``, ``("op", "AND"|"OR")``, ``("(", "")`` and ``(")", "")``."""
    items: list[tuple[str, str]] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char.isspace():
            i += 1
        elif char in "()":
            items.append((char, ""))
            i += 1
        elif char == '"':
            text, i = [], i + 1
            while i < len(raw) and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < len(raw):
                    i += 1
                text.append(raw[i])
                i += 1
            if i >= len(raw):
                raise _syntax_error(raw, "a clause's closing double quote is missing")
            items.append(("clause", "".join(text)))
            i += 1
        else:
            end = i
            while end < len(raw) and not raw[end].isspace() and raw[end] not in '()"':
                end += 1
            word = raw[i:end]
            if word in ("AND", "OR"):
                items.append(("op", word))
            elif word.upper() in ("AND", "OR"):
                raise _syntax_error(raw, f"the operator '{word}' must be in upper case")
            else:
                raise _syntax_error(raw, f"'{word}' is outside double quotes")
            i = end
    return items


def compile_search(raw: str, properties: Iterable[str]) -> Matcher:
    """A predicate over ``value_of(property)`` for the object; ``properties`` are the searchable string properties
    (their canonical casing); a clause naming another property is refused."""
    canonical = {name.lower(): name for name in properties}
    items = _lex(raw)
    if not items:
        raise _syntax_error(raw, "it is empty")
    position = 0

    def clause(text: str) -> Matcher:
        prop, colon, value = text.partition(":")
        if not colon or not prop.strip():
            raise _syntax_error(raw, f"the clause \"{text}\" names no property")
        if not value.strip():
            raise _syntax_error(raw, f"the clause \"{text}\" has no text to search")
        name = canonical.get(prop.strip().lower())
        if name is None:
            # The nearest documented refusal is a $filter on a property that is not indexed (aad-advanced-queries).
            raise GraphError(400, SYNTAX_CODE, f"Invalid $search: the property '{prop.strip()}' cannot be searched "
                                               "on this resource (string properties only).")
        if name.lower() in TOKENIZED:
            return lambda value_of: _token_match(str(value_of(name) or ""), value)
        return lambda value_of: _prefix_match(value_of(name), value)

    def operand() -> Matcher:
        nonlocal position
        if position >= len(items):
            raise _syntax_error(raw, "a clause is missing at the end")
        kind, text = items[position]
        position += 1
        if kind == "clause":
            return clause(text)
        if kind == "(":
            inner = expression()
            if position >= len(items) or items[position][0] != ")":
                raise _syntax_error(raw, "a closing parenthesis is missing")
            position += 1
            return inner
        raise _syntax_error(raw, f"'{text or kind}' stands where a clause belongs")

    def expression() -> Matcher:
        # Left to right, AND and OR of equal rank: the page states no precedence (see the module's docstring).
        nonlocal position
        result = operand()
        while position < len(items) and items[position][0] != ")":
            kind, op = items[position]
            if kind != "op":
                raise _syntax_error(raw, "clauses must be joined by AND or OR")
            position += 1
            left, right = result, operand()
            if op == "AND":
                result = (lambda a, b: lambda value_of: a(value_of) and b(value_of))(left, right)
            else:
                result = (lambda a, b: lambda value_of: a(value_of) or b(value_of))(left, right)
        return result

    matcher = expression()
    if position != len(items):
        raise _syntax_error(raw, "a parenthesis is unbalanced")
    return matcher
