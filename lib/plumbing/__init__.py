"""The field's libraries, wrapped once: httpx for every REST call, tenacity for every wait and retry.

Each wrapper exists to say one thing the library leaves to its caller: what the server said when a
call fails (http), and what was being waited for when a wait runs out (waits).
"""
