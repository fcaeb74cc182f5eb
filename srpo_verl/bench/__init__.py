"""Benchmark drivers that launch real trainer runs (the toy comparison harness: ``srpo_verl.bench.compare``)."""
