"""Command-line interface (click). Entry point: ``sslad``."""
