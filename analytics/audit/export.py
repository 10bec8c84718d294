"""``flowerhub audit export-svk``: one activation of the event log as an SvK CSV file.

The file holds exactly the canonical fleet series the event-log audit judges
(:func:`analytics.audit.run.activation_series`: resampled onto a regular grid, values
rounded as the CSV carries them), so auditing the file with ``--svk-csv`` repeats the
event-log audit sample for sample.
"""

from __future__ import annotations

from pathlib import Path

from analytics.audit.extract import HOLD_S, AuditInputError
from analytics.audit.run import AuditOptions, activation_series, audit_connection, scan_log
from analytics.svkcsv import write_csv
from analytics.verdicts import TestType
from contract.enums import Product


def export_activation(
    archive_dir: Path,
    activation_id: str,
    out_dir: Path,
    *,
    resource: str,
    area: str,
    interval_s: float | None = None,
    topic_prefix: str = "",
    hold_s: float = HOLD_S,
) -> Path:
    """Write the activation's fleet series with :func:`write_csv`; return the file's path."""
    if not archive_dir.is_dir():
        raise AuditInputError(f"{archive_dir}: not a directory")
    con = audit_connection()  # scan_log's scoped views are all it reads
    try:
        opts = AuditOptions(interval_s=interval_s, topic_prefix=topic_prefix, hold_s=hold_s)
        scan = scan_log(con, opts, archive_dir)
        found = [a for a in scan.activations if a.activation_id == activation_id]
        if not found:
            known = ", ".join(a.activation_id for a in scan.activations) or "none"
            raise AuditInputError(
                f"no activation {activation_id!r} in {archive_dir} (found: {known})"
            )
        act = found[0]
        series, local = activation_series(con, scan, act, opts)
    finally:
        con.close()
    return write_csv(
        series,
        out_dir,
        resource=resource,
        product=act.product,
        test_type=act.test_type,
        area=area,
        period_s=act.period_s,
        activation_hz=local.ffr_activation_hz
        if act.product is Product.FFR and act.test_type is TestType.ACTIVATION
        else None,
    )
