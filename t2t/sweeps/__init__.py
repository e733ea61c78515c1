"""Sweeps: many runs of named trials x seeds, a results store, launch commands and T5-style tables.

    spec.py        Trial, Sweep, the results.sqlite schema (the contract other code reads)
    sweep_file.py  load a sweep file (a Python file defining SWEEP)
    commands.py    a run's `t2t train` flags and after-commands; which runs to start
    store.py       results.sqlite: run status, metrics ingested from a run's *.jsonl files
    runner.py      `t2t sweep run`: local subprocesses, skip done, isolate failures, Ctrl-C
    launch.py      `t2t sweep launch`: tpu_scripts / SLURM commands per run
    ingest.py      `t2t sweep ingest`: record runs that finished elsewhere
    report.py      `t2t sweep report`: mean ± std over seeds, 2σ bold, the paper's numbers
    paper.py       the T5 paper's Table 2 and Tables 4-7 scores, found by a trial's tags
    cli.py         `t2t sweep` dispatch
"""
