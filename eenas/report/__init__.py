"""Presentation, shared by every command that writes results: tables (CSV and markdown), figures (PNG), report
pages (markdown and self-contained HTML) and the Pareto figure.

It reads plain tables only and imports nothing of the search, the studies or the training, which all write
through it.
"""
