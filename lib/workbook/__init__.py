"""What only the notebooks and `make run` use: the opening cell and its tables (notebook), the plots
(charts), the failure drills' runs and display (drills), `make run` itself (run) and its smoke
checks (smoke). No job imports this package."""
