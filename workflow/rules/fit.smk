# Every rung into one tidy table; scaling laws fitted to it.


rule aggregate:
    input:
        train=all_runs("train.json"),
        evals=all_runs("eval.json"),
        logs=all_runs("train_log.csv"),
        sources=all_runs("store.json"),
        tasks=all_task_scores(),
    output:
        runs=f"{RESULTS}/runs.csv",
        curves=f"{RESULTS}/curves.csv",
        tasks=f"{RESULTS}/tasks.csv",
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../envs/ladder.yaml"
    params:
        runs_dir=lambda w, input: os.path.dirname(os.path.dirname(input.train[0])),
        rungs=json.dumps([RUNGS[r].row() for r in LADDER], sort_keys=True),
    shell:
        "ladder aggregate --rungs-json {params.rungs:q} --runs-dir {params.runs_dir}"
        " --out {output.runs} --curves {output.curves}"
        " --task-scores {input.tasks} --tasks-out {output.tasks} > {log} 2>&1"


rule fit:
    input:
        unpack(task_table),
        runs=f"{RESULTS}/runs.csv",
        curves=f"{RESULTS}/curves.csv",
    output:
        f"{RESULTS}/fits.json",
    log:
        f"{LOGS}/fit.log",
    conda:
        "../envs/ladder.yaml"
    params:
        bootstrap=STUDY.fit.bootstrap,
        seed=STUDY.seed,
        tasks=task_fit_args,
    shell:
        "ladder fit {input.runs} --law all --curves {input.curves}{params.tasks}"
        " --bootstrap {params.bootstrap} --seed {params.seed} --out {output} > {log} 2>&1"
