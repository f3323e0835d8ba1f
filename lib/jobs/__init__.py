"""Notebooks as jobs: papermill runs with validated parameters (runner), the registry of jobs, the
Jupyter kernel they run on (kernel), the scheduler, the run history, alerts and Airflow."""
