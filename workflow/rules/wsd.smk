# Design wsd (Hägele et al. 2024): per size, one warmup-stable run cut into segments that
# end where a branch's cooldown starts; each branch (a rung of the ladder) continues the
# stable state and decays. The stable run's spec is a rung.json like a rung's, so that a
# tuned lr (ladder.sweep) reaches the stable segments as it reaches their branches. A
# segment's state is temporary: gone once its branch and the next segment have used it.
# The models kept at the stable run's keep_steps (tasks.checkpoints) are not: each
# segment writes those of its own steps into a folder of its own.


rule wsd_segment:
    input:
        spec=f"{RESULTS}/runs/{{wsd_size}}-stable/rung.json",
        tokens=f"{TOKENS}/meta.json",
        previous=wsd_previous,
    output:
        **kept_output(f"{RESULTS}/runs/{{wsd_size}}-stable/checkpoints/{{branch}}"),
        state=temp(f"{RESULTS}/runs/{{wsd_size}}-stable/{{branch}}.state.pt"),
    log:
        f"{LOGS}/wsd_segment/{{wsd_size}}/{{branch}}.log",
    conda:
        "../envs/ladder.yaml"
    threads: lambda w: job_threads(WSD[w.wsd_size]["stable"])
    resources:
        **{name: for_branch(f) for name, f in TRAIN_RESOURCES.items()},
    params:
        stop=lambda w: WSD[w.wsd_size]["stops"][w.branch],
        tokens=lambda w, input: os.path.dirname(input.tokens),
        run_dir=lambda w, output: os.path.dirname(output.state),
        init=lambda w, input: f"--init-state {input.previous}" if input.previous else "",
        eval_tokens=STUDY.eval.max_tokens,
        nodes=for_branch(launch_nodes),
        kept=kept_args,
    shell:
        "ladder launch --gpu-percent {resources.gpu_percent} {params.nodes} --"
        " ladder train --rung-json @{input.spec} --tokens-dir {params.tokens}"
        " --eval-tokens {params.eval_tokens}"
        " --out-dir {params.run_dir} {params.init} --stop-step {params.stop}"
        " --state-out {output.state} {params.kept} > {log} 2>&1"
