"""Benchmark drivers that launch real trainer runs: the toy comparison harness (``srpo_verl.bench.compare``) and
one CPU trainer run in a subprocess with what it wrote (``srpo_verl.bench.cpu_run``, also used by the e2e tests)."""
