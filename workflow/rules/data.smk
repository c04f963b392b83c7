# Corpus -> tokenizer -> token shards, and the plan of the ladder.


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


rule corpus:
    input:
        data_inputs,
    output:
        train=f"{RESULTS}/corpus/train.parquet",
        val=f"{RESULTS}/corpus/val.parquet",
        stats=f"{RESULTS}/corpus/stats.json",
    log:
        f"{LOGS}/corpus.log",
    conda:
        "../envs/ladder.yaml"
    params:
        data=json.dumps(STUDY.data.to_dict(), sort_keys=True),
        seed=STUDY.seed,
        out=lambda w, output: os.path.dirname(output.train),
    shell:
        "ladder corpus --data-json {params.data:q} --seed {params.seed}"
        " --out-dir {params.out} > {log} 2>&1"


rule tokenizer:
    input:
        f"{RESULTS}/corpus/train.parquet",
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
        name=STUDY.tokenizer.name or "",
        n_symbols=STUDY.data.synthetic.n_symbols,
    shell:
        "ladder tokenizer --kind {params.kind} --corpus {input} --vocab-size {params.vocab_size}"
        " --min-frequency {params.min_frequency} --name={params.name:q}"
        " --n-symbols {params.n_symbols} --out-dir {output}"
        " > {log} 2>&1"


rule encode:
    input:
        tokenizer=f"{RESULTS}/tokenizer",
        train=f"{RESULTS}/corpus/train.parquet",
        val=f"{RESULTS}/corpus/val.parquet",
        stats=f"{RESULTS}/corpus/stats.json",
    output:
        train=f"{TOKENS}/train.bin",
        val=f"{TOKENS}/val.bin",
        meta=f"{TOKENS}/meta.json",
    log:
        f"{LOGS}/encode.log",
    conda:
        "../envs/ladder.yaml"
    threads: 2
    params:
        corpus=lambda w, input: os.path.dirname(input.train),
        out=lambda w, output: os.path.dirname(output.meta),
    shell:
        "ladder encode --tokenizer-dir {input.tokenizer} --corpus-dir {params.corpus}"
        " --out-dir {params.out} > {log} 2>&1"
