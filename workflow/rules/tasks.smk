# Multiple-choice tasks (docs/tasks.md): each task's JSONL file once (checked, exported or
# built from the val split), then one scoring job per rung x task, and one per run x task
# for the models the run kept at intermediate steps (tasks.checkpoints).


rule task:
    input:
        task_inputs,
    output:
        f"{RESULTS}/tasks/{{task}}.jsonl",
    log:
        f"{LOGS}/task/{{task}}.log",
    conda:
        "../envs/ladder.yaml"
    params:
        task=lambda w: json.dumps(TASKS[w.task].to_dict(), sort_keys=True),
        corpus=lambda w: (
            f"--corpus-dir {RESULTS}/corpus" if TASKS[w.task].builtin else ""
        ),
        seed=STUDY.seed,
    shell:
        "ladder task --task-json {params.task:q} {params.corpus} --seed {params.seed}"
        " --out {output} > {log} 2>&1"


rule score:
    input:
        spec=f"{RESULTS}/runs/{{rung}}/rung.json",
        model=f"{RESULTS}/runs/{{rung}}/model",
        summary=f"{RESULTS}/runs/{{rung}}/train.json",
        tokenizer=f"{RESULTS}/tokenizer",
        task=f"{RESULTS}/tasks/{{task}}.jsonl",
    output:
        samples=f"{RESULTS}/runs/{{rung}}/tasks/{{task}}.jsonl",
        summary=f"{RESULTS}/runs/{{rung}}/tasks/{{task}}.json",
    log:
        f"{LOGS}/score/{{rung}}/{{task}}.log",
    conda:
        "../envs/ladder.yaml"
    threads: rung_threads
    resources:
        **EVAL_RESOURCES,
    params:
        chance=lambda w: task_chance(w.task),
        batch_size=STUDY.tasks.batch_size,
    shell:
        "ladder launch --gpu-percent {resources.gpu_percent} --"
        " ladder score --rung-json @{input.spec} --model-dir {input.model}"
        " --tokenizer-dir {input.tokenizer} --task {input.task} --name {wildcards.task}"
        " {params.chance} --train-json {input.summary} --batch-size {params.batch_size}"
        " --samples {output.samples} --out {output.summary} > {log} 2>&1"


rule score_checkpoints:
    input:
        spec=f"{RESULTS}/runs/{{rung}}/rung.json",
        checkpoints=kept_folders,
        tokenizer=f"{RESULTS}/tokenizer",
        task=f"{RESULTS}/tasks/{{task}}.jsonl",
    output:
        samples=f"{RESULTS}/runs/{{rung}}/tasks/checkpoints/{{task}}.jsonl",
        summary=f"{RESULTS}/runs/{{rung}}/tasks/checkpoints/{{task}}.json",
    log:
        f"{LOGS}/score_checkpoints/{{rung}}/{{task}}.log",
    conda:
        "../envs/ladder.yaml"
    threads: rung_threads
    resources:
        **EVAL_RESOURCES,
    params:
        chance=lambda w: task_chance(w.task),
        batch_size=STUDY.tasks.batch_size,
    shell:
        "ladder launch --gpu-percent {resources.gpu_percent} --"
        " ladder score --rung-json @{input.spec} --checkpoints {input.checkpoints}"
        " --tokenizer-dir {input.tokenizer} --task {input.task} --name {wildcards.task}"
        " {params.chance} --batch-size {params.batch_size}"
        " --samples {output.samples} --out {output.summary} > {log} 2>&1"
