"""Writing values into systemd unit files, and reading command lines back, the way systemd does.

Plain Python, no Ansible imports.

- `quote_word(value)`: one argument of a command line (ExecStart=, systemd.service(5) "Command
  lines"): `%` becomes `%%` (specifiers), `$` becomes `$$` (environment expansion), and a word
  that is empty or holds whitespace, quotes, a backslash, `;` or `#` is double-quoted with `\\`
  and `\"` escaped. A plain word (`--port`, `/srv/llm/m.gguf`) stays as it is.
- `quote_text(value)`: free text of a setting that expands specifiers (Description=, User=): `%`
  becomes `%%`.
- Control characters (newline, tab, NUL, ...) cannot be written safely into a unit line: both
  raise `UnitValueError`. The roles' validation refuses them first, naming the variable.
- `split_command_line(text)`: the inverse, systemd's splitting of a command line into argv
  (extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE, then `%%` and `$$`), used to read
  the service's ExecStart back (the benchmark role) and by the tests to prove a value arrives as
  one argument, intact.
- `exec_start(unit_text)`: the first ExecStart= of a unit file, its continuation lines joined as
  systemd joins them (systemd.syntax(7): a trailing backslash becomes a space; comment lines inside
  a continuation are skipped).
"""

import unicodedata

WHITESPACE = " \t\n\r"
# Characters that make a word need quoting: whitespace and quotes split or end words, a backslash
# starts an escape, and a word starting with ';' or '#' on a continuation line would read as a
# separator or a comment.
_NEEDS_QUOTES = set(WHITESPACE) | set("\"'\\;#")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
            "'": "'", "s": " "}


class UnitValueError(ValueError):
    """A value that cannot be written into a unit file."""


def control_characters(value):
    """The control characters (Unicode category Cc: C0, DEL, C1) in value, as escapes like '\\n'."""
    return sorted({repr(ch)[1:-1] for ch in str(value) if unicodedata.category(ch) == "Cc"})


def _plain(value):
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list, tuple)):
        raise UnitValueError(f"expected a string or a number, got {type(value).__name__}")
    text = str(value)
    bad = control_characters(text)
    if bad:
        raise UnitValueError(f"control characters ({', '.join(bad)}) cannot be written into a unit file")
    return text


def quote_word(value):
    """One command-line argument, escaped and quoted so systemd passes it on unchanged."""
    text = _plain(value).replace("%", "%%").replace("$", "$$")
    if text and not _NEEDS_QUOTES & set(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_text(value):
    """Free text for a setting that expands specifiers (Description=, User=, Group=)."""
    text = _plain(value)
    if text.endswith("\\"):
        raise UnitValueError("a trailing backslash would continue the line")
    return text.replace("%", "%%")


def _unescape(text, i):
    """(character, next index) for the C-style escape starting after the backslash at text[i - 1]."""
    if i >= len(text):
        raise UnitValueError("a backslash at the end of the command line")
    ch = text[i]
    if ch in _ESCAPES:
        return _ESCAPES[ch], i + 1
    for prefix, length, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if ch == prefix:
            digits = text[i + 1:i + 1 + length]
            if len(digits) != length or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise UnitValueError(f"bad escape \\{prefix}{digits}")
            return chr(int(digits, base)), i + 1 + length
    if ch in "01234567":
        digits = text[i:i + 3]
        if len(digits) != 3 or any(c not in "01234567" for c in digits):
            raise UnitValueError(f"bad octal escape \\{digits}")
        return chr(int(digits, 8)), i + 3
    raise UnitValueError(f"unknown escape sequence \\{ch}")


def _expand(word):
    """`%%` -> `%` and `$$` -> `$`; any other specifier or variable is not a literal value."""
    out, i = [], 0
    while i < len(word):
        ch = word[i]
        if ch in "%$":
            if word[i + 1:i + 2] != ch:
                raise UnitValueError(f"unescaped {ch!r} in {word!r} (a specifier or variable, not a literal)")
            i += 1
        out.append(ch)
        i += 1
    return "".join(out)


def split_command_line(text):
    """argv of a systemd command line (the part after ExecStart=), with `%%` and `$$` undone.

    Quotes may wrap a whole word or part of one; inside and outside quotes C-style escapes are
    decoded; a lone unquoted ';' (the old command separator) is refused, as is anything systemd
    would expand (a '%' specifier, a '$VAR'), since a literal value never needs one.
    """
    argv, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in WHITESPACE:
            i += 1
        if i >= n:
            return argv
        if text[i] == ";" and (i + 1 == n or text[i + 1] in WHITESPACE):
            raise UnitValueError("a lone ';' separates commands")
        if text[i:i + 2] == "\\;" and (i + 2 == n or text[i + 2] in WHITESPACE):
            argv.append(";")  # the documented escape of a lone semicolon
            i += 2
            continue
        word, quote = [], None
        while i < n:
            ch = text[i]
            if quote is None and ch in WHITESPACE:
                break
            if ch == "\\":
                decoded, i = _unescape(text, i + 1)
                word.append(decoded)
                continue
            if quote is None and ch in "\"'":
                quote = ch
            elif ch == quote:
                quote = None
            else:
                word.append(ch)
            i += 1
        if quote is not None:
            raise UnitValueError("unbalanced quoting")
        argv.append(_expand("".join(word)))


def exec_start(unit_text):
    """The text after the first ExecStart= (prefixes like '-' kept), continuation lines joined."""
    parts, collecting = [], False
    for line in unit_text.splitlines():
        stripped = line.strip()
        if not collecting:
            if not stripped.startswith("ExecStart="):
                continue
            collecting, stripped = True, stripped[len("ExecStart="):]
        elif stripped[:1] in ("#", ";"):
            continue
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        break
    if not collecting:
        raise ValueError("no ExecStart= line in the unit")
    return " ".join(parts)
