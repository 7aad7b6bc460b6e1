"""The `tb-weightnorm` command line: `report` for a terminal, `export` to CSV."""

from tb_weightnorm.cli.main import main, parse_threshold

__all__ = ["main", "parse_threshold"]
