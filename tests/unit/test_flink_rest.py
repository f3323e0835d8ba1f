"""Flink's REST errors keep what Flink said: the `errors` list of its JSON body, first lines only."""

from __future__ import annotations

import json

from lib.stream.rest import flink_errors


def test_the_errors_list_is_the_message() -> None:
    body = json.dumps({"errors": ["org.apache.flink.runtime.rest.NotFoundException: Job 00ff not found\n"
                                  "\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler"
                                  "\n\tat java.base/java.lang.Thread.run(Thread.java:840)"]})
    assert flink_errors(body) == ("org.apache.flink.runtime.rest.NotFoundException: Job 00ff not found "
                                  "\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler")
    assert flink_errors(json.dumps({"errors": ["Not found: /jobs/x", "second"]})) == "Not found: /jobs/x | second"


def test_a_body_that_is_not_flinks_json_is_shown_as_it_is() -> None:
    assert flink_errors("<html>502 Bad Gateway</html>") == "<html>502 Bad Gateway</html>"
    assert flink_errors("") == "(no body)"
    assert flink_errors("[1, 2]") == "[1, 2]"
