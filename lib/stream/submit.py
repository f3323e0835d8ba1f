"""Runs inside .venv-flink (PyFlink): submit SQL statements to the session cluster, print the job id.

lib.stream.lifecycle calls this as `python -m lib.stream.submit` with a JSON request on stdin, so the
notebooks' own kernel never imports PyFlink (whose pins would hold back pyarrow and pandas).
Output: one JSON line, {"job_id": ...} or {"job_id": null} when no statement started a job.
"""

from __future__ import annotations

import json
import sys

from pyflink.common import Configuration
from pyflink.table import EnvironmentSettings, TableEnvironment


def main() -> int:
    request = json.load(sys.stdin)

    conf = Configuration()
    for key, value in request["config"].items():
        conf.set_string(key, str(value))
    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    t_env = TableEnvironment.create(settings)
    job_id = None
    for statement in request["statements"]:
        result = t_env.execute_sql(statement)
        client = result.get_job_client()
        if client is not None:
            job_id = str(client.get_job_id())
    print(json.dumps({"job_id": job_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
