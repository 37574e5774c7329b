"""ParallelBench-style benchmark: tasks (``bench.tasks``) and scorers (``bench.scorers``)."""
