"""Notebooks as jobs: papermill runs with validated parameters (runner), the Jupyter kernel they run
on (kernel), and the whole workbook as one run (workbook, what `make run` does)."""
