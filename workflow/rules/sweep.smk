# Per-size tuning (ladder.sweep) and each rung's final spec. A rung's spec is a file so
# that a tuned learning rate, known only after its sweep ran, reaches `ladder train`,
# and so that editing one rung's hyperparameters rewrites that rung's spec alone.


rule tune:
    input:
        evals=lambda w: [f"{RESULTS}/runs/{s.id}/eval.json" for s in SWEEPS[w.size]],
    output:
        f"{RESULTS}/sweeps/{{size}}.json",
    log:
        f"{LOGS}/tune/{{size}}.log",
    conda:
        "../envs/ladder.yaml"
    params:
        sweep=lambda w: json.dumps([RUNGS[s.id].row() for s in SWEEPS[w.size]]),
    shell:
        "ladder tune --size {wildcards.size} --sweep-json {params.sweep:q}"
        " --evals {input.evals} --out {output} > {log} 2>&1"


rule rung_spec:
    input:
        sweep_of,
    output:
        f"{RESULTS}/runs/{{rung}}/rung.json",
    log:
        f"{LOGS}/rung_spec/{{rung}}.log",
    conda:
        "../envs/ladder.yaml"
    params:
        rung=rung_json,
        sweep=lambda w, input: f"--sweep {input[0]}" if input else "",
    shell:
        "ladder rung --rung-json {params.rung:q} {params.sweep} --out {output} > {log} 2>&1"
