"""The README's ```sh command blocks, and the bash script that runs them as written.

A block that is not meant to run on a test machine (a production host, a command that runs until
stopped) is preceded, on the line right above its fence, by a visible marker with a reason::

    <!-- not run: production hosts (db, chirpstack-broker) -->

Every other ```sh block runs, in README order, in one bash session (so variables set in one block are
there for the next), with ``set -euo pipefail``: a failing command or an unset variable (``$ID``
never set) stops the run. ``curl`` is wrapped only to report each answer's status on stderr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->$")
HTTP_LINE = "readme-http"
CURL_CALL = re.compile(r"(?:^|\$\(|[;&|]\s*)curl\s", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    line: int              # the line of the opening fence, from 1
    section: str           # the nearest heading above it
    text: str
    not_run: str | None    # the marker's reason, or None when the block runs

    def curl_calls(self) -> int:
        """How many curl commands the block runs (each runs once: the README has no loops)."""
        code = "\n".join(line for line in self.text.splitlines() if not line.lstrip().startswith("#"))
        return len(CURL_CALL.findall(code))


def command_blocks(readme: str) -> list[Block]:
    """Every ```sh block, with its section and its not-run marker (if any)."""
    lines = readme.splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.strip() == "```sh":
            end = lines.index("```", i + 1)
            above = lines[i - 1].strip() if i else ""
            marker = NOT_RUN.match(above)
            if above.startswith("<!--") and marker is None:
                raise ValueError(f"README line {i}: a comment above a block must be '<!-- not run: reason -->'")
            blocks.append(Block(i + 1, section, "\n".join(lines[i + 1:end]), marker["reason"] if marker else None))
            i = end
        i += 1
    return blocks


PRELUDE = f"""set -euo pipefail
trap 'echo "readme-failed: $BASH_COMMAND" >&2' ERR
curl() {{ command curl --write-out '%{{stderr}}{HTTP_LINE} %{{http_code}} %{{url_effective}}\\n' "$@"; }}
"""


def script(blocks: list[Block]) -> str:
    """One bash script running every block that is not marked, in order, each announced on stderr."""
    parts = [PRELUDE]
    for b in blocks:
        if b.not_run is None:
            parts.append(f"echo 'readme-block line {b.line} ({b.section})' >&2\n{b.text}\n")
    return "\n".join(parts)


def answers(stderr: str) -> list[tuple[int, str]]:
    """The (status, url) of every curl answer the script reported."""
    found = []
    for line in stderr.splitlines():
        if line.startswith(HTTP_LINE + " "):
            _, status, url = line.split(" ", 2)
            found.append((int(status), url))
    return found
