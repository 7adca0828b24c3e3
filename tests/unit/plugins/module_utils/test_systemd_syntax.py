"""Quoting for unit files, and systemd's own splitting of a command line, on known cases."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import systemd_quote
from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import (
    UnitValueError,
    exec_start,
    quote_text,
    quote_word,
    split_command_line,
)


@pytest.mark.parametrize(("value", "quoted"), [
    ("--interleave=all", "--interleave=all"),
    ("/srv/llm/models/m-Q6_K.gguf", "/srv/llm/models/m-Q6_K.gguf"),
    (8080, "8080"),
    ("", '""'),
    ("a b", '"a b"'),
    ("100%", "100%%"),
    ("$HOME", "$$HOME"),
    ('say "hi"', '"say \\"hi\\""'),
    ("C:\\dir", '"C:\\\\dir"'),
    ("it's", '"it\'s"'),
    (";", '";"'),
    ("#not-a-comment", '"#not-a-comment"'),
    ("-x", "-x"),
])
def test_quote_word(value, quoted):
    assert quote_word(value) == quoted


# Cases from systemd.service(5) and systemd's test-extract-word.c (EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE).
@pytest.mark.parametrize(("line", "argv"), [
    ("/bin/echo one two", ["/bin/echo", "one", "two"]),
    ("/bin/sh -c 'dmesg | tac'", ["/bin/sh", "-c", "dmesg | tac"]),
    ('/bin/echo "one two" three', ["/bin/echo", "one two", "three"]),
    ('/bin/echo "a\\"b" \'c\\\'d\'', ["/bin/echo", 'a"b', "c'd"]),
    ("/bin/echo \\x41\\101\\u00e9 \\s", ["/bin/echo", "AAé", " "]),
    ('/bin/echo foo"bar baz"qux', ["/bin/echo", "foobar bazqux"]),
    ("/bin/echo 100%% $$HOME", ["/bin/echo", "100%", "$HOME"]),
    ("/bin/echo \\;", ["/bin/echo", ";"]),
    ("  /bin/true  ", ["/bin/true"]),
])
def test_split_known_cases(line, argv):
    assert split_command_line(line) == argv


@pytest.mark.parametrize("line", ['/bin/echo "open', "/bin/echo a\\", "/bin/echo \\q", "/bin/echo %n",
                                  "/bin/echo $HOME", "/bin/echo ${HOME}", "/bin/echo a ; /bin/echo b"])
def test_split_refuses_what_is_not_a_literal_argument(line):
    with pytest.raises(UnitValueError):
        split_command_line(line)


@pytest.mark.parametrize("value", ["", "a b", " lead", "trail ", "100%", "$HOME", "${X}", '"', "'", "\\", "\\n",
                                   "a\\\"b", ";", "#", "-", "--flag=a b", "é ü", "%%", "$$", "x'y\"z"])
def test_quoted_word_splits_back_to_itself(value):
    assert split_command_line("/bin/true " + quote_word(value)) == ["/bin/true", value]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f", "c1\x85", None, True, ["a"]])
def test_unquotable_values_are_refused(value):
    with pytest.raises(UnitValueError):
        quote_word(value)
    with pytest.raises(AnsibleFilterError):
        systemd_quote(value)


def test_quote_text_escapes_specifiers_only():
    assert quote_text("model 100%.gguf") == "model 100%%.gguf"
    with pytest.raises(UnitValueError):
        quote_text("ends\\")
    assert systemd_quote("a%b", "text") == "a%%b"
    with pytest.raises(AnsibleFilterError):
        systemd_quote("a", "shell")


def test_exec_start_joins_continuations_and_skips_comment_lines():
    unit = "[Service]\nExecStart=/bin/a \\\n  b \\\n# a comment\n  \"c d\"\nRestart=no\n"
    assert split_command_line(exec_start(unit)) == ["/bin/a", "b", "c d"]
    with pytest.raises(ValueError, match="no ExecStart"):
        exec_start("[Service]\nType=simple\n")
