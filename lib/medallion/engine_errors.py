"""What an engine's failure means, read from the exception's class where the engine gives one.

A PySpark error carries the JVM exception it came from (`_origin` of a captured exception,
`java_exception` of a Py4J error): its class and its causes' classes say "another commit won"
(Iceberg's ValidationException, CommitFailedException) or "it exists already" without reading the
message, which an engine may reword in any release. The message is the fallback only, for an error
that reaches Python without its JVM exception; tests/unit/test_engine_errors.py pins those phrases.
"""

from __future__ import annotations

#: Iceberg refuses a commit that lost a race: a conflicting concurrent commit, or a stale base.
CONFLICT_CLASSES = ("org.apache.iceberg.exceptions.ValidationException",
                    "org.apache.iceberg.exceptions.CommitFailedException")
#: An object that a concurrent run created a moment earlier.
EXISTS_CLASSES = ("org.apache.iceberg.exceptions.AlreadyExistsException",
                  "org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException",
                  "org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException")
#: Spark's error conditions for the same.
EXISTS_CONDITIONS = ("TABLE_OR_VIEW_ALREADY_EXISTS", "SCHEMA_ALREADY_EXISTS")
#: The fallbacks: what the messages say when only the message is left.
CONFLICT_PHRASES = CONFLICT_CLASSES
EXISTS_PHRASE = "already exists"


def java_classes(exc: BaseException, depth: int = 20) -> list[str]:
    """The class names along the JVM cause chain behind a PySpark or Py4J error; [] for a Python error."""
    throwable = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)
    names: list[str] = []
    try:
        while throwable is not None and len(names) < depth:
            names.append(str(throwable.getClass().getName()))
            throwable = throwable.getCause()
    except Exception:  # a JVM that is gone: only what was read so far
        pass
    return names


def _condition(exc: BaseException) -> str | None:
    try:
        return exc.getCondition() if hasattr(exc, "getCondition") else None
    except Exception:
        return None


def is_commit_conflict(exc: BaseException) -> bool:
    """Did another commit win the race (and nothing else go wrong)?"""
    classes = java_classes(exc)
    if classes:
        return any(name in CONFLICT_CLASSES for name in classes)
    return any(phrase in str(exc) for phrase in CONFLICT_PHRASES)


def conflict_message(exc: BaseException) -> str:
    """Iceberg's own words for a lost race: "<exception class>: <its message>" of the conflict along the
    cause chain, or the first line of the error that names one (what a notebook shows an operator)."""
    throwable = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)
    try:
        for _ in range(20):
            if throwable is None:
                break
            name = str(throwable.getClass().getName())
            if name in CONFLICT_CLASSES:
                return f"{name.rsplit('.', 1)[-1]}: {throwable.getMessage()}"
            throwable = throwable.getCause()
    except Exception:  # a JVM that is gone: fall back to the text
        pass
    text = str(exc)
    return next((line.strip() for line in text.splitlines() if any(p in line for p in CONFLICT_PHRASES)),
                text.splitlines()[0] if text else type(exc).__name__)


def is_already_exists(exc: BaseException) -> bool:
    """Does the object a CREATE wanted exist already?"""
    if _condition(exc) in EXISTS_CONDITIONS:
        return True
    classes = java_classes(exc)
    if classes:
        return any(name in EXISTS_CLASSES for name in classes)
    return EXISTS_PHRASE in str(exc).lower()
