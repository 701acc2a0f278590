"""The paper's ablation tables from one command: suites of variants trained, evaluated and tabulated alike."""
