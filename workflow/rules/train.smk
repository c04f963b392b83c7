# One training job and one evaluation job per rung. A rung that diverges is a result, not
# a failure: train writes its outputs marked `diverged` and exits 0 (no retry), evaluate
# records it without computing, and the fits leave it out (docs/training.md).
# Snakemake exports OMP_NUM_THREADS={threads} to each job, and both commands use at most
# that many CPU threads (ladder.runtime.job_threads), whatever the rung's train.threads.
# Both run under `ladder launch`, which gives each job its own GPU(s) through
# CUDA_VISIBLE_DEVICES (Snakemake counts GPUs but does not assign them). The resources
# are what a workstation schedules on (gpu_percent) and what SLURM is asked for (gpu,
# cpus_per_task, mem_mb, runtime); none of them changes a result (docs/cluster.md).
# `ladder store run` wraps training: a run whose key (spec, data hashes, training code) is
# in the run store is copied from it instead of trained; a run trained here is put in it
# (ladder.store). store.json says which; the GPU is claimed only for training.
# With tasks.checkpoints, its `checkpoints` output holds the models kept at the rung's
# keep_steps; every run writes the folder (empty if it keeps none), so it is declared for
# every rung (docs/tasks.md).
# A rung larger than one node (cluster.gpus_per_node) is a multi-node SLURM job: its
# command runs on the first node, where `ladder launch --nodes N` starts one launcher per
# node with srun, and `ladder train` one torchrun per node (docs/cluster.md).
from ladder import devices

TRAIN_RESOURCES = devices.job_resources("train", RUNGS, STUDY)
EVAL_RESOURCES = devices.job_resources("evaluate", RUNGS, STUDY)


rule train:
    input:
        spec=f"{RESULTS}/runs/{{rung}}/rung.json",
        init=wsd_init,
        shards=f"{TOKENS}/shards",
        meta=f"{TOKENS}/meta.json",
        tokenizer=f"{RESULTS}/tokenizer",
    output:
        **kept_output(f"{RESULTS}/runs/{{rung}}/checkpoints"),
        model=directory(f"{RESULTS}/runs/{{rung}}/model"),
        log=f"{RESULTS}/runs/{{rung}}/train_log.csv",
        summary=f"{RESULTS}/runs/{{rung}}/train.json",
        source=f"{RESULTS}/runs/{{rung}}/store.json",
    log:
        f"{LOGS}/train/{{rung}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{rung}}.tsv"
    conda:
        "../envs/ladder.yaml"
    threads: train_threads
    resources:
        **TRAIN_RESOURCES,
    params:
        tokens=lambda w, input: os.path.dirname(input.meta),
        run_dir=lambda w, output: os.path.dirname(output.summary),
        init=lambda w, input: f"--init-state {input.init}" if input.init else "",
        eval_tokens=STUDY.eval.max_tokens,
        nodes=launch_nodes,
    shell:
        "ladder store run --rung-json @{input.spec} --tokens-dir {params.tokens}"
        " --tokenizer-dir {input.tokenizer} --eval-tokens {params.eval_tokens}"
        " --out-dir {params.run_dir} {params.init} --"
        " ladder launch --gpu-percent {resources.gpu_percent} {params.nodes} --"
        " ladder train --rung-json @{input.spec} --tokens-dir {params.tokens}"
        " --eval-tokens {params.eval_tokens} --out-dir {params.run_dir} {params.init}"
        " > {log} 2>&1"


rule evaluate:
    input:
        spec=f"{RESULTS}/runs/{{rung}}/rung.json",
        model=f"{RESULTS}/runs/{{rung}}/model",
        summary=f"{RESULTS}/runs/{{rung}}/train.json",
        shards=f"{TOKENS}/shards",
        meta=f"{TOKENS}/meta.json",
    output:
        f"{RESULTS}/runs/{{rung}}/eval.json",
    log:
        f"{LOGS}/evaluate/{{rung}}.log",
    conda:
        "../envs/ladder.yaml"
    threads: rung_threads
    resources:
        **EVAL_RESOURCES,
    params:
        tokens=lambda w, input: os.path.dirname(input.meta),
        max_tokens=STUDY.eval.max_tokens,
        batch_size=STUDY.eval.batch_size,
    shell:
        "ladder launch --gpu-percent {resources.gpu_percent} --"
        " ladder evaluate --rung-json @{input.spec} --model-dir {input.model}"
        " --tokens-dir {params.tokens} --max-tokens {params.max_tokens}"
        " --batch-size {params.batch_size} --train-json {input.summary}"
        " --out {output} > {log} 2>&1"
