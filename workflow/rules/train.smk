rule train:
    """Lightning training at seed {seed}: {model} is 'baseline' (float) or '<variant>/b<bits>' (quantization-aware:
    perlayer, uniform, signed, unipolar). The seeds of one model are grouped under one MLflow parent run.
    """
    input:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
        json=f"{RESULTS}/data/{{dataset}}.json",
        # unipolar and signed: the architecture nas_unipolar chose (signed drops its sign groups)
        arch=lambda wc: (
            [f"{RESULTS}/{wc.dataset}/unipolar/{wc.model.split('/')[1]}/nas/arch.json"]
            if wc.model.startswith(("unipolar/", "signed/"))
            else []
        ),
        teacher=lambda wc: teacher(wc) if wc.model != "baseline" else [],
    output:
        model=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json",
    log:
        f"{RESULTS}/logs/train/{{dataset}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{dataset}}/{{model}}/seed{{seed}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: CFG["train"]["num_threads"]
    resources:
        mem_mb=lambda wc: 8000 if wc.dataset == "cifar10" else 3000,
        runtime=runtime_train,
        gpu=job_gpus("train"),
    params:
        variant=lambda wc: parse_model(wc.model)[0],
        bits=lambda wc: parse_model(wc.model)[1],
        seed=lambda wc: int(wc.seed),
        model_cfg=lambda wc: CFG["model"][wc.dataset],
        recipe=lambda wc: P(recipe(wc.dataset, parse_model(wc.model)[0])),
        quant=lambda wc: quant_params(*parse_model(wc.model)),
        chip=lambda wc: chip_record(parse_model(wc.model)[0]),
        train_wires=lambda wc: train_wires_params(wc.dataset, *parse_model(wc.model)),
        accelerator=CFG["train"]["accelerator"],
        num_threads=CFG["train"]["num_threads"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/train.py"
