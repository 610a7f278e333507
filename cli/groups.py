"""The command groups of `csf` (``csf train ...``, ``csf score ...``, ``csf show ...``, ``csf bench ...``).

Each command module registers its commands on these groups; ``cli/main.py`` adds the groups to the app.
"""

from __future__ import annotations

import typer

train_app = typer.Typer(help="Train models on the feature store: the autoencoder filter, region heads.",
                        no_args_is_help=True)
score_app = typer.Typer(help="Score frames or regions with a trained model.", no_args_is_help=True)
show_app = typer.Typer(help="Draw pictures people look at: frames, boxes, error maps.", no_args_is_help=True)
bench_app = typer.Typer(help="Compare models side by side on one pinned snapshot of the store.",
                        no_args_is_help=True)
