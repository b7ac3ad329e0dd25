"""Renderers: one module per output (text, html, markdown, frame, widget).

Only ``frame`` imports pandas and only ``widget`` imports ipywidgets.
"""
