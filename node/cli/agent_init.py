"""``mycel agent init NAME --runtime python|wasm``: a new agent directory that runs as it is.

The scaffold holds a manifest, a main file, a sample input with its expected output, a
README and ``test_local.py``, which runs the agent in the same sandbox a node uses
(``mycel agent run``) and compares. Nothing is downloaded and no toolchain is needed:
the wasm agent's module is compiled from its WAT source here, by wasmtime.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

SAMPLE = "hello, mycel\nsecond line\n"

PYTHON_MAIN = '''"""NAME: counts lines, words and bytes of each input.

Inputs are under $MYCEL_IN, one per --input NAME=...: a file input is the file
$MYCEL_IN/NAME, a directory input the directory $MYCEL_IN/NAME. $MYCEL_INPUTS lists them as
JSON (path relative to $MYCEL_IN, cid, kind, size). Whatever is written under $MYCEL_OUT becomes
the result.
"""

import json
import os
from pathlib import Path


def main() -> None:
    inputs, out = Path(os.environ["MYCEL_IN"]), Path(os.environ["MYCEL_OUT"])
    given = json.loads(os.environ["MYCEL_INPUTS"])
    counts = {}
    for name, info in given.items():
        path = inputs / info["path"]
        files = [path] if info["kind"] == "file" else sorted(p for p in path.rglob("*") if p.is_file())
        text = "".join(f.read_text(errors="replace") for f in files)
        counts[name] = {"lines": text.count("\\n"), "words": len(text.split()), "bytes": info["size"]}
    (out / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True) + "\\n")
    print(f"counted {len(counts)} input(s)")


if __name__ == "__main__":
    main()
'''

WASM_WAT = r""";; NAME: copies the input named "input" to /out/upper.txt, upper-cased (ASCII).
;; WASI preview 1: /in (read-only) is preopened as fd 3, /out as fd 4.
;; After editing, rebuild agent.wasm (no toolchain needed):
;;   python -c "import wasmtime; open('agent.wasm','wb').write(wasmtime.wat2wasm(open('agent.wat').read()))"
@WAT@
"""

MANIFEST = """name = "@NAME@"
version = "0.1.0"
runtime = "@RUNTIME@"
entrypoint = "@ENTRYPOINT@"
description = "@DESCRIPTION@"
# requires = ["numpy>=2"]     # python only: packages the node's agent environment must offer

[limits]
cpu_seconds = 10
memory_mib = 256
wall_seconds = 30
max_output_mib = 16
"""

README = """# @NAME@

A mycelnet agent (@RUNTIME@). @DESCRIPTION@.

Run it locally, in the same sandbox a node uses:

    mycel agent run . --input input=sample.txt -o ./out     # a path is imported into your local store
    python test_local.py                                    # the same, compared with expected/

Then deploy it and run it next to the data:

    mycel agent deploy . --api http://127.0.0.1:5080
    mycel put sample.txt --api http://127.0.0.1:5080        # -> CID
    mycel job run @NAME@ --input input=CID                  # by name (newest version), or @NAME@@0.1.0

Each --input NAME=... appears at $MYCEL_IN/NAME (/in/NAME in wasm): a file as a file, a
directory as a directory; $MYCEL_INPUTS lists every input as JSON (path, cid, kind, size).
Whatever the agent writes under $MYCEL_OUT (/out) is the result. `mycel agent env` lists the
python packages and the wasm runtime a node offers.
"""

TEST_LOCAL = '''"""Run this agent locally in its sandbox on sample.txt and compare with expected/ (exit 0 if equal)."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    found = shutil.which("mycel")
    mycel = [found] if found else [sys.executable, "-m", "node.cli.main"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        run = [*mycel, "agent", "run", str(HERE), "--input", f"input={HERE / 'sample.txt'}", "-o", str(out)]
        if subprocess.run(run).returncode != 0:
            return 1
        for expected in sorted((HERE / "expected").iterdir()):
            got = (out / expected.name).read_bytes()
            if got != expected.read_bytes():
                print(f"{expected.name} differs: got {got!r}")
                return 1
    print("ok: the output matches expected/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DESCRIPTIONS = {"python": "Counts lines, words and bytes of each input", "wasm": "Upper-cases its input"}


def expected_output(runtime: str) -> dict[str, str]:
    """What the scaffold's agent writes for SAMPLE, by file name."""
    if runtime == "wasm":
        return {"upper.txt": SAMPLE.upper()}
    counts = {"input": {"bytes": len(SAMPLE.encode()), "lines": SAMPLE.count("\n"), "words": len(SAMPLE.split())}}
    return {"counts.json": json.dumps(counts, indent=1, sort_keys=True) + "\n"}


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def scaffold(directory: Path, name: str, runtime: str) -> list[Path]:
    """Write the agent's files into ``directory`` (new, or empty); returns what was written."""
    import wasmtime

    from node.cli.wat_template import UPPERCASE_WAT

    description = DESCRIPTIONS[runtime]
    entrypoint = "agent.py" if runtime == "python" else "agent.wasm"
    values = {"@NAME@": name, "@RUNTIME@": runtime, "@ENTRYPOINT@": entrypoint, "@DESCRIPTION@": description}
    files: dict[str, str | bytes] = {
        "mycel-agent.toml": _fill(MANIFEST, values),
        "README.md": _fill(README, values),
        "test_local.py": TEST_LOCAL,
        "sample.txt": SAMPLE,
    }
    if runtime == "python":
        files["agent.py"] = PYTHON_MAIN.replace("NAME", name, 1)
    else:
        source = WASM_WAT.replace("NAME", name, 1).replace("@WAT@", UPPERCASE_WAT)
        files["agent.wat"] = source
        files["agent.wasm"] = bytes(wasmtime.wat2wasm(source))
    for file_name, text in expected_output(runtime).items():
        files[f"expected/{file_name}"] = text
    written = []
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        written.append(path)
    return written


@click.command("init")
@click.argument("name")
@click.option("--runtime", type=click.Choice(["python", "wasm"]), default="python", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create it (default: ./NAME); must be new or empty.")  # fmt: skip
def agent_init(name: str, runtime: str, directory: Path | None) -> None:
    """Create a new agent NAME that runs as it is: manifest, main file, sample, README, local test.

    Example: mycel agent init wordcount --runtime wasm && cd wordcount && python test_local.py
    """
    if not _NAME.match(name):
        raise click.UsageError(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-' (max 64)")
    target = directory or Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise click.UsageError(f"{target} already exists and is not empty; name a new directory")
    written = scaffold(target, name, runtime)
    click.echo(f"created {target}/ ({runtime}): {', '.join(sorted(str(p.relative_to(target)) for p in written))}")
    click.echo(f"next: cd {target} && python test_local.py", err=True)
