"""Engine failures classified by their JVM exception's class, and the message fallback pinned.

The classes are read from a real JVM exception chain in tests/integration/test_medallion.py (a
CREATE of a table that exists); here a chain of objects with the same two methods stands in for the
Py4J proxies, and the fallback phrases are pinned as the engines write them today."""

from __future__ import annotations

from dataclasses import dataclass

from lib.medallion.engine_errors import conflict_message, is_already_exists, is_commit_conflict, java_classes


@dataclass
class _Throwable:
    name: str
    cause: _Throwable | None = None
    message: str = ""

    def getMessage(self) -> str:
        return self.message

    def getClass(self) -> _Throwable:  # the JVM's method names
        return self

    def getName(self) -> str:
        return self.name

    def getCause(self) -> _Throwable | None:
        return self.cause


class _Captured(Exception):
    def __init__(self, message: str, origin: _Throwable) -> None:
        super().__init__(message)
        self._origin = origin


def test_the_class_decides_whatever_the_message_says() -> None:
    wrapped = _Throwable("org.apache.spark.SparkException",
                         _Throwable("org.apache.iceberg.exceptions.ValidationException"))
    assert java_classes(_Captured("x", wrapped)) == ["org.apache.spark.SparkException",
                                                     "org.apache.iceberg.exceptions.ValidationException"]
    assert is_commit_conflict(_Captured("Job aborted", wrapped))
    # a message that merely mentions the class is no conflict when the JVM says what really failed
    other = _Throwable("java.io.IOException")
    assert not is_commit_conflict(_Captured("org.apache.iceberg.exceptions.ValidationException in a path", other))
    assert not is_already_exists(_Captured("path already exists", other))
    exists = _Throwable("org.apache.iceberg.exceptions.AlreadyExistsException")
    assert is_already_exists(_Captured("Table was created concurrently", exists))


def test_the_message_fallback_as_the_engines_word_it() -> None:
    assert is_commit_conflict(RuntimeError(
        "org.apache.iceberg.exceptions.ValidationException: Found conflicting files that can contain records "
        "matching ref(name=\"event_id\")"))
    assert is_commit_conflict(RuntimeError(
        "org.apache.iceberg.exceptions.CommitFailedException: Requirement failed: branch main has changed"))
    assert is_already_exists(RuntimeError("[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view "
                                          "`bronze`.`conversion_events` because it already exists."))
    assert is_already_exists(RuntimeError("Namespace already exists: bronze"))
    assert not is_commit_conflict(ValueError("a bug, not a race"))
    assert not is_already_exists(ValueError("a bug"))


def test_a_conflict_is_told_in_icebergs_words_from_the_chain_or_from_the_text() -> None:
    refused = _Throwable("org.apache.spark.SparkException", _Throwable(
        "org.apache.iceberg.exceptions.ValidationException", message="Found conflicting files: s3://w/b/x.parquet"))
    assert conflict_message(_Captured("Job aborted", refused)) == \
        "ValidationException: Found conflicting files: s3://w/b/x.parquet"
    text = RuntimeError("py4j said:\norg.apache.iceberg.exceptions.CommitFailedException: branch main has changed\n"
                        "\tat org.apache.iceberg...")
    assert conflict_message(text) == "org.apache.iceberg.exceptions.CommitFailedException: branch main has changed"
    assert conflict_message(ValueError("first line\nsecond")) == "first line"
