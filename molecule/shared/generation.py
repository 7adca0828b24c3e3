"""Checks on generated text that hold on any x86-64 CPU.

A tiny model's greedy text depends on the numeric path: AVX2 and AVX-512 kernels, or a prompt
evaluated in one batch instead of two (a partly cached prompt), can flip its first token. So
no check here compares generated text with a fixed string. Two checks instead:

- faithful(): the service's greedy continuation of a fixed prompt equals what the same binary
  directory's llama-completion produces from the same model on the same host: same templated
  prompt, greedy sampling, same threads, the whole prompt in one batch (the service is asked
  with cache_prompt false, so no earlier request's cache splits the prompt into two batches).
  This proves the deployment serves the model as llama.cpp itself runs it.
- sensible(): a few factual questions through /v1/chat/completions, a majority must name the
  right answer. This proves the model is the intended one and answers in language, while one
  flipped answer on some CPU cannot fail the check.

Everything runs inside the server through `run(command) -> stdout` (testinfra's
host.check_output, or `podman exec` in scripts/demo.sh), so the requests go to its loopback.
"""

import json
import shlex

# Questions a 135M instruction model answers right on the CPUs tried (AVX-512 native, and an
# AVX2-only build of the same source: 8 or 9 of 9, France flipping with what the slot has cached);
# a majority must pass, so one or two flipped answers on some CPU cannot fail the check.
FACTS = [
    ("What is the capital of France?", ("paris",)),
    ("What is the capital of Germany?", ("berlin",)),
    ("What is the capital of Japan?", ("tokyo",)),
    ("What is the capital of England?", ("london",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("What is 2 + 2?", ("4", "four")),
    ("What is the opposite of hot?", ("cold",)),
    ("What is frozen water called?", ("ice",)),
    ("How many days are in a week?", ("7", "seven")),
]
FAITHFUL_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
FAITHFUL_TOKENS = 32

# Runs inside the server: HTTP to the service, and llama-completion beside its binary.
_INSIDE = r'''
import json, os, re, subprocess, sys, tempfile, urllib.request
args = json.loads(sys.argv[1])
base = args["base"]
headers = {"Content-Type": "application/json"}
if args.get("key_file"):
    headers["Authorization"] = "Bearer " + open(args["key_file"]).read().strip()

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)

def unit_flag(execstart, flag):
    found = re.search(r"(?:^|\s)" + re.escape(flag) + r"\s+(\S+)", execstart)
    return found.group(1) if found else None

if args["mode"] == "chat":
    out = []
    for question in args["questions"]:
        body = {"messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0}
        out.append(post("/v1/chat/completions", body)["choices"][0]["message"]["content"])
    print(json.dumps(out))
    sys.exit(0)

if args.get("service"):  # a llama-server started by hand: its binary, model and threads given
    binary, model, threads = (args["service"][key] for key in ("binary", "model", "threads"))
else:
    execstart = subprocess.run(["systemctl", "show", "--property", "ExecStart", "--value", args["unit"]],
                               capture_output=True, text=True, check=True).stdout
    binary = re.search(r"(/\S+/llama-server)\b", execstart).group(1)
    model = unit_flag(execstart, "--model")
    threads = unit_flag(execstart, "--threads")
prompt = post("/apply-template", {"messages": args["messages"]})["prompt"]
served = post("/completion", {"prompt": prompt, "n_predict": args["tokens"], "temperature": 0,
                              "cache_prompt": False})["content"]
with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    f.write(prompt)
# --binary-file passes the prompt byte for byte; --file would drop its final newline.
cmd = [os.path.join(os.path.dirname(binary), "llama-completion"), "--model", model, "--binary-file", f.name,
       "--n-predict", str(args["tokens"]), "--temp", "0", "--threads", threads, "--ctx-size", "4096",
       "--no-conversation", "--no-display-prompt", "--no-escape", "--no-warmup"]
proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
os.unlink(f.name)
print(json.dumps({"prompt": prompt, "served": served, "direct_stdout": proc.stdout, "rc": proc.returncode,
                  "stderr_tail": proc.stderr[-2000:], "command": cmd}))
'''

END_OF_TEXT = " [end of text]\n"


def _inside(run, args):
    return json.loads(run(f"python3 -c {shlex.quote(_INSIDE)} {shlex.quote(json.dumps(args))}"))


def direct_text(stdout):
    """llama-completion's generated text: it prints ' [end of text]' at end of generation, then a blank line."""
    text = stdout[:-2] if stdout.endswith("\n\n") else stdout
    return text[: -len(END_OF_TEXT)] if text.endswith(END_OF_TEXT) else text


def faithful(run, base="http://127.0.0.1:8080", key_file=None, unit="llama-server.service", service=None):
    """(served, direct, details): the service's and llama-completion's greedy text for one prompt.

    The binary, model and threads are read from the unit's ExecStart, or given as service
    ({binary, model, threads}) for a llama-server started by hand.
    """
    result = _inside(run, {"mode": "faithful", "base": base, "key_file": key_file, "unit": unit,
                           "service": service, "messages": FAITHFUL_PROMPT, "tokens": FAITHFUL_TOKENS})
    assert result["rc"] == 0, f"llama-completion failed: {result['command']}\n{result['stderr_tail']}"
    return result["served"], direct_text(result["direct_stdout"]), result


def sensible(run, base="http://127.0.0.1:8080", key_file=None):
    """(right, answers): how many FACTS the service answers right, and every answer."""
    answers = _inside(run, {"mode": "chat", "base": base, "key_file": key_file,
                            "questions": [q for q, _ in FACTS]})
    pairs = list(zip(FACTS, answers, strict=True))
    right = sum(any(word in answer.lower() for word in words) for (_, words), answer in pairs)
    return right, [(question, answer) for (question, _), answer in pairs]


def majority(count):
    return count // 2 + 1
