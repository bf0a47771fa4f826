"""Sweeps: experiments as code. A TOML file names a base run, a grid or a search, and seeds (`spec`);
Optuna runs them as trials in a database, with workers on one machine or many (`engine`, `worker`, `run`);
`report` groups the trials by configuration, with n, mean ± sd and min–max."""
