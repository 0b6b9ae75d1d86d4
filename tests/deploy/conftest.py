"""Chart tests render with the pinned Helm, built on first use by deploy/helm/install-helm.sh."""

from __future__ import annotations

import pytest

from tests.deploy.chart import VALUE_SETS, Rendered, render_set


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with one value set: the defaults or a file of its ci/ folder."""
    return render_set(request.param)
