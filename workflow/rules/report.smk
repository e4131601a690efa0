# The report, one rule per stage (nvmxbar.stages.<rule>, workflow/scripts/<rule>.py); each reads only its input:
# report_collect (every deployment's files, once) -> report_tables, report_sensitivity, report_figure (one job per
# figure kind) -> report (REPORT.md, the MLflow runs).


rule report_collect:
    """Every deployment's and seed's files, and the unipolar search's, read once into tidy DataFrames."""
    input:
        metrics=[
            f"{RESULTS}/{ds}/{m}/seed{s}/metrics.json" for ds, m, s in report_models()
        ],
        mapping=report_inputs("mapping.json"),
        crossbar=report_inputs("crossbar.npz"),
        noise=report_inputs("noise.csv"),
        noise_summary=report_inputs("noise_summary.json"),
        cost=report_inputs("cost.json"),
        nas_trials=nas_inputs("trials.csv"),
        nas_pareto=nas_inputs("pareto.csv"),
        nas_arch=nas_inputs("arch.json"),
    output:
        collected=REPORT_COLLECTED,
    log:
        f"{RESULTS}/logs/report_collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_collect.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
        gpu=0,
    params:
        models=report_models(),
        deployments=report_deployments(),
        nas=report_nas(),
        datasets=CFG["datasets"],
        variants=CFG["variants"],
        bits=CFG["device_bits"],
        seeds=SEEDS,
    script:
        "../scripts/report_collect.py"


rule report_tables:
    """Accuracy (per seed, over the seeds, differences), cost, attribution and search tables: CSV, Markdown, LaTeX."""
    input:
        collected=REPORT_COLLECTED,
    output:
        accuracy=report(
            f"{RESULTS}/tables/accuracy.csv",
            caption="../report/accuracy_table.rst",
            category="Tables",
            labels={"table": "accuracy"},
        ),
        accuracy_formatted=multiext(f"{RESULTS}/tables/accuracy", ".md", ".tex"),
        accuracy_per_seed=report(
            f"{RESULTS}/tables/accuracy_per_seed.csv",
            caption="../report/accuracy_per_seed_table.rst",
            category="Tables",
            labels={"table": "accuracy per seed"},
        ),
        accuracy_per_seed_formatted=multiext(
            f"{RESULTS}/tables/accuracy_per_seed", ".md", ".tex"
        ),
        comparisons=report(
            f"{RESULTS}/tables/comparisons.csv",
            caption="../report/comparisons_table.rst",
            category="Tables",
            labels={"table": "differences between deployments"},
        ),
        comparisons_formatted=multiext(f"{RESULTS}/tables/comparisons", ".md", ".tex"),
        cost=report(
            f"{RESULTS}/tables/cost.csv",
            caption="../report/cost_table.rst",
            category="Tables",
            labels={"table": "area and energy"},
        ),
        cost_formatted=multiext(f"{RESULTS}/tables/cost", ".md", ".tex"),
        attribution=report(
            f"{RESULTS}/tables/attribution.csv",
            caption="../report/attribution_table.rst",
            category="Tables",
            labels={"table": "attribution of the savings"},
        ),
        attribution_formatted=multiext(f"{RESULTS}/tables/attribution", ".md", ".tex"),
        nonideal=report(
            f"{RESULTS}/tables/nonideal.csv",
            caption="../report/nonideal_table.rst",
            category="Tables",
            labels={"table": "IR drop and converter error"},
        ),
        nonideal_formatted=multiext(f"{RESULTS}/tables/nonideal", ".md", ".tex"),
        nonideal_comparisons=report(
            f"{RESULTS}/tables/nonideal_comparisons.csv",
            caption="../report/nonideal_comparisons_table.rst",
            category="Tables",
            labels={"table": "IR drop and converter error: differences"},
        ),
        nonideal_comparisons_formatted=multiext(
            f"{RESULTS}/tables/nonideal_comparisons", ".md", ".tex"
        ),
        nas=(
            report(
                f"{RESULTS}/tables/nas.csv",
                caption="../report/nas_table.rst",
                category="Tables",
                labels={"table": "unipolar architecture search"},
            )
            if REPORT_NAS
            else []
        ),
        nas_formatted=(
            multiext(f"{RESULTS}/tables/nas", ".md", ".tex") if REPORT_NAS else []
        ),
        frames=REPORT_TABLE_FRAMES,
    log:
        f"{RESULTS}/logs/report_tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_tables.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
        gpu=0,
    params:
        reference_prog_sigma=CFG["report"]["reference_prog_sigma"],
    script:
        "../scripts/report_tables.py"


rule report_sensitivity:
    """The savings over the baseline repriced (nvmxbar.core.cost.estimate) with one cost-model assumption moved."""
    input:
        mapping=report_inputs("mapping.json", REPORT_SENSITIVITY_VARIANTS),
        cost=report_inputs("cost.json", REPORT_SENSITIVITY_VARIANTS),
    output:
        csv=report(
            f"{RESULTS}/tables/sensitivity.csv",
            caption="../report/sensitivity_table.rst",
            category="Tables",
            labels={"table": "sensitivity of the savings"},
        ),
        md=f"{RESULTS}/tables/sensitivity.md",
    log:
        f"{RESULTS}/logs/report_sensitivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_sensitivity.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
        gpu=0,
    params:
        deployments=report_deployments(REPORT_SENSITIVITY_VARIANTS),
        datasets=CFG["datasets"],
        variants=REPORT_SENSITIVITY_VARIANTS,
        bits=CFG["device_bits"],
        seeds=SEEDS,
        pricing=P(COST.pricing),
    script:
        "../scripts/report_sensitivity.py"


rule report_figure:
    """One figure kind for every dataset (PNG, PDF), drawn by nvmxbar.report.figure_<kind> (its code: an input)."""
    input:
        unpack(figure_inputs),
        collected=REPORT_COLLECTED,
        code=figure_code,
    output:
        png=report(
            [f"{RESULTS}/figures/{{kind}}_{ds}.png" for ds in CFG["datasets"]],
            caption="../report/figure.rst",
            category="Figures",
            subcategory=lambda wildcards: FIGURE_TITLES[wildcards.kind],
        ),
        pdf=[f"{RESULTS}/figures/{{kind}}_{ds}.pdf" for ds in CFG["datasets"]],
    log:
        f"{RESULTS}/logs/report_figure/{{kind}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_figure/{{kind}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
        gpu=0,
    params:
        datasets=CFG["datasets"],
        cfg=CFG["report"],
    script:
        "../scripts/report_figure.py"


rule report:
    """REPORT.md comparing every deployment with the paper, from the tables, figures and benchmark files it declares."""
    input:
        unpack(lambda wc: {f"bench_{r}": f for r, f in report_benchmarks().items()}),
        collected=REPORT_COLLECTED,
        tables=REPORT_TABLE_FRAMES,
        table_files=[
            f"{RESULTS}/tables/{t}.{ext}"
            for t in REPORT_TABLES
            for ext in ("csv", "md", "tex")
        ]
        + [f"{RESULTS}/tables/sensitivity.{ext}" for ext in ("csv", "md")],
        sensitivity=f"{RESULTS}/tables/sensitivity.csv",
        figures=[
            f"{RESULTS}/figures/{kind}_{ds}.png"
            for ds in CFG["datasets"]
            for kind in REPORT_FIGURES
        ],
    output:
        report=report(
            f"{RESULTS}/report/REPORT.md",
            caption="../report/report_md.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
        gpu=0,
    params:
        cfg=CFG["report"],
        profile=REPORT_PROFILE,
        experiments={ds: experiment(ds) for ds in CFG["datasets"]},
        notes=REPORT_NOTES,  # e.g. CIFAR-10 left out for want of a GPU (cifar10_on_cpu)
    script:
        "../scripts/report.py"
