"""``cqrs deploy``: keep the Kubernetes chart in step with the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

deploy_app = typer.Typer(help="Kubernetes deployment artefacts.", no_args_is_help=True)


@deploy_app.command("topics")
def topics(
    check: Annotated[
        bool, typer.Option("--check", help="Only check; exit 1 when the file is stale.")
    ] = False,
    path: Annotated[
        Path | None, typer.Option(help="Where to write (default: the chart's files/topics.json).")
    ] = None,
) -> None:
    """Generate the chart's topic table (KafkaTopic resources) from schemas/topics.py."""
    from deploy import topic_manifests

    target = path or topic_manifests.TOPICS_FILE
    if check:
        if not topic_manifests.is_current(target):
            print(f"{target} is stale: run `cqrs deploy topics` and commit the result")
            raise typer.Exit(1)
        print(f"{target} matches schemas/topics.py")
        return
    changed = topic_manifests.write(target)
    print(f"{'wrote' if changed else 'unchanged:'} {target}")


@deploy_app.command("values")
def values(
    domain: Annotated[
        str | None,
        typer.Option(help="The domain, package.module:attribute (default: CQRS_DOMAIN)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Chart values for the domain: its process managers, projections and topics."""
    from core.settings import load_settings
    from deploy import domain_values

    settings = load_settings()
    if domain is not None:
        settings = settings.model_copy(update={"domain": domain})
    text = domain_values.render(settings)
    if output is None:
        print(text, end="")
        return
    output.write_text(text)
    print(f"wrote {output}")
