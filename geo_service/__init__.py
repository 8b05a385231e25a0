"""Jiaxing plan GIS: the 14th Five-Year Plan's spatial items as OGC API – Features and maps."""

__version__ = "0.1.0"
