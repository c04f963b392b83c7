# Corpus -> tokenizer -> token shards, and the plan of the ladder.
# Each data stage streams: memory holds a batch, not the corpus (docs/design.md).


rule plan:
    output:
        plan=f"{RESULTS}/plan.csv",
        study=f"{RESULTS}/study.yaml",
    log:
        f"{LOGS}/plan.log",
    conda:
        "../envs/ladder.yaml"
    params:
        config=json.dumps(STUDY.to_dict(), sort_keys=True),
    shell:
        "ladder plan --config-json {params.config:q} --out {output.plan}"
        " --resolved {output.study} > {log} 2>&1"


# One folder, written atomically: {train,val}-NNNNN.parquet shards + stats.json.
rule corpus:
    input:
        data_inputs,
    output:
        directory(f"{RESULTS}/corpus"),
    log:
        f"{LOGS}/corpus.log",
    conda:
        "../envs/ladder.yaml"
    params:
        data=json.dumps(STUDY.data.to_dict(), sort_keys=True),
        seed=STUDY.seed,
    shell:
        "ladder corpus --data-json {params.data:q} --seed {params.seed}"
        " --out-dir {output} > {log} 2>&1"


rule tokenizer:
    input:
        f"{RESULTS}/corpus",
    output:
        directory(f"{RESULTS}/tokenizer"),
    log:
        f"{LOGS}/tokenizer.log",
    conda:
        "../envs/ladder.yaml"
    threads: 2
    params:
        kind=STUDY.tokenizer.kind,
        vocab_size=STUDY.tokenizer.vocab_size,
        min_frequency=STUDY.tokenizer.min_frequency,
        train_bytes=STUDY.tokenizer.train_bytes,
        name=STUDY.tokenizer.name or "",
        n_symbols=STUDY.data.synthetic.n_symbols,
    shell:
        "ladder tokenizer --kind {params.kind} --corpus-dir {input}"
        " --vocab-size {params.vocab_size} --min-frequency {params.min_frequency}"
        " --train-bytes {params.train_bytes} --name={params.name:q}"
        " --n-symbols {params.n_symbols} --out-dir {output} > {log} 2>&1"


# A pool of {threads} encoders, one core each: cluster.data_cpus (Snakemake lowers it to
# --cores on a workstation; on SLURM it is the job's CPUs). meta.json, written last,
# lists the shards.
rule encode:
    input:
        tokenizer=f"{RESULTS}/tokenizer",
        corpus=f"{RESULTS}/corpus",
    output:
        shards=directory(f"{TOKENS}/shards"),
        meta=f"{TOKENS}/meta.json",
    log:
        f"{LOGS}/encode.log",
    conda:
        "../envs/ladder.yaml"
    threads: STUDY.cluster.data_cpus
    params:
        out=lambda w, output: os.path.dirname(output.meta),
    shell:
        "ladder encode --tokenizer-dir {input.tokenizer} --corpus-dir {input.corpus}"
        " --out-dir {params.out} --workers {threads} > {log} 2>&1"
