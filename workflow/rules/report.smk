# Plots and report.md, captioned for `snakemake --report report.html`.
# Every plot family has a fixed file name: a plot the data cannot support is still written,
# as a figure saying what is missing. Keep REPORT_PLOTS equal to ladder.report.PLOTS
# (tests/test_report.py checks); it is repeated here so parsing the Snakefile does not import
# matplotlib.

REPORT_DIR = f"{RESULTS}/report"
# file stem -> (category, subcategory) in the HTML report; one category per plot family
REPORT_PLOTS = {
    "loss_vs_params": ("1. Scaling laws", "Loss vs parameters"),
    "loss_vs_tokens": ("1. Scaling laws", "Loss vs tokens"),
    "loss_vs_compute": ("1. Scaling laws", "Loss vs compute"),
    "compute_frontier": ("2. Compute-optimal allocation", "Frontier and N, D lines"),
    "isoflop": ("2. Compute-optimal allocation", "IsoFLOP curves"),
    "learning_curves": ("3. Learning curves", "Loss vs tokens, every rung"),
    "scale_sensitivity": ("4. Scale properties", "Sensitivity: exponents"),
    "self_similarity": ("4. Scale properties", "Self-similarity: curve collapse"),
    "scale_independence": ("4. Scale properties", "Independence: exponent vs scale"),
    "residuals": ("5. Residuals", "Residuals of each law"),
}


# --extrapolate-to from the config, as a param, so changing the target reruns only the report
REPORT_TARGET = " ".join(
    f"--extrapolate-to {k}={v:g}"
    for k, v in (STUDY.report.extrapolate_to or {}).items()
)


rule report:
    input:
        runs=f"{RESULTS}/runs.csv",
        fits=f"{RESULTS}/fits.json",
        curves=f"{RESULTS}/curves.csv",
        meta=f"{TOKENS}/meta.json",
        study=f"{RESULTS}/study.yaml",
    output:
        md=report(
            f"{REPORT_DIR}/report.md",
            caption="../report/report_md.rst",
            category="0. Summary",
        ),
        png=[
            report(
                f"{REPORT_DIR}/{stem}.png",
                caption=f"../report/{stem}.rst",
                category=category,
                subcategory=subcategory,
            )
            for stem, (category, subcategory) in REPORT_PLOTS.items()
        ],
        svg=[f"{REPORT_DIR}/{stem}.svg" for stem in REPORT_PLOTS],
    log:
        f"{LOGS}/report.log",
    conda:
        "../envs/ladder.yaml"
    params:
        out=lambda w, output: os.path.dirname(output.md),
        target=REPORT_TARGET,
    shell:
        "ladder report {input.runs} {input.fits} --out {params.out} --curves {input.curves}"
        " --meta {input.meta} --config {input.study} {params.target} > {log} 2>&1"
