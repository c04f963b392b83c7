# Plots and report.md, captioned for `snakemake --report report.html`.
# Every plot family has a fixed file name: a plot the data cannot support is still written,
# as a figure saying what is missing. The list (file stem -> (category, subcategory) in the
# HTML report) is ladder.artifacts.REPORT_PLOTS, which `ladder report` draws; importing it
# from there does not import matplotlib.
from ladder.artifacts import REPORT_PLOTS

REPORT_DIR = f"{RESULTS}/report"


# --extrapolate-to from the config, as a param, so changing the target reruns only the report
REPORT_TARGET = " ".join(
    f"--extrapolate-to {k}={v:g}"
    for k, v in (STUDY.report.extrapolate_to or {}).items()
)


rule report:
    input:
        unpack(task_table),
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
        tasks=lambda w, input: (
            f" --tasks {input.tasks}" if "tasks" in input.keys() else ""
        ),
    shell:
        "ladder report {input.runs} {input.fits} --out {params.out} --curves {input.curves}"
        " --meta {input.meta} --config {input.study}{params.tasks} {params.target} > {log} 2>&1"
