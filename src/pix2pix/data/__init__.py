"""Paired datasets, paired transforms and dataset tools."""
