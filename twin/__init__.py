"""Suncatcher twin: flight software for a compute satellite, run against simulated or real boards."""
__version__ = "0.1.0"
