"""Bulk jobs: filter and curate millions of samples through the Scorer, served by queue workers.

Items live in the store (PostgreSQL for workers; the record of what is done), work is handed out as chunks
through an arq queue on Redis, and a chunk's lease makes a killed worker's work come back to another one.
"""
