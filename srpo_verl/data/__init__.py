"""Preparation of the paper's five benchmarks as verl parquet (SRPO_SPEC §2 Table 4, §5.4, checklist item 2).

- `splits`: reading and validating the SDPO JSON-lines split files (errors name the file, line and field);
- `sciknoweval`, `tooluse`: each task's rows → verl rows, local and from-source loaders, expected counts;
- `parquet`: writing and re-reading verl parquet.
The scripts in `scripts/data/` are thin command lines over these modules.
"""
