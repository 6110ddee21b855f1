"""Search spaces: architecture macro spaces, per-layer bit-widths, accelerator spaces, NAS-Bench-201."""
