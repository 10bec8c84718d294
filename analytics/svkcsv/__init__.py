"""SvK prequalification CSV format: file names, writer and reader (TR25 §6.2, Table 18).

    from analytics.svkcsv import write_csv, read_csv
    path = write_csv(series, out_dir, resource="FlowerHub", product=Product.FCR_D_UP,
                     test_type=TestType.RAMP, area="SE3")
    record = read_csv(path)          # record.series, record.name.product, record.columns

See :mod:`analytics.svkcsv.names` for the vocabulary and our documented extensions
(services Ffr/Afrr/Mfrr, test type Activation, column ReqAcPow) and
:mod:`analytics.svkcsv.reader` for every error the reader raises.
"""

from analytics.svkcsv.errors import (
    EncodingError,
    FileNameError,
    IrregularSamplingError,
    MissingColumnError,
    NonMonotonicError,
    RowFormatError,
    SamplingRateError,
    SvkCsvError,
    TimestampError,
    UnknownColumnError,
    UnknownUnitError,
    WriteError,
)
from analytics.svkcsv.names import SERVICE_TOKENS, SIGNAL_UNITS, SvkFileName, parse_product
from analytics.svkcsv.reader import SvkRecord, read_csv, read_many
from analytics.svkcsv.writer import write_csv

__all__ = [
    "SERVICE_TOKENS",
    "SIGNAL_UNITS",
    "EncodingError",
    "FileNameError",
    "IrregularSamplingError",
    "MissingColumnError",
    "NonMonotonicError",
    "RowFormatError",
    "SamplingRateError",
    "SvkCsvError",
    "SvkFileName",
    "SvkRecord",
    "TimestampError",
    "UnknownColumnError",
    "UnknownUnitError",
    "WriteError",
    "parse_product",
    "read_csv",
    "read_many",
    "write_csv",
]
