rule report:
    """Tables (CSV, Markdown, LaTeX), figures (PNG, PDF) and REPORT.md comparing every deployment with the paper."""
    input:
        metrics=report_inputs("metrics.json"),
        mapping=report_inputs("mapping.json"),
        crossbar=report_inputs("crossbar.npz"),
        noise=report_inputs("noise.csv"),
        noise_summary=report_inputs("noise_summary.json"),
        cost=report_inputs("cost.json"),
        nas_trials=nas_inputs("trials.csv"),
        nas_pareto=nas_inputs("pareto.csv"),
        nas_arch=nas_inputs("arch.json"),
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
        sensitivity=report(
            f"{RESULTS}/tables/sensitivity.csv",
            caption="../report/sensitivity_table.rst",
            category="Tables",
            labels={"table": "sensitivity of the savings"},
        ),
        sensitivity_md=f"{RESULTS}/tables/sensitivity.md",
        fig_noise=report(
            report_figures("accuracy_vs_prog_noise"),
            caption="../report/accuracy_vs_prog_noise.rst",
            category="Figures",
            subcategory="Accuracy vs programming noise",
        ),
        fig_cost=report(
            report_figures("cost_breakdown"),
            caption="../report/cost_breakdown.rst",
            category="Figures",
            subcategory="Area and energy by component",
        ),
        fig_weights=report(
            report_figures("weights"),
            caption="../report/weights.rst",
            category="Figures",
            subcategory="Weight codes and conductances",
        ),
        fig_seeds=report(
            report_figures("accuracy_seeds"),
            caption="../report/accuracy_seeds.rst",
            category="Figures",
            subcategory="Accuracy over seeds",
        ),
        fig_sensitivity=report(
            report_figures("sensitivity"),
            caption="../report/sensitivity.rst",
            category="Figures",
            subcategory="Sensitivity of the savings",
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
        fig_nas=(
            report(
                report_figures("nas_pareto"),
                caption="../report/nas_pareto.rst",
                category="Figures",
                subcategory="Unipolar architecture search",
            )
            if REPORT_NAS
            else []
        ),
        pdf=[f for kind in REPORT_FIGURES for f in report_figures(kind, "pdf")],
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
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        results_dir=lambda wc, output: str(Path(output.report).parents[1]),
        datasets=CFG["datasets"],
        variants=CFG["variants"],
        bits=CFG["device_bits"],
        seeds=SEEDS,
        cfg=CFG["report"],
        cost_cfg=CFG["estimate_cost"],
        profile=REPORT_PROFILE,
        tables_dir=lambda wc, output: str(Path(output.accuracy).parent),
        figures_dir=lambda wc, output: str(Path(output.fig_noise[0]).parent),
        experiments={ds: experiment(ds) for ds in CFG["datasets"]},
        notes=REPORT_NOTES,  # e.g. CIFAR-10 left out for want of a GPU (cifar10_on_cpu)
    script:
        "../scripts/report.py"
