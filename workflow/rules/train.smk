# One training job and one evaluation job per rung.


rule train:
    input:
        train=f"{TOKENS}/train.bin",
        val=f"{TOKENS}/val.bin",
        meta=f"{TOKENS}/meta.json",
    output:
        model=directory(f"{RESULTS}/runs/{{rung}}/model"),
        log=f"{RESULTS}/runs/{{rung}}/train_log.csv",
        summary=f"{RESULTS}/runs/{{rung}}/train.json",
    log:
        f"{LOGS}/train/{{rung}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{rung}}.tsv"
    conda:
        "../envs/ladder.yaml"
    threads: rung_threads
    resources:
        gpu=rung_gpus,
    params:
        rung=rung_json,
        tokens=lambda w, input: os.path.dirname(input.meta),
        run_dir=lambda w, output: os.path.dirname(output.summary),
    shell:
        "ladder train --rung-json {params.rung:q} --tokens-dir {params.tokens}"
        " --out-dir {params.run_dir} > {log} 2>&1"


rule evaluate:
    input:
        model=f"{RESULTS}/runs/{{rung}}/model",
        val=f"{TOKENS}/val.bin",
        meta=f"{TOKENS}/meta.json",
    output:
        f"{RESULTS}/runs/{{rung}}/eval.json",
    log:
        f"{LOGS}/evaluate/{{rung}}.log",
    conda:
        "../envs/ladder.yaml"
    threads: rung_threads
    params:
        rung=rung_json,
        tokens=lambda w, input: os.path.dirname(input.meta),
        max_tokens=STUDY["eval"]["max_tokens"],
        batch_size=STUDY["eval"]["batch_size"],
    shell:
        "ladder evaluate --rung-json {params.rung:q} --model-dir {input.model}"
        " --tokens-dir {params.tokens} --max-tokens {params.max_tokens}"
        " --batch-size {params.batch_size} --out {output} > {log} 2>&1"
