"""Kernel truth: the `tcp:tcp_send_reset` tracepoint (Linux >= 6.10) read through a private tracefs
instance, parsed, matched to the RSTs on the wire, and used to settle the wire's candidate causes."""
