"""rstwatch live: watch an interface through dumpcap and stream verdicts."""
