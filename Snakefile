# Ladder: a language-model scaling-law study as one DAG.
# corpus -> tokenizer -> token shards -> one training job per rung -> evaluation
# -> runs.csv -> fits.json -> report/. See README.md and config/README.md.
from snakemake.utils import min_version

min_version("8.0")


# The default study, unless a study is given with --configfile (which then replaces it,
# rather than being merged into it key by key as Snakemake would by default).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/wsd.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/report.smk"


# Bookkeeping that takes seconds runs where Snakemake runs, never as a cluster job.
localrules:
    all,
    plan,
    rung_spec,
    tune,
    aggregate,
    task,
    fit,
    report,


rule all:
    input:
        f"{RESULTS}/plan.csv",
        f"{RESULTS}/runs.csv",
        f"{RESULTS}/fits.json",
        rules.report.output,
