"""Members' event sequences: the fixed-length encoding (`encoding`, numpy only), the GRU
(`model`) and its occlusion attribution (`attribution`); the last two import torch."""
