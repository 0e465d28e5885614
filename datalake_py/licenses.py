"""Licenses: the ones the lake knows (the dbt seed seeds/licenses.csv, read here too) and the
checks a provider's or an upload's license goes through.

A license is an SPDX identifier the seed lists, or `other` with a name and a URL.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from .catalog.dbt_worker import PROJECT_DIR
from .errors import ValidationError

OTHER = "other"
SEED = PROJECT_DIR / "seeds" / "licenses.csv"
LICENSE_HELP = ("An SPDX identifier from seeds/licenses.csv (e.g. CC-BY-4.0, MIT), or 'other' with "
                "--license-name and --license-url.")


@dataclass(frozen=True)
class License:
    """One license: its identifier, name, URL, what it allows and asks, and its Hub card id."""

    id: str
    name: str
    url: str
    commercial_use: bool | None = None  # None: unknown (an `other` license)
    attribution_required: bool | None = None
    hub_id: str = OTHER

    def fields(self) -> dict[str, str | None]:
        """The license as an upload's manifest and ledger record it."""
        other = self.id == OTHER
        return {"license": self.id, "license_name": self.name if other else None,
                "license_url": self.url if other else None}


@functools.cache
def known_licenses() -> dict[str, License]:
    """The seed's licenses by id."""
    with SEED.open(newline="", encoding="utf-8") as f:
        return {row["id"]: License(row["id"], row["name"], row["url"], row["commercial_use"] == "true",
                                   row["attribution_required"] == "true", row["hub_id"])
                for row in csv.DictReader(f)}


def check_license(license: str | None, name: str | None = None, url: str | None = None) -> License | None:
    """The license an id (with a name and URL for `other`) stands for; None for no license.

    Raises ValidationError for an id the seed does not list, or `other` without a name and URL."""
    if not license:
        if name or url:
            raise ValidationError("a license name or URL needs license='other' (--license other)")
        return None
    if license == OTHER:
        if not (name and url):
            raise ValidationError("license 'other' needs its name and URL: give license_name= and license_url= "
                                  "(--license-name, --license-url)")
        return License(OTHER, name, url)
    known = known_licenses()
    if license not in known:
        raise ValidationError(f"unknown license {license!r}; give an SPDX identifier the lake knows "
                              f"({', '.join(known)}; listed in seeds/licenses.csv), or 'other' with a name "
                              "and URL")
    if name or url:
        raise ValidationError(f"license {license!r} has its own name and URL; license_name= and license_url= "
                              "go with license='other'")
    return known[license]
