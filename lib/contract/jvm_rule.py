"""The contract's record rule as the Flink job runs it (jars/rules, workbook.rules.EventRule), asked from
Python: one `workbook.rules.Probe` process answers a record a line. Python's rule (lib.contract.events) is
the reference; the tests and the throughput benchmark hold the JVM's answers to it, record by record.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterable

from lib.config import Settings
from lib.contract.events import as_text, parse_record
from lib.errors import StackError

#: What either rule says of a record: the dead-letter reason (None for an event) and the record as text.
Answer = tuple[str | None, str | None]
#: A record the two rules answer differently: its first 200 bytes, Python's answer, the JVM's.
Difference = tuple[bytes | None, Answer, Answer]


class JvmRule:
    """One `java workbook.rules.Probe` process: records in, (reason, text) out, in order."""

    def __init__(self, cfg: Settings) -> None:
        jar = cfg.jars_dir / "flink" / "rules-1.0.0.jar"
        if not jar.is_file():
            raise StackError(f"{jar} is missing: `make jars` builds it (jars/rules)")
        self.proc = subprocess.Popen([cfg.java, "-cp", str(jar), "workbook.rules.Probe"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1 << 16)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both piped above
        self._in, self._out = self.proc.stdin, self.proc.stdout

    def ask(self, values: list[bytes | None]) -> list[Answer]:
        """The JVM's answers; the records are written from a thread so that neither pipe fills up."""
        def write() -> None:
            for v in values:
                self._in.write("-\n" if v is None else base64.b64encode(v).decode() + "\n")
            self._in.flush()

        writer = threading.Thread(target=write)
        writer.start()
        answers: list[Answer] = []
        for _ in values:
            reason, text = (None if f == "-" else base64.b64decode(f).decode("utf-8")
                            for f in self._out.readline().rstrip("\n").split("\t"))
            answers.append((reason, text))
        writer.join()
        return answers

    def close(self) -> None:
        self._in.close()
        self.proc.wait(timeout=30)

    def __enter__(self) -> JvmRule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def python_rule(value: bytes | None) -> Answer:
    """The reference: the reason Bronze's rule gives, and the text the dead letters keep."""
    return parse_record(value)[1], as_text(value)


def compared(jvm: JvmRule, values: Iterable[bytes | None]) -> tuple[list[Answer], list[Difference]]:
    """Python's answer for each record, and each record the two rules answer differently."""
    values = list(values)
    got = jvm.ask(values)
    want = [python_rule(v) for v in values]
    return want, [(v[:200] if v else v, w, g) for v, w, g in zip(values, want, got, strict=True) if w != g]


def disagreements(jvm: JvmRule, values: Iterable[bytes | None]) -> list[Difference]:
    """Each record the two rules answer differently."""
    return compared(jvm, values)[1]
